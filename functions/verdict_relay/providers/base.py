"""The interface every provider adapter implements, and the helpers they share for reading payloads.

An adapter is pure: it verifies and parses what a provider sent and returns canonical verdicts. It does no I/O;
what it needs from outside (a certificate, the clock) is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import from_json
from typing_extensions import TypedDict

from verdict_relay.config import CallbackSettings
from verdict_relay.errors import CallbackAuthError, MalformedPayloadError, PayloadError
from verdict_relay.models.verdict import Box, Finding, Suggestion, Verdict


@dataclass(frozen=True)
class CallbackRequest:
    """A provider's callback as received: the exact body bytes and case-insensitive headers and query."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    path: str = "/"
    method: str = "POST"
    repeated: frozenset[str] = frozenset()
    """Query parameters given more than once (``query`` holds the last value, as API Gateway passes it)."""

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
    body_only: list[Verdict] = field(default_factory=list)
    """Verdicts no API can fetch (an Azure reviewer's decision): taken from the authenticated body whatever the
    provider's ``trust`` setting."""
    signed: SignedIds | None = None
    """What the callback's signature covers, where it leaves in doubt which job it names (see :class:`SignedIds`)."""


@dataclass(frozen=True)
class SignedIds:
    """A signature over ids joined with no separator (Huawei's ``create_time + job_id + request_id``) proves the
    joined text, not where ``job_id`` ends in it: the same signature holds for ``job-7f3a2`` + ``1req-9`` as for
    ``job-7f3a21`` + ``req-9``, and on every route whose entry lists its key. ``digest`` names the text (a SHA-256
    of it) among those signed the same way (``scope``); a body's verdict is taken only for the first provider and
    job a digest was accepted for (``JobStore.claim_signed``)."""

    scope: str
    digest: str
    job_id: str


CertificateLoader = Callable[[str], bytes]
"""Returns the PEM bytes of the certificate at a URL (already checked against the allow-list), cached."""

CertificateVerified = Callable[[str], None]
"""Told the URL of a certificate a signature has just verified with: the cache keeps that one."""


@dataclass(frozen=True)
class VerifyContext:
    """Everything a verification needs besides the request: the provider's secrets, the clock, I/O ports."""

    settings: CallbackSettings
    now: datetime
    load_certificate: CertificateLoader | None = None
    certificate_verified: CertificateVerified | None = None


class ProviderAdapter(ABC):
    """Verify a provider's callback and turn any payload the provider produces into canonical verdicts."""

    name: ClassVar[str]
    takes_callbacks: ClassVar[bool]
    """Whether the provider calls back at all. Every adapter says which (no default: defining one that does not
    raises TypeError). One that does not (Huawei's image batches) has every callback refused by
    :meth:`verify_callback` whatever callback secrets reach it: a ``?token=`` alone must not open a route nothing
    legitimate ever calls. ``calls_back`` of the provider's profile (``providers/profiles.py``) says the same (a
    test checks)."""
    callback_ack_status: ClassVar[int] = 200
    """The HTTP status the provider counts as delivered (Huawei 200, MNS 204)."""
    signature_proves_sender: ClassVar[bool] = True
    """Whether a signature that holds proves the callback came from this deployment's provider account. Not so
    for MNS, which signs every customer's pushes with one key: only a ``?token=`` proves it there. The receiver
    counts an authenticated callback it cannot read as the provider's (``CallbackUnreadable``, which pages) only
    when its sender is proven, so an outsider cannot raise that alarm."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "takes_callbacks", None), bool):
            # Otherwise the first callback for the provider would fail with an AttributeError: a 500, not a 401
            raise TypeError(
                f"{cls.__name__} must set takes_callbacks: ClassVar[bool] (False if it never calls back)"
            )

    def verify_callback(self, request: CallbackRequest, context: VerifyContext) -> None:
        """Raise CallbackAuthError unless the request is authentic. Fails closed: no secret, no entry, and no
        callback at all for a provider that :attr:`takes_callbacks` says never calls back."""
        if not self.takes_callbacks:
            raise CallbackAuthError(f"{self.name} sends no callbacks: its results are polled")
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

    def jobs_named(self, request: CallbackRequest) -> list[str]:
        """The jobs an authenticated callback names, read from its envelope alone (its job id), or none: what
        the receiver fetches when the provider's ``trust`` is ``fetch`` and :meth:`parse_callback` cannot read
        the rest of the body, which a fetch would not have used. Only a provider whose callbacks name a job the
        API can fetch reads any."""
        return []

    @abstractmethod
    def parse(self, payload: Any) -> list[Verdict]:
        """Turn any payload shape the provider produces (query, callback, list response) into verdicts."""

    def parse_bytes(self, body: bytes) -> list[Verdict]:
        """:meth:`parse` of a JSON body as received: the same verdicts, or the same typed error.

        Adapters whose payloads can be large validate straight from the bytes instead: pydantic-core parses and
        validates in one pass, without first building the whole document as Python objects.
        """
        return self.parse(load_json(self.name, body))

    def holds_many(self, payload: Any) -> bool:
        """Whether the payload is a list of jobs (a list response) rather than one job."""
        return False


def verify_url_token(request: CallbackRequest, tokens: Iterable[str]) -> None:
    """The ``token`` query parameter must equal one of the active tokens (several during rotation)."""
    presented = request.query.get("token")
    if not presented:
        raise CallbackAuthError("missing callback token")
    if "token" in request.repeated:
        raise CallbackAuthError("callback token given more than once")
    if not any_secret_matches(presented, tokens):
        raise CallbackAuthError("invalid callback token")


def any_secret_matches(presented: str, candidates: Iterable[str]) -> bool:
    """Constant-time comparison against every candidate; never short-circuits on the first match."""
    presented_bytes = presented.encode("utf-8", "surrogatepass")  # header text is not ours to trust
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(presented_bytes, candidate.encode("utf-8"))
    return matched


def hmac_sha256(key: str, message: str) -> bytes:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_ESCAPES = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair, one character: kept
    rb"|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"  # a surrogate on its own
    rb"|\\.",  # any other escape, an escaped backslash included: kept
    re.DOTALL,
)


def without_lone_surrogates(body: bytes) -> bytes:
    """``body`` with each JSON escape of a lone UTF-16 surrogate (``\\ud83d`` not followed by its low half, a
    text cut in the middle of an emoji) replaced by ``\\ufffd``, the replacement character.

    ``json.loads`` reads such an escape into a string no verdict can be stored or published with, and
    pydantic-core refuses the whole body, so one provider answer would fail its job's poll at every cycle.
    Bodies without one (checked first, at C speed) are returned as they are."""
    if b"\\u" not in body or _SURROGATE_ESCAPE.search(body) is None:
        return body
    return _ESCAPES.sub(lambda match: b"\\ufffd" if match.group(1) else match.group(0), body)


def load_json(provider: str, body: bytes) -> Any:
    """Decode a JSON body, raising MalformedPayloadError (never a bare ValueError) when it is not JSON.

    pydantic-core's parser, not ``json.loads``: it refuses what would fail later as a server error (nesting
    deeper than its limit would be a RecursionError) and it is faster. A lone surrogate escape (text a provider
    cut inside a character, ``"\\ud83d"``) becomes U+FFFD first, as in every answer the clients read: refused,
    a callback carrying one would be refused at every re-send, and a verdict only a callback delivers (a
    reviewer's decision, a provider without API credentials) would be lost. A UTF-8 byte order mark is skipped.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPayloadError(f"{provider} payload is not valid UTF-8") from exc
    try:
        return from_json(without_lone_surrogates(body.removeprefix(b"\xef\xbb\xbf")))
    except ValueError as exc:
        raise MalformedPayloadError(f"{provider} payload is not valid JSON: {exc}") from exc


class PayloadModel(BaseModel):
    """Base of the provider payload models: unknown fields are ignored, known ones are validated."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


PAYLOAD_ITEM_CONFIG = ConfigDict(extra="ignore", populate_by_name=True)
"""The config of the TypedDicts that model the entries of a payload's long lists (``@with_config``): checked as a
PayloadModel is, but read into plain dicts, which cost a fraction of a model instance each (a two-hour video has
thousands of entries)."""


M = TypeVar("M", bound=BaseModel)


def validate_payload(provider: str, model: type[M], payload: Any) -> M:
    """Validate ``payload`` against a provider model, naming the first bad field in a PayloadError."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        location = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise PayloadError(provider, location, first["msg"].removeprefix("Value error, ")) from exc


class FindingFields(TypedDict):
    """Every field of a :class:`Finding`, in its declaration order: what :func:`construct_findings` builds from."""

    category: str
    label: str
    confidence: float | None
    suggestion: Suggestion | None
    item: str | None
    time_offset: float | None
    time_end: float | None
    text: str | None
    segments: list[str]
    face_location: Box | None
    qr_location: Box | None
    qr_content: str | None


def finding_fields(
    category: str,
    label: str,
    confidence: float | None = None,
    suggestion: Suggestion | None = None,
    item: str | None = None,
    time_offset: float | None = None,
    time_end: float | None = None,
    text: str | None = None,
    segments: list[str] | None = None,
    face_location: Box | None = None,
    qr_location: Box | None = None,
    qr_content: str | None = None,
) -> FindingFields:
    """A finding's fields, the Finding's defaults for those not given."""
    return {
        "category": category,
        "label": label,
        "confidence": confidence,
        "suggestion": suggestion,
        "item": item,
        "time_offset": time_offset,
        "time_end": time_end,
        "text": text,
        "segments": [] if segments is None else segments,
        "face_location": face_location,
        "qr_location": qr_location,
        "qr_content": qr_content,
    }


_FINDING_FIELDS_SET: set[str] = set(Finding.model_fields)
# The slots pydantic keeps a model's state in (model_construct sets the same ones), set through their descriptors.
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def construct_findings(fields: list[FindingFields]) -> list[Finding]:
    """Findings built from values a payload model has already validated, without validating them again.

    Only for values checked on the way in against the constraints the Finding declares (confidence 0..1, times
    >= 0, a ``Suggestion``, strings, ``Box`` instances). A large job has thousands of findings, and validating
    each one a second time was most of the cost of normalizing it. This is what ``Finding.model_construct``
    does, minus its per-field Python loop: each dict becomes its finding's ``__dict__``, as ``Finding(...)``
    would build it (every field, in declaration order), so the findings compare, print and serialize alike.
    The findings own the dicts: pass fresh ones (a ``.copy()`` of a template, with its own ``segments`` list).

    Every field counts as set, and the fields-set is one shared set: pydantic never changes a frozen model's
    fields-set in place (``model_copy`` copies it first). The slots are set for the whole list at once with
    ``map``, which keeps the per-finding work in C: a Python call per finding cost about as much as the rest
    of normalizing it.
    """
    findings: list[Finding] = list(map(Finding.__new__, repeat(Finding, len(fields))))
    deque(map(_set_dict, findings, fields), maxlen=0)
    deque(map(_set_fields_set, findings, repeat(_FINDING_FIELDS_SET)), maxlen=0)
    deque(map(_set_extra, findings, repeat(None)), maxlen=0)
    deque(map(_set_private, findings, repeat(None)), maxlen=0)
    return findings


def _check_construct_findings() -> None:
    """A field added to Finding must be added to FindingFields too, or constructed findings would lack it."""
    values = FindingFields(
        category="category",
        label="label",
        confidence=0.5,
        suggestion=Suggestion.BLOCK,
        item="item",
        time_offset=1.0,
        time_end=2.0,
        text="text",
        segments=["segment"],
        face_location=Box(top_left_x=0, top_left_y=0, bottom_right_x=1, bottom_right_y=1),
        qr_location=None,
        qr_content="qr",
    )
    [constructed] = construct_findings([finding_fields(**values)])
    validated = Finding(**values)
    if list(constructed.__dict__.items()) != list(validated.__dict__.items()):
        raise AssertionError("construct_findings no longer builds what Finding(...) does")


_check_construct_findings()


def parse_provider_time(value: str | None) -> datetime | None:
    """Parse the timestamps providers send into aware UTC datetimes.

    Accepts ``2022-07-30T08:57:11.011Z``, ``2022-06-20 11:05:29`` (no zone: taken as UTC, as no zone is
    documented), offsets, and more than six fractional digits (Azure's ``22:00:47.4920565``).
    Raises ValueError for anything else, which the payload models report with the field's name; that includes
    a time whose offset takes it outside the years 1..9999 in UTC (``9999-12-31T23:59:59-01:00``), which
    ``astimezone`` would otherwise raise as an OverflowError.
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
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{value!r:.40} is outside the years 1..9999 in UTC") from exc
