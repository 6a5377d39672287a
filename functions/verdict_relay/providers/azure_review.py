"""Azure Content Moderator Review API (``azure-review``): jobs and their callbacks, as verdicts.

Microsoft retired the Review API on 2021-12-31 and retires Content Moderator itself in February 2027; its
successor, Azure AI Content Safety, is synchronous and has no jobs. This adapter exists for systems that still
hold these payloads (stored job results, queued or replayed callbacks) and need them as canonical verdicts.

Payload shapes, all accepted by :meth:`AzureReviewAdapter.parse`. Azure's key casing varies (PascalCase from
the API, camelCase from some senders), so keys are matched case-insensitively; one key sent twice in different
case is refused as ambiguous rather than resolved by whichever came last.

* Get job: ``{Id, TeamName, Status, WorkflowId, Type, CallBackEndpoint, ReviewId, ResultMetaData [{Key,
  Value}], JobExecutionReport [{Ts, Msg}]}``.
* Job callback: ``{JobId, ReviewId, WorkFlowId, Status, ContentType, ContentId, CallBackType: "Job",
  Metadata: {adultscore, a, racyscore, r}}`` (``Metadata`` is a dict here, a Key/Value list in the Get job).
* Review callback: ``{ReviewId, ModifiedOn, ModifiedBy, CallBackType: "Review", ContentId, Metadata,
  ReviewerResultTags: {a: "True", r: "False"}}``: a human reviewer's decision.

``CallBackType`` decides the shape when present; without it exactly one of ``Id`` (Get job), ``JobId`` (job
callback) or ``ReviewerResultTags`` (review callback) must be present, anything else is a PayloadError.

Status: ``Pending`` -> pending, ``InProgress`` -> running, ``Complete``/``Completed`` -> succeeded,
``Failed``/``Error`` -> failed (error ``job_failed`` with the latest ``JobExecutionReport`` message), compared
case-insensitively; any other status is a PayloadError naming ``status``.

Verdict policy. Azure reports scores and flags, never a verdict, so the mapping is ours and configurable
(:class:`~verdict_relay.config.AzurePolicy`); :func:`evaluate` and :func:`evaluate_review` are that mapping as
pure functions, and ``decided_by`` says which of them decided:

* Per score category (``adult``, ``racy``, and any category a threshold is configured for): score >= block
  threshold -> block; score >= review threshold, or the category's flag (``isAdult``/``a``,
  ``isRacy``/``r``) set -> review; else pass. A score equal to a threshold reaches it. A category with no
  threshold configured is decided by its flag alone. One finding per category present (confidence = the
  score, null when only a flag was sent).
* ``text.HasProfanity`` "True" -> ``policy.profanity`` (a ``profanity`` finding either way when reported).
* A completed job with a ``ReviewId`` (its workflow created a review: someone is to look at the content) gets
  a ``workflow`` finding labelled ``review_created``, suggesting ``policy.review_created`` (``review``; ``pass``
  leaves it out).
* The job's suggestion is the worst finding's (``decided_by="policy"``). A completed job that reports no
  score, flag or profanity result at all gets ``review``: nothing to judge is no evidence of clean content.
* Review callback: each true tag in ``ReviewerResultTags`` -> ``policy.reviewer_tags[tag]`` or
  ``policy.unknown_tag``; no true tag -> pass (``decided_by="reviewer"``). A review decision is a verdict of
  its own keyed by the review id (``job_id = ReviewId``); job verdicts carry ``metadata.review_id`` so
  subscribers can join the two. The scores a review callback repeats in ``Metadata`` are the job's and are
  not judged again.

Decisions where Azure documents nothing:

* Scores must be numbers within 0..1 (strings as Azure sends them, or JSON numbers); flags ``"True"``/
  ``"False"`` in any case (or JSON booleans). Anything else is a PayloadError naming e.g.
  ``ResultMetaData.adultScore``. Only the keys above are read; other metadata keys are ignored.
* ``matchTerms`` is a JSON string whose exact shape is undocumented: terms found in it (strings, or objects
  with a ``Term``) become the profanity finding's ``segments``. Reading it is best effort and never fails
  the parse; matched terms without a ``HasProfanity`` result count as profanity.
* Times: ``updated_at`` (and ``completed_at`` for finished jobs) is the latest ``JobExecutionReport`` ``Ts``,
  taken as UTC since Azure sends no zone; the job's creation time is not reported, so ``created_at`` stays
  null. Job callbacks carry no time at all.
* ``CallBackEndpoint`` is never copied into the verdict: it holds our callback token (which the ingest service
  also replaces with ``REDACTED`` in the raw payload it stores).

Authentication: Azure signs nothing, so this adapter does not override ``verify_signature``; the base class
accepts a callback only with a configured ``?token=`` in its URL and refuses it when none is configured.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from itertools import repeat
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import from_json

from verdict_relay.config import AzurePolicy
from verdict_relay.errors import ClientError, PayloadError
from verdict_relay.models.verdict import (
    AddressableJobId,
    Finding,
    JobId,
    JobStatus,
    Suggestion,
    Verdict,
    VerdictError,
    worst,
)
from verdict_relay.providers.base import (
    CallbackRequest,
    CallbackResult,
    PayloadModel,
    ProviderAdapter,
    load_json,
    parse_provider_time,
    validate_payload,
    without_lone_surrogates,
)

PROVIDER: Final = "azure-review"

_STATUSES: Final[dict[str, JobStatus]] = {
    "pending": JobStatus.PENDING,
    "inprogress": JobStatus.RUNNING,
    "complete": JobStatus.SUCCEEDED,
    "completed": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "error": JobStatus.FAILED,
}

NOTHING_TO_JUDGE: Final = Suggestion.REVIEW
"""The suggestion for a completed job that reported no score, flag or profanity result."""

_DEFAULT_CATEGORIES: Final = frozenset({"adult", "racy"})
_FLAG_LETTERS: Final = {"a": "adult", "r": "racy"}  # the job callback's short names for isAdult / isRacy
_PROFANITY_KEYS: Final = frozenset({"text.hasprofanity", "hasprofanity"})
_MATCH_TERMS_KEYS: Final = frozenset({"matchterms", "text.matchterms"})
_SCORE_KEY: Final = re.compile(r"(.+)score")
_FLAG_KEY: Final = re.compile(r"is(.+)")
_MAX_TERM_DEPTH: Final = 4


# --- payload models (keys lower-cased by _lower_keys before validation) -------------------------------------


def _azure_status(value: Any) -> JobStatus:
    if not isinstance(value, str):
        # ValueError, not TypeError: pydantic turns only ValueError into an error naming the field.
        raise ValueError("must be a string")
    status = _STATUSES.get(value.strip().lower())
    if status is None:
        raise ValueError(
            f"unknown Azure job status {value!r:.40}; "
            "expected Pending, InProgress, Complete, Completed, Failed or Error"
        )
    return status


def _azure_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a timestamp string")
    return parse_provider_time(value)


AzureStatus = Annotated[JobStatus, BeforeValidator(_azure_status)]
AzureTime = Annotated[datetime | None, BeforeValidator(_azure_time)]


class AzureKeyValue(PayloadModel):
    """One ``ResultMetaData`` entry: ``{Key, Value}``, the value a string as Azure sends it."""

    key: str = Field(min_length=1)
    value: Any = None


class AzureReportEntry(PayloadModel):
    """One ``JobExecutionReport`` entry: ``{Ts, Msg}``."""

    ts: AzureTime = None
    msg: str | None = None


class AzureJob(PayloadModel):
    """The Get job response."""

    id: JobId
    status: AzureStatus
    teamname: str | None = None
    workflowid: str | None = None
    type: str | None = None
    reviewid: str | None = None
    resultmetadata: list[AzureKeyValue] | None = None
    jobexecutionreport: list[AzureReportEntry] | None = None


class AzureJobCallback(PayloadModel):
    """The callback Azure sends to ``CallBackEndpoint`` when a job ends (``CallBackType: "Job"``)."""

    jobid: AddressableJobId
    status: AzureStatus
    reviewid: str | None = None
    workflowid: str | None = None
    contenttype: str | None = None
    contentid: str | None = None
    metadata: dict[str, Any] | None = None


class _NamedJob(PayloadModel):
    """The one field of a job callback a fetch needs (:meth:`AzureReviewAdapter.jobs_named`)."""

    jobid: AddressableJobId


class AzureReviewCallback(PayloadModel):
    """The callback Azure sends when a reviewer closes a review (``CallBackType: "Review"``)."""

    reviewid: AddressableJobId
    reviewerresulttags: dict[str, Any]
    modifiedon: AzureTime = None
    modifiedby: str | None = None
    contentid: str | None = None
    contenttype: str | None = None


# --- the verdict policy -----------------------------------------------------------------------------------


def evaluate(
    scores: dict[str, float], flags: dict[str, bool], profanity: bool | None, policy: AzurePolicy
) -> tuple[Suggestion, list[Finding]]:
    """The policy's verdict on a completed job's scores (0..1), flags and profanity (None: not reported).

    One finding per category present, sorted by category, then ``profanity``. See the module docstring.
    """
    scores = {category.lower(): score for category, score in scores.items()}
    flags = {category.lower(): flag for category, flag in flags.items()}
    findings: list[Finding] = []
    for category in sorted(scores.keys() | flags.keys()):
        score = scores.get(category)
        suggestion = _category_suggestion(
            score,
            flags.get(category, False),
            review_at=policy.review_threshold.get(category),
            block_at=policy.block_threshold.get(category),
        )
        findings.append(Finding(category=category, label=category, confidence=score, suggestion=suggestion))
    if profanity is not None:
        findings.append(
            Finding(
                category="profanity",
                label="profanity",
                suggestion=policy.profanity if profanity else Suggestion.PASS,
            )
        )
    verdict = worst([f.suggestion for f in findings if f.suggestion is not None])
    return (NOTHING_TO_JUDGE if verdict is None else verdict), findings


def _category_suggestion(
    score: float | None, flag: bool, *, review_at: float | None, block_at: float | None
) -> Suggestion:
    if score is not None and block_at is not None and score >= block_at:
        return Suggestion.BLOCK
    if flag or (score is not None and review_at is not None and score >= review_at):
        return Suggestion.REVIEW
    return Suggestion.PASS


def evaluate_review(tags: dict[str, bool], policy: AzurePolicy) -> tuple[Suggestion, list[Finding]]:
    """A reviewer's tags judged: each true tag maps through ``reviewer_tags``; no true tag -> pass. The tags
    ``a`` and ``r`` are the categories ``adult`` and ``racy`` the job's scores are found under (a subscriber's
    filter on a category meets the reviewer's decision too); the label is the tag, in lower case as every key of
    an Azure payload is read (its casing varies)."""
    mapping = {tag.lower(): suggestion for tag, suggestion in policy.reviewer_tags.items()}
    findings = [
        Finding(
            category=_FLAG_LETTERS.get(tag.lower(), tag),
            label=tag,
            confidence=1.0,
            suggestion=mapping.get(tag.lower(), policy.unknown_tag),
        )
        for tag in sorted(tags)
        if tags[tag]
    ]
    verdict = worst([f.suggestion for f in findings if f.suggestion is not None])
    return (Suggestion.PASS if verdict is None else verdict), findings


# --- reading metadata -------------------------------------------------------------------------------------


@dataclass
class _Signals:
    """What a job's metadata reported, by category, and the key each value came from (to name conflicts)."""

    scores: dict[str, float] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    profanity: bool | None = None
    terms: list[str] = field(default_factory=list)
    sources: dict[str, tuple[object, str]] = field(default_factory=dict)

    def record(self, slot: str, value: object, path: str) -> None:
        """Remember a value; the same fact sent twice (``isAdult`` and ``a``) must agree."""
        earlier = self.sources.get(slot)
        if earlier is not None and earlier[0] != value:
            raise PayloadError(PROVIDER, path, f"conflicts with {earlier[1]}")
        self.sources[slot] = (value, path)


def _read_signals(entries: Iterable[tuple[str, Any]], container: str, categories: frozenset[str]) -> _Signals:
    signals = _Signals()
    for key, value in entries:
        name = key.strip().lower()
        path = f"{container}.{key}"
        if name in _PROFANITY_KEYS:
            signals.profanity = _flag(value, path)
            signals.record("profanity", signals.profanity, path)
        elif name in _MATCH_TERMS_KEYS:
            signals.terms.extend(_match_terms(value))
        elif (score_key := _SCORE_KEY.fullmatch(name)) and score_key[1] in categories:
            category = score_key[1]
            signals.scores[category] = _score(value, path)
            signals.record(f"score:{category}", signals.scores[category], path)
        elif category := _flag_category(name, categories):
            signals.flags[category] = _flag(value, path)
            signals.record(f"flag:{category}", signals.flags[category], path)
    signals.terms = list(dict.fromkeys(signals.terms))
    if signals.profanity is None and signals.terms:
        signals.profanity = True
    return signals


def _flag_category(name: str, categories: frozenset[str]) -> str | None:
    if name in _FLAG_LETTERS:
        return _FLAG_LETTERS[name]
    flag_key = _FLAG_KEY.fullmatch(name)
    return flag_key[1] if flag_key and flag_key[1] in categories else None


def _score(value: Any, path: str) -> float:
    score: float | None = None
    if isinstance(value, str):
        try:
            score = float(value.strip())
        except ValueError:
            score = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            score = float(value)
        except OverflowError:  # an integer too large for a float (400 digits): out of range like any other
            score = None
    if score is None or not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise PayloadError(PROVIDER, path, f"must be a number within 0..1, got {value!r:.40}")
    return score


def _flag(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise PayloadError(PROVIDER, path, f"must be 'True' or 'False', got {value!r:.40}")


def _match_terms(value: Any) -> list[str]:
    """Terms in ``matchTerms``, best effort: its shape is undocumented, so what cannot be read yields none.

    A string is read with pydantic-core, not ``json.loads`` (which would recurse into a RecursionError), after
    its lone surrogate escapes (``"\\ud83d"``, a term cut inside a character) become U+FFFD: a term no verdict
    could be stored with is kept so, and the others with it."""
    if isinstance(value, str):
        try:
            value = from_json(without_lone_surrogates(value.encode("utf-8", "surrogatepass")))
        except ValueError:
            return []
    if isinstance(value, list):
        terms = _terms_of_entries(value)
        if terms is not None:
            return terms
    return _terms_in(value, _MAX_TERM_DEPTH)


def _terms_of_entries(entries: list[Any]) -> list[str] | None:
    """What :func:`_terms_in` reads from a list of objects whose term is under one spelling of ``Term`` (the
    shape Azure's text screen returns: ``[{"Index", "OriginalIndex", "ListId", "Term"}, ...]``), read with
    one lookup per entry; None for any other list, which :func:`_terms_in` reads.

    The same reading, because no other key of those objects lowers to ``term`` or ``terms``: each object's
    term is that key's value when it is a non-blank string, and none otherwise. Reading each object through
    :func:`_terms_in` (an object with its keys lowered, per term) cost more than decoding the terms."""
    if not entries or set(map(type, entries)) != {dict}:
        return None
    term_keys = [name for name in set().union(*entries) if str(name).lower() in ("term", "terms")]
    if len(term_keys) != 1 or str(term_keys[0]).lower() != "term":
        return None
    values = map(dict.get, entries, repeat(term_keys[0]))
    return [value for value in values if isinstance(value, str) and value.strip()]


def _terms_in(value: Any, depth: int) -> list[str]:
    if depth <= 0:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [term for item in value for term in _terms_in(item, depth - 1)]
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        if isinstance(lowered.get("term"), str):
            return _terms_in(lowered["term"], depth - 1)
        return _terms_in(lowered.get("terms"), depth - 1)
    return []


# --- the adapter ------------------------------------------------------------------------------------------


class _Shape(Enum):
    JOB = "job"
    JOB_CALLBACK = "job callback"
    REVIEW_CALLBACK = "review callback"


_CALLBACK_TYPES: Final = {"job": _Shape.JOB_CALLBACK, "review": _Shape.REVIEW_CALLBACK}
_SHAPE_MARKERS: Final = {
    "id": _Shape.JOB,
    "jobid": _Shape.JOB_CALLBACK,
    "reviewerresulttags": _Shape.REVIEW_CALLBACK,
}


@dataclass(frozen=True)
class _Outcome:
    suggestion: Suggestion | None = None
    decided_by: Literal["provider", "policy", "reviewer"] | None = None
    findings: list[Finding] = field(default_factory=list)
    error: VerdictError | None = None


class AzureReviewAdapter(ProviderAdapter):
    """Azure Content Moderator Review API jobs and callbacks, judged by an :class:`AzurePolicy`."""

    name: ClassVar[str] = PROVIDER
    takes_callbacks: ClassVar[bool] = True
    callback_ack_status: ClassVar[int] = 200

    def __init__(self, policy: AzurePolicy | None = None) -> None:
        self.policy = policy if policy is not None else AzurePolicy()
        self._categories = (
            _DEFAULT_CATEGORIES | self.policy.review_threshold.keys() | self.policy.block_threshold.keys()
        )

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        verdicts = self.parse_bytes(request.body)
        # A review callback is keyed by its review id, which the jobs API does not know: fetching it would
        # turn a reviewer's decision into an "expired" job.
        return CallbackResult(
            verdicts=[v for v in verdicts if v.decided_by != "reviewer"],
            body_only=[v for v in verdicts if v.decided_by == "reviewer"],
        )

    def jobs_named(self, request: CallbackRequest) -> list[str]:
        """A job callback's job; a reviewer's decision (a review callback) names nothing the API returns."""
        try:
            payload = load_json(self.name, request.body)
            if not isinstance(payload, dict):
                return []
            data = _lower_keys(payload)
            if _detect_shape(data) is not _Shape.JOB_CALLBACK:
                return []
            return [validate_payload(self.name, _NamedJob, data).jobid]
        except ClientError:
            return []

    def parse(self, payload: Any) -> list[Verdict]:
        if not isinstance(payload, dict):
            raise PayloadError(
                self.name, "(root)", "expected a JSON object: a job, a job callback or a review callback"
            )
        data = _lower_keys(payload)
        shape = _detect_shape(data)
        if shape is _Shape.JOB:
            return [self._job_verdict(validate_payload(self.name, AzureJob, data))]
        if shape is _Shape.JOB_CALLBACK:
            return [self._job_callback_verdict(validate_payload(self.name, AzureJobCallback, data))]
        return [self._review_verdict(validate_payload(self.name, AzureReviewCallback, data))]

    def _job_verdict(self, job: AzureJob) -> Verdict:
        report = job.jobexecutionreport or []
        latest = _latest_report(report)
        updated_at = latest.ts if latest is not None else None
        # A failed job's reason: its last entry that is not the note of the results posted to our callback URL
        # (which says nothing of the failure, and quotes the URL with its token).
        reason = _latest_report([entry for entry in report if not _is_callback_note(entry.msg)])
        outcome = self._outcome(
            job.status,
            [(kv.key, kv.value) for kv in job.resultmetadata or []],
            "ResultMetaData",
            reason.msg if reason is not None else None,
            review_id=job.reviewid,
        )
        return Verdict(
            provider=PROVIDER,
            job_id=job.id,
            status=job.status,
            suggestion=outcome.suggestion,
            decided_by=outcome.decided_by,
            findings=outcome.findings,
            error=outcome.error,
            updated_at=updated_at,
            completed_at=updated_at if job.status.is_terminal else None,
            metadata=_metadata(
                team=job.teamname, workflow_id=job.workflowid, review_id=job.reviewid, content_type=job.type
            ),
        )

    def _job_callback_verdict(self, callback: AzureJobCallback) -> Verdict:
        outcome = self._outcome(
            callback.status,
            list((callback.metadata or {}).items()),
            "Metadata",
            None,
            review_id=callback.reviewid,
        )
        return Verdict(
            provider=PROVIDER,
            job_id=callback.jobid,
            status=callback.status,
            suggestion=outcome.suggestion,
            decided_by=outcome.decided_by,
            findings=outcome.findings,
            error=outcome.error,
            metadata=_metadata(
                workflow_id=callback.workflowid,
                review_id=callback.reviewid,
                content_id=callback.contentid,
                content_type=callback.contenttype,
            ),
        )

    def _review_verdict(self, review: AzureReviewCallback) -> Verdict:
        tags = {
            tag: _flag(value, f"ReviewerResultTags.{tag}") for tag, value in review.reviewerresulttags.items()
        }
        suggestion, findings = evaluate_review(tags, self.policy)
        return Verdict(
            provider=PROVIDER,
            job_id=review.reviewid,
            status=JobStatus.SUCCEEDED,
            suggestion=suggestion,
            decided_by="reviewer",
            findings=findings,
            updated_at=review.modifiedon,
            completed_at=review.modifiedon,
            metadata=_metadata(
                review_id=review.reviewid,
                reviewed_by=review.modifiedby,
                content_id=review.contentid,
                content_type=review.contenttype,
            ),
        )

    def _outcome(
        self,
        status: JobStatus,
        entries: list[tuple[str, Any]],
        container: str,
        last_message: str | None,
        *,
        review_id: str | None,
    ) -> _Outcome:
        if status is JobStatus.FAILED:
            message = last_message or "Azure reported the job as failed without a message"
            return _Outcome(error=VerdictError(code="job_failed", message=message))
        if status is not JobStatus.SUCCEEDED:
            # An unfinished job's metadata may be partial: judging it now could publish a premature verdict.
            return _Outcome()
        signals = _read_signals(entries, container, self._categories)
        suggestion, findings = evaluate(signals.scores, signals.flags, signals.profanity, self.policy)
        if signals.terms:
            findings = [
                finding.model_copy(update={"segments": signals.terms})
                if finding.category == "profanity"
                else finding
                for finding in findings
            ]
        if review_id and self.policy.review_created is not Suggestion.PASS:
            # The scores alone may pass content the team's workflow sent to a human (its own thresholds, or
            # conditions we do not see); the reviewer's decision may never be called back.
            findings = [
                *findings,
                Finding(category="workflow", label="review_created", suggestion=self.policy.review_created),
            ]
            suggestion = worst([suggestion, self.policy.review_created]) or suggestion
        return _Outcome(suggestion=suggestion, decided_by="policy", findings=findings)


def _is_callback_note(message: str | None) -> bool:
    """Whether a report entry is Azure's note of the results posted to the job's ``CallBackEndpoint``
    ("Posted results to the Callbackendpoint: https://...")."""
    return message is not None and message.lstrip().lower().startswith(
        "posted results to the callbackendpoint"
    )


def _latest_report(report: list[AzureReportEntry]) -> AzureReportEntry | None:
    """The job's last report entry: the latest by time; with no times, the first listed (Azure lists newest
    first, as the Get job example shows)."""
    timed = [(entry.ts, index, entry) for index, entry in enumerate(report) if entry.ts is not None]
    if timed:
        # On equal times the entry listed first wins, for the same newest-first reason.
        return max(timed, key=lambda item: (item[0], -item[1]))[2]
    return report[0] if report else None


def _detect_shape(data: dict[str, Any]) -> _Shape:
    callback_type = data.get("callbacktype")
    if callback_type is not None:
        shape = _CALLBACK_TYPES.get(callback_type.strip().lower()) if isinstance(callback_type, str) else None
        if shape is None:
            raise PayloadError(
                PROVIDER, "callbacktype", f"expected 'Job' or 'Review', got {callback_type!r:.40}"
            )
        return shape
    shapes = {shape for key, shape in _SHAPE_MARKERS.items() if key in data}
    if len(shapes) == 1:
        return shapes.pop()
    problem = (
        "has no Id, JobId or ReviewerResultTags: not an Azure job, job callback or review callback"
        if not shapes
        else "has keys of several Azure payload shapes (Id, JobId, ReviewerResultTags) and no CallBackType"
    )
    raise PayloadError(PROVIDER, "(root)", problem)


class _KeySentTwice(Exception):
    """Two keys of one object differ only in letter case."""


def _lower_keys(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with every object's keys lower-cased, at any depth; a PayloadError naming the first key
    that another key of its object differs from only in letter case (:func:`_reject_case_duplicates`).

    One walk lowers the keys and notices such a key (an object lowered to fewer keys than it had): checking
    for them and then lowering walked the whole payload twice in Python, most of the cost of parsing a job's
    small body. Only a payload with such a key is walked again, to name it."""
    try:
        lowered: dict[str, Any] = _lowered(payload)
    except _KeySentTwice:
        _reject_case_duplicates(payload, "")
        raise  # not reached: the walk that names the key refuses what this one found
    return lowered


def _lowered(value: Any) -> Any:
    if isinstance(value, dict):
        lowered = {
            str(key).lower(): _lowered(item) if isinstance(item, dict | list) else item
            for key, item in value.items()
        }
        if len(lowered) != len(value):
            raise _KeySentTwice
        return lowered
    if isinstance(value, list):
        return [_lowered(item) if isinstance(item, dict | list) else item for item in value]
    return value


def _reject_case_duplicates(value: Any, path: str) -> None:
    """Refuse ``{"Status": ..., "status": ...}``: case-insensitive keys would otherwise keep one silently."""
    if isinstance(value, dict):
        seen: set[str] = set()
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key).lower() in seen:
                raise PayloadError(PROVIDER, where, "appears more than once in different letter case")
            seen.add(str(key).lower())
            _reject_case_duplicates(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_case_duplicates(item, f"{path}.{index}" if path else str(index))


def _metadata(**values: str | None) -> dict[str, str]:
    """Verdict metadata from the ids Azure sent; empty strings (Azure's "no review") are left out."""
    return {key: value for key, value in values.items() if value}
