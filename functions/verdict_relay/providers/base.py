"""The interface every provider adapter implements, and the helpers they share for reading payloads.

An adapter is pure: it verifies and parses what a provider sent and returns canonical verdicts. It does no I/O;
what it needs from outside (a certificate, the clock) is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from verdict_relay.config import CallbackSettings
from verdict_relay.errors import CallbackAuthError, MalformedPayloadError, PayloadError
from verdict_relay.models.verdict import Verdict


@dataclass(frozen=True)
class CallbackRequest:
    """A provider's callback as received: the exact body bytes and case-insensitive headers and query."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    path: str = "/"
    method: str = "POST"

    def header(self, name: str) -> str | None:
        """A header's value whatever its case in the request."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class CallbackResult:
    """What a callback told us: finished or running jobs as verdicts, and jobs to fetch from the provider.

    A notice that carries no result (Alibaba MNS) lists the job in ``jobs_to_fetch`` instead.
    """

    verdicts: list[Verdict] = field(default_factory=list)
    jobs_to_fetch: list[str] = field(default_factory=list)


CertificateLoader = Callable[[str], bytes]
"""Returns the PEM bytes of the certificate at a URL (already checked against the allow-list), cached."""


@dataclass(frozen=True)
class VerifyContext:
    """Everything a verification needs besides the request: the provider's secrets, the clock, I/O ports."""

    settings: CallbackSettings
    now: datetime
    load_certificate: CertificateLoader | None = None


class ProviderAdapter(ABC):
    """Verify a provider's callback and turn any payload the provider produces into canonical verdicts."""

    name: ClassVar[str]
    callback_ack_status: ClassVar[int] = 200
    """The HTTP status the provider counts as delivered (Huawei 200, MNS 204)."""
    callback_schemes: ClassVar[tuple[str, ...]] = ()
    """Callback authentication schemes this provider supports besides the URL token."""

    def verify_callback(self, request: CallbackRequest, context: VerifyContext) -> None:
        """Raise CallbackAuthError unless the request is authentic. Fails closed: no secret, no entry."""
        settings = context.settings
        checked = False
        if settings.tokens:
            verify_url_token(request, settings.tokens)
            checked = True
        if self.verify_signature(request, context):
            checked = True
        if not checked:
            raise CallbackAuthError(
                f"callbacks for {self.name} are not enabled: configure a callback secret for this provider"
            )

    def verify_signature(self, request: CallbackRequest, context: VerifyContext) -> bool:
        """Check the provider's own signature if one is configured; True when one was checked and held."""
        return False

    @abstractmethod
    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        """Turn an authenticated callback body into verdicts (or jobs to fetch)."""

    @abstractmethod
    def parse(self, payload: Any) -> list[Verdict]:
        """Turn any payload shape the provider produces (query, callback, list response) into verdicts."""

    def holds_many(self, payload: Any) -> bool:
        """Whether the payload is a list of jobs (a list response) rather than one job."""
        return False


def verify_url_token(request: CallbackRequest, tokens: Iterable[str]) -> None:
    """The ``token`` query parameter must equal one of the active tokens (several during rotation)."""
    presented = request.query.get("token")
    if not presented:
        raise CallbackAuthError("missing callback token")
    if not any_secret_matches(presented, tokens):
        raise CallbackAuthError("invalid callback token")


def any_secret_matches(presented: str, candidates: Iterable[str]) -> bool:
    """Constant-time comparison against every candidate; never short-circuits on the first match."""
    presented_bytes = presented.encode("utf-8")
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(presented_bytes, candidate.encode("utf-8"))
    return matched


def hmac_sha256(key: str, message: str) -> bytes:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()


def load_json(provider: str, body: bytes) -> Any:
    """Decode a JSON body, raising MalformedPayloadError (never a bare ValueError) when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedPayloadError(f"{provider} payload is not valid UTF-8") from exc
    except ValueError as exc:
        raise MalformedPayloadError(f"{provider} payload is not valid JSON: {exc}") from exc


class PayloadModel(BaseModel):
    """Base of the provider payload models: unknown fields are ignored, known ones are validated."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


M = TypeVar("M", bound=BaseModel)


def validate_payload(provider: str, model: type[M], payload: Any) -> M:
    """Validate ``payload`` against a provider model, naming the first bad field in a PayloadError."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        location = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise PayloadError(provider, location, first["msg"]) from exc


def lower_keys(value: Any) -> Any:
    """Recursively lower-case dict keys, for providers whose key casing varies (Azure)."""
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def parse_provider_time(value: str | None) -> datetime | None:
    """Parse the timestamps providers send into aware UTC datetimes.

    Accepts ``2022-07-30T08:57:11.011Z``, ``2022-06-20 11:05:29`` (no zone: taken as UTC, as no zone is
    documented), offsets, and more than six fractional digits (Azure's ``22:00:47.4920565``).
    Raises ValueError for anything else, which the payload models report with the field's name.
    """
    if value is None or value == "":
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, tail = text.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[:digits][:6]}{tail[digits:]}" if digits else f"{head}{tail}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
