"""Huawei v3 audio jobs: query and callback bodies to a canonical verdict, and the seed-signed callback."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import (
    load_payload,
    load_payload_bytes,
)
from verdict_relay.config import CallbackSettings
from verdict_relay.errors import CallbackAuthError, MalformedPayloadError, PayloadError
from verdict_relay.models.verdict import ContentRef, Finding, JobStatus, Suggestion
from verdict_relay.providers.base import CallbackRequest, VerifyContext
from verdict_relay.providers.huawei_audio import HuaweiAudioAdapter

PROVIDER = "huawei-audio"
SEED = "audio_seed_000001"
NEW_SEED = "audio_seed_000002"

adapter = HuaweiAudioAdapter()


def context(*seeds: str) -> VerifyContext:
    return VerifyContext(settings=CallbackSettings(seeds=list(seeds)), now=datetime.now(UTC))


def digest(seed: str, name: str) -> bytes:
    body = load_payload(PROVIDER, name)
    message = body["create_time"] + body["job_id"] + body["request_id"] + seed
    return hmac.new(seed.encode(), message.encode(), hashlib.sha256).digest()


def request_with(name: str, headers: dict[str, str]) -> CallbackRequest:
    return CallbackRequest(body=load_payload_bytes(PROVIDER, name), headers=headers)


def only_verdict(payload: Any) -> Any:
    verdicts = adapter.parse(payload)
    assert len(verdicts) == 1
    return verdicts[0]


def test_succeeded_job_gives_the_providers_suggestion_and_one_finding_per_detail() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "succeeded"))

    assert verdict.provider == PROVIDER
    assert verdict.job_id == "01661230000_5a4b3c2d1e0f4a9b8c7d6e5f4a3b2c1d"
    assert verdict.status is JobStatus.SUCCEEDED
    assert verdict.suggestion is Suggestion.BLOCK
    assert verdict.decided_by == "provider"
    assert len(verdict.findings) == 2
    assert verdict.content == ContentRef(
        url="https://media-bucket.obs.ap-southeast-1.myhuaweicloud.com/uploads/podcast-17.mp3"
    )
    assert verdict.metadata == {"request_id": "7e6d5c4b3a29180706f5e4d3c2b1a090"}
    assert verdict.categories == ["abuse", "ad"]


def test_audio_findings_carry_span_text_and_segments_but_no_confidence() -> None:
    findings = only_verdict(load_payload(PROVIDER, "succeeded")).findings

    assert findings[0] == Finding(
        category="ad",
        label="ad",
        confidence=None,
        suggestion=Suggestion.REVIEW,
        item="audio",
        time_offset=12.2,
        time_end=18.7,
        text="buy followers at our site",
        segments=["buy followers"],
    )
    assert (findings[1].category, findings[1].suggestion, findings[1].time_offset) == (
        "abuse",
        Suggestion.BLOCK,
        61.0,
    )


def test_succeeded_job_times_are_utc() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "succeeded"))

    assert verdict.created_at == datetime(2022, 8, 23, 4, 26, 40, 123000, tzinfo=UTC)
    assert verdict.completed_at == datetime(2022, 8, 23, 4, 27, 5, 456000, tzinfo=UTC)


def test_running_job_with_zoneless_times_is_unfinished_and_in_utc() -> None:
    verdict = only_verdict(load_payload(PROVIDER, "running"))

    assert verdict.status is JobStatus.RUNNING
    assert verdict.suggestion is None
    assert verdict.findings == []
    assert verdict.created_at == datetime(2022, 8, 23, 4, 26, 40, tzinfo=UTC)
    assert verdict.completed_at is None


def test_succeeded_pass_without_details_has_no_findings() -> None:
    payload = load_payload(PROVIDER, "succeeded")
    payload["result"] = {"suggestion": "pass", "audio_text": "hello"}

    verdict = only_verdict(payload)

    assert verdict.suggestion is Suggestion.PASS
    assert verdict.findings == []


def test_lists_sent_as_null_are_read_as_empty() -> None:
    payload = load_payload(PROVIDER, "succeeded")
    payload["result"]["details"][0]["segments"] = None

    assert only_verdict(payload).findings[0].segments == []

    payload["result"]["details"] = None
    verdict = only_verdict(payload)
    assert (verdict.suggestion, verdict.findings) == (Suggestion.BLOCK, [])


def test_a_failed_status_in_any_case_is_a_failed_job() -> None:
    payload = load_payload(PROVIDER, "running") | {"status": "FAILED"}

    assert only_verdict(payload).status is JobStatus.FAILED


def test_a_failed_job_whose_result_has_a_span_without_a_label_is_failed_with_its_suggestion() -> None:
    payload = load_payload(PROVIDER, "succeeded") | {"status": "failed"}
    payload["result"]["details"][0].pop("label")

    for verdict in (only_verdict(payload), *adapter.parse_bytes(json.dumps(payload).encode())):
        assert (verdict.status, verdict.suggestion, verdict.findings) == (
            JobStatus.FAILED,
            Suggestion(payload["result"]["suggestion"]),
            [],
        )


def test_parse_callback_returns_the_verdict_of_the_body() -> None:
    result = adapter.parse_callback(request_with("succeeded", {}))

    assert result.verdicts == [only_verdict(load_payload(PROVIDER, "succeeded"))]
    assert (result.body_only, result.jobs_to_fetch) == ([], [])


@pytest.mark.parametrize(
    "signature",
    [
        digest(SEED, "succeeded").hex(),
        digest(SEED, "succeeded").hex().upper(),
        base64.b64encode(digest(SEED, "succeeded")).decode(),
        digest(NEW_SEED, "succeeded").hex(),
    ],
    ids=["hex", "hex-uppercase", "base64", "rotated-seed"],
)
def test_signature_made_with_a_configured_seed_is_accepted(signature: str) -> None:
    request = request_with("succeeded", {"x-auth-signature": signature})

    assert adapter.verify_signature(request, context(SEED, NEW_SEED)) is True


def test_zoneless_create_time_is_signed_as_sent() -> None:
    request = request_with("running", {"X-Auth-Signature": digest(SEED, "running").hex()})

    assert adapter.verify_signature(request, context(SEED)) is True


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({}, "missing"),
        ({"X-Auth-Signature": digest("not_our_seed", "succeeded").hex()}, "invalid"),
        ({"X-Auth-Signature": digest(SEED, "succeeded").hex()[:32]}, "invalid"),
    ],
    ids=["missing", "other-seed", "truncated"],
)
def test_bad_signature_is_refused(headers: dict[str, str], problem: str) -> None:
    with pytest.raises(CallbackAuthError, match=problem):
        adapter.verify_signature(request_with("succeeded", headers), context(SEED))


def test_without_a_seed_the_signature_is_not_checked() -> None:
    request = request_with("succeeded", {"X-Auth-Signature": digest(SEED, "succeeded").hex()})

    assert adapter.verify_signature(request, context()) is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.pop("job_id"), "job_id"),
        (lambda p: p.update(status="finish"), "status"),
        (lambda p: p.update(result=["block"]), "result"),
        (lambda p: p["result"]["details"][0].pop("label"), "result.details.0.label"),
        (lambda p: p["result"]["details"][0].update(label=""), "result.details.0.label"),
        (lambda p: p["result"]["details"][0].update(start_time="abc"), "result.details.0.start_time"),
        (lambda p: p["result"]["details"][1].update(suggestion="maybe"), "result.details.1.suggestion"),
        (
            lambda p: p["result"]["details"][0].update(segments=[{"text": "x"}]),
            "result.details.0.segments.0.segment",
        ),
    ],
    ids=[
        "missing-job-id",
        "unknown-status",
        "result-not-object",
        "missing-label",
        "empty-label",
        "time-string",
        "bad-suggestion",
        "segment-without-text",
    ],
)
def test_malformed_payload_raises_a_payload_error_naming_the_field(change: Any, field: str) -> None:
    payload = copy.deepcopy(load_payload(PROVIDER, "succeeded"))
    change(payload)

    with pytest.raises(PayloadError) as raised:
        adapter.parse(payload)

    assert raised.value.field == field


def test_callback_body_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedPayloadError):
        adapter.parse_callback(CallbackRequest(body=b"status=succeeded", headers={}))


@pytest.mark.parametrize("number", [float("inf"), float("nan")])
@pytest.mark.parametrize("key", ["start_time", "end_time"])
def test_a_span_time_that_is_not_finite_is_a_payload_error_naming_it(key: str, number: float) -> None:
    # Infinity and NaN are not JSON, but the parsers accept them (and 1e400 overflows to infinity)
    payload = copy.deepcopy(load_payload(PROVIDER, "succeeded"))
    payload["result"]["details"][0][key] = number

    with pytest.raises(PayloadError) as raised:
        adapter.parse(payload)

    assert raised.value.field == f"result.details.0.{key}"


def test_a_job_id_over_512_bytes_is_a_payload_error_naming_it() -> None:
    payload = {
        **load_payload(PROVIDER, "succeeded"),
        "job_id": "\U0001f600" * 129,
    }  # 129 characters, 516 bytes

    with pytest.raises(PayloadError) as raised:
        adapter.parse(payload)

    assert raised.value.field == "job_id"
