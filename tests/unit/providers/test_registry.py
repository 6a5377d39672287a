"""What every registered adapter must declare, checked for each provider name the registry serves."""

from __future__ import annotations

import pytest

from verdict_relay.models.verdict import PROVIDER_NAMES
from verdict_relay.providers.registry import get_adapter


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_every_adapter_says_whether_its_provider_calls_back(provider: str) -> None:
    # Without it, the receiver's check of a callback for the provider fails with an AttributeError (a 500); and
    # there is no default, so that no provider that never calls back takes a callback carrying a configured token
    adapter = get_adapter(provider)

    assert isinstance(getattr(adapter, "takes_callbacks", None), bool), f"{provider}: set takes_callbacks"
