"""What the job store says about a job: its stored state, and what one write did to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from verdict_relay.models.verdict import AddressableJobId, JobStatus, ProviderName, Verdict


class Transition(StrEnum):
    CREATED = "created"  # first time we hear of the job
    ADVANCED = "advanced"  # the job moved forward (pending -> running -> terminal)
    DUPLICATE = "duplicate"  # the same state or result again: nothing changed
    STALE = "stale"  # an older state than the one stored (a late 'running'): ignored
    CONFLICT = "conflict"  # a different terminal result for a terminal job: kept aside, not applied


class SignedClaim(StrEnum):
    """What binding a signed callback's text to its job found (``JobStore.claim_signed``)."""

    ANOTHER_JOB = "another_job"  # the text was accepted for another job first: a forgery
    RECENT = "recent"  # accepted for this job first, within the time a provider may re-send it
    LONG_AGO = "long_ago"  # accepted for this job first, longer ago than any provider re-sends a callback


@dataclass(frozen=True)
class StoredJob:
    """A job as stored: its latest verdict, the caller's registration metadata, and its publish state."""

    provider: str
    job_id: str
    status: JobStatus
    verdict: Verdict | None
    caller_metadata: dict[str, str] = field(default_factory=dict)
    publish_state: str = "not_required"
    next_poll_at: int | None = None
    created_at: datetime | None = None
    poll_attempts: int = 0
    publish_claimed_until: str | None = None
    """The publish claim as stored (epoch seconds as DynamoDB's number text): whoever wrote it may give it up."""

    def public_verdict(self) -> Verdict:
        """The verdict as the API and SNS show it: the caller's metadata merged over the provider's."""
        base = self.verdict or Verdict(
            provider=self.provider,
            job_id=self.job_id,
            status=self.status,
            created_at=self.created_at,
        )
        if not self.caller_metadata:
            return base
        return base.model_copy(update={"metadata": {**base.metadata, **self.caller_metadata}})


class JobKey(NamedTuple):
    provider: str
    job_id: str


@dataclass(frozen=True)
class DueJob:
    """What polling needs to know of an unfinished job besides its id: how many polls it has had (the backoff's
    exponent) and when it was created (for providers that drop old jobs). The due-jobs query yields it, and a
    fan-out batch carries it, so a poll that finds the job unfinished reschedules it without reading it first."""

    job_id: str
    poll_attempts: int = 0
    created_at: datetime | None = None


class DueAt(NamedTuple):
    """A due job as the due-jobs query reads it for polling: what a poll needs, and when it came due (epoch
    seconds)."""

    job: DueJob
    next_poll_at: int


@dataclass(frozen=True)
class FanoutHold:
    """Poll workers hold a provider's jobs due by ``through`` (epoch seconds: a whole second that had passed
    before those jobs were read, so a job made due as of a later moment is due after it) until ``until``:
    meanwhile the scheduler sends them only jobs that came due later, and polls none of the provider's itself.
    From ``rescan_at`` (when the first batches of the hold should all have been polled) the scheduler reads every
    due job again, so jobs the workers left due are sent again even while newly due jobs keep renewing the
    hold. ``drained_until``: the hold's end as carried by the latest batch a worker finished with (polled, or
    left as stale): the provider's batches sent up to that one are off the queue."""

    until: datetime
    through: int
    rescan_at: datetime | None = None
    drained_until: datetime | None = None


@dataclass(frozen=True)
class NextPoll:
    """When an unfinished job is polled next, and how many polls it has had (the backoff's exponent)."""

    at: datetime
    attempts: int


@dataclass(frozen=True)
class RecordResult:
    transition: Transition
    job: StoredJob | None
    publish: bool = False
    """True only for the write that won the job's terminal transition and owes the publish."""


_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_PRINTABLE)]
MetadataValue = Annotated[str, StringConstraints(max_length=1024, pattern=_PRINTABLE)]


class RegisterJobRequest(BaseModel):
    """``POST /jobs``: start following a job submitted to a provider, so the poller resolves it."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName
    job_id: Annotated[
        AddressableJobId,
        Field(
            description=(
                "The provider's job id: no whitespace, control characters, U+FFFE, U+FFFF, '#' or '/', not '.' or"
                " '..' (nor ',' for alibaba-mps); at most 512 bytes. GET /jobs/{provider}/{job_id} takes it"
                " percent-encoded"
            ),
        ),
    ]

    @field_validator("job_id")
    @classmethod
    def _one_alibaba_job(cls, job_id: str, info: ValidationInfo) -> str:
        # MPS takes the ids it is asked about comma-separated (JobIds): one with a comma would be asked about as
        # several, never answered for itself, and polled for good.
        if info.data.get("provider") == "alibaba-mps" and "," in job_id:
            raise ValueError("an alibaba-mps job id has no ',': MPS reads ids comma-separated")
        return job_id

    metadata: Annotated[
        dict[MetadataKey, MetadataValue],
        # What pydantic would emit (patternProperties) leaves keys that do not match unconstrained; say it exactly.
        WithJsonSchema(
            {
                "type": "object",
                "maxProperties": 20,
                "propertyNames": {"minLength": 1, "maxLength": 128, "pattern": _PRINTABLE},
                "additionalProperties": {"type": "string", "maxLength": 1024, "pattern": _PRINTABLE},
            }
        ),
    ] = Field(
        default_factory=dict,
        max_length=20,
        description="The caller's context (e.g. content_id), returned and published with the verdict",
    )
