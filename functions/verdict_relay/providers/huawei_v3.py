"""What the Huawei Cloud Content Moderation v3 video and audio jobs have in common.

Both answer a query (``GET /v3/{project_id}/moderation/{video|audio}/jobs/{job_id}``) and call back with the
same body: ``{request_id, job_id, status, request_params, create_time, update_time, result}``, where
``result`` is there only once the job ``succeeded``. :class:`HuaweiV3Adapter` turns that envelope into a
verdict and verifies the callback signature; each media type supplies its ``result`` model and maps it to
(suggestion, findings).

Callback signature: only jobs created with a ``seed`` are signed. ``X-Auth-Signature`` is HMAC-SHA256 with the
seed as key over ``create_time + job_id + request_id + seed`` (the raw strings of the body, no separator).
Whether the digest is sent as hex or Base64 is undocumented, so both are accepted. The signature covers
neither the result nor a timestamp: it proves which job a callback is about, not its verdict, and a captured
callback can be replayed. That is why the receiver stays idempotent on ``job_id`` and polling remains the
source of truth.

With no separator, one signature also holds for the same characters split differently between the fields. The
signed fields are therefore checked for the shapes Huawei sends before the signature is compared:
``create_time`` in one of the two documented formats (``2022-07-30T08:57:11.011Z``, which ends in ``Z``, or
``2022-06-20 11:05:29``, which has a fixed length), so no character can move between it and ``job_id``; and
non-empty ``job_id`` and ``request_id``. Neither id has a documented shape (Huawei's own example has
``"request_id": "xxxx"``), so the boundary between the two cannot be pinned: a signed callback can be re-sent
with a character moved from the end of ``job_id`` to the start of ``request_id`` (or back), naming another
job id. With ``trust: fetch`` that id is only fetched, and one the provider does not know stores nothing
(``logic/callbacks.py``). A signed field of the wrong shape is a PayloadError (422) naming it, like a missing
one: the signed message cannot be built from it, so there is no signature to check.

A list sent as ``null`` (a result's details, a detail's segments) is read as an empty one: none is documented
as nullable, and refusing one as a wrong shape would leave its job unresolved at every poll.

Status and suggestion values are read in any case and without surrounding whitespace (``Succeeded``,
``"Block "``): Huawei documents them in lower case, but refusing another casing as a wrong value would leave a
video or audio job unresolved at every poll. Unknown values are still refused. The folding is done by
pydantic-core (:class:`AnyCase`), not by a Python validator: a two-hour video has thousands of suggestions.

A failed job that still carries a ``result`` (Huawei documents one only for ``succeeded``) keeps its suggestion
and findings, as the image batch and Alibaba adapters keep a failed job's: the policy step then makes it at least
as strict as they are. A failed job's reason is undocumented. Where the body carries ``error_code``/``error_msg`` (the shape of
Huawei's error responses) they become the verdict's error; otherwise the error says the provider gave no
reason.
"""

from __future__ import annotations

import base64
import hashlib
import re
from abc import abstractmethod
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    with_config,
)
from pydantic_core import CoreSchema, core_schema
from typing_extensions import TypedDict

from verdict_relay.errors import CallbackAuthError, ClientError, PayloadError
from verdict_relay.models.verdict import (
    AddressableJobId,
    Box,
    ContentRef,
    Finding,
    JobStatus,
    Suggestion,
    Verdict,
    VerdictError,
)
from verdict_relay.providers.base import (
    PAYLOAD_ITEM_CONFIG,
    CallbackRequest,
    CallbackResult,
    PayloadModel,
    ProviderAdapter,
    SignedIds,
    VerifyContext,
    any_secret_matches,
    hmac_sha256,
    load_json,
    parse_provider_time,
    validate_payload,
)

SIGNATURE_HEADER = "X-Auth-Signature"


def _provider_time(value: Any) -> datetime | None:
    # parse_provider_time only raises ValueError for strings; anything else must fail the same way so pydantic
    # reports it against the field instead of letting an AttributeError escape.
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a timestamp string")
    try:
        return parse_provider_time(value)
    except ValueError as exc:
        raise ValueError(f"not a timestamp Huawei sends: {value!r:.40}") from exc


HuaweiTime = Annotated[datetime | None, BeforeValidator(_provider_time)]
"""A Huawei timestamp (``2022-07-30T08:57:11.011Z`` or ``2022-06-20 11:05:29``) as an aware UTC datetime."""

# allow_inf_nan=False: the JSON parsers accept Infinity, NaN and 1e400 (which overflows to inf), none of which a
# provider means; refused here, they are a 422 naming the field instead of a finding stored with a null value.
Confidence = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""Huawei scores are already on the 0..1 scale."""

Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class AnyCase:
    """Marks an enumerated string (a ``Literal`` or a string enum) as read in any case and without surrounding
    whitespace: the string is stripped and lower-cased, then validated as the type says, so an unknown value is
    still refused. Both steps run in pydantic-core, which costs a fraction of a Python validator per value."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.chain_schema(
            [core_schema.str_schema(strip_whitespace=True, to_lower=True), handler(source)]
        )


HuaweiSuggestion = Annotated[Suggestion, AnyCase()]
"""pass, review or block, in any case (``Block``)."""


class Location(PayloadModel):
    """A face or QR code rectangle, as Huawei v3 sends it (pixels)."""

    top_left_x: int
    top_left_y: int
    bottom_right_x: int
    bottom_right_y: int

    def to_box(self) -> Box:
        return Box(
            top_left_x=self.top_left_x,
            top_left_y=self.top_left_y,
            bottom_right_x=self.bottom_right_x,
            bottom_right_y=self.bottom_right_y,
        )


@with_config(PAYLOAD_ITEM_CONFIG)
class Segment(TypedDict):
    segment: str


class RequestData(PayloadModel):
    url: str | None = None


class RequestParams(PayloadModel):
    """The parameters the job was created with.

    ``callback`` is deliberately not read: its URL may hold our callback token, which must not reach metadata.
    """

    data: RequestData | None = None
    event_type: str | None = None


class V3Result(PayloadModel):
    """What every v3 ``result`` has: the job's suggestion. The video and audio results add their details."""

    suggestion: HuaweiSuggestion


ResultT = TypeVar("ResultT", bound=V3Result)


def _failed_with_a_result(payload: Any) -> bool:
    status = payload.get("status") if isinstance(payload, dict) else None
    return (
        isinstance(status, str) and status.strip().lower() == "failed" and payload.get("result") is not None
    )


def _suggestion_of(provider: str, result: Any) -> Suggestion | None:
    """The suggestion of a result its model refused, if it reads as one."""
    try:
        return validate_payload(provider, V3Result, result).suggestion
    except PayloadError:
        return None


class V3Job(PayloadModel, Generic[ResultT]):
    """The envelope of a v3 job: the query response and the callback body alike."""

    request_id: str | None = None
    job_id: AddressableJobId  # a segment of the job's URL (.../jobs/{job_id}), as the poller asks about it
    status: Annotated[Literal["running", "succeeded", "failed"], AnyCase()]
    request_params: RequestParams | None = None
    create_time: HuaweiTime = None
    update_time: HuaweiTime = None
    result: ResultT | None = None
    error_code: str | None = None
    error_msg: str | None = None


_SIGNED_CREATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z| [0-9]{2}:[0-9]{2}:[0-9]{2})"
)
"""``create_time`` as Huawei documents it: ``2022-07-30T08:57:11.011Z`` or ``2022-06-20 11:05:29``. The first
ends in its only ``Z`` and the second has a fixed length, so where ``create_time`` ends in the signed message is
never in doubt. ASCII digits only: ``\\d`` would take any script's digits."""


def _signed_create_time(value: str) -> str:
    if _SIGNED_CREATE_TIME.fullmatch(value) is None:
        raise ValueError(
            "not a time as Huawei signs it (2022-07-30T08:57:11.011Z or 2022-06-20 11:05:29), "
            "so no signature can be checked over it"
        )
    return value


class _SignedFields(PayloadModel):
    """The body fields the callback signature is computed over, as the raw strings Huawei signed, each in the
    shape that keeps its boundaries in the signed message where Huawei put them (see the module docstring)."""

    create_time: Annotated[str, AfterValidator(_signed_create_time)]
    job_id: AddressableJobId
    request_id: Annotated[str, Field(min_length=1)]


def _signed_fields(provider: str, body: bytes) -> _SignedFields:
    """The fields the signature covers, validated from the bytes: pydantic-core then builds none of the rest of
    the body, a third of the time of decoding it all or less, which a request without a valid signature can make us
    spend on up to 6 MB. A body that read fails (not JSON, a byte order mark, a lone surrogate escape, a field
    missing) is read as every body is (``load_json``), for the same verdict on it and the same error. Both
    take the last of a key sent twice."""
    try:
        return _SignedFields.model_validate_json(body)
    except ValidationError:
        return validate_payload(provider, _SignedFields, load_json(provider, body))


class _NamedJob(PayloadModel):
    """The one field of a callback body a fetch needs (:meth:`HuaweiV3Adapter.jobs_named`)."""

    job_id: AddressableJobId


_STATUS = {
    "running": JobStatus.RUNNING,
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
}


def segment_texts(segments: list[Segment]) -> list[str]:
    return [s["segment"] for s in segments]


class HuaweiV3Adapter(ProviderAdapter, Generic[ResultT]):
    """Huawei v3 moderation jobs: envelope, status mapping, callback signature. Subclasses map the result."""

    takes_callbacks: ClassVar[bool] = True
    callback_ack_status: ClassVar[int] = 200
    job_model: type[V3Job[ResultT]]
    """The envelope parametrized with the media type's result model, e.g. ``V3Job[VideoResult]``."""

    @abstractmethod
    def map_result(self, result: ResultT) -> tuple[Suggestion, list[Finding]]:
        """The provider's suggestion for a succeeded job and what it found."""

    def verify_signature(self, request: CallbackRequest, context: VerifyContext) -> bool:
        """Check ``X-Auth-Signature`` against every configured seed; False when no seed is configured."""
        seeds = context.settings.seeds
        if not seeds:
            return False
        presented = request.header(SIGNATURE_HEADER)
        if not presented:
            raise CallbackAuthError(f"missing {SIGNATURE_HEADER} header")
        fields = _signed_fields(self.name, request.body)
        message_prefix = fields.create_time + fields.job_id + fields.request_id
        hex_candidates: list[str] = []
        base64_candidates: list[str] = []
        for seed in seeds:
            digest = hmac_sha256(seed, message_prefix + seed)
            hex_candidates.append(digest.hex())
            base64_candidates.append(base64.b64encode(digest).decode("ascii"))
        presented = presented.strip()
        # Both comparisons always run (no short-circuit): the time taken does not tell which encoding matched.
        hex_matched = any_secret_matches(presented.lower(), hex_candidates)
        base64_matched = any_secret_matches(presented, base64_candidates)
        if not (hex_matched | base64_matched):
            raise CallbackAuthError(f"invalid {SIGNATURE_HEADER} header")
        return True

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        # Huawei posts exactly the query body, so the callback is parsed like a query response.
        verdicts = self.parse_bytes(request.body)
        if not request.header(SIGNATURE_HEADER):
            return CallbackResult(verdicts=verdicts)  # let in by a token alone: no signed text to bind
        try:
            fields = _signed_fields(self.name, request.body)
        except PayloadError:
            return CallbackResult(verdicts=verdicts)  # not what a checked signature covers: a token let it in
        signed = (fields.create_time + fields.job_id + fields.request_id).encode("utf-8", "surrogatepass")
        return CallbackResult(
            verdicts=verdicts,
            signed=SignedIds("huawei-v3", hashlib.sha256(signed).hexdigest(), fields.job_id),
        )

    def jobs_named(self, request: CallbackRequest) -> list[str]:
        try:
            return [validate_payload(self.name, _NamedJob, load_json(self.name, request.body)).job_id]
        except ClientError:
            return []

    def parse(self, payload: Any) -> list[Verdict]:
        if isinstance(payload, dict) and "job_id" not in payload and "error_code" in payload:
            code, message = payload.get("error_code"), payload.get("error_msg")
            raise PayloadError(self.name, "job_id", f"body is a Huawei error response ({code}: {message})")
        try:
            job = validate_payload(self.name, self.job_model, payload)
        except PayloadError:
            if not _failed_with_a_result(payload):
                raise
            # A failed job's result is undocumented: one its model refuses (a span without a label, a confidence
            # above 1, no suggestion) must not cost the job its failed verdict (a 422 to every re-sent callback,
            # a poll answer never read). The job is read without it, and a suggestion it gives still counts.
            job = validate_payload(self.name, self.job_model, {**payload, "result": None})
            return [self._to_verdict(job, unread_suggestion=_suggestion_of(self.name, payload["result"]))]
        return [self._to_verdict(job)]

    def parse_bytes(self, body: bytes) -> list[Verdict]:
        try:
            job = self.job_model.model_validate_json(body)
        except ValidationError:
            # Not JSON, an error response, or a bad field: the dict path reports it, exactly as it always has.
            # (Only a body json.loads reads and pydantic-core refuses, a lone UTF-16 surrogate, takes that path
            # and still parses.)
            return self.parse(load_json(self.name, body))
        return [self._to_verdict(job)]

    def _to_verdict(self, job: V3Job[ResultT], unread_suggestion: Suggestion | None = None) -> Verdict:
        """``unread_suggestion``: what a failed job's result its model refused suggests (``parse``)."""
        status = _STATUS[job.status]
        suggestion: Suggestion | None = unread_suggestion
        findings: list[Finding] = []
        error: VerdictError | None = None
        if status is JobStatus.SUCCEEDED:
            if job.result is None:
                raise PayloadError(self.name, "result", "required when status is 'succeeded'")
            suggestion, findings = self.map_result(job.result)
        elif status is JobStatus.FAILED:
            if job.result is not None:
                # Undocumented, but a failed job that says what it found keeps it: the policy step then gives it
                # the stricter of the unmoderated suggestion and this one, so a block is never published as review.
                try:
                    suggestion, findings = self.map_result(job.result)
                except PayloadError:
                    # A partial result whose findings cannot be read (a frame without a category) must not cost
                    # the job its failed verdict (a 422 to the callback, a poll answer never read): its validated
                    # suggestion still counts.
                    suggestion, findings = job.result.suggestion, []
            error = VerdictError(
                code=job.error_code or "job_failed",
                message=job.error_msg or "Huawei reported the job as failed without giving a reason",
            )
        url = job.request_params.data.url if job.request_params and job.request_params.data else None
        return Verdict(
            provider=self.name,
            job_id=job.job_id,
            status=status,
            suggestion=suggestion,
            decided_by="provider" if suggestion is not None else None,
            findings=findings,
            error=error,
            content=ContentRef(url=url) if url else None,
            created_at=job.create_time,
            updated_at=job.update_time,
            completed_at=job.update_time if status.is_terminal else None,
            metadata={"request_id": job.request_id} if job.request_id else {},
        )
