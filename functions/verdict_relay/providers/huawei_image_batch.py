"""Huawei Image Moderation v1.0 asynchronous batch jobs (``huawei-image-batch``): polled, never called back.

Two payload shapes, told apart by ``result``:

* result query (``GET /v1.0/moderation/image/batch?job_id=``): ``{"result": {job_id, status, create_time,
  update_time, items[]}}`` -> one verdict.
* job list (``GET /v1.0/moderation/image/batch/jobs``): ``{"result": [{job_id, status, create_time,
  update_time}]}`` -> one verdict per job, without findings. A listed job is a discovery, not a result: its
  metadata says ``source: job-list`` and the poller must query each finished one before treating it as final.

An error body (``{"error_code": "AIS.xxxx", "error_msg": ...}``) raises PayloadError on field ``result``; the
poller is the place that acts on error bodies.

Status: created -> pending, running -> running, finish -> succeeded, failed -> failed. Statuses and suggestions
(an item's and its ``category_suggestions``) are read in any case and without surrounding whitespace
(``FINISH``, ``Block``), as for the v3 jobs (:class:`.huawei_v3.AnyCase`): refused, a job would be polled
until Huawei forgets it and then expire, published as unmoderated whatever its images were.

Decisions where the provider is silent or vague:

* Items are read once the job is ``finish`` or ``failed``; before that they would be partial. A failed job
  keeps what it finished: its items with a ``suggestion`` and no ``error_code`` give their findings and the
  job's suggestion, as a finished job's do, and an item with neither was never reached and is skipped. The job
  stays ``failed``, so the policy step gives it the stricter of the unmoderated suggestion and its worst image:
  a blocked image is never published as review. Item errors are reported whatever the job's status.
* An item with ``error_code`` failed on its own (the job does not fail with it): it goes to ``item_errors``
  with ``item`` = its URL and contributes neither findings nor suggestion.
* Findings: one per (item, category, entry) of ``detail`` (``{category: [{label, confidence}, ...]}``), with
  ``item`` = the image URL and ``text`` = the item's ``ocr_text``. Entries labelled ``normal`` are left out:
  Huawei scores "normal" as one more label (the seed's ``terrorism: [{fire, 0}, {normal, 0.0268}]``), and it
  means nothing of the category was found, so it is not a finding. Every other entry is kept, even at
  confidence 0, so a consumer sees the scores the provider gave.
* A finding's suggestion: the category's entry in ``category_suggestions`` when there is one (the provider's
  per-category verdict; the SDK spells it ``category_suggestion``, both spellings are read). Otherwise
  ``pass`` when the item passed (the provider found nothing in the whole image), and null when the item is
  review or block: the provider did not say which category caused it, and guessing would mislabel the other
  categories. The item's suggestion still counts in the job's.
* An image rated review or block with no finding as strict (no ``category_suggestions`` at all, as the API
  page's items have none, or none that strict) is one more finding for the image itself (category and label
  ``image``, item its URL, its ``ocr_text``): the job's suggestion must not be the only trace of it, or a
  subscriber filtering on ``categories`` would never see a blocked image. This is what the video adapter does
  for a frame and the Alibaba adapter for a part summed up stricter than its results.
* Job suggestion: the worst suggestion among the successfully moderated items (block > review > pass), decided
  by the provider; null when no item was moderated (the policy step decides then).
* An item of a finished job with neither ``suggestion`` nor ``error_code`` is not understood and raises
  PayloadError.
* ``content``: the image URL when the job has exactly one item; a batch of several has no single content (the
  findings name their image).
* A category ``category_suggestions`` rates review or block with no ``detail`` entry saying what was found is
  a finding of its own (label: the category), so the verdict's categories name it.
* ``face_detail`` (``{x, y, w, h}`` in the SDK; a List in the API page, whose first box is taken) becomes the
  finding's face box when all four are present.
* ``items`` or a category's ``detail`` list sent as ``null`` is read as an empty list: neither is documented
  as nullable, and refusing one would leave the job unresolved at every poll.
* A failed job carries no documented reason: its error is ``job_failed`` unless the job has
  ``error_code``/``error_msg``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, NotRequired

from pydantic import AliasChoices, Field, with_config
from typing_extensions import TypedDict

from verdict_relay.errors import CallbackAuthError, PayloadError
from verdict_relay.models.verdict import (
    Box,
    ContentRef,
    JobId,
    JobStatus,
    Suggestion,
    Verdict,
    VerdictError,
    worst,
)
from verdict_relay.providers.base import (
    PAYLOAD_ITEM_CONFIG,
    CallbackRequest,
    CallbackResult,
    FindingFields,
    PayloadModel,
    ProviderAdapter,
    construct_findings,
    finding_fields,
    validate_payload,
)
from verdict_relay.providers.huawei_v3 import AnyCase, Confidence, HuaweiSuggestion, HuaweiTime

NORMAL_LABEL = "normal"
IMAGE_FINDING = "image"
"""Category and label of the finding for an image rated stricter than every finding of its own."""
NO_CALLBACKS = "huawei-image-batch sends no callbacks: its results are polled"

BatchStatus = Annotated[Literal["created", "running", "finish", "failed"], AnyCase()]

_STATUS = {
    "created": JobStatus.PENDING,
    "running": JobStatus.RUNNING,
    "finish": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
}


# A batch's items and their detail entries are TypedDicts (see PAYLOAD_ITEM_CONFIG): an absent key is an absent value.


class FaceDetail(PayloadModel):
    x: int | None = None
    y: int | None = None
    w: int | None = None
    h: int | None = None

    def to_box(self) -> Box | None:
        if self.x is None or self.y is None or self.w is None or self.h is None:
            return None
        return Box(
            top_left_x=self.x,
            top_left_y=self.y,
            bottom_right_x=self.x + self.w,
            bottom_right_y=self.y + self.h,
        )


@with_config(PAYLOAD_ITEM_CONFIG)
class DetailEntry(TypedDict):
    label: Annotated[str, Field(min_length=1)]
    confidence: NotRequired[Confidence | None]
    # An object in the SDK's model, a List in the API page: either is read, a list's first box being the face's.
    face_detail: NotRequired[FaceDetail | list[FaceDetail] | None]


def _face_box(face_detail: FaceDetail | list[FaceDetail] | None) -> Box | None:
    if isinstance(face_detail, list):
        face_detail = face_detail[0] if face_detail else None
    return face_detail.to_box() if face_detail else None


@with_config(PAYLOAD_ITEM_CONFIG)
class BatchItem(TypedDict):
    """One image of the batch: its moderation result, or its own error."""

    url: Annotated[str, Field(min_length=1)]
    suggestion: NotRequired[HuaweiSuggestion | None]
    category_suggestions: NotRequired[
        Annotated[
            dict[str, HuaweiSuggestion] | None,
            Field(validation_alias=AliasChoices("category_suggestions", "category_suggestion")),
        ]
    ]
    detail: NotRequired[dict[str, list[DetailEntry] | None] | None]
    ocr_text: NotRequired[str | None]
    error_code: NotRequired[str | None]
    error_msg: NotRequired[str | None]


class BatchJob(PayloadModel):
    job_id: JobId
    status: BatchStatus
    create_time: HuaweiTime = None
    update_time: HuaweiTime = None
    items: list[BatchItem] | None = None
    error_code: str | None = None
    error_msg: str | None = None


class BatchJobSummary(PayloadModel):
    job_id: JobId
    status: BatchStatus
    create_time: HuaweiTime = None
    update_time: HuaweiTime = None


class ResultQuery(PayloadModel):
    result: BatchJob


class JobList(PayloadModel):
    result: list[BatchJobSummary]


class HuaweiImageBatchAdapter(ProviderAdapter):
    """Huawei Image Moderation v1.0 batch jobs: result queries and job lists. Callbacks are refused."""

    name: ClassVar[str] = "huawei-image-batch"
    takes_callbacks: ClassVar[bool] = False  # so every callback is refused, whatever secrets are configured

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        raise CallbackAuthError(NO_CALLBACKS)

    def parse(self, payload: Any) -> list[Verdict]:
        if not isinstance(payload, dict):
            raise PayloadError(self.name, "(root)", "expected a JSON object with a 'result' field")
        if "result" not in payload and "error_code" in payload:
            code, message = payload.get("error_code"), payload.get("error_msg")
            raise PayloadError(
                self.name, "result", f"missing: the body is a Huawei error response ({code}: {message})"
            )
        result = payload.get("result")
        if isinstance(result, list):
            listed = validate_payload(self.name, JobList, payload)
            return [self._listed_verdict(job) for job in listed.result]
        if isinstance(result, dict):
            return [self._job_verdict(validate_payload(self.name, ResultQuery, payload).result)]
        problem = "missing" if result is None else "must be an object (a job) or a list (a job list)"
        raise PayloadError(self.name, "result", problem)

    def holds_many(self, payload: Any) -> bool:
        return isinstance(payload, dict) and isinstance(payload.get("result"), list)

    def _listed_verdict(self, job: BatchJobSummary) -> Verdict:
        status = _STATUS[job.status]
        return Verdict(
            provider=self.name,
            job_id=job.job_id,
            status=status,
            error=self._job_error(None, None) if status is JobStatus.FAILED else None,
            created_at=job.create_time,
            updated_at=job.update_time,
            completed_at=job.update_time if status.is_terminal else None,
            metadata={"source": "job-list"},
        )

    def _job_verdict(self, job: BatchJob) -> Verdict:
        status = _STATUS[job.status]
        items = job.items or []
        fields: list[FindingFields] = []
        moderated: list[Suggestion] = []
        item_errors = [
            VerdictError(code=error_code, message=item.get("error_msg") or "", item=item["url"])
            for item in items
            if (error_code := item.get("error_code"))
        ]
        if status is JobStatus.SUCCEEDED or status is JobStatus.FAILED:
            # A failed job's moderated images are read too: dropping them would leave the policy only the
            # unmoderated suggestion, and a blocked image would be published as review.
            for index, item in enumerate(items):
                if item.get("error_code"):
                    continue
                item_suggestion = item.get("suggestion")
                if item_suggestion is None:
                    if status is JobStatus.FAILED:
                        continue  # an image the job failed before reaching: the job's failure covers it
                    raise PayloadError(
                        self.name, f"result.items.{index}.suggestion", "missing on an item without error_code"
                    )
                moderated.append(item_suggestion)
                self._add_item_findings(fields, item, item_suggestion)
        # worst() of the distinct suggestions is the same one, without a severity lookup per image.
        suggestion = worst(list(dict.fromkeys(moderated)))
        return Verdict(
            provider=self.name,
            job_id=job.job_id,
            status=status,
            suggestion=suggestion,
            decided_by="provider" if suggestion is not None else None,
            # The findings' values were validated by the models above (Confidence 0..1, Suggestion; the Box is
            # built validated): they are not validated a second time.
            findings=construct_findings(fields),
            error=self._job_error(job.error_code, job.error_msg) if status is JobStatus.FAILED else None,
            item_errors=item_errors,
            content=ContentRef(url=items[0]["url"]) if len(items) == 1 else None,
            created_at=job.create_time,
            updated_at=job.update_time,
            completed_at=job.update_time if status.is_terminal else None,
        )

    @staticmethod
    def _add_item_findings(fields: list[FindingFields], item: BatchItem, item_suggestion: Suggestion) -> None:
        per_category = item.get("category_suggestions") or {}
        fallback = Suggestion.PASS if item_suggestion is Suggestion.PASS else None
        url = item["url"]
        text = item.get("ocr_text")
        found: set[str] = set()
        # Whether a finding is as strict as the image: if none is, the image's own suggestion becomes one.
        explained = item_suggestion is Suggestion.PASS
        for category, entries in (item.get("detail") or {}).items():
            suggestion = per_category.get(category, fallback)
            for entry in entries or ():
                label = entry["label"]
                if label == NORMAL_LABEL:
                    continue
                found.add(category)
                explained = explained or suggestion is item_suggestion or suggestion is Suggestion.BLOCK
                fields.append(
                    finding_fields(
                        category=category,
                        label=label,
                        confidence=entry.get("confidence"),
                        suggestion=suggestion,
                        item=url,
                        text=text,
                        face_location=_face_box(entry.get("face_detail")),
                    )
                )
        # A category Huawei rates review or block without a detail saying what it found is still a finding: its
        # category is what subscribers filter on.
        for category, suggestion in per_category.items():
            if category not in found and suggestion is not Suggestion.PASS:
                explained = explained or suggestion is item_suggestion or suggestion is Suggestion.BLOCK
                fields.append(
                    finding_fields(
                        category=category, label=category, suggestion=suggestion, item=url, text=text
                    )
                )
        if not explained:
            fields.append(
                finding_fields(
                    category=IMAGE_FINDING,
                    label=IMAGE_FINDING,
                    suggestion=item_suggestion,
                    item=url,
                    text=text,
                )
            )

    @staticmethod
    def _job_error(code: str | None, message: str | None) -> VerdictError:
        return VerdictError(
            code=code or "job_failed",
            message=message or "Huawei reported the batch job as failed without a reason",
        )
