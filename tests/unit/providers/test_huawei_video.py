"""Huawei v3 video jobs: every payload shape to a canonical verdict, and the seed-signed callback."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import (
    RECASING_IDS,
    RECASINGS,
    SUGGESTION_KEYS,
    load_payload,
    load_payload_bytes,
    recased,
)
from verdict_relay.config import CallbackSettings
from verdict_relay.errors import CallbackAuthError, MalformedPayloadError, PayloadError
from verdict_relay.logic.policy import VerdictPolicy
from verdict_relay.models.verdict import Box, ContentRef, Finding, JobStatus, Suggestion, VerdictError
from verdict_relay.providers.base import CallbackRequest, VerifyContext
from verdict_relay.providers.huawei_audio import HuaweiAudioAdapter
from verdict_relay.providers.huawei_video import HuaweiVideoAdapter

PROVIDER = "huawei-video"
SEED = "relay_seed_2024_current"
OTHER_SEED = "someone_elses_seed"
NEW_SEED = "relay_seed_2025_rotated"

adapter = HuaweiVideoAdapter()


def context(*seeds: str, tokens: list[str] | None = None) -> VerifyContext:
    return VerifyContext(
        settings=CallbackSettings(seeds=list(seeds), tokens=tokens or []), now=datetime.now(UTC)
    )


def digest(seed: str, body: dict[str, Any]) -> bytes:
    message = body["create_time"] + body["job_id"] + body["request_id"] + seed
    return hmac.new(seed.encode(), message.encode(), hashlib.sha256).digest()


def signed_request(name: str, signature: str | None, header: str = "X-Auth-Signature") -> CallbackRequest:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[header] = signature
    return CallbackRequest(body=load_payload_bytes(PROVIDER, name), headers=headers)


def hex_signature(name: str, seed: str = SEED) -> str:
    return digest(seed, load_payload(PROVIDER, name)).hex()


def base64_signature(name: str, seed: str = SEED) -> str:
    return base64.b64encode(digest(seed, load_payload(PROVIDER, name))).decode()


def only_verdict(payload: Any) -> Any:
    verdicts = adapter.parse(payload)
    assert len(verdicts) == 1
    return verdicts[0]


# -- parsing the fixtures ---


def test_succeeded_seed_example_gives_the_providers_block_with_one_finding_per_detail_entry() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "succeeded"))

    assert verdict.provider == PROVIDER
    assert verdict.job_id == "xxx"
    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.suggestion is Suggestion.BLOCK
    assert verdict.decided_by == "provider"
    # 8 frame detail entries + 2 audio clip detail entries
    assert len(verdict.findings) == 10
    assert verdict.error is None
    assert verdict.content == ContentRef(url="xxxx")
    assert verdict.metadata == {"request_id": "xxxx"}


def test_succeeded_seed_example_times_are_utc_and_completion_is_the_update_time() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "succeeded"))

    assert verdict.created_at == datetime(2022, 7, 30, 8, 57, 11, 11000, tzinfo=UTC)
    assert verdict.updated_at == datetime(2022, 7, 30, 8, 57, 14, 14000, tzinfo=UTC)
    assert verdict.completed_at == verdict.updated_at


def test_frame_detail_entries_keep_confidence_time_text_and_locations() -> None:
    findings = only_verdict(load_payload(PROVIDER, "succeeded")).findings

    assert findings[0] == Finding(
        category="porn",
        label="pornography",
        confidence=0.676015138626099,
        suggestion=Suggestion.BLOCK,
        item="video",
        time_offset=0.0,
        text="123",
    )
    assert findings[1].label == "sexy_female"
    assert findings[1].suggestion is Suggestion.REVIEW
    assert findings[3].face_location == Box(
        top_left_x=12, top_left_y=13, bottom_right_x=200, bottom_right_y=240
    )
    assert findings[6].qr_content == "xxxxxxxxx"
    assert findings[6].qr_location == Box(
        top_left_x=12, top_left_y=13, bottom_right_x=100, bottom_right_y=2000
    )
    assert findings[7].category == "image_text"
    assert findings[7].segments == ["xxx", "xx"]


def test_audio_clip_detail_entries_become_audio_findings_with_the_clip_span() -> None:
    findings = only_verdict(load_payload(PROVIDER, "succeeded")).findings

    assert findings[8] == Finding(
        category="porn",
        label="porn",
        confidence=0.999117187582349,
        suggestion=Suggestion.BLOCK,
        item="audio",
        time_offset=0.0,
        time_end=10.0,
        text="xxxxx",
        segments=["xxx"],
    )
    assert findings[9].segments == []
    assert findings[9].confidence == 0.885117187582349


def test_running_job_has_no_suggestion_findings_or_completion_time() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "running"))

    assert verdict.status is JobStatus.RUNNING
    assert verdict.suggestion is None
    assert verdict.decided_by is None
    assert verdict.findings == []
    assert verdict.completed_at is None
    assert verdict.updated_at == datetime(2022, 7, 30, 8, 57, 12, 500000, tzinfo=UTC)
    assert verdict.content == ContentRef(
        url="https://media-bucket.obs.ap-southeast-1.myhuaweicloud.com/uploads/clip-0042.mp4"
    )


def test_callback_url_from_request_params_is_not_copied_into_metadata() -> None:
    # Given a job whose request_params carry our callback URL (which may hold the callback token)
    verdict = only_verdict(load_payload(PROVIDER, "running"))

    # Then only the request id reaches metadata
    assert verdict.metadata == {"request_id": "6b2c1f1e5c2d4a7f9e0b3d8a1c4f2e6b"}


def test_failed_job_gets_an_error_no_suggestion_and_completes_at_its_update_time() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "failed"))

    assert verdict.status is JobStatus.FAILED
    assert verdict.suggestion is None
    assert verdict.decided_by is None
    assert verdict.findings == []
    assert verdict.error is not None
    assert verdict.error.code == "job_failed"
    assert verdict.completed_at == datetime(2022, 7, 30, 9, 10, 42, 250000, tzinfo=UTC)


def test_failed_job_with_an_error_code_reports_the_providers_reason() -> None:
    payload = load_payload(PROVIDER, "failed") | {"error_code": "AIS.0402", "error_msg": "Download failed"}

    verdict = only_verdict(payload)

    assert verdict.error == VerdictError(code="AIS.0402", message="Download failed")


def test_a_failed_job_that_still_carries_a_result_keeps_it_and_a_block_is_published_as_block() -> None:
    # Huawei documents a result only for succeeded jobs; a failed one that sends the seed's block result anyway
    payload = load_payload(PROVIDER, "succeeded") | {"status": "failed", "error_code": "AIS.0402"}

    verdict = only_verdict(payload)

    assert (verdict.status, verdict.suggestion, len(verdict.findings)) == (
        JobStatus.FAILED,
        Suggestion.BLOCK,
        10,
    )
    assert verdict.error == VerdictError(
        code="AIS.0402", message="Huawei reported the job as failed without giving a reason"
    )
    final = VerdictPolicy().finalize(verdict)
    assert (final.suggestion, final.decided_by) == (Suggestion.BLOCK, "policy")
    assert VerdictPolicy().should_publish(final)


def test_a_failed_job_whose_partial_result_cannot_be_read_keeps_its_suggestion_and_stays_failed() -> None:
    # A frame with neither detail nor category: refused in a finished job, but a failed job's result is
    # undocumented, and refusing it would leave the job without its failed verdict (422, or never read by a poll)
    payload = load_payload(PROVIDER, "failed") | {
        "result": {"suggestion": "block", "image_detail": [{"suggestion": "block", "time": 3.0}]}
    }

    verdict = only_verdict(payload)

    assert (verdict.status, verdict.suggestion, verdict.findings) == (JobStatus.FAILED, Suggestion.BLOCK, [])
    assert VerdictPolicy().finalize(verdict).suggestion is Suggestion.BLOCK


@pytest.mark.parametrize(
    ("result", "suggestion"),
    [
        (
            {
                "suggestion": "block",
                "image_detail": [
                    {
                        "suggestion": "block",
                        "time": 3.0,
                        "detail": [{"confidence": 1.2, "category": "porn", "label": "porn"}],
                    }
                ],
            },
            Suggestion.BLOCK,
        ),
        (
            {"suggestion": "Review", "image_detail": [{"suggestion": "review", "time": -1.0}]},
            Suggestion.REVIEW,
        ),
        ({}, None),
        ({"suggestion": None}, None),
        ({"suggestion": "unsure", "image_detail": "none"}, None),
    ],
    ids=["confidence-above-1", "negative-time", "empty", "null-suggestion", "unknown-suggestion"],
)
def test_a_failed_job_whose_result_its_model_refuses_is_failed_with_what_suggestion_it_gives(
    result: dict[str, Any], suggestion: Suggestion | None
) -> None:
    # Huawei documents a result only for succeeded jobs: refusing a failed job's would answer its callback 422
    # each time it is re-sent, and leave a poll's answer unread, so the job never got its failed verdict
    payload = load_payload(PROVIDER, "failed") | {"error_code": "AIS.0402", "result": result}

    for verdict in (only_verdict(payload), *adapter.parse_bytes(json.dumps(payload).encode())):
        assert (verdict.status, verdict.suggestion, verdict.findings) == (JobStatus.FAILED, suggestion, [])
        assert verdict.error == VerdictError(
            code="AIS.0402", message="Huawei reported the job as failed without giving a reason"
        )
        final = VerdictPolicy().finalize(verdict)
        assert final.suggestion is (suggestion or Suggestion.REVIEW)
        assert VerdictPolicy().should_publish(final)


@pytest.mark.parametrize("status", ["FAILED", "Failed", " failed "])
def test_a_failed_status_in_any_case_whose_result_its_model_refuses_is_still_a_failed_job(
    status: str,
) -> None:
    # Given a failed job whose status is recased or padded (read like "failed") and whose undocumented result has
    # a frame its model refuses (a negative time)
    payload = load_payload(PROVIDER, "failed") | {
        "status": status,
        "error_code": "AIS.0402",
        "result": {"suggestion": "block", "image_detail": [{"suggestion": "block", "time": -1.0}]},
    }

    # When it is read as a query response and as a callback body
    for verdict in (only_verdict(payload), *adapter.parse_bytes(json.dumps(payload).encode())):
        # Then it is the failed job it is, with the block its result gives, not a 422 at every re-send
        assert (verdict.status, verdict.suggestion, verdict.findings) == (
            JobStatus.FAILED,
            Suggestion.BLOCK,
            [],
        )
        assert VerdictPolicy().finalize(verdict).suggestion is Suggestion.BLOCK


def test_a_finished_or_running_job_whose_result_its_model_refuses_is_still_refused() -> None:
    result = {"suggestion": "block", "image_detail": [{"suggestion": "block", "time": -1.0}]}
    for status in ("succeeded", "running"):
        with pytest.raises(PayloadError, match="time"):
            adapter.parse(load_payload(PROVIDER, "failed") | {"status": status, "result": result})


def test_time_without_zone_is_read_as_utc() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "callback-space-time"))

    assert verdict.created_at == datetime(2022, 6, 20, 11, 5, 29, tzinfo=UTC)
    assert verdict.completed_at == datetime(2022, 6, 20, 11, 6, 47, tzinfo=UTC)


def test_frame_and_clip_without_detail_each_become_one_finding_of_their_own() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "callback-space-time"))

    assert verdict.suggestion is Suggestion.REVIEW
    assert verdict.findings == [
        Finding(
            category="image_text",
            label="image_text",
            suggestion=Suggestion.REVIEW,
            item="video",
            time_offset=12.5,
            text="add me on wechat",
        ),
        Finding(
            category="ad",
            label="ad",
            suggestion=Suggestion.REVIEW,
            item="audio",
            time_offset=30.0,
            time_end=40.5,
            text="call now for a discount",
        ),
    ]
    assert verdict.categories == ["ad", "image_text"]


def test_detail_entry_without_category_takes_the_frames_category() -> None:
    payload = load_payload(PROVIDER, "succeeded")
    del payload["result"]["image_detail"][0]["detail"][0]["category"]
    payload["result"]["image_detail"][0]["category"] = "terrorism"

    assert only_verdict(payload).findings[0].category == "terrorism"


def test_clip_detail_entry_without_label_takes_the_clips_label() -> None:
    payload = load_payload(PROVIDER, "succeeded")
    del payload["result"]["audio_detail"][0]["detail"][1]["label"]
    payload["result"]["audio_detail"][0]["label"] = "moan"

    finding = only_verdict(payload).findings[9]
    assert (finding.category, finding.label) == ("moan", "moan")


def test_clip_detail_entries_keep_their_own_labels_when_the_clip_is_labelled_otherwise() -> None:
    # Given a clip labelled with its likeliest label (as Huawei documents it) whose entries carry two labels
    payload = load_payload(PROVIDER, "succeeded")
    payload["result"]["audio_detail"][0]["detail"][1]["label"] = "moan"

    # When it is parsed
    findings = only_verdict(payload).findings

    # Then each entry's finding is named by the entry's own label, not the clip's
    assert [(f.category, f.label, f.confidence) for f in findings[8:]] == [
        ("porn", "porn", 0.999117187582349),
        ("moan", "moan", 0.885117187582349),
    ]


def test_every_frame_and_every_clip_of_the_timelines_becomes_findings_in_order() -> None:
    # Given a pass job with two flagged frames and two flagged clips, the later ones blocked
    def frame(time: float, suggestion: str, category: str, label: str) -> dict[str, Any]:
        entry = {"suggestion": suggestion, "category": category, "label": label, "confidence": 0.9}
        return {"suggestion": suggestion, "category": category, "time": time, "detail": [entry]}

    def clip(start: float, end: float, suggestion: str, label: str) -> dict[str, Any]:
        entry = {"suggestion": suggestion, "label": label, "confidence": 0.8}
        return {
            "suggestion": suggestion,
            "label": label,
            "start_time": start,
            "end_time": end,
            "detail": [entry],
        }

    payload = with_result(
        suggestion="pass",
        image_detail=[frame(5, "review", "image_text", "qr_code"), frame(10, "block", "terrorism", "flag")],
        audio_detail=[clip(0, 3, "review", "ad"), clip(20, 24.5, "block", "abuse")],
    )

    # When it is parsed and the policy settles it
    verdict = only_verdict(payload)

    # Then every frame and clip is a finding, in the order Huawei sent them, and the block ones decide
    assert [(f.item, f.label, f.suggestion, f.time_offset, f.time_end) for f in verdict.findings] == [
        ("video", "qr_code", Suggestion.REVIEW, 5.0, None),
        ("video", "flag", Suggestion.BLOCK, 10.0, None),
        ("audio", "ad", Suggestion.REVIEW, 0.0, 3.0),
        ("audio", "abuse", Suggestion.BLOCK, 20.0, 24.5),
    ]
    assert VerdictPolicy().finalize(verdict).suggestion is Suggestion.BLOCK


def test_lists_sent_as_null_are_read_as_empty() -> None:
    # Given the seed example with lists sent as null (undocumented, so read like absent lists, not as a 422
    # that would leave the job unresolved at every poll)
    payload = load_payload(PROVIDER, "succeeded")
    payload["result"]["image_detail"][0]["detail"][7]["segments"] = None
    payload["result"]["audio_detail"][0]["detail"][0]["segments"] = None

    findings = only_verdict(payload).findings
    assert (findings[7].category, findings[7].segments) == ("image_text", [])
    assert (findings[8].text, findings[8].segments) == ("xxxxx", [])

    # A frame whose detail is null is one finding of its own, like a frame without detail
    payload["result"]["image_detail"][0]["detail"] = None
    assert [(f.item, f.label) for f in only_verdict(payload).findings] == [
        ("video", "porn"),
        ("audio", "porn"),
        ("audio", "porn"),
    ]

    payload["result"].update(image_detail=None, audio_detail=None)
    verdict = only_verdict(payload)
    assert (verdict.suggestion, verdict.findings) == (Suggestion.BLOCK, [])


def with_result(**result: Any) -> dict[str, Any]:
    """The seed example's envelope around another result."""
    return {**load_payload(PROVIDER, "succeeded"), "result": result}


def test_a_frame_rated_stricter_than_all_its_entries_is_a_finding_and_the_job_is_published_as_block() -> None:
    # Given a pass job with a frame Huawei rates block whose only detail entry says review
    payload = with_result(
        suggestion="pass",
        image_detail=[
            {
                "suggestion": "block",
                "category": "porn",
                "time": 12,
                "ocr_text": "hello",
                "detail": [
                    {"suggestion": "review", "label": "sexy_female", "confidence": 0.6, "category": "porn"}
                ],
            }
        ],
    )

    # When it is parsed and the policy settles it
    verdict = only_verdict(payload)
    final = VerdictPolicy().finalize(verdict)

    # Then the frame's block is a finding of its own, after its entry's, and the verdict is block
    assert verdict.findings == [
        Finding(
            category="porn",
            label="sexy_female",
            confidence=0.6,
            suggestion=Suggestion.REVIEW,
            item="video",
            time_offset=12.0,
            text="hello",
        ),
        Finding(
            category="porn",
            label="porn",
            suggestion=Suggestion.BLOCK,
            item="video",
            time_offset=12.0,
            text="hello",
        ),
    ]
    assert (final.suggestion, final.decided_by) == (Suggestion.BLOCK, "policy")
    assert VerdictPolicy().should_publish(final)


def test_a_clip_rated_stricter_than_all_its_entries_is_a_finding_and_the_job_is_published_as_block() -> None:
    # Given a pass job with a soundtrack clip Huawei rates block whose only detail entry says review
    payload = with_result(
        suggestion="pass",
        audio_detail=[
            {
                "suggestion": "block",
                "label": "abuse",
                "audio_text": "you idiot",
                "start_time": 3,
                "end_time": 7.5,
                "detail": [{"suggestion": "review", "label": "abuse", "confidence": 0.55}],
            }
        ],
    )

    # When it is parsed and the policy settles it
    verdict = only_verdict(payload)
    final = VerdictPolicy().finalize(verdict)

    # Then the clip's block is a finding of its own, with its span and text, and the verdict is block
    assert [(f.label, f.suggestion, f.confidence) for f in verdict.findings] == [
        ("abuse", Suggestion.REVIEW, 0.55),
        ("abuse", Suggestion.BLOCK, None),
    ]
    assert verdict.findings[1] == Finding(
        category="abuse",
        label="abuse",
        suggestion=Suggestion.BLOCK,
        item="audio",
        time_offset=3.0,
        time_end=7.5,
        text="you idiot",
    )
    assert (final.suggestion, final.decided_by) == (Suggestion.BLOCK, "policy")


def test_a_review_frame_whose_entries_say_pass_is_a_review_finding_of_its_own() -> None:
    payload = with_result(
        suggestion="pass",
        image_detail=[
            {
                "suggestion": "review",
                "category": "terrorism",
                "time": 5,
                "detail": [{"suggestion": "pass", "label": "flag", "confidence": 0.1}],
            }
        ],
    )

    verdict = only_verdict(payload)

    assert [(f.label, f.suggestion) for f in verdict.findings] == [
        ("flag", Suggestion.PASS),
        ("terrorism", Suggestion.REVIEW),
    ]
    assert VerdictPolicy().finalize(verdict).suggestion is Suggestion.REVIEW


def test_a_stricter_frame_without_a_category_of_its_own_is_a_finding_named_video() -> None:
    payload = with_result(
        suggestion="review",
        image_detail=[
            {
                "suggestion": "block",
                "time": 2,
                "detail": [{"suggestion": "review", "label": "qr_code", "category": "ad"}],
            }
        ],
    )

    findings = only_verdict(payload).findings

    assert [(f.category, f.label, f.suggestion) for f in findings] == [
        ("ad", "qr_code", Suggestion.REVIEW),
        ("video", "video", Suggestion.BLOCK),
    ]


@pytest.mark.parametrize(
    ("own", "entries"),
    [
        ("block", ["review", "block"]),
        ("block", ["block", "review"]),  # the strict entry need not be the last one
        ("review", ["pass", "block"]),
        ("review", ["pass", "review"]),
        ("block", [None]),  # an entry without a suggestion takes its frame's or clip's
        ("pass", ["pass"]),
    ],
    ids=[
        "block-explained",
        "block-explained-first",
        "review-by-a-block",
        "review-by-a-review",
        "entry-takes-its-own",
        "pass",
    ],
)
def test_a_frame_or_clip_with_an_entry_as_strict_as_itself_adds_no_finding_of_its_own(
    own: str, entries: list[str | None]
) -> None:
    def entry(suggestion: str | None) -> dict[str, Any]:
        return {"label": "porn", "category": "porn"} | ({"suggestion": suggestion} if suggestion else {})

    payload = with_result(
        suggestion=own,
        image_detail=[
            {"suggestion": own, "category": "porn", "time": 1, "detail": [entry(s) for s in entries]}
        ],
        audio_detail=[{"suggestion": own, "label": "porn", "detail": [entry(s) for s in entries]}],
    )

    assert len(only_verdict(payload).findings) == 2 * len(entries)


V3_FIXTURES = [
    *(("huawei-video", name) for name in ("succeeded", "running", "failed", "callback-space-time")),
    *(("huawei-audio", name) for name in ("succeeded", "running")),
]
"""Both v3 adapters read statuses and suggestions alike (``huawei_v3.AnyCase``): their fixtures, tested here."""
V3_ADAPTERS = {"huawei-video": adapter, "huawei-audio": HuaweiAudioAdapter()}


@pytest.mark.parametrize("change", RECASINGS, ids=RECASING_IDS)
@pytest.mark.parametrize(("provider", "name"), V3_FIXTURES)
def test_status_and_suggestions_are_read_in_any_case_and_without_surrounding_whitespace(
    provider: str, name: str, change: Callable[[str], str]
) -> None:
    # Given a fixture whose status and every suggestion (job, frames, clips, entries, spans) are recased
    v3 = V3_ADAPTERS[provider]
    payload = load_payload(provider, name)
    variant = recased(payload, change)
    assert variant["status"] != payload["status"]

    # Then a query response and a callback body alike give the verdict of the lower-case original
    [expected] = v3.parse(payload)
    assert v3.parse(variant) == [expected]
    assert v3.parse_bytes(json.dumps(variant).encode()) == [expected]


@pytest.mark.parametrize("change", RECASINGS, ids=RECASING_IDS)
@pytest.mark.parametrize(
    ("provider", "name"), [fixture for fixture in V3_FIXTURES if fixture[1] not in ("running", "failed")]
)
def test_suggestions_alone_are_read_in_any_case(
    provider: str, name: str, change: Callable[[str], str]
) -> None:
    # Given a fixture whose status is as documented but whose suggestions are recased
    v3 = V3_ADAPTERS[provider]
    payload = load_payload(provider, name)
    variant = recased(payload, change, SUGGESTION_KEYS)
    assert variant != payload

    # Then it gives the verdict of the lower-case original
    assert v3.parse_bytes(json.dumps(variant).encode()) == v3.parse_bytes(json.dumps(payload).encode())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(status="SUCCEEDED!"), "status"),
        (lambda p: p.update(status="Success"), "status"),
        (lambda p: p["result"].update(suggestion="BLOCKED"), "result.suggestion"),
        (
            lambda p: p["result"]["image_detail"][0].update(suggestion="Rejected"),
            "result.image_detail.0.suggestion",
        ),
        (lambda p: p["result"]["image_detail"][0].update(suggestion=2), "result.image_detail.0.suggestion"),
    ],
    ids=[
        "status-punctuated",
        "status-unknown",
        "suggestion-unknown",
        "frame-suggestion-unknown",
        "not-a-string",
    ],
)
def test_an_unknown_status_or_suggestion_is_still_refused_whatever_its_case(change: Any, field: str) -> None:
    with pytest.raises(PayloadError) as raised:
        adapter.parse(mutated(change))

    assert raised.value.field == field


def test_parse_callback_returns_the_verdict_of_the_body() -> None:
    result = adapter.parse_callback(signed_request("succeeded", None))

    assert [v.job_id for v in result.verdicts] == ["xxx"]
    assert result.jobs_to_fetch == []
    assert result.signed is None  # let in by a token alone: no signed text


def test_a_signed_callback_names_the_text_its_signature_covers_and_the_job_it_was_read_as() -> None:
    # The signature covers create_time + job_id + request_id joined, not where job_id ends in it: the store binds
    # that text to its first job (JobStore.claim_signed), so the digest must be the same for every split of it
    body = load_payload(PROVIDER, "succeeded")
    result = adapter.parse_callback(signed_request("succeeded", hex_signature("succeeded")))
    split_elsewhere = {
        **body,
        "job_id": body["job_id"][:-1],
        "request_id": body["job_id"][-1] + body["request_id"],
    }
    other = adapter.parse_callback(
        CallbackRequest(body=json.dumps(split_elsewhere).encode(), headers={"X-Auth-Signature": "00" * 32})
    )

    joined = (body["create_time"] + body["job_id"] + body["request_id"]).encode()
    assert result.signed is not None
    assert other.signed is not None
    assert (result.signed.digest, result.signed.job_id) == (hashlib.sha256(joined).hexdigest(), "xxx")
    assert (other.signed.digest, other.signed.job_id) == (result.signed.digest, "xx")


# -- callback signature ---


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("succeeded", hex_signature),
        ("succeeded", lambda n: hex_signature(n).upper()),
        ("succeeded", base64_signature),
        ("callback-space-time", hex_signature),
        ("callback-space-time", base64_signature),
    ],
    ids=["hex", "hex-uppercase", "base64", "space-time-hex", "space-time-base64"],
)
def test_signature_made_with_the_seed_is_accepted_in_hex_or_base64(name: str, encode: Any) -> None:
    request = signed_request(name, encode(name))

    assert adapter.verify_signature(request, context(SEED)) is True
    adapter.verify_callback(request, context(SEED))  # does not raise


@pytest.mark.parametrize(
    "signature",
    [
        "c77b73ae63d79373600337d702fa5d8961436ca3571191a3d715ed031fda55cd",
        "x3tzrmPXk3NgAzfXAvpdiWFDbKNXEZGj1xXtAx/aVc0=",
    ],
    ids=["hex", "base64"],
)
def test_a_signature_computed_outside_python_by_the_documented_rule_is_accepted(signature: str) -> None:
    """A fixed vector, not computed by any helper of ours (which would share a misread rule with the adapter).
    Huawei's rule: HMAC-SHA256, key = seed, message = create_time + job_id + request_id + seed. Computed with
    ``printf '%s' "2022-07-30T08:57:11.011Zvideo-job-01HX9Q2req-7c1e2f0relay_seed_2024_current" |
    openssl dgst -sha256 -hmac relay_seed_2024_current`` (and ``-binary | base64``)."""
    # Given a callback for a job created with the seed, its signed fields as Huawei sends them
    payload = load_payload(PROVIDER, "succeeded")
    payload.update(
        create_time="2022-07-30T08:57:11.011Z", job_id="video-job-01HX9Q2", request_id="req-7c1e2f0"
    )
    request = CallbackRequest(body=json.dumps(payload).encode(), headers={"X-Auth-Signature": signature})

    # When it is verified with that seed, then it is accepted
    assert adapter.verify_signature(request, context(SEED)) is True


@pytest.mark.parametrize("header", ["x-auth-signature", "X-AUTH-SIGNATURE", "X-Auth-signature"])
def test_signature_header_is_read_whatever_its_case(header: str) -> None:
    request = signed_request("succeeded", hex_signature("succeeded"), header=header)

    assert adapter.verify_signature(request, context(SEED)) is True


@pytest.mark.parametrize("seed", [SEED, NEW_SEED])
def test_both_seeds_are_accepted_during_rotation(seed: str) -> None:
    request = signed_request("succeeded", base64_signature("succeeded", seed))

    assert adapter.verify_signature(request, context(SEED, NEW_SEED)) is True


def test_missing_signature_is_refused_as_missing() -> None:
    with pytest.raises(CallbackAuthError, match="missing"):
        adapter.verify_signature(signed_request("succeeded", None), context(SEED))


def test_empty_signature_is_refused_as_missing() -> None:
    with pytest.raises(CallbackAuthError, match="missing"):
        adapter.verify_signature(signed_request("succeeded", ""), context(SEED))


@pytest.mark.parametrize(
    "signature",
    [
        hex_signature("succeeded", OTHER_SEED),
        base64_signature("succeeded", OTHER_SEED),
        hex_signature("succeeded")[:-2],
        base64_signature("succeeded")[:-4],
        hex_signature("running"),
        "not-a-signature",
    ],
    ids=["other-seed-hex", "other-seed-base64", "truncated-hex", "truncated-base64", "other-job", "garbage"],
)
def test_wrong_signature_is_refused_without_echoing_it(signature: str) -> None:
    with pytest.raises(CallbackAuthError, match="invalid") as raised:
        adapter.verify_signature(signed_request("succeeded", signature), context(SEED))

    assert signature not in str(raised.value)


def test_base64_signature_is_case_sensitive() -> None:
    swapped = base64_signature("succeeded").swapcase()

    with pytest.raises(CallbackAuthError, match="invalid"):
        adapter.verify_signature(signed_request("succeeded", swapped), context(SEED))


def test_signature_does_not_hold_once_the_signed_fields_change() -> None:
    # Given a valid signature for the job, but a body whose create_time was altered
    payload = load_payload(PROVIDER, "succeeded")
    signature = hex_signature("succeeded")
    payload["create_time"] = "2022-07-30T08:57:11.012Z"
    request = CallbackRequest(body=json.dumps(payload).encode(), headers={"X-Auth-Signature": signature})

    with pytest.raises(CallbackAuthError, match="invalid"):
        adapter.verify_signature(request, context(SEED))


def test_without_a_seed_the_signature_is_not_checked_and_the_callback_is_refused() -> None:
    request = signed_request("succeeded", hex_signature("succeeded"))

    assert adapter.verify_signature(request, context()) is False
    with pytest.raises(CallbackAuthError, match="not enabled"):
        adapter.verify_callback(request, context())


def test_with_a_url_token_and_a_seed_both_must_hold() -> None:
    token = "tok_0123456789abcdef"
    request = CallbackRequest(
        body=load_payload_bytes(PROVIDER, "succeeded"),
        headers={"X-Auth-Signature": hex_signature("succeeded", OTHER_SEED)},
        query={"token": token},
    )

    with pytest.raises(CallbackAuthError, match="invalid"):
        adapter.verify_callback(request, context(SEED, tokens=[token]))


def test_signed_body_that_is_not_json_is_malformed() -> None:
    request = CallbackRequest(body=b"{not json", headers={"X-Auth-Signature": "00" * 32})

    with pytest.raises(MalformedPayloadError):
        adapter.verify_signature(request, context(SEED))


@pytest.mark.parametrize("field", ["create_time", "job_id", "request_id"])
def test_signed_body_without_a_signed_field_is_a_payload_error_naming_it(field: str) -> None:
    payload = load_payload(PROVIDER, "succeeded")
    del payload[field]
    request = CallbackRequest(body=json.dumps(payload).encode(), headers={"X-Auth-Signature": "00" * 32})

    with pytest.raises(PayloadError) as raised:
        adapter.verify_signature(request, context(SEED))

    assert raised.value.field == field


SPACE_TIME_JOB = "01656308728_1d7f6e0b3a2c4b5e9f8a7c6d5e4f3a2b"
SPACE_TIME_REQUEST = "3f0e1d2c3b4a59687766554433221100"


def signed_fields(name: str) -> tuple[str, str, str]:
    payload = load_payload(PROVIDER, name)
    return payload["create_time"], payload["job_id"], payload["request_id"]


def resplit(name: str, create_time: str, job_id: str, request_id: str) -> CallbackRequest:
    """The fixture under its genuine signature, with the signed characters split differently between the
    three fields: the message Huawei signed is unchanged, so the signature alone would hold."""
    payload = load_payload(PROVIDER, name)
    assert create_time + job_id + request_id == "".join(signed_fields(name))
    payload.update(create_time=create_time, job_id=job_id, request_id=request_id)
    return CallbackRequest(
        body=json.dumps(payload).encode(), headers={"X-Auth-Signature": hex_signature(name)}
    )


@pytest.mark.parametrize(
    ("name", "create_time", "job_id", "request_id", "field"),
    [
        # succeeded.json signs "2022-07-30T08:57:11.011Z" + "xxx" + "xxxx"
        ("succeeded", "2022-07-30T08:57:11.011Z", "xxxxxxx", "", "request_id"),
        ("succeeded", "2022-07-30T08:57:11.011Z", "", "xxxxxxx", "job_id"),
        ("succeeded", "2022-07-30T08:57:11.011", "Zxxx", "xxxx", "create_time"),
        ("succeeded", "2022-07-30T08:57:11.01", "1Zxxx", "xxxx", "create_time"),
        ("succeeded", "2022-07-30T08:57:11.011Zx", "xx", "xxxx", "create_time"),
        ("succeeded", "2022-07-30T08:57:11.011Zxx", "x", "xxxx", "create_time"),
        # callback-space-time.json signs "2022-06-20 11:05:29" + SPACE_TIME_JOB + SPACE_TIME_REQUEST
        (
            "callback-space-time",
            "2022-06-20 11:05:2",
            "9" + SPACE_TIME_JOB,
            SPACE_TIME_REQUEST,
            "create_time",
        ),
        (
            "callback-space-time",
            "2022-06-20 11:05:290",
            SPACE_TIME_JOB[1:],
            SPACE_TIME_REQUEST,
            "create_time",
        ),
    ],
    ids=[
        "request-id-emptied-into-job-id",
        "job-id-emptied-into-request-id",
        "create-time-z-moved-into-job-id",
        "create-time-digit-and-z-moved-into-job-id",
        "job-id-char-moved-into-create-time",
        "job-id-chars-moved-into-create-time",
        "zoneless-create-time-digit-moved-into-job-id",
        "job-id-digit-moved-into-zoneless-create-time",
    ],
)
def test_one_signature_split_differently_between_the_signed_fields_is_refused(
    name: str, create_time: str, job_id: str, request_id: str, field: str
) -> None:
    # Given a genuine signature, and the same signed characters split differently between the fields
    request = resplit(name, create_time, job_id, request_id)

    # When the signature is checked, then the field that no longer has Huawei's shape is named (422), and
    # the signature is never compared
    with pytest.raises(PayloadError) as raised:
        adapter.verify_signature(request, context(SEED))

    assert raised.value.field == field


@pytest.mark.parametrize(
    "create_time",
    [
        "2022-07-30T08:57:11.011Z",
        "2022-07-30T08:57:11Z",
        "2022-07-30T08:57:11.0112345Z",
        "2022-06-20 11:05:29",
    ],
)
def test_create_time_in_a_documented_format_is_accepted_for_the_signature(create_time: str) -> None:
    payload = {**load_payload(PROVIDER, "succeeded"), "create_time": create_time}
    request = CallbackRequest(
        body=json.dumps(payload).encode(), headers={"X-Auth-Signature": digest(SEED, payload).hex()}
    )

    assert adapter.verify_signature(request, context(SEED)) is True


# -- malformed payloads ---


def mutated(change: Any) -> dict[str, Any]:
    payload: dict[str, Any] = copy.deepcopy(load_payload(PROVIDER, "succeeded"))
    change(payload)
    return payload


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.pop("job_id"), "job_id"),
        (lambda p: p.update(job_id=""), "job_id"),
        (lambda p: p.update(status="done"), "status"),
        (lambda p: p.update(create_time="yesterday"), "create_time"),
        (lambda p: p.update(update_time=1659171434), "update_time"),
        (lambda p: p.update(result="block"), "result"),
        (lambda p: p.pop("result"), "result"),
        (lambda p: p["result"].pop("suggestion"), "result.suggestion"),
        (lambda p: p["result"].update(suggestion="reject"), "result.suggestion"),
        (
            lambda p: p["result"]["image_detail"][0]["detail"][0].update(confidence="abc"),
            "result.image_detail.0.detail.0.confidence",
        ),
        (
            lambda p: p["result"]["image_detail"][0]["detail"][0].update(confidence=1.5),
            "result.image_detail.0.detail.0.confidence",
        ),
        (
            lambda p: p["result"]["image_detail"][0]["detail"][0].update(confidence=-0.5),
            "result.image_detail.0.detail.0.confidence",
        ),
        (lambda p: p["result"]["image_detail"][0].update(time=-1), "result.image_detail.0.time"),
        (
            lambda p: p["result"]["image_detail"][0]["detail"][3]["face_location"].pop("top_left_x"),
            "result.image_detail.0.detail.3.face_location.top_left_x",
        ),
        (
            lambda p: p["result"]["audio_detail"][0]["detail"][0].update(confidence="abc"),
            "result.audio_detail.0.detail.0.confidence",
        ),
        (
            lambda p: p["result"]["audio_detail"][0]["detail"][0].update(confidence=1.5),
            "result.audio_detail.0.detail.0.confidence",
        ),
        (lambda p: p["result"]["audio_detail"][0].update(start_time=-1), "result.audio_detail.0.start_time"),
        (lambda p: p["result"]["audio_detail"][0].update(end_time=-0.5), "result.audio_detail.0.end_time"),
        (lambda p: p["result"].update(image_detail={}), "result.image_detail"),
    ],
    ids=[
        "missing-job-id",
        "empty-job-id",
        "unknown-status",
        "bad-time",
        "numeric-time",
        "result-not-object",
        "succeeded-without-result",
        "missing-suggestion",
        "unknown-suggestion",
        "confidence-string",
        "confidence-above-one",
        "confidence-negative",
        "negative-time",
        "incomplete-face-location",
        "audio-confidence-string",
        "audio-confidence-above-one",
        "audio-negative-start-time",
        "audio-negative-end-time",
        "image-detail-not-list",
    ],
)
def test_malformed_payload_raises_a_payload_error_naming_the_field(change: Any, field: str) -> None:
    with pytest.raises(PayloadError) as raised:
        adapter.parse(mutated(change))

    assert raised.value.field == field
    assert raised.value.provider == PROVIDER


def test_detail_entry_with_no_category_anywhere_is_a_payload_error() -> None:
    def drop_categories(payload: dict[str, Any]) -> None:
        del payload["result"]["image_detail"][0]["category"]
        del payload["result"]["image_detail"][0]["detail"][2]["category"]

    with pytest.raises(PayloadError) as raised:
        adapter.parse(mutated(drop_categories))

    assert raised.value.field == "result.image_detail.0.detail.2.category"


def test_payload_that_is_not_an_object_is_a_payload_error() -> None:
    with pytest.raises(PayloadError) as raised:
        adapter.parse([load_payload(PROVIDER, "succeeded")])

    assert raised.value.field == "(root)"


def test_error_response_is_a_payload_error_that_names_the_providers_code() -> None:
    with pytest.raises(PayloadError, match=r"AIS\.0030") as raised:
        adapter.parse({"error_code": "AIS.0030", "error_msg": "Job not found"})

    assert raised.value.field == "job_id"


def test_callback_body_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedPayloadError):
        adapter.parse_callback(CallbackRequest(body=b"<xml/>", headers={}))


def test_callback_body_that_is_not_utf8_is_malformed() -> None:
    with pytest.raises(MalformedPayloadError):
        adapter.parse_callback(CallbackRequest(body=b"\xff\xfe{}", headers={}))


# --- values the JSON parsers accept but no provider means ---

OVER_512_BYTES = "\u00e9" * 257  # 257 characters, 514 bytes: more than the table's key takes


def test_a_job_id_over_512_bytes_is_a_payload_error_naming_it_in_a_query_response_and_a_callback() -> None:
    payload = {**load_payload(PROVIDER, "succeeded"), "job_id": OVER_512_BYTES}
    body = json.dumps(payload).encode()

    for parse in (lambda: adapter.parse(payload), lambda: adapter.parse_bytes(body)):
        with pytest.raises(PayloadError) as raised:
            parse()
        assert raised.value.field == "job_id"
        assert "bytes" in raised.value.problem


def test_a_signed_field_job_id_over_512_bytes_is_named_before_any_signature_is_compared() -> None:
    payload = {**load_payload(PROVIDER, "succeeded"), "job_id": OVER_512_BYTES}
    request = CallbackRequest(
        body=json.dumps(payload).encode(), headers={"X-Auth-Signature": digest(SEED, payload).hex()}
    )

    with pytest.raises(PayloadError) as raised:
        adapter.verify_signature(request, context(SEED))

    assert raised.value.field == "job_id"


def test_a_job_id_of_exactly_512_bytes_is_accepted() -> None:
    job_id = "\u00e9" * 256

    [verdict] = adapter.parse_bytes(
        json.dumps({**load_payload(PROVIDER, "succeeded"), "job_id": job_id}).encode()
    )

    assert verdict.job_id == job_id


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e400"])
@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("time", "result.image_detail.0.time"),
        ("confidence", "result.image_detail.0.detail.0.confidence"),
    ],
)
def test_a_number_that_is_not_finite_is_a_payload_error_naming_it(key: str, field: str, number: str) -> None:
    # Infinity and NaN are not JSON but the parsers accept them; 1e400 is JSON and overflows to infinity
    text = json.dumps(load_payload(PROVIDER, "succeeded"))
    first = text.index(f'"{key}": ')
    value_end = text.index(",", first)
    body = f'{text[:first]}"{key}": {number}{text[value_end:]}'.encode()

    with pytest.raises(PayloadError) as raised:
        adapter.parse_bytes(body)

    assert raised.value.field == field
