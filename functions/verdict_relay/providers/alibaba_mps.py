"""Alibaba Cloud ApsaraVideo MPS media censor jobs (``alibaba-mps``): query responses and MNS push notices.

Payloads :meth:`AlibabaMpsAdapter.parse` accepts (the shape is detected):

* a ``QueryMediaCensorJobList`` response ``{RequestId, NextPageToken, NonExistIds: {String: [...]},
  MediaCensorJobList: {MediaCensorJob: [...]}}``: one verdict per job. Ids MPS does not know are not verdicts;
  :func:`non_existent_ids` hands them to the poller;
* a ``QueryMediaCensorJobDetail`` response ``{RequestId, MediaCensorJobDetail: {...}}``: one verdict;
* a bare ``MediaCensorJob`` object, or a list of them: one verdict each.

MPS wraps lists XML-style (``X: {Y: [...]}``). The wrapper may be missing (``X: [...]``) or empty (``X: {}``,
``X: ""``), and a single object may stand where a list is expected (``X: {Y: {...}}``); all are read alike.

Mapping to the canonical verdict:

* ``State`` Queuing -> pending, Analysing -> running, Success -> succeeded, Fail -> failed (``Code`` and
  ``Message`` become the error; on a Success job, whose ``Code`` MPS documents for failures only, they are kept
  as an item error, which has the policy step publish a pass as ``UNMODERATED_SUGGESTION``: a part MPS could
  not find or read was not moderated). ``Suggestion`` is MPS's own verdict, used for a Success job
  (``decided_by="provider"``) and kept on a Fail job, whose parts may have finished (undocumented): the policy
  step never publishes a failed job milder than it. A Success job without one keeps ``suggestion=None`` for the
  policy step.
* Findings come from every part, each tagged with the part in ``item``: the cover images (``item`` = the
  cover's OSS object), ``title``, ``description``, ``barrage``, ``audio`` and ``video``
  (``VensorCensorResult``, sic; the correctly spelled ``VideoCensorResult`` is read too, the misspelled one
  winning when both are present). A video timeline frame's findings carry the frame's object as ``item`` and
  its ``Timestamp`` as ``time_offset``. ``Scene`` is the category, ``Rate`` ("0".."100", a string) / 100 the
  confidence, and a comma-separated ``Label`` (``"porn,sexy"``) gives one finding per label.
* Findings whose suggestion is ``pass`` are kept: they carry the scores, which the stored verdict should
  show (a "normal" cover at 100 is evidence too). ``Verdict.categories`` already leaves them out.
* An absent part adds no finding. A result holding only a ``Suggestion`` (no ``Scene``) says a verdict without
  saying what was found. A part given that way (title, description, barrage, audio, video) is summed up by it:
  it is a finding named after the part only when stricter than every finding of the part. One listed among
  others (in a cover's ``Results``, a part's whole-track ``CensorResults`` or a timeline entry's) stands for
  itself, as the scored results beside it do: when it says review or block it is one finding, category and
  label the part's name (``cover`` for a cover), ``item`` and ``time_offset`` where it was (the cover's
  object, the part, the frame's object and time). Either way the policy, which reads a job as strict as its
  strictest finding, sees a block MPS gives only there, whatever the job's ``Suggestion``. A ``pass`` adds
  nothing: it carries no score to keep.
* A long video's timeline is paginated (``VensorCensorResult.NextPageToken``, see
  :func:`timeline_next_page_token`); each page parses to the findings of that page only.
* ``completed_at`` and ``updated_at`` are ``FinishTime`` for finished jobs (MPS has no update time);
  ``UserData`` and ``PipelineId`` go to ``metadata``. The response's ``RequestId`` does not: it changes with
  every query and would make identical verdicts differ.

Callbacks: MPS has no per-job callback URL. It posts a notice to an MNS topic, which pushes it over HTTP,
signed with RSA-SHA1 (:meth:`AlibabaMpsAdapter.verify_signature`). The notice names the job and its state but
never the result, so :meth:`AlibabaMpsAdapter.parse_callback` returns the job to fetch with
``QueryMediaCensorJobDetail``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar, Self
from urllib.parse import urlsplit
from xml.etree import ElementTree

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic.alias_generators import to_pascal
from pydantic_core import CoreSchema, core_schema, from_json

from verdict_relay.config import is_loopback_host
from verdict_relay.errors import CallbackAuthError, MalformedPayloadError, PayloadError, VerdictRelayError
from verdict_relay.models.verdict import (
    MAX_JOB_ID_LENGTH,
    ContentRef,
    Finding,
    JobId,
    JobStatus,
    ProviderName,
    Suggestion,
    Verdict,
    VerdictError,
)
from verdict_relay.providers.base import (
    CallbackRequest,
    CallbackResult,
    FindingFields,
    PayloadModel,
    ProviderAdapter,
    VerifyContext,
    construct_findings,
    finding_fields,
    parse_provider_time,
    validate_payload,
    without_lone_surrogates,
)

PROVIDER: ProviderName = "alibaba-mps"

_STATES = {
    "queuing": JobStatus.PENDING,
    "analysing": JobStatus.RUNNING,
    "success": JobStatus.SUCCEEDED,
    "fail": JobStatus.FAILED,
}
# A timeline Timestamp is hh:mm:ss.SSS: (\d{1,4}):([0-5]\d):([0-5]\d(?:\.\d{1,9})?), matched in two halves at
# its last colon (see _timestamp).
_HOURS_MINUTES = re.compile(r"(\d{1,4}):([0-5]\d)")
_SECONDS = re.compile(r"[0-5]\d(?:\.\d{1,9})?")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_MAX_MESSAGE_NESTING = 4
"""How deep a notice may nest (envelope -> Message string -> base64 -> JSON): deeper is not an MNS notice."""
_MAX_XML_DEPTH = 32


# --- field validators: a ValueError here becomes a PayloadError naming the field's dotted path ---


def _blank_to_none(value: Any) -> Any:
    """MPS (and XML-to-JSON conversions of its answers) send "" for an absent value."""
    return None if value == "" else value


def _rate(value: Any) -> float | None:
    """``Rate`` is a string "0".."100"; the canonical confidence is 0..1."""
    if value is None or value == "":
        return None
    number: Decimal | None = None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite() or not 0 <= number <= 100:
        raise ValueError(f'must be a number from 0 to 100 (a string such as "99.91"), got {value!r:.40}')
    # Decimal division keeps "99.91" -> 0.9991 exact, where float division would give 0.9991000000000001.
    return float(number / 100)


def _suggestion(value: Any) -> Suggestion | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return Suggestion(value.strip().lower())
        except ValueError:
            pass
    raise ValueError(f"must be pass, review or block, got {value!r:.40}")


def _state(value: Any) -> JobStatus:
    status = _STATES.get(value.strip().lower()) if isinstance(value, str) else None
    if status is None:
        raise ValueError(f"unknown state {value!r:.40}; expected Queuing, Analysing, Success or Fail")
    return status


def _timestamp(value: Any) -> float | None:
    """A timeline ``Timestamp`` "hh:mm:ss.SSS" as seconds from the start of the video."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        # Split at the last colon, "hh:mm" and "ss.SSS" each match their half of the pattern exactly when the
        # whole matches. The halves repeat along a timeline (the same minute, the same second), so each is
        # parsed once; the sum is the same float as int(hh) * 3600 + int(mm) * 60 + float(ss.SSS).
        hours_minutes, _, seconds = value.strip().rpartition(":")
        try:
            return _seconds_of_hours_minutes(hours_minutes) + _seconds_of(seconds)
        except ValueError:
            pass
    raise ValueError(f"must be a time as hh:mm:ss.SSS, got {value!r:.40}")


@functools.lru_cache(maxsize=1024)
def _seconds_of_hours_minutes(text: str) -> int:
    match = _HOURS_MINUTES.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return int(match[1]) * 3600 + int(match[2]) * 60


@functools.lru_cache(maxsize=1024)
def _seconds_of(text: str) -> float:
    if _SECONDS.fullmatch(text) is None:
        raise ValueError(text)
    return float(text)


def _provider_time(value: Any) -> datetime | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("must be a time string such as 2021-11-04T07:25:48Z")
    return parse_provider_time(value)


def unwrap_list(value: Any, inner: str) -> list[Any]:
    """Unwrap an XML-style list ``{inner: [...]}``, tolerating a missing or empty wrapper and a lone item.
    ValueError for anything else. Shared with the MPS client, which reads the same lists."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if inner in value:
            items = value[inner]
            if items is None or items == "":
                return []
            return items if isinstance(items, list) else [items]
        # No wrapper key: an empty wrapper, or the single item itself standing in for the list.
        return [value] if value else []
    raise ValueError(f"must be an object wrapping a list in '{inner}' (or the list itself)")


def _wrapped(inner: str) -> BeforeValidator:
    return BeforeValidator(lambda value: unwrap_list(value, inner))


OptionalText = Annotated[str | None, BeforeValidator(_blank_to_none)]
Rate = Annotated[float | None, BeforeValidator(_rate)]
OptionalSuggestion = Annotated[Suggestion | None, BeforeValidator(_suggestion)]
ProviderTime = Annotated[datetime | None, BeforeValidator(_provider_time)]
TimeOffset = Annotated[float | None, BeforeValidator(_timestamp)]


# --- payload models: field names are the snake_case of MPS's PascalCase keys, which are the aliases ---


class _MpsModel(PayloadModel):
    model_config = ConfigDict(alias_generator=to_pascal)


class CensorResult(_MpsModel):
    """One scored result: ``{Label, Rate, Scene, Suggestion}``."""

    label: OptionalText = None
    rate: Rate = None
    scene: OptionalText = None
    suggestion: OptionalSuggestion = None

    @model_validator(mode="after")
    def _scene_when_scored(self) -> Self:
        # A label or score without the scene it belongs to cannot become a finding: refuse, do not guess.
        if self.scene is None and (self.label is not None or self.rate is not None):
            raise ValueError("Scene is missing from a result that has a Label or Rate")
        return self


Part = Annotated[CensorResult | None, BeforeValidator(_blank_to_none)]


class CoverImageResult(_MpsModel):
    object: OptionalText = None
    bucket: OptionalText = None
    location: OptionalText = None
    results: Annotated[list[CensorResult], _wrapped("Result")] = Field(default_factory=list)


class TimelineEntry(_MpsModel):
    """One frame (video) or span (audio) of a timeline: ``{Timestamp, Object, CensorResults}``."""

    timestamp: TimeOffset = None
    object: OptionalText = None
    censor_results: Annotated[list[CensorResult], _wrapped("CensorResult")] = Field(default_factory=list)


_TIMELINE_ENTRY_KEYS = frozenset({"Timestamp", "Object", "CensorResults"})
_CENSOR_RESULT_KEYS = frozenset({"Label", "Rate", "Scene", "Suggestion"})


class _TimelineFindings:
    """A timeline (``VideoTimelines`` or ``AudioTimelines``) validated straight into the findings of its part.

    A timeline is the one long part of a job (an entry every few seconds of the video), so its entries are not
    made into TimelineEntry instances: an entry with only the documented keys is read directly, its values
    checked as TimelineEntry checks them (the same validators; each result as MPS writes one by the checks that
    CensorResult's validators come to for it, any other by CensorResult itself). Anything
    else (a value the models refuse, an unknown key, a number where text is documented) sends the whole
    timeline through TimelineEntry, which names a bad value at its place. The findings are the same either way.
    """

    def __init__(self, inner: str, part: str) -> None:
        self.inner = inner
        self.part = part

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        entries = handler.generate_schema(Annotated[list[TimelineEntry], _wrapped(self.inner)])
        return core_schema.no_info_wrap_validator_function(self._validate, entries)

    def _validate(self, value: Any, validate_entries: ValidatorFunctionWrapHandler) -> list[Finding]:
        findings = self._read(value)
        if findings is None:
            entries: list[TimelineEntry] = validate_entries(value)
            findings = [finding for entry in entries for finding in _entry_findings(entry, self.part)]
        return findings

    def _read(self, value: Any) -> list[Finding] | None:
        """The timeline's findings, or None when the models must read it.

        Written for speed, as it runs once per entry of the longest list MPS sends: the common shapes are
        tested first, the general checks only run when those fail.
        """
        try:
            entries = unwrap_list(value, self.inner)
        except ValueError:
            return None
        fields: list[FindingFields] = []
        for entry in entries:
            if type(entry) is not dict:
                return None
            timestamp, snapshot = entry.get("Timestamp"), entry.get("Object")
            wrapped_results = entry.get("CensorResults")
            # Only the documented keys: a snake_case one would be read by the model too. Three keys with three
            # values are exactly those; anything else is compared key by key.
            if (
                len(entry) != 3 or timestamp is None or snapshot is None or wrapped_results is None
            ) and not entry.keys() <= _TIMELINE_ENTRY_KEYS:
                return None
            if snapshot is not None and type(snapshot) is not str:
                return None
            item = snapshot if self.part == "video" and snapshot else self.part  # "" is no snapshot either
            if type(wrapped_results) is dict and type(results := wrapped_results.get("CensorResult")) is list:
                pass  # the documented {CensorResult: [...]}, which unwrap_list would return as is
            else:
                try:
                    results = unwrap_list(wrapped_results, "CensorResult")
                except ValueError:
                    return None
            try:
                time_offset = _timestamp(timestamp)
            except ValueError:
                return None
            for result in results:
                if type(result) is not dict:
                    return None
                label, rate = result.get("Label"), result.get("Rate")
                scene, suggestion = result.get("Scene"), result.get("Suggestion")
                if (
                    len(result) != 4 or label is None or rate is None or scene is None or suggestion is None
                ) and not result.keys() <= _CENSOR_RESULT_KEYS:
                    return None
                if rate is not None and type(rate) is not str:
                    return None  # a number: the cache below would take 1 for True, or -0.0 for 0.0
                if (
                    type(scene) is str
                    and scene
                    and type(label) is str
                    and type(rate) is str
                    and type(suggestion) is str
                    and (verdict := _PLAIN_SUGGESTIONS.get(suggestion)) is not None
                    and _PLAIN_RATE.fullmatch(rate) is not None
                ):
                    # As MPS writes a result (see _PLAIN_RATE), read as CensorResult would read it.
                    confidence = float(rate + "e-2")
                    # (one label, the common case, without the call: what _hit_labels gives for it)
                    for hit_label in _hit_labels(label, scene) if "," in label else [label.strip() or scene]:
                        hit_fields = _TIMELINE_FINDING.copy()
                        hit_fields["category"] = scene
                        hit_fields["label"] = hit_label
                        hit_fields["confidence"] = confidence
                        hit_fields["suggestion"] = verdict
                        hit_fields["item"] = item
                        hit_fields["time_offset"] = time_offset
                        hit_fields["segments"] = []
                        fields.append(hit_fields)
                    continue
                try:
                    hits = _scored_hits(label, rate, scene, suggestion, self.part)
                except (ValueError, TypeError):  # refused by CensorResult, or a list or object (not hashable)
                    return None
                for hit in hits:
                    hit_fields = hit.copy()
                    hit_fields["item"] = item
                    hit_fields["time_offset"] = time_offset
                    hit_fields["segments"] = []
                    fields.append(hit_fields)
        # Every value was validated: by CensorResult (Rate 0..1, Suggestion) and the timestamp pattern (>= 0).
        return construct_findings(fields)


_PLAIN_RATE = re.compile(r"100(?:\.0{1,12})?|\d{1,2}(?:\.\d{1,12})?")
"""A ``Rate`` as MPS writes it ("100", "99.91"), at most 14 digits: its value / 100 is exact as a Decimal, so
``float(rate + "e-2")`` (rounded once, from the exact value) is the float ``_rate`` gives."""
_PLAIN_SUGGESTIONS = {suggestion.value: suggestion for suggestion in Suggestion}
"""A timeline result's ``Suggestion`` as MPS writes it; any other spelling is read by CensorResult."""


_TIMELINE_FINDING = finding_fields(category="", label="")
"""The fields of a finding read from a timeline result, each copied and filled in (``_TimelineFindings._read``)."""


@functools.lru_cache(maxsize=1024)
def _scored_hits(
    label: Any, rate: str | None, scene: Any, suggestion: Any, part: str
) -> tuple[FindingFields, ...]:
    """The findings of a timeline result ``{Label, Rate, Scene, Suggestion}`` of ``part`` as validated by
    CensorResult (one without a Scene is named after ``part``: see _labels), to be placed in the media (item,
    time offset); the callers copy the fields they get.

    For the results ``_TimelineFindings._read`` does not read itself (see ``_PLAIN_RATE``). Cached, as such a
    spelling tends to repeat along a timeline. Values that are equal are read alike, except numbers
    (1 and True, 0.0 and -0.0), which only Rate accepts: it is text here. A ValidationError when CensorResult
    refuses the values.
    """
    result = CensorResult.model_validate(
        {"Label": label, "Rate": rate, "Scene": scene, "Suggestion": suggestion}
    )
    return tuple(
        finding_fields(category, hit_label, result.rate, result.suggestion)
        for category, hit_label in _labels(result, part)
    )


class MediaResult(CensorResult):
    """The video part: results for the whole track plus a timeline, read into findings named by frame.

    MPS documents the video part in full; the audio part (:class:`AudioMediaResult`) is read both as a single
    result and in the video part's form, as either may come.
    """

    censor_results: Annotated[list[CensorResult], _wrapped("CensorResult")] = Field(default_factory=list)
    video_timelines: Annotated[list[Finding], _TimelineFindings("VideoTimeline", "video")] = Field(
        default_factory=list
    )
    audio_timelines: Annotated[list[Finding], _TimelineFindings("AudioTimeline", "video")] = Field(
        default_factory=list
    )
    next_page_token: OptionalText = None


class AudioMediaResult(MediaResult):
    """The audio part: as the video part, its timeline findings all named ``audio``."""

    video_timelines: Annotated[list[Finding], _TimelineFindings("VideoTimeline", "audio")] = Field(
        default_factory=list
    )
    audio_timelines: Annotated[list[Finding], _TimelineFindings("AudioTimeline", "audio")] = Field(
        default_factory=list
    )


VideoPart = Annotated[MediaResult | None, BeforeValidator(_blank_to_none)]
AudioPart = Annotated[AudioMediaResult | None, BeforeValidator(_blank_to_none)]


class JobInput(_MpsModel):
    bucket: OptionalText = None
    location: OptionalText = None
    object: OptionalText = None


class MediaCensorJob(_MpsModel):
    """A media censor job as ``QueryMediaCensorJobList`` and ``QueryMediaCensorJobDetail`` return it."""

    job_id: JobId
    state: Annotated[JobStatus, BeforeValidator(_state)]
    code: OptionalText = None
    message: OptionalText = None
    suggestion: OptionalSuggestion = None
    creation_time: ProviderTime = None
    finish_time: ProviderTime = None
    source: Annotated[JobInput | None, BeforeValidator(_blank_to_none)] = Field(default=None, alias="Input")
    user_data: OptionalText = None
    pipeline_id: OptionalText = None
    cover_image_censor_results: Annotated[list[CoverImageResult], _wrapped("CoverImageCensorResult")] = Field(
        default_factory=list
    )
    title_censor_result: Part = None
    desc_censor_result: Part = None
    barrage_censor_result: Part = None
    audio_censor_result: AudioPart = None
    vensor_censor_result: VideoPart = None
    video_censor_result: VideoPart = None

    @property
    def video(self) -> MediaResult | None:
        """The video part under MPS's documented misspelling, or under the correct spelling."""
        return self.vensor_censor_result or self.video_censor_result


class JobListResponse(_MpsModel):
    """``QueryMediaCensorJobList``."""

    request_id: OptionalText = None
    next_page_token: OptionalText = None
    non_exist_ids: Annotated[list[str], _wrapped("String")] = Field(default_factory=list)
    media_censor_job_list: Annotated[list[MediaCensorJob], _wrapped("MediaCensorJob")] = Field(
        default_factory=list
    )


class JobDetailResponse(_MpsModel):
    """``QueryMediaCensorJobDetail``."""

    request_id: OptionalText = None
    media_censor_job_detail: MediaCensorJob


class _NonExistIds(_MpsModel):
    non_exist_ids: Annotated[list[str], _wrapped("String")] = Field(default_factory=list)


class _TimelinePage(_MpsModel):
    next_page_token: OptionalText = None


class _TimelineTokenJob(_MpsModel):
    vensor_censor_result: Annotated[_TimelinePage | None, BeforeValidator(_blank_to_none)] = None
    video_censor_result: Annotated[_TimelinePage | None, BeforeValidator(_blank_to_none)] = None


class _TimelineTokenDetail(_MpsModel):
    media_censor_job_detail: _TimelineTokenJob


# --- public helpers for the poller ---


def non_existent_ids(payload: Any) -> list[str]:
    """The job ids a ``QueryMediaCensorJobList`` response says MPS does not know (``NonExistIds``).

    Such a job is older than MPS keeps jobs (3 months) or was never created; it is not a verdict. Other
    payload shapes have none.
    """
    if not isinstance(payload, dict):
        raise PayloadError(PROVIDER, "(root)", "expected a JSON object")
    if "NonExistIds" not in payload:
        return []
    return list(validate_payload(PROVIDER, _NonExistIds, payload).non_exist_ids)


def is_unfinished(job_payload: Any) -> bool:
    """Whether a job's ``State`` says it is queued or analysing: the rest of its timeline is not worth fetching,
    as an unfinished job's verdict is never published. False for a finished job and for any state the adapter
    refuses (which it then reports)."""
    try:
        return not _state(job_payload.get("State") if isinstance(job_payload, dict) else None).is_terminal
    except ValueError:
        return False


def timeline_next_page_token(job_payload: Any) -> str | None:
    """The token for the next page of a job's video timeline (``VensorCensorResult.NextPageToken``), if any.

    Takes a bare job or a ``QueryMediaCensorJobDetail`` response; pass it back as ``NextPageToken`` to
    ``QueryMediaCensorJobDetail`` to fetch the next page.
    """
    if not isinstance(job_payload, dict):
        raise PayloadError(PROVIDER, "(root)", "expected a JSON object")
    if "MediaCensorJobDetail" in job_payload:
        job = validate_payload(PROVIDER, _TimelineTokenDetail, job_payload).media_censor_job_detail
    elif "JobId" in job_payload:
        job = validate_payload(PROVIDER, _TimelineTokenJob, job_payload)
    else:
        raise PayloadError(
            PROVIDER, "JobId", "neither a media censor job nor a QueryMediaCensorJobDetail response"
        )
    for page in (job.vensor_censor_result, job.video_censor_result):
        if page is not None and page.next_page_token:
            return page.next_page_token
    return None


# --- payload -> verdict ---


def _jobs(payload: Any) -> list[MediaCensorJob]:
    """Detect the payload's shape and return its jobs."""
    if isinstance(payload, list):
        return [validate_payload(PROVIDER, MediaCensorJob, item) for item in payload]
    if not isinstance(payload, dict):
        raise PayloadError(PROVIDER, "(root)", "expected a JSON object (a job, or a query response)")
    if "MediaCensorJobList" in payload or "NonExistIds" in payload:
        return validate_payload(PROVIDER, JobListResponse, payload).media_censor_job_list
    if "MediaCensorJobDetail" in payload:
        return [validate_payload(PROVIDER, JobDetailResponse, payload).media_censor_job_detail]
    if _is_notice(payload):
        # Read as a job it would be a finished job without a result (a made-up verdict): the service never reads
        # one here (the receiver takes its job id and fetches the job), but `verdict-relay normalize` could.
        raise PayloadError(
            PROVIDER,
            "(root)",
            "an MNS notice: it names a job and carries no result (the receiver fetches the job)",
        )
    if "JobId" in payload:
        return [validate_payload(PROVIDER, MediaCensorJob, payload)]
    if "Code" in payload and "RequestId" in payload:
        raise PayloadError(
            PROVIDER, "Code", f"an MPS error response ({str(payload['Code'])[:80]}), not a media censor job"
        )
    raise PayloadError(
        PROVIDER,
        "JobId",
        "no MediaCensorJobList, MediaCensorJobDetail or JobId: not a media censor job payload",
    )


def _is_notice(payload: dict[str, Any]) -> bool:
    """An MNS notice (its raw message, with ``Type``/``type``, or its JSON envelope, with ``Message`` and
    ``TopicOwner``) rather than one of MPS's own job payloads, which have neither."""
    return any(key in payload for key in ("Type", "type")) or (
        "Message" in payload and "TopicOwner" in payload
    )


_KEPT_WITHOUT_SCENE = frozenset({Suggestion.REVIEW, Suggestion.BLOCK})
"""The suggestions a listed result with no Scene is kept as a finding for."""


def _labels(result: CensorResult, listed_in: str | None = None) -> list[tuple[str, str]]:
    """(category, label) of each finding of a result: one per label of a comma-separated Label.

    A result without a Scene holds only a Suggestion. Listed among others, in a list of part ``listed_in``
    (a cover's ``Results``, a whole-track or timeline entry's ``CensorResults``), it stands for itself: one
    finding named after the part when it says review or block; a pass carries no score to keep. A part's own
    (``listed_in`` None) sums the part up: see _with_part_summary.
    """
    if result.scene is None:
        if listed_in is not None and result.suggestion in _KEPT_WITHOUT_SCENE:
            return [(listed_in, listed_in)]
        return []
    return [(result.scene, label) for label in _hit_labels(result.label, result.scene)]


def _hit_labels(label: str | None, scene: str) -> list[str]:
    """A finding's label for each part of a comma-separated ``Label`` ("porn,sexy"); a result without one is
    labelled with its scene, as the other adapters do for an unlabelled hit."""
    return [stripped for part in (label or "").split(",") if (stripped := part.strip())] or [scene]


def _result_findings(
    result: CensorResult, item: str, time_offset: float | None = None, listed_in: str | None = None
) -> list[Finding]:
    """The findings of a result at ``item`` (``listed_in``: the part whose list holds it, see _labels)."""
    # Every value was validated: by CensorResult (Rate 0..1, Suggestion) and the timestamp pattern (>= 0).
    return construct_findings(
        [
            finding_fields(
                category=category,
                label=label,
                confidence=result.rate,
                suggestion=result.suggestion,
                item=item,
                time_offset=time_offset,
            )
            for category, label in _labels(result, listed_in)
        ]
    )


def _entry_findings(entry: TimelineEntry, part: str) -> list[Finding]:
    # A video frame is named by its snapshot object; audio spans have no object of their own.
    item = entry.object if part == "video" and entry.object else part
    findings: list[Finding] = []
    for result in entry.censor_results:
        findings += _result_findings(result, item, entry.timestamp, listed_in=part)
    return findings


def _media_findings(media: MediaResult, part: str) -> list[Finding]:
    findings = _result_findings(media, part)  # the audio part may be a single result
    for result in media.censor_results:
        findings += _result_findings(result, part, listed_in=part)
    # The timelines were read into findings as they were validated (see _TimelineFindings).
    return _with_part_summary(media, part, findings + media.video_timelines + media.audio_timelines)


def _with_part_summary(result: CensorResult, part: str, findings: list[Finding]) -> list[Finding]:
    """A part's findings, and one finding for the part itself (category and label: the part's name) when its
    own Suggestion is stricter than every one of them. MPS may sum a part up in a Suggestion without saying
    what it found, and the job's Suggestion, which the policy does not trust to be as strict as its parts,
    must not be the only trace of a part's review or block. (A result with no Scene inside one of the part's
    lists is a finding of its own: see _labels.)"""
    own = result.suggestion if result.scene is None else None
    if own is None or own is Suggestion.PASS:
        return findings
    strictest = max((f.suggestion.severity for f in findings if f.suggestion is not None), default=-1)
    if strictest >= own.severity:
        return findings
    return findings + construct_findings(
        [finding_fields(category=part, label=part, suggestion=own, item=part)]
    )


def _findings(job: MediaCensorJob) -> list[Finding]:
    findings: list[Finding] = []
    for cover in job.cover_image_censor_results:
        for result in cover.results:
            findings += _result_findings(result, cover.object or "cover", listed_in="cover")
    parts: tuple[tuple[str, CensorResult | None], ...] = (
        ("title", job.title_censor_result),
        ("description", job.desc_censor_result),
        ("barrage", job.barrage_censor_result),
    )
    for part, part_result in parts:
        if part_result is not None:
            findings += _with_part_summary(part_result, part, _result_findings(part_result, part))
    if job.audio_censor_result is not None:
        findings += _media_findings(job.audio_censor_result, "audio")
    if job.video is not None:
        findings += _media_findings(job.video, "video")
    return findings


def _verdict(job: MediaCensorJob) -> Verdict:
    status = job.state
    suggestion = job.suggestion if status in (JobStatus.SUCCEEDED, JobStatus.FAILED) else None
    finished_at = job.finish_time if status.is_terminal else None
    error = None
    item_errors = []
    if status is JobStatus.FAILED:
        error = VerdictError(
            code=job.code or "Fail", message=job.message or "the media censor job failed without a message"
        )
    elif status is JobStatus.SUCCEEDED and job.code:
        # The API page's example is such a job (InvalidParameter.ResourceNotFound): which part was left unread is
        # not said, so it counts against the whole job.
        item_errors.append(
            VerdictError(code=job.code, message=job.message or "MPS finished the job with an error code")
        )
    content = None
    if job.source is not None and (job.source.bucket or job.source.object or job.source.location):
        content = ContentRef(bucket=job.source.bucket, object=job.source.object, location=job.source.location)
    metadata = {
        key: value for key, value in (("user_data", job.user_data), ("pipeline_id", job.pipeline_id)) if value
    }
    try:
        return Verdict(
            provider=PROVIDER,
            job_id=job.job_id,
            status=status,
            suggestion=suggestion,
            decided_by="provider" if suggestion is not None else None,
            findings=_findings(job),
            error=error,
            item_errors=item_errors,
            content=content,
            created_at=job.creation_time,
            updated_at=finished_at,
            completed_at=finished_at,
            metadata=metadata,
        )
    except ValidationError as exc:  # the models above should make this unreachable; stay typed if not
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise PayloadError(PROVIDER, field, first["msg"]) from exc


# --- MNS push notice body ---


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # MNS qualifies its elements with a namespace


def _element_value(element: ElementTree.Element, depth: int = 0) -> Any:
    if depth > _MAX_XML_DEPTH:
        raise MalformedPayloadError(f"{PROVIDER} notification: XML nested too deeply")
    children = list(element)
    if not children:
        return (element.text or "").strip()
    value: dict[str, Any] = {}
    for child in children:
        value.setdefault(_local_name(child.tag), _element_value(child, depth + 1))
    return value


def _parse_xml(text: str) -> dict[str, Any]:
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        # Without a DOCTYPE no entity can be declared, so nothing expands (billion laughs, external entities).
        raise MalformedPayloadError(f"{PROVIDER} notification: XML with a DOCTYPE or ENTITY is refused")
    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - DOCTYPE refused above, so no entity can be declared
    except ElementTree.ParseError as exc:
        raise MalformedPayloadError(f"{PROVIDER} notification is not valid XML: {exc}") from exc
    value = _element_value(root)
    # <Notification>...</Notification> gives its children; a lone <Message>text</Message> keeps its name.
    return value if isinstance(value, dict) else {_local_name(root.tag): value}


def _decode_text(text: str, depth: int) -> Any:
    """A notice or message as data: JSON, XML, or base64 of either. None for text that is none of them."""
    text = text.strip().lstrip("\ufeff")
    if text.startswith(("{", "[")):
        # pydantic-core's parser, as load_json uses: it refuses nesting past its limit with a ValueError, where
        # json.loads would recurse until a RecursionError (b"[" * 50000) and the receiver answer 500. A lone
        # surrogate escape (text cut inside a character) is replaced first, as load_json does: pydantic-core
        # refuses the whole document for one, and MNS would re-send the notice to the same 400.
        try:
            return from_json(without_lone_surrogates(text.encode("utf-8")))
        except ValueError as exc:
            raise MalformedPayloadError(f"{PROVIDER} notification is not valid JSON: {exc}") from exc
    if text.startswith("<"):
        return _parse_xml(text)
    compact = "".join(text.split())
    if depth < _MAX_MESSAGE_NESTING and compact and len(compact) % 4 == 0 and _BASE64.fullmatch(compact):
        try:
            decoded = base64.b64decode(compact, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return _decode_text(decoded, depth + 1)
    return None


def _checked_job_id(value: Any) -> str:
    if not isinstance(value, str):
        raise PayloadError(PROVIDER, "JobId", "must be a string")
    job_id = value.strip()
    if not job_id or any(not char.isprintable() or char.isspace() for char in job_id):
        raise PayloadError(PROVIDER, "JobId", "must be printable characters without spaces")
    if "," in job_id:
        # MPS is asked about jobs comma-separated (JobIds): such an id would be asked about as several, never
        # answered for itself, and followed for good.
        raise PayloadError(PROVIDER, "JobId", "must not contain ',': MPS reads job ids comma-separated")
    # Bytes, not characters: the id is part of the table's key, which counts UTF-8 bytes (see JobId).
    if len(job_id.encode("utf-8")) > MAX_JOB_ID_LENGTH:
        raise PayloadError(PROVIDER, "JobId", f"must take at most {MAX_JOB_ID_LENGTH} bytes in UTF-8")
    return job_id


def _find_job_id(document: Any, depth: int = 0) -> str | None:
    """The job id of an MPS notice, wherever MNS put it.

    At the top level (raw delivery) or inside ``Message`` (the JSON and XML envelopes), possibly as a JSON
    string, XML or base64. ``JobId`` and ``jobId`` both occur.
    """
    if depth > _MAX_MESSAGE_NESTING:
        return None
    if isinstance(document, str):
        return _find_job_id(_decode_text(document, depth), depth + 1)
    if not isinstance(document, dict):
        return None
    ids = {_checked_job_id(value) for key, value in document.items() if str(key).lower() == "jobid"}
    if len(ids) > 1:
        raise PayloadError(PROVIDER, "JobId", "the notice names different jobs under JobId and jobId")
    if ids:
        return ids.pop()
    for key, value in document.items():
        if str(key).lower() == "message":
            found = _find_job_id(value, depth + 1)
            if found:
                return found
    return None


# --- MNS push signature ---


def _required_header(request: CallbackRequest, name: str) -> str:
    value = request.header(name)
    if not value or not value.strip():
        raise CallbackAuthError(f"missing header {name}")
    return value.strip()


def _check_date(value: str, context: VerifyContext) -> None:
    try:
        sent = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise CallbackAuthError("unparsable Date header") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)  # "-0000" means UTC with no zone information (RFC 5322)
    now = context.now if context.now.tzinfo is not None else context.now.replace(tzinfo=UTC)
    age = (now - sent).total_seconds()
    limit = context.settings.max_age_seconds
    if age > limit:
        raise CallbackAuthError(f"stale Date: the notice is older than {limit} seconds")
    if age < -limit:
        raise CallbackAuthError(f"Date in the future: more than {limit} seconds ahead")


def _content_md5_matches(header: str, body: bytes) -> bool:
    """Whether Content-MD5 is the body's MD5 in any of the forms MNS uses.

    The format is inconsistent: MNS's documentation shows base64 of the hex digest, real pushes have carried
    the bare upper-case hex digest, and RFC 1864 says base64 of the raw digest. All three are accepted.
    """
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    hex_digest = digest.hex().encode("ascii")
    presented = header.strip().encode("ascii", errors="replace")
    if hmac.compare_digest(presented.lower(), hex_digest):
        return True
    if hmac.compare_digest(presented, base64.b64encode(digest)):
        return True
    try:
        decoded = base64.b64decode(presented, validate=True)
    except binascii.Error:
        return False
    return hmac.compare_digest(decoded.lower(), hex_digest)


_CERTIFICATE_PATH = re.compile(
    r"(?:/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){0,3}/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\.pem"
)
"""A path naming a certificate file, as MNS sends it (``/x509_public_certificate.pem``): a ``.pem`` file at most
four segments deep, of letters, digits, ``.``, ``_`` and ``-``, no segment starting with a dot. No ``%``
escapes, so one file has one spelling."""


def _certificate_url(encoded: str, allowed_hosts: list[str]) -> str:
    """Decode ``x-mns-signing-cert-url`` and allow only https from an exactly allow-listed host, naming a
    ``.pem`` file without query or fragment. Returns the URL in one canonical spelling (host in lower case, no
    default port), so the certificate cache cannot be made to fetch one certificate under many names."""
    try:
        url = base64.b64decode(encoded, validate=True).decode("ascii")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII header text are all ValueErrors
        raise CallbackAuthError("invalid x-mns-signing-cert-url: not base64 of a URL") from None
    # Characters URL parsers disagree on could make the host checked differ from the host fetched.
    if not url.isprintable() or any(char.isspace() or char == "\\" for char in url):
        raise CallbackAuthError("invalid x-mns-signing-cert-url: unexpected characters in the URL")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:  # a bad port, or brackets that hold no IPv6 address
        raise CallbackAuthError("invalid x-mns-signing-cert-url: not a valid URL") from None
    loopback = is_loopback_host(host)
    if not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise CallbackAuthError(
            "certificate URL scheme not allowed: https only (http only for loopback hosts)"
        )
    if host is None or host not in {allowed.lower() for allowed in allowed_hosts}:
        raise CallbackAuthError("certificate host not allowed")
    if parts.username is not None or parts.password is not None:
        raise CallbackAuthError("certificate URL with credentials not allowed")
    if not loopback and port not in (None, 443):
        raise CallbackAuthError("certificate URL port not allowed")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise CallbackAuthError("certificate URL with a query or fragment not allowed")
    if _CERTIFICATE_PATH.fullmatch(parts.path) is None:
        raise CallbackAuthError("certificate URL path does not name a .pem certificate file")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and not (parts.scheme == "https" and port == 443):
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _string_to_sign(request: CallbackRequest) -> str:
    """``METHOD\\nContent-MD5\\nContent-Type\\nDate\\n`` + sorted ``x-mns-*`` headers + the request path."""
    mns_headers: dict[str, str] = {}
    for name, value in request.headers.items():
        lowered = name.lower()
        if lowered.startswith("x-mns-"):
            mns_headers.setdefault(lowered, value)
    canonical_headers = "".join(f"{name}:{mns_headers[name]}\n" for name in sorted(mns_headers))
    return (
        f"{request.method.upper()}\n"
        f"{request.header('Content-MD5') or ''}\n"
        f"{request.header('Content-Type') or ''}\n"
        f"{request.header('Date') or ''}\n"
        f"{canonical_headers}{request.path}"
    )


def _signature_bytes(authorization: str) -> bytes:
    try:
        signature = base64.b64decode(authorization, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII header text
        raise CallbackAuthError("invalid signature: Authorization is not base64") from None
    if not signature:
        raise CallbackAuthError("invalid signature: Authorization is empty")
    return signature


def _verify_rsa_sha1(pem: bytes, signature: bytes, message: str) -> None:
    # cryptography is imported here, not at module level: only MNS callbacks need it (cold-start cost).
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CallbackAuthError("invalid signing certificate") from None
    # Neither the validity period nor the key size is checked: MNS has signed with a 512-bit certificate that
    # expired in 2016. Trust comes from the allow-listed https host the certificate was fetched from.
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CallbackAuthError("invalid signing certificate: not an RSA key")
    try:
        # SHA-1 is what MNS signs with; the choice is not ours.
        public_key.verify(signature, message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    except InvalidSignature:
        raise CallbackAuthError("invalid signature") from None


class AlibabaMpsAdapter(ProviderAdapter):
    """Alibaba Cloud ApsaraVideo MPS media censor jobs, and the MNS HTTP push notices that announce them."""

    name: ClassVar[str] = PROVIDER
    takes_callbacks: ClassVar[bool] = True
    callback_ack_status: ClassVar[int] = 204
    signature_proves_sender: ClassVar[bool] = False  # MNS signs every account's pushes alike

    def parse(self, payload: Any) -> list[Verdict]:
        return [_verdict(job) for job in _jobs(payload)]

    def holds_many(self, payload: Any) -> bool:
        return isinstance(payload, list) or (
            isinstance(payload, dict) and ("MediaCensorJobList" in payload or "NonExistIds" in payload)
        )

    def verify_signature(self, request: CallbackRequest, context: VerifyContext) -> bool:
        """Check the MNS push signature; always, as every MNS push is signed. True when it holds.

        In order: the headers are present; ``Date`` is within ``max_age_seconds`` of now (replay);
        Content-MD5, when sent, matches the body; ``Authorization`` is base64; the certificate URL is https on
        an allow-listed host and names a ``.pem`` file; the RSA-SHA1 signature over the string to sign
        verifies with that certificate. Everything that can be checked without the certificate is checked
        before it is loaded: the request is not authenticated yet. ``request.path`` must be the path MNS
        requested (with the stage prefix, if the API has one) since it is signed.

        The signature proves only that MNS sent the push: MNS signs every push of every customer's topic with
        the same key. Which account's topic it came from is for a ``?token=`` in the subscription's endpoint
        to prove (``callback.tokens``).
        """
        authorization = _required_header(request, "Authorization")
        encoded_cert_url = _required_header(request, "x-mns-signing-cert-url")
        date = _required_header(request, "Date")
        _check_date(date, context)
        content_md5 = request.header("Content-MD5")
        if content_md5 and not _content_md5_matches(content_md5, request.body):
            raise CallbackAuthError("Content-MD5 mismatch: the body is not the one that was sent")
        signature = _signature_bytes(authorization)
        cert_url = _certificate_url(encoded_cert_url, context.settings.certificate_hosts)
        if context.load_certificate is None:
            raise CallbackAuthError("certificate loading unavailable")
        try:
            pem = context.load_certificate(cert_url)
        except VerdictRelayError:
            raise  # the loader's own typed errors (a provider or network failure) keep their status
        except Exception as exc:
            raise CallbackAuthError("signing certificate could not be loaded") from exc
        _verify_rsa_sha1(pem, signature, _string_to_sign(request))
        if context.certificate_verified is not None:
            context.certificate_verified(cert_url)
        return True

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        """The job an MNS notice names, to fetch: the notice carries the state, never the result.

        The body is in the subscription's format: JSON or XML envelope with the MPS message in ``Message``, or
        the raw message (JSON, possibly base64). ``Type`` is not relied on.
        """
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPayloadError(f"{PROVIDER} notification is not valid UTF-8") from exc
        job_id = _find_job_id(_decode_text(text, 0))
        if job_id is None:
            raise PayloadError(PROVIDER, "JobId", "the notice names no media censor job")
        return CallbackResult(jobs_to_fetch=[job_id])
