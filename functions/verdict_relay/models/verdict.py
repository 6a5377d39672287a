"""The canonical verdict: the one shape storage, publishing, the HTTP API and the CLI speak.

Every provider adapter turns its payloads into a :class:`Verdict`; nothing downstream ever sees a provider's
own shape. The JSON Schema of this model is published at ``docs/verdict.schema.json``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Literal["1.0"] = "1.0"

ProviderName = Literal["huawei-video", "huawei-audio", "huawei-image-batch", "alibaba-mps", "azure-review"]
PROVIDER_NAMES: tuple[str, ...] = ProviderName.__args__  # type: ignore[attr-defined]


def _iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[
    datetime,
    PlainSerializer(_iso_utc, return_type=str, when_used="json"),
    Field(description="ISO-8601 timestamp in UTC, e.g. 2022-07-30T08:57:11.011Z"),
]


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def rank(self) -> int:
        """Position in the job's life: a job only ever moves to a higher rank."""
        return _STATUS_RANK[self]


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.EXPIRED})
_STATUS_RANK = {JobStatus.PENDING: 0, JobStatus.RUNNING: 1}
_STATUS_RANK.update(dict.fromkeys(TERMINAL_STATUSES, 2))


class Suggestion(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    REVIEW = "review"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Suggestion.PASS: 0, Suggestion.REVIEW: 1, Suggestion.BLOCK: 2}


def worst(suggestions: list[Suggestion]) -> Suggestion | None:
    """The most severe suggestion of several (block > review > pass), None for none."""
    return max(suggestions, key=lambda s: s.severity, default=None)


MAX_JOB_ID_LENGTH = 512
"""The longest job id accepted from a provider or a caller, in UTF-8 bytes: it is part of the table's key
(at most 2,048 bytes) and of archive object keys (at most 1,024)."""


def _within_key_limit(job_id: str) -> str:
    if len(job_id.encode("utf-8")) > MAX_JOB_ID_LENGTH:
        raise PydanticCustomError("job_id", f"a job id takes at most {MAX_JOB_ID_LENGTH} bytes in UTF-8")
    return job_id


JOB_ID_BYTES = AfterValidator(_within_key_limit)
"""After the string's own constraints (which the JSON Schema shows): the UTF-8 length, which it cannot."""
JobId = Annotated[str, Field(min_length=1, max_length=MAX_JOB_ID_LENGTH), JOB_ID_BYTES]


_NOT_IN_A_SEGMENT_CLASS = r"\s#/\x00-\x1f\x7f-\x9f\ufeff\ufffe\uffff"
_PATH_SEGMENT = rf"^[^{_NOT_IN_A_SEGMENT_CLASS}]+$"
"""No whitespace (U+FEFF, the zero-width no-break space, included: JSON Schema's ``\\s`` has it, Python's does not),
control characters, '#' or '/': '/' because ``GET /jobs/{provider}/{job_id}`` could not address
it (API Gateway does not promise to keep an encoded slash in one path segment). Nor U+FFFE or U+FFFF, which are
not characters: SQS (the poll queue, and the queues subscribers commonly read verdicts from) takes only XML 1.0's
characters, and replaces or refuses those."""
_NOT_IN_A_SEGMENT = re.compile(rf"[{_NOT_IN_A_SEGMENT_CLASS}]")


def _one_path_segment(job_id: str) -> str:
    """The JSON Schema's ``pattern``, checked here to say what is wrong in words rather than by the pattern."""
    if (found := _NOT_IN_A_SEGMENT.search(job_id)) is not None:
        raise PydanticCustomError(
            "job_id",
            "a job id cannot contain whitespace, control characters, U+FFFE, U+FFFF, '#' or '/' (found {found}"
            " at {at}): it is one segment of a URL path, and travels in SQS messages",
            {"found": repr(found.group()), "at": found.start()},
        )
    if job_id in (".", ".."):
        raise PydanticCustomError(
            "job_id", "a job id cannot be '.' or '..': in a URL path it would name the path above it"
        )
    return job_id


AddressableJobId = Annotated[
    str,
    Field(min_length=1, max_length=MAX_JOB_ID_LENGTH, json_schema_extra={"pattern": _PATH_SEGMENT}),
    JOB_ID_BYTES,
    AfterValidator(_one_path_segment),
]
"""A job id as a caller or an unsigned callback may name one: one path segment of ``GET /jobs/{provider}/{job_id}``
and of the provider's own job URL. No whitespace, control characters, U+FFFE, U+FFFF, '#' or '/', and not '.' or
'..'."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Box(_Model):
    """A rectangle in pixels within an image or frame (a face, a QR code)."""

    top_left_x: int
    top_left_y: int
    bottom_right_x: int
    bottom_right_y: int


class ContentRef(_Model):
    """Where the moderated content lives: a URL, or a bucket and object."""

    url: str | None = None
    bucket: str | None = None
    object: str | None = None
    location: str | None = Field(default=None, description="Provider region or storage location, if given")


class Finding(_Model):
    """One thing a provider found: a label in a category, with how sure it is and what it suggests."""

    category: str = Field(description="The provider's category or scene, e.g. porn, terrorism, adult")
    label: str = Field(description="The provider's label within the category")
    confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="0..1 on every provider's scale; null where none was given"
    )
    suggestion: Suggestion | None = Field(
        default=None, description="The provider's suggestion for this finding"
    )
    item: str | None = Field(
        default=None,
        description="Which part of the content: an image URL, an object key, or a part such as title or audio",
    )
    time_offset: float | None = Field(default=None, ge=0.0, description="Seconds from the start of the media")
    time_end: float | None = Field(default=None, ge=0.0, description="End of the span in seconds, for spans")
    text: str | None = Field(default=None, description="Recognized text (OCR or speech) the finding is about")
    segments: list[str] = Field(default_factory=list, description="Hit text segments")
    face_location: Box | None = None
    qr_location: Box | None = None
    qr_content: str | None = None


class VerdictError(_Model):
    """Why a job, or one item of a job, could not be moderated."""

    code: str
    message: str
    item: str | None = Field(default=None, description="The failed item (image URL); null for the whole job")


class Verdict(_Model):
    """One moderation job's outcome, in the same shape whatever the provider."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    provider: ProviderName
    job_id: JobId
    status: JobStatus
    suggestion: Suggestion | None = Field(
        default=None,
        description="pass | review | block once the job is terminal; null while it is unfinished",
    )
    decided_by: Literal["provider", "policy", "reviewer"] | None = Field(
        default=None,
        description=(
            "provider: the provider's own suggestion; policy: Verdict Relay's documented policy (scores mapped by "
            "thresholds, failed or expired jobs); reviewer: a human reviewer's decision"
        ),
    )
    findings: list[Finding] = Field(default_factory=list)
    error: VerdictError | None = Field(default=None, description="Why the whole job failed")
    item_errors: list[VerdictError] = Field(default_factory=list, description="Items that failed in a job")
    content: ContentRef | None = None
    created_at: UtcDatetime | None = Field(
        default=None,
        description=(
            "When the provider created the job, as it reported it; null when it did not (Azure, an expired job). "
            "A registered job no provider answer has reached yet shows when it was registered"
        ),
    )
    updated_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Caller context: the provider's user data, a registered content id"
    )

    @property
    def categories(self) -> list[str]:
        """The distinct categories of findings that suggest review or block, sorted."""
        return sorted(
            {f.category for f in self.findings if f.suggestion in (Suggestion.REVIEW, Suggestion.BLOCK)}
        )

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal
