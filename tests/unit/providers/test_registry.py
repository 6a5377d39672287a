"""What every registered adapter and provider profile must declare, checked for each provider name the registry
serves."""

from __future__ import annotations

import pytest

from verdict_relay.models.verdict import PROVIDER_NAMES
from verdict_relay.providers.base import ProviderAdapter
from verdict_relay.providers.profiles import PROFILES, ProviderProfile
from verdict_relay.providers.registry import ADAPTERS, get_adapter


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_every_adapter_says_whether_its_provider_calls_back(provider: str) -> None:
    # Without it, the receiver's check of a callback for the provider fails with an AttributeError (a 500); and
    # there is no default, so that no provider that never calls back takes a callback carrying a configured token
    adapter = get_adapter(provider)

    assert isinstance(getattr(adapter, "takes_callbacks", None), bool), f"{provider}: set takes_callbacks"


def test_an_adapter_class_that_does_not_say_whether_its_provider_calls_back_cannot_be_defined() -> None:
    with pytest.raises(TypeError, match="NewProviderAdapter must set takes_callbacks"):

        class NewProviderAdapter(ProviderAdapter):
            name = "new-provider"


def test_every_provider_name_has_one_profile_in_the_registry_order() -> None:
    assert tuple(PROFILES) == tuple(ADAPTERS) == PROVIDER_NAMES
    assert all(name == profile.name for name, profile in PROFILES.items())


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_a_profile_says_the_provider_calls_back_exactly_when_its_adapter_takes_callbacks(
    provider: str,
) -> None:
    # config.py cannot import the adapters (the receiver's cold start), so it reads the profile: an entry's
    # callback block is refused for a provider whose profile says it never calls back
    assert PROFILES[provider].calls_back == get_adapter(provider).takes_callbacks


def test_a_profile_without_a_fact_every_provider_decides_cannot_be_made() -> None:
    with pytest.raises(TypeError, match="rate_limit_per_s"):
        ProviderProfile(name="new-provider", calls_back=False, client_needs="region (or endpoint)")  # type: ignore[call-arg]
