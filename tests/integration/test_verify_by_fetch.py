"""How far a callback body is trusted: 'fetch' takes the verdict from the provider's API, 'body' from the body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.helpers import api_event, huawei_signature, load_payload
from tests.integration.conftest import ApiClient, configure_environment
from verdict_relay.local.callback_signing import MnsSigner, mns_notification
from verdict_relay.local.simulator import ProviderSimulator, alibaba_job, azure_job, huawei_video_job

SEED = "seed_for_fetch_tests"


def huawei_callback_saying_pass(job_id: str) -> bytes:
    payload = load_payload("huawei-video", "succeeded")
    payload.update(job_id=job_id, result={"suggestion": "pass"})
    return json.dumps(payload).encode()


def configure(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator, **entry: Any
) -> ApiClient:
    document = {
        "huawei-video": {**simulator.provider_entry("huawei-video"), "callback": {"seeds": [SEED]}, **entry},
        "alibaba-mps": {
            **simulator.provider_entry("alibaba-mps"),
            "callback": {"certificate_hosts": ["127.0.0.1"]},
        },
    }
    configure_environment(monkeypatch, aws, tmp_path, document)
    return ApiClient()


def test_with_credentials_huawei_callback_is_verified_by_fetching_the_job(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    # Given a signed callback whose body says pass, while Huawei's API says block
    api = configure(aws, monkeypatch, tmp_path, simulator)
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    body = huawei_callback_saying_pass("hv-1")

    response = api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(SEED, body)})

    # Then the verdict is the API's, fetched within the callback
    assert response.status == 200
    assert api.get_job("huawei-video", "hv-1").body["suggestion"] == "block"
    assert [m["verdict"]["suggestion"] for m in aws.published()] == ["block"]
    assert len(simulator.requests("huawei-video")) == 1


def test_trust_body_takes_the_verdict_from_the_callback(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    api = configure(aws, monkeypatch, tmp_path, simulator, trust="body")
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    body = huawei_callback_saying_pass("hv-1")

    api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(SEED, body)})

    assert api.get_job("huawei-video", "hv-1").body["suggestion"] == "pass"
    assert simulator.requests("huawei-video") == []


def test_failed_fetch_acknowledges_the_callback_and_leaves_the_job_due(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    api = configure(aws, monkeypatch, tmp_path, simulator)
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    simulator.inject("huawei-video", "error:503", times=5)
    body = huawei_callback_saying_pass("hv-1")

    response = api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(SEED, body)})

    assert response.status == 200
    job = api.get_job("huawei-video", "hv-1").body
    assert job["status"] == "pending"
    (item,) = aws.table_items()
    assert item["poll_provider"]["S"] == "huawei-video"
    assert aws.published() == []


def test_mns_notice_fetches_the_alibaba_job_within_the_deadline(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
) -> None:
    api = configure(aws, monkeypatch, tmp_path, simulator)
    simulator.put_job("alibaba-mps", "am-1", alibaba_job("am-1", "Success", "block", timeline_entries=3))
    body = mns_notification("am-1")

    response = api.invoke(
        api_event(
            "POST",
            "/callbacks/alibaba-mps",
            resource="/callbacks/{provider}",
            path_parameters={"provider": "alibaba-mps"},
            body=body,
            headers=mns.sign("/v1/callbacks/alibaba-mps", body),
        )
    )

    assert response.status == 204
    assert api.get_job("alibaba-mps", "am-1").body["status"] == "succeeded"
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["am-1"]


def test_with_credentials_an_azure_reviewer_decision_is_taken_from_the_body_and_a_job_callback_is_fetched(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    token = "azure-fetch-test-token-0001"
    entry = {**simulator.provider_entry("azure-review"), "callback": {"tokens": [token]}}
    configure_environment(monkeypatch, aws, tmp_path, {"azure-review": entry})
    api = ApiClient()
    review = load_payload("azure-review", "review-callback")
    job_callback = load_payload("azure-review", "job-callback")
    simulator.put_job(
        "azure-review", job_callback["JobId"], azure_job(job_callback["JobId"], "Complete", adult_score=0.95)
    )

    # A reviewer's decision: there is no API to fetch it from (the jobs API does not know review ids)
    response = api.callback("azure-review", json.dumps(review).encode(), query={"token": token})

    assert response.status == 200
    verdict = api.get_job("azure-review", review["ReviewId"]).body
    assert (verdict["status"], verdict["decided_by"]) == ("succeeded", "reviewer")
    assert simulator.requests("azure-review") == []

    # A job callback under the same trust setting is still verified by fetching the job
    response = api.callback("azure-review", json.dumps(job_callback).encode(), query={"token": token})

    assert response.status == 200
    assert api.get_job("azure-review", job_callback["JobId"]).body["suggestion"] == "block"
    assert len(simulator.requests("azure-review")) == 1
    assert sorted(m["verdict"]["decided_by"] for m in aws.published()) == ["policy", "reviewer"]
