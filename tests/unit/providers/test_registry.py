"""What every registered adapter must declare, checked for each provider name the registry serves."""

from __future__ import annotations

import pytest

from verdict_relay.config import PROVIDERS_WITH_CALLBACKS
from verdict_relay.models.verdict import PROVIDER_NAMES
from verdict_relay.providers.base import ProviderAdapter
from verdict_relay.providers.registry import get_adapter


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


def test_the_providers_document_takes_callback_settings_for_exactly_the_providers_that_call_back() -> None:
    # config.py cannot import the adapters (the receiver's cold start), so it lists them: an entry's callback
    # block is refused for any other provider
    assert {
        provider for provider in PROVIDER_NAMES if get_adapter(provider).takes_callbacks
    } == PROVIDERS_WITH_CALLBACKS
