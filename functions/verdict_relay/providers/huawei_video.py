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
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from verdict_relay.errors import PayloadError
from verdict_relay.models.verdict import Finding, Suggestion
from verdict_relay.providers.base import PayloadModel
from verdict_relay.providers.huawei_v3 import (
    Confidence,
    HuaweiV3Adapter,
    Location,
    Seconds,
    Segment,
    V3Job,
    segment_texts,
)


class FrameDetail(PayloadModel):
    confidence: Confidence | None = None
    category: str | None = None
    suggestion: Suggestion | None = None
    label: str | None = None
    face_location: Location | None = None
    qr_location: Location | None = None
    qr_content: str | None = None
    segments: list[Segment] = Field(default_factory=list)


class ImageDetail(PayloadModel):
    """A flagged frame of the video."""

    suggestion: Suggestion | None = None
    category: str | None = None
    ocr_text: str | None = None
    time: Seconds | None = None
    detail: list[FrameDetail] = Field(default_factory=list)


class ClipDetail(PayloadModel):
    confidence: Confidence | None = None
    label: str | None = None
    suggestion: Suggestion | None = None
    segments: list[Segment] = Field(default_factory=list)


class AudioDetail(PayloadModel):
    """A flagged clip of the video's soundtrack."""

    suggestion: Suggestion | None = None
    label: str | None = None
    audio_text: str | None = None
    start_time: Seconds | None = None
    end_time: Seconds | None = None
    detail: list[ClipDetail] = Field(default_factory=list)


class VideoResult(PayloadModel):
    suggestion: Suggestion
    image_detail: list[ImageDetail] = Field(default_factory=list)
    audio_detail: list[AudioDetail] = Field(default_factory=list)


class HuaweiVideoAdapter(HuaweiV3Adapter[VideoResult]):
    """Huawei v3 video moderation jobs: query responses and callbacks."""

    name: ClassVar[str] = "huawei-video"
    job_model = V3Job[VideoResult]

    def map_result(self, result: VideoResult) -> tuple[Suggestion, list[Finding]]:
        findings: list[Finding] = []
        for index, frame in enumerate(result.image_detail):
            findings.extend(self._frame_findings(index, frame))
        for index, clip in enumerate(result.audio_detail):
            findings.extend(self._clip_findings(index, clip))
        return result.suggestion, findings

    def _frame_findings(self, index: int, frame: ImageDetail) -> list[Finding]:
        path = f"result.image_detail.{index}"
        if not frame.detail:
            category = self._required(frame.category, f"{path}.category", "missing on a frame without detail")
            return [
                Finding(
                    category=category,
                    label=category,
                    suggestion=frame.suggestion,
                    item="video",
                    time_offset=frame.time,
                    text=frame.ocr_text,
                )
            ]
        findings = []
        for position, entry in enumerate(frame.detail):
            category = self._required(
                entry.category or frame.category,
                f"{path}.detail.{position}.category",
                "missing, and the frame has no category either",
            )
            findings.append(
                Finding(
                    category=category,
                    label=entry.label or category,
                    confidence=entry.confidence,
                    suggestion=entry.suggestion or frame.suggestion,
                    item="video",
                    time_offset=frame.time,
                    text=frame.ocr_text,
                    segments=segment_texts(entry.segments),
                    face_location=entry.face_location.to_box() if entry.face_location else None,
                    qr_location=entry.qr_location.to_box() if entry.qr_location else None,
                    qr_content=entry.qr_content,
                )
            )
        return findings

    def _clip_findings(self, index: int, clip: AudioDetail) -> list[Finding]:
        path = f"result.audio_detail.{index}"
        if not clip.detail:
            label = self._required(clip.label, f"{path}.label", "missing on a clip without detail")
            # A clip without detail is one finding built from the clip itself.
            return [
                Finding(
                    category=label,
                    label=label,
                    suggestion=clip.suggestion,
                    item="audio",
                    time_offset=clip.start_time,
                    time_end=clip.end_time,
                    text=clip.audio_text,
                )
            ]
        findings = []
        for position, entry in enumerate(clip.detail):
            label = self._required(
                entry.label or clip.label,
                f"{path}.detail.{position}.label",
                "missing, and the clip has no label either",
            )
            findings.append(
                Finding(
                    category=label,
                    label=label,
                    confidence=entry.confidence,
                    suggestion=entry.suggestion or clip.suggestion,
                    item="audio",
                    time_offset=clip.start_time,
                    time_end=clip.end_time,
                    text=clip.audio_text,
                    segments=segment_texts(entry.segments),
                )
            )
        return findings

    def _required(self, value: str | None, field: str, problem: str) -> str:
        if not value:
            raise PayloadError(self.name, field, problem)
        return value
