"""The adapters' fast paths give exactly what the plain, fully validated paths give."""

from __future__ import annotations

import copy
import itertools
import json

import pytest

from tests.helpers import EVENTS_DIR, load_payload
from verdict_relay.errors import ClientError, PayloadError
from verdict_relay.models.verdict import Box, Finding, Suggestion
from verdict_relay.providers.alibaba_mps import (
    TimelineEntry,
    _entry_findings,
    _scored_hits,
    _TimelineFindings,
)
from verdict_relay.providers.azure_review import (
    _MAX_TERM_DEPTH,
    _lower_keys,
    _match_terms,
    _terms_in,
    _terms_of_entries,
)
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


RATES = [
    "100",
    "100.0",
    "100.000000000000",
    "99.99",
    "57.7",
    "0",
    "0.5",
    "33.3",
    "99.123456789012",
    "7.000000000001",
]
"""Rates as MPS writes them, read without CensorResult; below, others it refuses or that only it reads."""
OTHER_RATES = ["100.5", "101", " 99", "1e2", "099", "99.", ".5", "-0", "nan", "99.9999999999999", ""]


@pytest.mark.parametrize("rate", RATES + OTHER_RATES)
def test_alibaba_timeline_results_read_without_the_model_equal_those_it_reads(rate: str) -> None:
    # Given one-frame timelines whose result is every mix of this rate with suggestions, labels and scenes,
    # as MPS writes them and otherwise
    suggestions = ["pass", "review", "block", "Block", " pass", "", "maybe"]
    labels = ["porn", "porn,sexy", "porn, ,sexy", ",", "", " ", " porn "]
    scenes = ["porn", "", " porn"]
    direct_read = _TimelineFindings("VideoTimeline", "video")._read
    plain = 0
    for suggestion, label, scene in itertools.product(suggestions, labels, scenes):
        entry = {
            "Timestamp": "00:01:05.250",
            "Object": "f1.jpg",
            "CensorResults": {
                "CensorResult": [{"Label": label, "Rate": rate, "Scene": scene, "Suggestion": suggestion}]
            },
        }
        _scored_hits.cache_clear()

        # When it is read directly, and through the payload model
        read = direct_read({"VideoTimeline": [entry]})
        read_by_model = _scored_hits.cache_info().currsize == 0  # read without CensorResult
        try:
            expected = _entry_findings(TimelineEntry.model_validate(entry), "video")
        except ValueError:
            expected = None  # refused: the direct read leaves it to the model, which names the field

        # Then both give the same findings, or both refuse it
        assert read == expected, (suggestion, label, scene)
        plain += read_by_model and read is not None
    # and the rates as MPS writes them, with its suggestions and a scene, were read without the model
    assert plain == (3 * 7 * 2 if rate in RATES else 0)  # the documented suggestions, any label, a scene


def _lowered_one_key_at_a_time(value: object) -> object:
    if isinstance(value, dict):
        return {str(key).lower(): _lowered_one_key_at_a_time(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_lowered_one_key_at_a_time(item) for item in value]
    return value


@pytest.mark.parametrize(
    "name", sorted(path.stem for path in (EVENTS_DIR / "providers" / "azure-review").glob("*.json"))
)
def test_azure_keys_lowered_in_one_walk_equal_keys_lowered_one_at_a_time(name: str) -> None:
    payload = load_payload("azure-review", name)

    assert _lower_keys(payload) == _lowered_one_key_at_a_time(payload)


def test_azure_key_sent_twice_deep_inside_a_job_is_refused_naming_it() -> None:
    # Given a metadata entry with its value under two spellings of Value
    job = load_payload("azure-review", "job-get-adult")
    job["ResultMetaData"][1]["value"] = "False"

    with pytest.raises(PayloadError) as raised:
        get_adapter("azure-review").parse(job)

    assert raised.value.field == "ResultMetaData.1.value"
    assert "more than once in different letter case" in raised.value.problem


def _term(term: object, **more: object) -> dict[str, object]:
    return {"Index": 6, "OriginalIndex": 6, "ListId": 0, "Term": term, **more}


@pytest.mark.parametrize(
    ("entries", "in_bulk"),
    [
        ([_term("crap"), _term("damn"), _term("crap")], True),  # the text screen's shape
        ([_term("crap"), _term(" "), _term(""), _term(3), _term(None), _term(["damn"]), {"Index": 1}], True),
        ([{"term": "crap"}, {"term": "damn", "index": 3}], True),
        ([_term("crap"), {"TERM": "damn"}], False),
        ([_term(["crap"], Terms=["damn"]), {"Terms": ["hell", {"Term": "bloody"}]}], False),
        # "Terms" alone, lists: read one object at a time
        ([{"Terms": ["crap"]}, {"Terms": ["damn"]}], False),
        ([_term("crap"), "damn", ["hell"]], False),
        ([], False),
    ],
    ids=[
        "shape",
        "unreadable-terms",
        "lower-case",
        "two-spellings",
        "terms-lists",
        "terms-only",
        "mixed",
        "empty",
    ],
)
def test_azure_match_terms_read_in_bulk_equal_those_read_one_object_at_a_time(
    entries: list[object], in_bulk: bool
) -> None:
    # (the premise: which lists the bulk read takes, and which it leaves to the reading one object at a time)
    assert (_terms_of_entries(entries) is not None) is in_bulk

    assert _match_terms(json.dumps(entries)) == _terms_in(entries, _MAX_TERM_DEPTH)


SIGNED = b'"create_time": "2022-07-30T08:57:11.011Z", "job_id": "job-1", "request_id": "req-1"'


@pytest.mark.parametrize(
    "body",
    [
        b"{" + SIGNED + b', "result": {"suggestion": "block"}}',
        b'{"job_id": "other", ' + SIGNED + b', "job_id": "last"}',  # a key sent twice: the last
        b"\xef\xbb\xbf{" + SIGNED + b"}",  # a byte order mark
        b'{"create_time": "2022-07-30T08:57:11.011Z", "job_id": "job-\\ud83d", "request_id": "req-1"}',
        b"{" + SIGNED + b', "note": "\xff"}',  # not UTF-8 where nothing signed is
        b'{"create_time": "2022-07-30T08:57:11.011Z", "job_id": "job-1"}',  # a field missing
        b'{"create_time": "30/07/2022", "job_id": "job-1", "request_id": "req-1"}',  # a time in no documented format
        b'{"create_time": 1659171431, "job_id": "job-1", "request_id": "req-1"}',  # not a string
        b"{" + SIGNED,  # cut short
        b"[]",
    ],
    ids=[
        "signed",
        "key-twice",
        "bom",
        "lone-surrogate",
        "not-utf-8",
        "missing",
        "format",
        "number",
        "cut",
        "list",
    ],
)
def test_the_signed_fields_read_from_the_bytes_are_those_the_decoded_body_gives(body: bytes) -> None:
    from verdict_relay.providers.base import load_json, validate_payload
    from verdict_relay.providers.huawei_v3 import _signed_fields, _SignedFields

    def outcome(read: object) -> object:
        try:
            return read()  # type: ignore[operator]
        except ClientError as exc:  # what the receiver answers 4xx: the payload errors, malformed bodies
            return (type(exc), str(exc))

    direct = outcome(lambda: _signed_fields("huawei-video", body))
    decoded = outcome(
        lambda: validate_payload("huawei-video", _SignedFields, load_json("huawei-video", body))
    )
    assert direct == decoded
