"""The adapters' fast paths give exactly what the plain, fully validated paths give."""

from __future__ import annotations

import copy
import json

import pytest

from tests.helpers import EVENTS_DIR, load_payload
from verdict_relay.models.verdict import Box, Finding, Suggestion
from verdict_relay.providers.alibaba_mps import _TimelineFindings
from verdict_relay.providers.base import construct_findings, finding_fields
from verdict_relay.providers.registry import get_adapter

FIXTURES = sorted(
    (path.parent.name, path.stem)
    for path in (EVENTS_DIR / "providers").glob("*/*.json")
    if not path.stem.startswith("mns-")
)


@pytest.mark.parametrize(
    "fields",
    [
        finding_fields("porn", "sexy"),
        finding_fields(
            "image_text",
            "qr_code",
            0.89,
            Suggestion.BLOCK,
            "video",
            5.0,
            10.0,
            "ocr",
            ["a", "b"],
            Box(top_left_x=1, top_left_y=2, bottom_right_x=3, bottom_right_y=4),
            None,
            "https://qr",
        ),
    ],
    ids=["defaults", "every-field"],
)
def test_constructed_findings_equal_validated_ones(fields: dict[str, object]) -> None:
    (constructed,) = construct_findings([dict(fields)])  # type: ignore[list-item]

    validated = Finding(**fields)  # type: ignore[arg-type]
    assert constructed == validated
    assert constructed.model_dump_json() == validated.model_dump_json()
    assert repr(constructed) == repr(validated)


@pytest.mark.parametrize(("provider", "name"), FIXTURES)
def test_parse_bytes_gives_what_parse_gives(provider: str, name: str) -> None:
    raw = (EVENTS_DIR / "providers" / provider / f"{name}.json").read_bytes()
    adapter = get_adapter(provider)

    assert adapter.parse_bytes(raw) == adapter.parse(json.loads(raw))


def test_alibaba_timeline_read_through_the_model_equals_the_direct_read() -> None:
    # Given the same timeline once with Rate strings (read directly) and once with numeric Rates (an entry
    # shape the direct read does not take, so the whole timeline goes through the payload model)
    direct = load_payload("alibaba-mps", "job-detail")
    through_model = copy.deepcopy(direct)
    for entry in through_model["MediaCensorJobDetail"]["VensorCensorResult"]["VideoTimelines"][
        "VideoTimeline"
    ]:
        results = entry["CensorResults"]["CensorResult"]
        for result in results if isinstance(results, list) else [results]:  # a lone result is allowed too
            result["Rate"] = float(result["Rate"])
    # (the premise: the direct read takes the Rate strings and leaves the numeric Rates to the model)
    direct_read = _TimelineFindings("VideoTimeline", "video")._read
    assert direct_read(direct["MediaCensorJobDetail"]["VensorCensorResult"]["VideoTimelines"]) is not None
    assert direct_read(through_model["MediaCensorJobDetail"]["VensorCensorResult"]["VideoTimelines"]) is None

    adapter = get_adapter("alibaba-mps")

    assert adapter.parse(through_model) == adapter.parse(direct)


def test_alibaba_timeline_summaries_read_through_the_model_equal_the_direct_read() -> None:
    # Given frames holding results with only a Suggestion (no Scene): alone, two at once, beside a scored
    # result, and a pass; once as read directly, once with an undocumented key in every entry, which sends the
    # whole timeline through the payload model
    scored_review = {"Scene": "porn", "Label": "sexy", "Rate": "61.5", "Suggestion": "review"}
    frames = [
        [{"Suggestion": "block"}],
        [{"Suggestion": "review"}, {"Suggestion": "Block"}],
        [scored_review, {"Suggestion": "block"}],
        [{"Suggestion": "pass"}],
    ]
    timeline = [
        {
            "Timestamp": f"00:00:{5 * n:02d}.000",
            "Object": f"f{n}.jpg",
            "CensorResults": {"CensorResult": results},
        }
        for n, results in enumerate(frames)
    ]
    direct = {
        "JobId": "j-1",
        "State": "Success",
        "Suggestion": "pass",
        "VensorCensorResult": {"VideoTimelines": {"VideoTimeline": timeline}},
    }
    through_model = copy.deepcopy(direct)
    for entry in through_model["VensorCensorResult"]["VideoTimelines"]["VideoTimeline"]:
        entry["Undocumented"] = "x"
    # (the premise: the direct read takes the first timeline and leaves the second to the model)
    direct_read = _TimelineFindings("VideoTimeline", "video")._read
    assert direct_read(direct["VensorCensorResult"]["VideoTimelines"]) is not None
    assert direct_read(through_model["VensorCensorResult"]["VideoTimelines"]) is None

    adapter = get_adapter("alibaba-mps")
    [read_directly] = adapter.parse(direct)

    # Then both give the same findings: one, named after the part, per such result that says review or block
    assert adapter.parse(through_model) == [read_directly]
    assert [(f.category, f.item, f.time_offset, f.suggestion) for f in read_directly.findings] == [
        ("video", "f0.jpg", 0.0, Suggestion.BLOCK),
        ("video", "f1.jpg", 5.0, Suggestion.REVIEW),
        ("video", "f1.jpg", 5.0, Suggestion.BLOCK),
        ("porn", "f2.jpg", 10.0, Suggestion.REVIEW),
        ("video", "f2.jpg", 10.0, Suggestion.BLOCK),
    ]
