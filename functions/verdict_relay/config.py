"""Typed configuration, validated once at cold start.

Two sources:

* ``Settings``: the function's environment (table, topic, bucket, limits), set by ``template.yaml``.
* ``ProvidersConfig``: one JSON document with an entry per provider (endpoints, credentials, callback secrets,
  policy). In AWS it is a Secrets Manager secret read through Powertools Parameters (cached); locally a file.
  A provider absent from the document is disabled; a malformed entry fails at start, naming the key. So does
  an entry that could only fail later: one whose API client (built when it has credentials) lacks a setting the
  client needs, or one whose verdicts can only be fetched (``alibaba-mps``, ``trust: fetch``) without credentials.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from verdict_relay.errors import ConfigurationError, ConfigurationUnavailableError
from verdict_relay.models.verdict import PROVIDER_NAMES, Suggestion
from verdict_relay.providers.profiles import PROFILES

SecretToken = Annotated[str, StringConstraints(min_length=16, max_length=256, pattern=r"^[A-Za-z0-9._~-]+$")]
"""A callback URL token: URL-safe, at least 16 characters, so a guessable one cannot be configured."""

HuaweiSeed = Annotated[str, StringConstraints(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
"""Huawei's callback ``seed``: 16 to 64 characters of [A-Za-z0-9_]. Huawei allows up to 64 of those; at least 16,
as for a callback token, because the seed is the HMAC key and the 401/200 answers would let anyone try short
ones one by one until a forged signature is accepted."""

DEFAULT_MNS_CERTIFICATE_HOSTS = ("mnstest.oss-cn-hangzhou.aliyuncs.com",)
"""Where Alibaba MNS publishes its signing certificate. Exact hosts only: any OSS bucket is a subdomain of
aliyuncs.com, so a wildcard would let anyone with a bucket sign callbacks."""


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_https_or_loopback(url: str) -> bool:
    """An https URL (http for loopback) a request path can be appended to: a host, a valid port if any, and no
    whitespace, query, fragment or user, any of which would fail every request rather than the document."""
    parts = urlsplit(url)
    if not parts.hostname:  # "https:/host" (one slash) has none: the client would fail at its first request
        return False
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not one (":99999", ":abc")
    except ValueError:
        return False
    if any(char.isspace() or char in "?#" for char in url) or parts.username:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _host_name(value: str) -> str:
    if not _HOST_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r:.80} is not a host name: give the certificate URL's host alone, matched exactly (no scheme,"
            " port, path or wildcard), e.g. mnstest.oss-cn-hangzhou.aliyuncs.com"
        )
    return value


CertificateHost = Annotated[str, AfterValidator(_host_name)]
"""An MNS certificate host, matched exactly: a URL, a port or a wildcard could never match, and every push
would be refused."""


class CallbackSettings(_Strict):
    """How the receiver authenticates one provider's callbacks. Several values of each are active at once so
    secrets can be rotated: add the new one, move the provider over, remove the old one."""

    tokens: list[SecretToken] = Field(
        default_factory=list,
        repr=False,
        description="Secret tokens accepted in the callback URL's ?token= parameter",
    )
    seeds: list[HuaweiSeed] = Field(
        default_factory=list,
        repr=False,
        description="Huawei v3: the job seeds whose X-Auth-Signature is accepted",
    )
    certificate_hosts: list[CertificateHost] = Field(
        default_factory=lambda: list(DEFAULT_MNS_CERTIFICATE_HOSTS),
        min_length=1,
        description="Alibaba MNS: hosts the signing certificate may be fetched from (exact names)",
    )
    max_age_seconds: int = Field(
        default=900, ge=30, le=3600, description="Alibaba MNS: oldest (or furthest future) Date accepted"
    )
    first_poll_after_seconds: int = Field(
        default=0,
        ge=0,
        le=86400,
        description=(
            "How long after its registration (POST /jobs) a job is first polled: its callback is expected to "
            "finish it before then, and the poll is there for a callback that never comes. 0: from the next "
            "poll cycle"
        ),
    )

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        """The fields that hold secrets, lists of them: those left out of the model's repr (``repr=False``). A new
        kind of callback secret is one more such field, and so is redacted from what providers send
        (:meth:`secrets`), warned about when two providers share it, and searched for in the suites' logs."""
        return tuple(name for name, field in cls.model_fields.items() if not field.repr)

    def secrets(self) -> list[str]:
        """Every secret of every kind these settings hold."""
        values = (getattr(self, name) for name in self.secret_fields())
        return [secret for value in values for secret in ([value] if isinstance(value, str) else value)]


AZURE_REVIEW_THRESHOLDS: Final[dict[str, float | None]] = {"adult": 0.5, "racy": 0.5}
AZURE_BLOCK_THRESHOLDS: Final[dict[str, float | None]] = {"adult": 0.8, "racy": 0.9}
AZURE_REVIEWER_TAGS: Final[dict[str, Suggestion]] = {"a": Suggestion.BLOCK, "r": Suggestion.REVIEW}


class AzurePolicy(_Strict):
    """Azure Content Moderator gives scores and flags, not a verdict: this is the mapping (docs/providers.md).

    Per score category (``adult``, ``racy``): score >= block threshold -> block; score >= review threshold or the
    category's flag (``isAdult``/``a``, ``isRacy``/``r``) set -> review. Profanity in a text job -> ``profanity``.
    A reviewer's tags map through ``reviewer_tags``; a true tag not listed there -> ``unknown_tag``. A completed
    job for which the team's workflow created a review (a ``ReviewId``) is at least ``review_created``.
    """

    review_threshold: dict[str, float | None] = Field(default_factory=lambda: dict(AZURE_REVIEW_THRESHOLDS))
    block_threshold: dict[str, float | None] = Field(default_factory=lambda: dict(AZURE_BLOCK_THRESHOLDS))
    """Per category; a document's thresholds are merged over these defaults (``_unit_interval``)."""
    profanity: Suggestion = Suggestion.REVIEW
    reviewer_tags: dict[str, Suggestion] = Field(default_factory=lambda: dict(AZURE_REVIEWER_TAGS))
    """Per tag, in lower case; a document's tags are merged over these defaults (``_merged_tags``)."""
    unknown_tag: Suggestion = Suggestion.REVIEW
    review_created: Suggestion = Suggestion.REVIEW
    """The workflow sent the content to a human: the closest Azure comes to a verdict of its own. The reviewer's
    decision, a verdict of its own, comes by callback only (review ids cannot be polled) and may never come;
    ``pass`` judges such a job by the thresholds alone."""

    @field_validator("review_threshold", "block_threshold")
    @classmethod
    def _unit_interval(cls, value: dict[str, float | None], info: ValidationInfo) -> dict[str, float | None]:
        """Each category given replaces its default and the others keep theirs (``{"adult": 0.7}`` must not
        leave racy content without a block threshold); ``null`` removes a category's threshold."""
        _no_key_twice(value, "category")
        for category, threshold in value.items():
            if threshold is not None and not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold for '{category}' must be within 0..1, got {threshold}")
        defaults = (
            AZURE_REVIEW_THRESHOLDS if info.field_name == "review_threshold" else AZURE_BLOCK_THRESHOLDS
        )
        merged = {**defaults, **{k.lower(): v for k, v in value.items()}}
        return {category: threshold for category, threshold in merged.items() if threshold is not None}

    @field_validator("reviewer_tags", mode="before")
    @classmethod
    def _merged_tags(cls, value: Any) -> Any:
        """As for the thresholds: each tag given replaces its default and the others keep theirs (a document
        adding ``{"v": "block"}`` must not turn a reviewer's adult tag into an unknown one); ``null`` removes a
        tag. Tags are matched in any case (Azure's casing varies), so they are kept in lower case."""
        if not isinstance(value, dict):
            return value  # refused by the field's type, naming it
        _no_key_twice(value, "tag")
        merged = {**AZURE_REVIEWER_TAGS, **{str(tag).lower(): item for tag, item in value.items()}}
        return {tag: item for tag, item in merged.items() if item is not None}


def _no_key_twice(value: dict[Any, Any], what: str) -> None:
    """Keys are matched in any case: one given twice in different cases would be settled by its order."""
    seen: dict[str, Any] = {}
    for key in value:
        lowered = str(key).lower()
        if lowered in seen:
            raise ValueError(
                f"{what} '{lowered}' is given twice ('{seen[lowered]}' and '{key}'); keys are read in any case"
            )
        seen[lowered] = key


NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class HuaweiAkSk(_Strict):
    """Huawei AK/SK: requests are signed with SDK-HMAC-SHA256."""

    ak: NonEmpty
    sk: NonEmpty = Field(repr=False)


class HuaweiToken(_Strict):
    """A Huawei IAM token (X-Auth-Token), valid 24 h: for short-lived setups and tests."""

    token: NonEmpty = Field(repr=False)


class HuaweiIamUser(_Strict):
    """Huawei IAM user credentials: a token is fetched from IAM and cached until shortly before it expires."""

    user_name: NonEmpty
    password: NonEmpty = Field(repr=False)
    domain_name: NonEmpty
    iam_endpoint: str | None = Field(
        default=None, description="Defaults to https://iam.{region}.myhuaweicloud.com"
    )


class AlibabaKeys(_Strict):
    access_key_id: NonEmpty
    access_key_secret: NonEmpty = Field(repr=False)
    signature: Literal["ACS3-HMAC-SHA256", "HMAC-SHA1"] = "ACS3-HMAC-SHA256"


class AzureKey(_Strict):
    subscription_key: NonEmpty = Field(repr=False)


Credentials = HuaweiAkSk | HuaweiToken | HuaweiIamUser | AlibabaKeys | AzureKey

CREDENTIAL_SHAPES: dict[str, tuple[type[BaseModel], ...]] = {
    "huawei-video": (HuaweiAkSk, HuaweiToken, HuaweiIamUser),
    "huawei-audio": (HuaweiAkSk, HuaweiToken, HuaweiIamUser),
    "huawei-image-batch": (HuaweiAkSk, HuaweiToken, HuaweiIamUser),
    "alibaba-mps": (AlibabaKeys,),
    "azure-review": (AzureKey,),
}


class ProviderSettings(_Strict):
    """One provider's entry in the providers document."""

    endpoint: str | None = Field(
        default=None, description="Base URL of the provider's API (HTTPS, or loopback)"
    )
    credentials: dict[str, str] | None = Field(
        default=None,
        repr=False,
        description="API credentials; their shape depends on the provider (see README)",
    )
    project_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")] | None = Field(
        default=None, description="Huawei project id"
    )
    region: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$")] | None = Field(
        default=None, description="Huawei / Alibaba region, e.g. ap-southeast-1, cn-shanghai"
    )
    team: str | None = Field(default=None, description="Azure Content Moderator review team name")
    rate_limit_per_s: float | None = Field(
        default=None,
        gt=0,
        le=1000,  # and finite: an infinite rate (JSON's 1e999) would make a Retry-After hold nothing back
        allow_inf_nan=False,
        description="Requests per second to the provider's API (defaults: documented limits)",
    )
    max_concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight at once")
    batch_size: int | None = Field(
        default=None, ge=1, le=100, description="Jobs per query where the API takes several (Alibaba JobIds)"
    )
    trust: Literal["body", "fetch"] | None = Field(
        default=None,
        description=(
            "body: an authenticated callback's content becomes the verdict; fetch: the callback only makes the "
            "job due and the verdict comes from the provider's API. Default: fetch for Huawei v3 and Azure when "
            "API credentials are configured, else body"
        ),
    )
    callback: CallbackSettings = Field(default_factory=CallbackSettings)
    policy: AzurePolicy | None = None

    @field_validator("endpoint")
    @classmethod
    def _https_or_loopback(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _is_https_or_loopback(value):
            return value.rstrip("/")
        raise ValueError(
            "must be an https:// URL with a host (http:// only for loopback addresses), a valid port if any, and"
            " no spaces, query, fragment or user"
        )

    @field_validator("credentials")
    @classmethod
    def _no_empty_secrets(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, secret in (value or {}).items():
            if not secret:
                raise ValueError(f"credential '{key}' is empty")
        return value

    def typed_credentials(self, provider: str) -> Credentials | None:
        """The credentials as the model for this provider's shape; ValueError naming the expected keys."""
        if self.credentials is None:
            return None
        shapes = CREDENTIAL_SHAPES[provider]
        refusals: list[ValidationError] = []
        for shape in shapes:
            try:
                return shape.model_validate(self.credentials)  # type: ignore[return-value]
            except ValidationError as exc:
                if all(
                    (field.alias or name) in self.credentials
                    for name, field in shape.model_fields.items()
                    if field.is_required()
                ):
                    refusals.append(exc)  # every key it needs is there: a value it refuses is the mistake
        if len(refusals) == 1:
            # The values are not echoed: they are secrets
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in refusals[0].errors(include_url=False)
            )
            raise ValueError(problems)
        raise ValueError(
            f"expected {_credential_keys(provider)}; got keys {{{', '.join(sorted(self.credentials))}}}"
        )


PROVIDER_SPECIFIC_SETTINGS: tuple[str, ...] = (
    "region",
    "project_id",
    "team",
    "policy",
    "batch_size",
    "trust",
    "callback",
    "callback.seeds",
    "callback.certificate_hosts",
    "callback.max_age_seconds",
)
"""The settings only some providers read, as paths of an entry, in the order an entry's are checked (the first
misplaced one is named). Which providers read each: ``reads`` of their profiles (``providers/profiles.py``);
``callback`` those that call back, ``trust`` those whose callbacks may carry a result (Alibaba's notices never do,
and Huawei's image batches send no callbacks)."""


def _readers(path: str) -> frozenset[str]:
    if path == "callback":
        return frozenset(p.name for p in PROFILES.values() if p.calls_back)
    if path == "trust":
        return frozenset(p.name for p in PROFILES.values() if p.calls_back and p.fetch_only is None)
    return frozenset(p.name for p in PROFILES.values() if path in p.reads)


SETTINGS_READ_BY: dict[tuple[str, ...], frozenset[str]] = {
    tuple(path.split(".")): _readers(path) for path in PROVIDER_SPECIFIC_SETTINGS
}
"""The providers that read each of :data:`PROVIDER_SPECIFIC_SETTINGS`: one set in another provider's entry is
refused at the start, not ignored (a misplaced ``team`` or ``seeds`` would otherwise leave a provider without it,
silently). Every other setting is read by every provider."""

Problem = tuple[tuple[str, ...], str, Any]
"""A key of an entry (its path), what is wrong with it, and its value (never a secret)."""


def _credential_keys(provider: str) -> str:
    """The required keys of each credential shape the provider takes, e.g. ``{ak, sk} or {token}``."""
    return " or ".join(
        "{" + ", ".join(key for key, field in shape.model_fields.items() if field.is_required()) + "}"
        for shape in CREDENTIAL_SHAPES[provider]
    )


def _settings_not_read(provider: str, entry: ProviderSettings) -> list[Problem]:
    """The keys of the entry that ``provider`` never reads (:data:`SETTINGS_READ_BY`). Their values are not
    shown: callback secrets are among them."""
    given: set[tuple[str, ...]] = {(key,) for key in entry.model_fields_set}
    if "callback" in entry.model_fields_set:
        given |= {("callback", key) for key in entry.callback.model_fields_set}
    problems: list[Problem] = []
    for key, readers in SETTINGS_READ_BY.items():
        # a callback block the provider does not read is named once, not each of its keys
        if (
            key in given
            and provider not in readers
            and provider in SETTINGS_READ_BY.get(key[:-1], {provider})
        ):
            message = (
                f"{provider} does not read it; only {', '.join(sorted(readers))} "
                f"{'does' if len(readers) == 1 else 'do'}: remove it, or move it to the entry it belongs to"
            )
            problems.append((key, message, None))
    return problems


def _unmet_requirements(provider: str, entry: ProviderSettings) -> list[Problem]:
    """What keeps an entry from serving ``provider``, found now instead of when its client is first built (the
    callback receiver would answer 500, and the poller, building every client at once, would stop polling every
    provider). These mirror what ``clients/factory.py`` needs; a setting is required only where it is used. A
    setting the provider never reads comes first: it may be the one the entry lacks, put in the wrong entry."""
    misplaced = _settings_not_read(provider, entry)
    if misplaced:
        return misplaced
    try:
        credentials = entry.typed_credentials(provider)
    except ValueError as exc:
        return [(("credentials",), str(exc), None)]
    if credentials is None:
        # No client is built: callbacks only. Fine, unless no callback can ever yield the verdict.
        profile = PROFILES[provider]
        add = f"add credentials {_credential_keys(provider)}, with {profile.client_needs}"
        if profile.fetch_only is not None:
            why = profile.fetch_only
            message = f"required: {why}, so every verdict is fetched from the provider's API; {add}"
            return [(("credentials",), message, None)]
        if entry.trust == "fetch":
            message = (
                f"required with trust 'fetch', which takes every verdict from the provider's API; {add}, "
                "or set trust to 'body'"
            )
            return [(("credentials",), message, None)]
        return []
    problems: list[Problem] = []
    if provider == "azure-review":
        if not entry.endpoint:
            problems.append(
                (
                    ("endpoint",),
                    "required with credentials: Azure Content Moderator has no default endpoint; add your "
                    "resource's endpoint, e.g. https://westus.api.cognitive.microsoft.com",
                    entry.endpoint,
                )
            )
        if not entry.team:
            problems.append(
                (
                    ("team",),
                    "required with credentials: add the name of the review team whose jobs are fetched",
                    entry.team,
                )
            )
        return problems
    if not entry.endpoint and not entry.region:
        problems.append(
            (
                ("region",),
                "required with credentials unless endpoint is set: add region (e.g. "
                f"{PROFILES[provider].region_example}) for the provider's regional endpoint, "
                "or endpoint",
                entry.region,
            )
        )
    if PROFILES[provider].huawei_v3 and not entry.project_id:
        problems.append(
            (
                ("project_id",),
                "required with credentials: add the Huawei project id (it is part of every v3 API URL)",
                entry.project_id,
            )
        )
    if isinstance(credentials, HuaweiIamUser):
        if not entry.project_id and not entry.region:
            problems.append(
                (
                    ("region",),
                    "required with IAM user credentials unless project_id is set: the IAM token is scoped to "
                    "the project (its id, or the region's project by name), and moderation refuses an unscoped one",
                    entry.region,
                )
            )
        key = ("credentials", "iam_endpoint")
        iam_endpoint = credentials.iam_endpoint
        if not iam_endpoint and not entry.region:
            problems.append(
                (
                    key,
                    "required with IAM user credentials unless region is set: add credentials.iam_endpoint, "
                    "or region for the default https://iam.{region}.myhuaweicloud.com",
                    iam_endpoint,
                )
            )
        elif iam_endpoint and not _is_https_or_loopback(iam_endpoint):
            problems.append(
                (
                    key,
                    "must be an https:// URL (http:// only for loopback addresses): the IAM user's password is "
                    "sent there",
                    iam_endpoint,
                )
            )
    return problems


class ProvidersConfig(_Strict):
    """The whole providers document: ``{"<provider name>": {...}, ...}``."""

    providers: dict[str, ProviderSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _every_entry_can_serve_its_provider(self) -> Self:
        """The checks that need the provider's name, which only the document holds (see
        :func:`_unmet_requirements`). Raised as a ValidationError located at each key: pydantic merges it into
        the document's errors, so it names the key like any other error."""
        problems = [
            InitErrorDetails(
                type=PydanticCustomError("provider_setting", message),
                loc=("providers", name, *key),
                input=value,
            )
            for name, entry in self.providers.items()
            if name in CREDENTIAL_SHAPES  # an unknown name is refused by name (from_document)
            for key, message, value in _unmet_requirements(name, entry)
        ]
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    @classmethod
    def from_document(cls, document: Any, source: str = "providers document") -> ProvidersConfig:
        if not isinstance(document, dict):
            raise ConfigurationError(f"{source}: must be a JSON object keyed by provider name")
        unknown = sorted(set(document) - set(PROVIDER_NAMES))
        if unknown:
            raise ConfigurationError(
                f"{source}: unknown provider(s) {', '.join(unknown)}; known: {', '.join(PROVIDER_NAMES)}"
            )
        try:
            config = cls(providers=document)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            key = ".".join(str(p) for p in first["loc"][1:])
            raise ConfigurationError(f"{source}: '{key}': {first['msg']}") from exc
        return config

    def get(self, provider: str) -> ProviderSettings | None:
        return self.providers.get(provider)

    def shared_callback_secrets(self) -> list[str]:
        """The keys of callback tokens and seeds another provider's entry lists too (``huawei-audio.callback.
        seeds.0``), never the secrets. Accepted, so that a seed both Huawei entries list can be rotated out while
        jobs created with it still call back, but worth a warning: a token two providers share lets each one's
        callbacks in on the other's route. (A Huawei video callback re-posted to the audio route is refused
        anyway, with ``trust: body`` by the binding of its signed text, with ``trust: fetch`` by the fetch.)"""
        owner: dict[str, str] = {}
        shared = []
        for name, entry in self.providers.items():
            for key in entry.callback.secret_fields():
                for index, secret in enumerate(getattr(entry.callback, key)):
                    first = owner.setdefault(secret, name)
                    if first != name:
                        shared.append(f"{name}.callback.{key}.{index} (also {first}'s)")
        return shared

    def callback_secrets(self, provider: str) -> list[str]:
        """The provider's callback secrets (tokens and seeds): those a provider may echo back in what it sends
        (Azure its callback URL with the token; Huawei a job's creation parameters, where the seed was given)."""
        entry = self.providers.get(provider)
        return entry.callback.secrets() if entry else []

    def azure_policy(self) -> AzurePolicy:
        entry = self.providers.get("azure-review")
        return entry.policy if entry and entry.policy else AzurePolicy()


MAX_BODY_LIMIT = 4 * 1024 * 1024
"""The largest ``MAX_BODY_BYTES`` used (``Settings.max_body_bytes``)."""
MAX_POLL_INTERVAL_LIMIT = 1800.0
"""The largest ``POLL_MAX_INTERVAL_SECONDS`` used (``Settings.poll_max_interval_seconds``)."""


N = TypeVar("N", int, float)


def _capped(value: N, limit: N, why: str) -> N:
    """A setting earlier versions took larger, read as ``limit`` with a warning: a stack that set one keeps
    working."""
    if value <= limit:
        return value
    from verdict_relay.observability import logger

    logger.warning(f"{why}; {limit} is used", configured=value, used=limit)
    return limit


class Settings(_Strict):
    """The function's environment, as ``template.yaml`` sets it."""

    table_name: str = Field(alias="TABLE_NAME", min_length=1)
    topic_arn: str = Field(alias="TOPIC_ARN", min_length=1)
    raw_payload_bucket: str = Field(alias="RAW_PAYLOAD_BUCKET", min_length=1)
    providers_secret_id: str | None = Field(default=None, alias="PROVIDERS_SECRET_ID")
    providers_file: str | None = Field(default=None, alias="PROVIDERS_FILE")
    providers_cache_seconds: int = Field(default=300, alias="PROVIDERS_CACHE_SECONDS", ge=0)
    publish_pass_verdicts: bool = Field(default=False, alias="PUBLISH_PASS_VERDICTS")
    unmoderated_suggestion: Literal["review", "block"] = Field(
        default="review", alias="UNMODERATED_SUGGESTION"
    )
    retention_days: int = Field(default=90, alias="RETENTION_DAYS", ge=1, le=3650)
    max_body_bytes: int = Field(default=MAX_BODY_LIMIT, alias="MAX_BODY_BYTES", ge=1024, le=5 * 1024 * 1024)
    """Past it a callback or ``POST /jobs`` body gets our JSON 413. At most ``MAX_BODY_LIMIT``, 4 MiB (the default:
    the setting can only lower it; a value up to 5 MiB, which earlier versions allowed, is read as 4 MiB, with a
    warning, so that a stack that set one keeps working): API Gateway hands the function the body inside a JSON
    event (escaped, beside the headers twice over), and an event past Lambda's 6 MB is refused before the
    function runs, with API Gateway's own 5xx instead of a 413. Escaping doubles quotes and backslashes and makes
    a control character six bytes: a provider's JSON body under 4 MiB fits unless quotes are about half of it (at
    5 MiB, ordinary JSON with a fifth of its bytes quotes did not); a malformed callback body of mostly control
    characters can miss the function from about 1 MB (README, MAX_BODY_BYTES)."""

    @field_validator("max_body_bytes")
    @classmethod
    def _within_the_event(cls, value: int) -> int:
        return _capped(value, MAX_BODY_LIMIT, "MAX_BODY_BYTES is above what a Lambda event carries escaped")

    publish_claim_seconds: float = Field(default=60.0, alias="PUBLISH_CLAIM_SECONDS", ge=60, le=900)
    """How long the writer that finished a job has to publish it before the owed-publish sweep may. At least
    60 s: above the callback function's timeout (50 s) and a writer's finishing write, publish and confirmation
    at their worst (about 41 s), or the sweep could send a verdict its writer is still publishing."""
    poll_queue_url: str | None = Field(default=None, alias="POLL_QUEUE_URL")
    poll_worker_budget_seconds: float = Field(default=240.0, alias="POLL_WORKER_BUDGET_SECONDS", gt=0, le=890)
    """Within a Lambda's longest timeout (900 s) less the worker's margin and its batch's writes; the template's
    worker times out at 300 s. It is also the slack added to every hold: too large, and jobs a worker left due
    wait that long."""
    poll_jobs_per_second: float = Field(default=40.0, alias="POLL_JOBS_PER_SECOND", gt=0)
    """The most jobs one poller or worker invocation is counted on to poll a second, whatever a provider's rate
    limit allows: the poller's CPU (about 6 to 9 ms a job, measured in ``bench/``) on a 512 MB function's share
    of a vCPU (about 0.29) comes to 30 to 50. It sizes the fan-out's batches and holds."""
    unknown_job_grace_seconds: int = Field(default=3600, alias="UNKNOWN_JOB_GRACE_SECONDS", ge=0, le=86400)
    """How long after its creation a job the provider says it does not know is asked again rather than expired:
    time to notice (``JobsUnknownAlarm``) and correct a providers document whose region or endpoint makes the
    provider deny every job."""
    job_overdue_hours: float = Field(default=24.0, alias="JOB_OVERDUE_HOURS", gt=0, le=8760)
    """How long after its creation a job still unfinished when it is polled is counted ``JobOverdue``
    (``JobsOverdueAlarm``): one the provider leaves running, or fails on, for good is polled after its backoff
    for ever, and nothing else says so."""
    poll_base_interval_seconds: float = Field(default=15.0, alias="POLL_BASE_INTERVAL_SECONDS", gt=0)
    poll_max_interval_seconds: float = Field(default=900.0, alias="POLL_MAX_INTERVAL_SECONDS", gt=0)
    """At most ``MAX_POLL_INTERVAL_LIMIT``, 30 minutes: the job alarms (``JobsUnansweredAlarm``,
    ``JobsOutOfTimeAlarm``, ``JobsOverdueAlarm``) count a stuck job in each hour, three hours in a row, and a job
    polled less often than every hour (its interval, plus a cycle's lateness) leaves an hour without its count, so
    they would never fire. A larger value, which earlier versions allowed, is read as 30 minutes, with a warning,
    so that a stack that set one keeps working."""
    poll_min_interval_seconds: float = Field(default=5.0, alias="POLL_MIN_INTERVAL_SECONDS", ge=0)

    @field_validator("poll_max_interval_seconds")
    @classmethod
    def _within_an_hour(cls, value: float) -> float:
        return _capped(
            value,
            MAX_POLL_INTERVAL_LIMIT,
            "POLL_MAX_INTERVAL_SECONDS is above what the hourly job alarms see",
        )

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _intervals_in_order(self) -> Self:
        # The backoff draws up to base x 2^attempt, caps it at the maximum and raises it to the minimum: a minimum
        # or base above the maximum would poll every job at one fixed interval whatever the settings say.
        for name, value in (
            ("POLL_MIN_INTERVAL_SECONDS", self.poll_min_interval_seconds),
            ("POLL_BASE_INTERVAL_SECONDS", self.poll_base_interval_seconds),
        ):
            if value > self.poll_max_interval_seconds:
                raise PydanticCustomError(
                    "interval_order",
                    "{name} ({value}) is above POLL_MAX_INTERVAL_SECONDS ({maximum})",
                    {"name": name, "value": f"{value:g}", "maximum": f"{self.poll_max_interval_seconds:g}"},
                )
        return self

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        try:
            return cls.model_validate(env)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" if e["loc"] else e["msg"]
                for e in exc.errors(include_url=False)
            )
            raise ConfigurationError(f"invalid environment: {problems}") from exc


def rate_limit(provider: str, settings: ProviderSettings | None) -> float:
    if settings is not None and settings.rate_limit_per_s is not None:
        return settings.rate_limit_per_s
    return PROFILES[provider].rate_limit_per_s


SECRETS_CLIENT_TIMEOUTS: dict[str, Any] = {
    "connect_timeout": 1,
    "read_timeout": 2,
    "retries": {"mode": "standard", "total_max_attempts": 2},
}
"""The providers document's reads end within about 6 s (two attempts of at most 1 s to connect and 2 s to read)."""


def load_providers_config(settings: Settings) -> ProvidersConfig:
    """Read the providers document from Secrets Manager or from a local file, and check it against the
    settings.

    With neither configured every provider is disabled: callbacks are refused and nothing is polled.
    """
    config = _read_providers_config(settings)
    grace = settings.unknown_job_grace_seconds
    for name, entry in config.providers.items():
        wait = entry.callback.first_poll_after_seconds
        if wait and wait >= grace:
            raise ConfigurationError(
                f"providers document: '{name}.callback.first_poll_after_seconds': {wait} is not less than"
                f" UNKNOWN_JOB_GRACE_SECONDS ({grace}): a job first polled after the grace would be expired at"
                " its first poll if its provider denied it (a wrong region or endpoint), before anyone could"
                " correct the document; raise the grace with it"
            )
    return config


def _read_providers_config(settings: Settings) -> ProvidersConfig:
    if settings.providers_secret_id:
        from aws_lambda_powertools.utilities import parameters
        from botocore.config import Config

        # Bounded like every other AWS call here: botocore's defaults (60 s connects and reads, retried) would
        # hold a callback past its provider's deadline, and the poller past its minute, whenever Secrets Manager
        # stalls at a reload, and the last valid document would never get the chance to stand in. Always
        # fetched: the caller keeps the document (``Dependencies.providers``), and a cached copy of a document
        # that failed validation would be validated again in place of the corrected one.
        secrets = parameters.SecretsProvider(boto_config=Config(**SECRETS_CLIENT_TIMEOUTS))
        try:
            document = secrets.get(settings.providers_secret_id, transform="json", force_fetch=True)
        except parameters.exceptions.TransformParameterError as exc:
            raise ConfigurationError(f"secret {settings.providers_secret_id}: not valid JSON") from exc
        except parameters.exceptions.GetParameterError as exc:
            raise ConfigurationUnavailableError(
                f"secret {settings.providers_secret_id}: could not be read: {exc}"
            ) from exc
        return ProvidersConfig.from_document(document, f"secret {settings.providers_secret_id}")
    if settings.providers_file:
        return load_providers_file(settings.providers_file)
    return ProvidersConfig()


def load_providers_file(path: str) -> ProvidersConfig:
    """The providers document in a file (``PROVIDERS_FILE``, ``normalize --providers``, the local stack's),
    validated; ConfigurationError naming the file and what is wrong with it. Read at every call, and validated
    again only when its text changed: an edit takes effect at the next reload, as a new secret version does."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"providers file {path}: {exc.strerror}") from exc
    return _providers_file_document(path, text)


@lru_cache(maxsize=8)
def _providers_file_document(path: str, text: bytes) -> ProvidersConfig:
    try:
        document = json.loads(text.decode("utf-8"))
    except ValueError as exc:
        raise ConfigurationError(f"providers file {path}: not valid JSON: {exc}") from exc
    return ProvidersConfig.from_document(document, f"providers file {path}")
