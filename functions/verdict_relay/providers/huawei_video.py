"""Huawei Cloud Content Moderation v3 video jobs (``huawei-video``): the result of a video moderation job.

The envelope, status mapping and callback signature are shared with audio jobs (:mod:`.huawei_v3`). A video
``result`` carries the provider's own ``suggestion`` (pass | review | block), which becomes the verdict's, and
two timelines that become findings:

* ``image_detail[]``, one entry per flagged frame: one finding per ``detail[]`` entry (category = the entry's
  category, else the frame's; time_offset = the frame's ``time``; text = the frame's ``ocr_text``; item
  ``video``). A frame without ``detail[]`` is one finding of its own, labelled with its category.
* ``audio_detail[]``, one entry per flagged clip of the soundtrack: one finding per ``detail[]`` entry
  (category and label = the entry's label, else the clip's; the clip's start and end time and ``audio_text``;
  item ``audio``). A clip without ``detail[]`` is one finding of its own.

An entry without a suggestion takes its frame's or clip's; a finding with no category anywhere is an error.

A frame or clip whose own suggestion is stricter than every one of its ``detail[]`` entries' (a ``block``
frame whose entries say ``review``) adds one finding for the frame or clip itself, after its entries' (category
and label = the frame's category or the clip's label, else ``video`` / ``audio``; its time or span and text):
the job's suggestion, which the policy does not trust to be as strict as its parts, must not be the only trace
of it. This is what the Alibaba adapter does for a part summed up stricter than its results. It costs one
comparison per entry, not a second pass.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import with_config
from typing_extensions import TypedDict

from verdict_relay.errors import PayloadError
from verdict_relay.models.verdict import Finding, Suggestion
from verdict_relay.providers.base import (
    PAYLOAD_ITEM_CONFIG,
    FindingFields,
    construct_findings,
    finding_fields,
)
from verdict_relay.providers.huawei_v3 import (
    Confidence,
    HuaweiSuggestion,
    HuaweiV3Adapter,
    Location,
    Seconds,
    Segment,
    V3Job,
    V3Result,
    segment_texts,
)

# The timelines' entries are TypedDicts (see PAYLOAD_ITEM_CONFIG): an absent key is an absent value.


@with_config(PAYLOAD_ITEM_CONFIG)
class FrameDetail(TypedDict, total=False):
    confidence: Confidence | None
    category: str | None
    suggestion: HuaweiSuggestion | None
    label: str | None
    face_location: Location | None
    qr_location: Location | None
    qr_content: str | None
    segments: list[Segment] | None


@with_config(PAYLOAD_ITEM_CONFIG)
class ImageDetail(TypedDict, total=False):
    """A flagged frame of the video."""

    suggestion: HuaweiSuggestion | None
    category: str | None
    ocr_text: str | None
    time: Seconds | None
    detail: list[FrameDetail] | None


@with_config(PAYLOAD_ITEM_CONFIG)
class ClipDetail(TypedDict, total=False):
    confidence: Confidence | None
    label: str | None
    suggestion: HuaweiSuggestion | None
    segments: list[Segment] | None


@with_config(PAYLOAD_ITEM_CONFIG)
class AudioDetail(TypedDict, total=False):
    """A flagged clip of the video's soundtrack."""

    suggestion: HuaweiSuggestion | None
    label: str | None
    audio_text: str | None
    start_time: Seconds | None
    end_time: Seconds | None
    detail: list[ClipDetail] | None


class VideoResult(V3Result):
    image_detail: list[ImageDetail] | None = None
    audio_detail: list[AudioDetail] | None = None


class HuaweiVideoAdapter(HuaweiV3Adapter[VideoResult]):
    """Huawei v3 video moderation jobs: query responses and callbacks."""

    name: ClassVar[str] = "huawei-video"
    job_model = V3Job[VideoResult]

    def map_result(self, result: VideoResult) -> tuple[Suggestion, list[Finding]]:
        # Every value of the findings was validated by the models above against the Finding's own constraints
        # (Confidence 0..1, Seconds >= 0, Suggestion; the Boxes are built validated), so they are constructed
        # without a second validation: a two-hour video has thousands.
        fields: list[FindingFields] = []
        for index, frame in enumerate(result.image_detail or ()):
            self._add_frame_findings(fields, index, frame)
        for index, clip in enumerate(result.audio_detail or ()):
            self._add_clip_findings(fields, index, clip)
        return result.suggestion, construct_findings(fields)

    def _add_frame_findings(self, fields: list[FindingFields], index: int, frame: ImageDetail) -> None:
        frame_category = frame.get("category")
        frame_suggestion = frame.get("suggestion")
        time = frame.get("time")
        text = frame.get("ocr_text")
        details = frame.get("detail")
        if not details:
            frame_label = self._required(
                frame_category, f"result.image_detail.{index}.category", "missing on a frame without detail"
            )
            fields.append(
                finding_fields(
                    category=frame_label,
                    label=frame_label,
                    suggestion=frame_suggestion,
                    item="video",
                    time_offset=time,
                    text=text,
                )
            )
            return
        # What the frame's findings share; each entry's own values are set on a copy (cheaper than a call).
        frame_fields = finding_fields(category="", label="", item="video", time_offset=time, text=text)
        # Whether an entry is as strict as the frame: if none is, the frame's own suggestion becomes a finding.
        frame_explained = frame_suggestion is None or frame_suggestion is Suggestion.PASS
        for position, entry in enumerate(details):
            category = entry.get("category") or frame_category
            if not category:
                raise PayloadError(
                    self.name,
                    f"result.image_detail.{index}.detail.{position}.category",
                    "missing, and the frame has no category either",
                )
            entry_fields = frame_fields.copy()
            entry_fields["category"] = category
            entry_fields["label"] = entry.get("label") or category
            entry_fields["confidence"] = entry.get("confidence")
            suggestion = entry_fields["suggestion"] = entry.get("suggestion") or frame_suggestion
            if not frame_explained:
                # As strict as a review or block frame: the same suggestion, or block.
                frame_explained = suggestion is frame_suggestion or suggestion is Suggestion.BLOCK
            segments = entry.get("segments")
            entry_fields["segments"] = segment_texts(segments) if segments else []
            if face_location := entry.get("face_location"):
                entry_fields["face_location"] = face_location.to_box()
            if qr_location := entry.get("qr_location"):
                entry_fields["qr_location"] = qr_location.to_box()
            entry_fields["qr_content"] = entry.get("qr_content")
            fields.append(entry_fields)
        if not frame_explained:
            # The template itself becomes the frame's finding: every entry's copy has its own segments list.
            frame_fields["category"] = frame_fields["label"] = frame_category or "video"
            frame_fields["suggestion"] = frame_suggestion
            fields.append(frame_fields)

    def _add_clip_findings(self, fields: list[FindingFields], index: int, clip: AudioDetail) -> None:
        path = f"result.audio_detail.{index}"
        clip_label = clip.get("label")
        details = clip.get("detail")
        if not details:
            label = self._required(clip_label, f"{path}.label", "missing on a clip without detail")
            # A clip without detail is one finding built from the clip itself.
            fields.append(
                finding_fields(
                    category=label,
                    label=label,
                    suggestion=clip.get("suggestion"),
                    item="audio",
                    time_offset=clip.get("start_time"),
                    time_end=clip.get("end_time"),
                    text=clip.get("audio_text"),
                )
            )
            return
        clip_suggestion = clip.get("suggestion")
        # Whether an entry is as strict as the clip: if none is, the clip's own suggestion becomes a finding.
        clip_explained = clip_suggestion is None or clip_suggestion is Suggestion.PASS
        for position, entry in enumerate(details):
            label = self._required(
                entry.get("label") or clip_label,
                f"{path}.detail.{position}.label",
                "missing, and the clip has no label either",
            )
            suggestion = entry.get("suggestion") or clip_suggestion
            if not clip_explained:
                # As strict as a review or block clip: the same suggestion, or block.
                clip_explained = suggestion is clip_suggestion or suggestion is Suggestion.BLOCK
            segments = entry.get("segments")
            fields.append(
                finding_fields(
                    category=label,
                    label=label,
                    confidence=entry.get("confidence"),
                    suggestion=suggestion,
                    item="audio",
                    time_offset=clip.get("start_time"),
                    time_end=clip.get("end_time"),
                    text=clip.get("audio_text"),
                    segments=segment_texts(segments) if segments else [],
                )
            )
        if not clip_explained:
            own_label = clip_label or "audio"
            fields.append(
                finding_fields(
                    category=own_label,
                    label=own_label,
                    suggestion=clip_suggestion,
                    item="audio",
                    time_offset=clip.get("start_time"),
                    time_end=clip.get("end_time"),
                    text=clip.get("audio_text"),
                )
            )

    def _required(self, value: str | None, field: str, problem: str) -> str:
        if not value:
            raise PayloadError(self.name, field, problem)
        return value
