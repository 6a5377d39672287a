"""Huawei Cloud Content Moderation v3 audio jobs (``huawei-audio``): the result of an audio moderation job.

The envelope, status mapping and callback signature are shared with video jobs (:mod:`.huawei_v3`). An audio
``result`` is ``{suggestion, audio_text, details[]}``: the provider's ``suggestion`` becomes the verdict's,
and each ``details[]`` entry (a flagged span: start and end time, suggestion, label, its text, hit segments)
becomes one finding with category and label = the entry's label and item ``audio``. Audio results carry no
confidence, so findings have none. The whole file's ``audio_text`` is not copied into every finding: each span
has its own.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from verdict_relay.models.verdict import Finding, Suggestion
from verdict_relay.providers.base import PayloadModel, construct_findings, finding_fields
from verdict_relay.providers.huawei_v3 import (
    HuaweiSuggestion,
    HuaweiV3Adapter,
    Seconds,
    Segment,
    V3Job,
    V3Result,
    segment_texts,
)


class AudioSpan(PayloadModel):
    """One flagged span of the audio."""

    start_time: Seconds | None = None
    end_time: Seconds | None = None
    suggestion: HuaweiSuggestion | None = None
    label: str = Field(min_length=1)
    audio_text: str | None = None
    segments: list[Segment] | None = None


class AudioResult(V3Result):
    audio_text: str | None = None
    details: list[AudioSpan] | None = None


class HuaweiAudioAdapter(HuaweiV3Adapter[AudioResult]):
    """Huawei v3 audio moderation jobs: query responses and callbacks."""

    name: ClassVar[str] = "huawei-audio"
    job_model = V3Job[AudioResult]

    def map_result(self, result: AudioResult) -> tuple[Suggestion, list[Finding]]:
        # The values were validated by AudioSpan (Seconds >= 0, Suggestion): not validated a second time.
        findings = construct_findings(
            [
                finding_fields(
                    category=span.label,
                    label=span.label,
                    suggestion=span.suggestion,
                    item="audio",
                    time_offset=span.start_time,
                    time_end=span.end_time,
                    text=span.audio_text,
                    segments=segment_texts(span.segments) if span.segments else [],
                )
                for span in result.details or ()
            ]
        )
        return result.suggestion, findings
