"""Builds the API client for a provider from its configuration entry: the one place clients are wired.

``build_client(provider, settings)`` returns None when the provider has no API credentials (it is then served
by callbacks only). Each client gets its own ``requests`` session and token bucket:

* rate: ``settings.rate_limit_per_s``, or the provider's documented default (Huawei video and audio 5/s each,
  image batches 10/s, Alibaba ``QueryMediaCensorJobList`` 50/s, Azure 10/s: ``providers/profiles.py``), run
  ``HttpOptions.rate_headroom`` (5 %) under it with a burst of 1, and no more than the limit's whole number of
  requests in the time the bucket spaces that many over (1.05 s for a whole limit, at least that), each counted
  from when its bytes are written: a thread that woke late for its token, or lost the interpreter before its
  write, holds back the ones after it. So the margin is left for the network's jitter, and a sliding one-second
  window sees no more than the limit;
* concurrency: ``settings.max_concurrency`` requests in flight;
* Alibaba: ``settings.batch_size`` job ids per query (default 10).

The client's ``limiter`` (what :meth:`~verdict_relay.clients.base.ProviderClient.take_over` spends) is set here to
that token bucket, for every provider: no client wires it itself.

Client modules (and ``requests``) are imported on first use, like the adapters in the registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from verdict_relay.config import (
    AlibabaKeys,
    AzureKey,
    Credentials,
    HuaweiAkSk,
    HuaweiIamUser,
    HuaweiToken,
    ProvidersConfig,
    ProviderSettings,
    is_loopback_host,
    rate_limit,
)
from verdict_relay.errors import ConfigurationError, UnknownProviderError
from verdict_relay.models.verdict import PROVIDER_NAMES
from verdict_relay.providers.registry import get_adapter

if TYPE_CHECKING:
    from verdict_relay.clients.base import ProviderClient
    from verdict_relay.clients.http import HttpOptions, ProviderHttp
    from verdict_relay.clients.huawei import HuaweiAuth
    from verdict_relay.providers.base import ProviderAdapter


IAM_RATE_PER_S = 1.0
"""Huawei IAM token requests, at most one a second on a bucket of their own: a container asks about once a day
(a token lasts 24 hours), and IAM's limits are its own, not the moderation API's."""


def build_client(
    provider: str, settings: ProviderSettings, *, options: HttpOptions | None = None
) -> ProviderClient | None:
    """The provider's API client, or None when no credentials are configured.

    Raises UnknownProviderError for a name outside the registry and ConfigurationError for an entry the
    client cannot work with (wrong credential shape, no endpoint and no region, Huawei v3 without a project).
    """
    from verdict_relay.clients.http import HttpOptions, ProviderHttp
    from verdict_relay.clients.ratelimit import TokenBucket

    if provider not in PROVIDER_NAMES:
        raise UnknownProviderError(provider)
    try:
        credentials = settings.typed_credentials(provider)
    except ValueError as exc:
        raise ConfigurationError(f"{provider}.credentials: {exc}") from exc
    if credentials is None:
        return None
    options = options or HttpOptions()
    limit = rate_limit(provider, settings)
    rate = limit * (1.0 - options.rate_headroom)
    # As many requests as the limit allows a second (at least one), in the time the bucket spaces them over:
    # the window holds back only what comes closer together than the bucket's rate, never the rate itself; and
    # never in less than the second and its margin a whole limit's take (a fractional limit's whole number of
    # requests takes the bucket less than a second).
    window = max(1, math.floor(limit))
    window_s = max(window / rate, 1.0 / (1.0 - options.rate_headroom))
    limiter = TokenBucket(rate, options.burst, window=window, window_s=window_s)
    http = ProviderHttp(provider, limiter, options, max_concurrency=settings.max_concurrency)
    # The registry takes the whole providers document; one entry is all the Azure policy needs. Not validated
    # again as a document: an entry built without one (tests, tools) gets this function's own checks below,
    # raised as ConfigurationError, instead of the document's ValidationError. A document's entries passed
    # the same checks when it was loaded (ProvidersConfig.from_document).
    adapter = get_adapter(provider, ProvidersConfig.model_construct(providers={provider: settings}))

    builder = _BUILDERS.get(provider)
    if builder is None:
        raise ConfigurationError(f"{provider}: no API client is wired for it in clients/factory.py")
    client = builder(_Parts(provider, settings, credentials, http, adapter))
    # take_over() spends the saved request of the bucket every request of the client goes through: it is set
    # here, where that bucket is made, rather than by each client, as one that forgot would send a request on
    # top of the provider's rate at every hand-off between the scheduled poller and the poll workers.
    client.limiter = limiter
    return client


@dataclass(frozen=True)
class _Parts:
    """What every provider's client is built from."""

    provider: str
    settings: ProviderSettings
    credentials: Credentials
    http: ProviderHttp
    adapter: ProviderAdapter


def _alibaba_mps(parts: _Parts) -> ProviderClient:
    from verdict_relay.clients.alibaba import DEFAULT_ENDPOINT, AlibabaMpsClient

    if not isinstance(parts.credentials, AlibabaKeys):
        raise ConfigurationError(f"{parts.provider}: expected Alibaba credentials")
    return AlibabaMpsClient(
        parts.http,
        parts.credentials,
        parts.adapter,
        endpoint=_endpoint(parts.provider, parts.settings, DEFAULT_ENDPOINT),
        batch_size=parts.settings.batch_size,
    )


def _azure_review(parts: _Parts) -> ProviderClient:
    from verdict_relay.clients.azure import AzureReviewClient

    settings = parts.settings
    if not isinstance(parts.credentials, AzureKey):
        raise ConfigurationError(f"{parts.provider}: expected an Azure subscription key")
    if not settings.endpoint or not settings.team:
        raise ConfigurationError(f"{parts.provider}: endpoint and team are required")
    return AzureReviewClient(
        parts.http, parts.credentials, parts.adapter, endpoint=settings.endpoint, team=settings.team
    )


def _huawei_image_batch(parts: _Parts) -> ProviderClient:
    from verdict_relay.clients.huawei import DEFAULT_ENDPOINT, HuaweiImageBatchClient

    auth = _huawei_auth(parts.provider, parts.settings, parts.credentials, parts.http)
    endpoint = _endpoint(parts.provider, parts.settings, DEFAULT_ENDPOINT)
    return HuaweiImageBatchClient(parts.http, auth, parts.adapter, endpoint)


def _huawei_v3(parts: _Parts) -> ProviderClient:
    from verdict_relay.clients.huawei import DEFAULT_ENDPOINT, HuaweiV3Client

    provider, settings = parts.provider, parts.settings
    auth = _huawei_auth(provider, settings, parts.credentials, parts.http)
    endpoint = _endpoint(provider, settings, DEFAULT_ENDPOINT)
    if not settings.project_id:
        raise ConfigurationError(f"{provider}: project_id is required (it is part of every v3 URL)")
    media: Literal["huawei-video", "huawei-audio"] = (
        "huawei-video" if provider == "huawei-video" else "huawei-audio"
    )
    return HuaweiV3Client(
        media, parts.http, auth, parts.adapter, endpoint=endpoint, project_id=settings.project_id
    )


_BUILDERS: dict[str, Callable[[_Parts], ProviderClient]] = {
    "huawei-video": _huawei_v3,
    "huawei-audio": _huawei_v3,
    "huawei-image-batch": _huawei_image_batch,
    "alibaba-mps": _alibaba_mps,
    "azure-review": _azure_review,
}
"""Each provider's client, by name: a provider without an entry fails with a ConfigurationError naming it
(``tests/unit/test_repository_files.py`` checks this table names exactly the registry's providers)."""


def _endpoint(provider: str, settings: ProviderSettings, template: str) -> str:
    if settings.endpoint:
        return settings.endpoint
    if not settings.region:
        raise ConfigurationError(f"{provider}: set endpoint, or region for the default endpoint")
    return template.format(region=settings.region)


def _huawei_auth(
    provider: str, settings: ProviderSettings, credentials: Credentials, http: ProviderHttp
) -> HuaweiAuth:
    from verdict_relay.clients.http import ProviderHttp
    from verdict_relay.clients.huawei import (
        DEFAULT_IAM_ENDPOINT,
        HuaweiAkSkAuth,
        HuaweiIamAuth,
        HuaweiTokenAuth,
    )
    from verdict_relay.clients.ratelimit import TokenBucket

    if isinstance(credentials, HuaweiAkSk):
        return HuaweiAkSkAuth(credentials.ak, credentials.sk, settings.project_id)
    if isinstance(credentials, HuaweiToken):
        return HuaweiTokenAuth(credentials.token)
    if isinstance(credentials, HuaweiIamUser):
        iam_endpoint = credentials.iam_endpoint
        if not iam_endpoint:
            if not settings.region:
                raise ConfigurationError(
                    f"{provider}: set credentials.iam_endpoint, or region for the default"
                )
            iam_endpoint = DEFAULT_IAM_ENDPOINT.format(region=settings.region)
        _require_safe_url(provider, "credentials.iam_endpoint", iam_endpoint)
        # IAM is a service of its own, with limits of its own: its token request must not take the moderation
        # API's token (a callback's fetch has about one of those to spend, and would then have none left).
        iam_http = ProviderHttp(provider, TokenBucket(IAM_RATE_PER_S), http.options, max_concurrency=1)
        return HuaweiIamAuth(
            iam_http,
            iam_endpoint,
            credentials.user_name,
            credentials.password,
            credentials.domain_name,
            project_id=settings.project_id,
            region=settings.region,
        )
    raise ConfigurationError(f"{provider}: expected Huawei credentials")


def _require_safe_url(provider: str, key: str, url: str) -> None:
    # The IAM user's password is sent there: https only, http only to this machine (the local simulator).
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return
    raise ConfigurationError(f"{provider}: {key} must be an https:// URL (http:// only for loopback)")
