"""The one registry of provider adapters: each provider name's adapter class.

Adding a provider takes its adapter module and its line here, and more: its profile (``providers/profiles.py``)
and credential models, an API client, the simulator and the local scenario, fixtures and tests, the generated
files and the poll workers' concurrency in ``template.yaml``. The checklist, and which test fails until each step is done, is "Adding a provider" in
``docs/providers.md``.

Adapters are imported on first use, so a cold start only pays for the providers it serves.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from verdict_relay.errors import UnknownProviderError
from verdict_relay.models.verdict import PROVIDER_NAMES
from verdict_relay.providers.profiles import PROFILES

if TYPE_CHECKING:
    from verdict_relay.config import ProvidersConfig
    from verdict_relay.providers.base import ProviderAdapter

ADAPTERS: dict[str, str] = {
    "huawei-video": "verdict_relay.providers.huawei_video:HuaweiVideoAdapter",
    "huawei-audio": "verdict_relay.providers.huawei_audio:HuaweiAudioAdapter",
    "huawei-image-batch": "verdict_relay.providers.huawei_image_batch:HuaweiImageBatchAdapter",
    "alibaba-mps": "verdict_relay.providers.alibaba_mps:AlibabaMpsAdapter",
    "azure-review": "verdict_relay.providers.azure_review:AzureReviewAdapter",
}
assert tuple(ADAPTERS) == PROVIDER_NAMES, "every provider name has exactly one adapter"
assert tuple(PROFILES) == PROVIDER_NAMES, (
    "every provider name has exactly one profile (providers/profiles.py)"
)


def get_adapter(name: str, config: ProvidersConfig | None = None) -> ProviderAdapter:
    """The adapter for a provider name; UnknownProviderError (404) for any other name."""
    target = ADAPTERS.get(name)
    if target is None:
        raise UnknownProviderError(name)
    module_name, _, class_name = target.partition(":")
    adapter_class = getattr(import_module(module_name), class_name)
    if name == "azure-review":
        return adapter_class(policy=config.azure_policy() if config else None)
    return adapter_class()
