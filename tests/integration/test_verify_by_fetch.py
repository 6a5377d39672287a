"""How far a callback body is trusted: 'fetch' takes the verdict from the provider's API, 'body' from the body."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.helpers import (
    answering,
    aws_response,
    emf_counts,
    hooked_sessions,
    huawei_signature,
    load_payload,
    mns_push_event,
)
from tests.integration.conftest import ApiClient, ApiResponse, configure_environment
from verdict_relay.clients.base import FetchResult, ProviderUnavailableError
from verdict_relay.config import Settings
from verdict_relay.handlers.dependencies import build, dependencies
from verdict_relay.local.callback_signing import MnsSigner, mns_notification
from verdict_relay.local.simulator import IAM, ProviderSimulator, alibaba_job, azure_job, huawei_video_job
from verdict_relay.logic import callbacks
from verdict_relay.logic.poller import CycleReport
from verdict_relay.models.verdict import JobStatus
from verdict_relay.providers.base import CallbackResult

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
    # A job the provider does not know is expired at once (no grace): these tests are about which such jobs are
    # expired and which deleted; the grace for jobs created lately has tests of its own (test_polling.py).
    configure_environment(monkeypatch, aws, tmp_path, document, UNKNOWN_JOB_GRACE_SECONDS="0")
    return ApiClient()


AZURE_TOKEN = "azure-fetch-test-token-0001"


def configure_azure(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator, **entry: Any
) -> tuple[ApiClient, str]:
    """Azure with API credentials (trust: fetch unless ``entry`` says otherwise) and its callback token."""
    document = {
        "azure-review": {
            **simulator.provider_entry("azure-review"),
            "callback": {"tokens": [AZURE_TOKEN]},
            **entry,
        }
    }
    configure_environment(monkeypatch, aws, tmp_path, document)
    return ApiClient(), AZURE_TOKEN


def mns_push(api: ApiClient, mns: MnsSigner, job_id: str) -> ApiResponse:
    body = mns_notification(job_id)
    return api.invoke(mns_push_event(body, mns.sign("/v1/callbacks/alibaba-mps", body)))


def huawei_callback_without_its_result(job_id: str) -> bytes:
    """A signed callback's body saying succeeded with no result: one the adapter cannot read a verdict from."""
    payload = load_payload("huawei-video", "succeeded")
    payload["job_id"] = job_id
    del payload["result"]
    return json.dumps(payload).encode()


def callback_naming_a_finished_job(
    api: ApiClient,
    simulator: ProviderSimulator,
    mns: MnsSigner,
    provider: str,
    job_id: str,
    created: datetime,
    finished: datetime,
) -> ApiResponse:
    """A block job the provider has, finished at ``finished``, named by a callback: a signed Huawei callback
    whose body says pass, or an MPS notice."""
    if provider == "huawei-video":
        job = huawei_video_job(job_id, "succeeded", "block", created=created, updated=finished)
    else:
        job = alibaba_job(job_id, "Success", "block", created=created, finished=finished)
    simulator.put_job(provider, job_id, job)
    if provider == "huawei-video":
        body = huawei_callback_saying_pass(job_id)
        return api.callback(provider, body, headers={"X-Auth-Signature": huawei_signature(SEED, body)})
    return mns_push(api, mns, job_id)


@pytest.mark.parametrize(
    ("finished_ago", "stored"),
    [(timedelta(days=45, minutes=1), False), (timedelta(days=44), True)],
    ids=["half-the-retention-ago-a-replay", "within-it"],
)
@pytest.mark.parametrize("provider", ["huawei-video", "alibaba-mps"])
def test_a_fetched_job_the_store_does_not_hold_is_taken_only_if_it_finished_within_half_the_retention(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
    capsys: pytest.CaptureFixture[str],
    provider: str,
    finished_ago: timedelta,
    stored: bool,
) -> None:
    # Given a block job the provider still has, which finished finished_ago, and the store does not hold:
    # deleted with its verdict at the end of its retention (or never heard of)
    api = configure(aws, monkeypatch, tmp_path, simulator)
    finished = datetime.now(UTC) - finished_ago
    capsys.readouterr()

    # When a callback names it: a captured Huawei callback replayed, an MPS notice any account can have MNS sign
    response = callback_naming_a_finished_job(
        api, simulator, mns, provider, "old-1", finished - timedelta(minutes=5), finished
    )

    # Then it is acknowledged, and the job fetched; its verdict stored and published only if it finished within
    # half the (default 90-day) retention: a job deleted at its end finished longer ago. Else nothing is stored,
    # counted CallbackForRetiredJob
    assert response.status < 300
    assert len(simulator.requests(provider)) == 1
    assert (api.get_job(provider, "old-1").status == 200) is stored
    assert [m["verdict"]["suggestion"] for m in aws.published()] == (["block"] if stored else [])
    retired = emf_counts(capsys.readouterr().out, service="verdict-relay").get("CallbackForRetiredJob", 0)
    assert retired == (0 if stored else 1)


@pytest.mark.parametrize("provider", ["huawei-video", "alibaba-mps"])
def test_a_fetched_job_said_to_finish_late_in_the_year_9999_is_stored_not_a_server_error(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
    provider: str,
) -> None:
    # Given a block job the store does not hold, whose provider says it finished at the end of the calendar
    # (a time a datetime holds, and half the retention after it does not)
    api = configure(aws, monkeypatch, tmp_path, simulator)
    finished = datetime(9999, 12, 31, tzinfo=UTC)

    # When a callback names it
    created = datetime.now(UTC) - timedelta(minutes=5)
    response = callback_naming_a_finished_job(api, simulator, mns, provider, "late-1", created, finished)

    # Then it is acknowledged, stored and published once: a job that finished in the future is no replay
    assert response.status < 300
    assert api.get_job(provider, "late-1").status == 200
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["late-1"]


@pytest.mark.parametrize(
    "callback_body",
    [huawei_callback_saying_pass, huawei_callback_without_its_result],
    ids=["saying-pass", "result-unreadable"],
)
def test_with_credentials_huawei_callback_is_verified_by_fetching_the_job(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    callback_body: Callable[[str], bytes],
) -> None:
    # Given a signed callback whose body says pass, or whose result the adapter cannot read (trust: fetch never
    # uses it), for a job nobody registered that Huawei's API says is block
    api = configure(aws, monkeypatch, tmp_path, simulator)
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    body = callback_body("hv-1")

    response = api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(SEED, body)})

    # Then the verdict is the API's, fetched within the callback
    assert response.status == 200
    assert api.get_job("huawei-video", "hv-1").body["suggestion"] == "block"
    assert [m["verdict"]["suggestion"] for m in aws.published()] == ["block"]
    assert len(simulator.requests("huawei-video")) == 1
    # kept, for audit, with the payload it came from: the API's answer, not the callback's body
    raw = dependencies().store.raw_payload("huawei-video", "hv-1")
    assert raw is not None
    assert json.loads(raw)["result"]["suggestion"] == "block"
    assert raw != body


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


def test_a_fetched_verdict_the_archive_refuses_answers_503_and_leaves_the_job_due(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a result too large for its item (so archived in S3), and S3 refusing every put while the table works
    puts: list[str] = []

    def s3_refuses(request: Any, **_: Any) -> Any:
        puts.append(request.url)
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return aws_response(request, 503, body, "application/xml")

    hooked_sessions(monkeypatch, "before-send.s3.PutObject", s3_refuses)
    api = configure(aws, monkeypatch, tmp_path, simulator)
    # A 2-hour video whose frames carry text that compresses poorly: too large for its item
    job = huawei_video_job("hv-big", "succeeded", "block", frames=1440)
    for i, frame in enumerate(job["result"]["image_detail"]):
        frame["ocr_text"] = f"{random.Random(i).getrandbits(2048):0512x}"
    simulator.put_job("huawei-video", "hv-big", job)
    body = huawei_callback_saying_pass("hv-big")

    # When its callback (for a job nobody registered: Huawei v3 jobs are not discovered) comes
    response = api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(SEED, body)})

    # Then the sender is asked to send it again, and should it give up, the poller still has the job to poll
    assert response.status == 503
    assert puts
    due = list(
        build(Settings.from_env(), load_providers=False).store.due_jobs("huawei-video", datetime.now(UTC))
    )
    assert [job.job_id for job in due] == ["hv-big"]
    assert aws.published() == []
    # and the log names the job not stored (the 503's own line names only the provider)
    (warning,) = [r for r in caplog.records if r.getMessage() == "fetched jobs not stored: storage failed"]
    assert (vars(warning)["provider"], vars(warning)["job_ids"]) == ("huawei-video", ["hv-big"])


def test_a_fetch_that_would_wait_for_the_rate_limit_past_the_deadline_leaves_the_job_due_unsent(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a Huawei account limited to one request in 10 s, all of which a receiver container may take (its
    # share is a tenth, or a request a second, within the provider's own limit): one token in 10 s
    api = configure(aws, monkeypatch, tmp_path, simulator, rate_limit_per_s=0.1)
    for job_id in ("hv-1", "hv-2"):
        simulator.put_job("huawei-video", job_id, huawei_video_job(job_id, "succeeded", "block"))
    first, second = (huawei_callback_saying_pass(job_id) for job_id in ("hv-1", "hv-2"))
    assert (
        api.callback(
            "huawei-video", first, headers={"X-Auth-Signature": huawei_signature(SEED, first)}
        ).status
        == 200
    )

    # When a second callback comes before the next token
    caplog.clear()
    response = api.callback(
        "huawei-video", second, headers={"X-Auth-Signature": huawei_signature(SEED, second)}
    )

    # Then it is acknowledged, its job left due for the poller because the fetch had no time for the rate limit,
    # and no request went out for it (that no time is slept for a token that would come too late is
    # test_ratelimit.py's, on a fake clock)
    assert response.status == 200
    (warning,) = [r for r in caplog.records if r.getMessage() == "fetch after callback failed; job left due"]
    assert (vars(warning)["job_ids"], vars(warning)["code"]) == (["hv-2"], "provider_out_of_time")
    assert api.get_job("huawei-video", "hv-2").body["status"] == "pending"
    assert len(simulator.requests("huawei-video")) == 1


def test_two_callbacks_half_a_second_apart_are_both_fetched_at_the_default_rate(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    # Given Huawei video at its default rate (5/s, of which a tenth is 0.5/s), and two finished jobs
    api = configure(aws, monkeypatch, tmp_path, simulator)
    for job_id in ("hv-1", "hv-2"):
        simulator.put_job("huawei-video", job_id, huawei_video_job(job_id, "succeeded", "block"))

    # When their callbacks reach one receiver container half a second apart
    for job_id in ("hv-1", "hv-2"):
        body = huawei_callback_saying_pass(job_id)
        headers = {"X-Auth-Signature": huawei_signature(SEED, body)}
        assert api.callback("huawei-video", body, headers=headers).status == 200
        time.sleep(0.5)

    # Then the second is fetched too (the container's share is at least a request a second), not left due
    assert [api.get_job("huawei-video", j).body["suggestion"] for j in ("hv-1", "hv-2")] == ["block", "block"]


def test_an_iam_users_callback_fetch_after_a_cold_start_gets_its_token_and_the_job(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    # Given an IAM user whose receiver has no token yet (a cold start), and a finished job Huawei blocked
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    credentials = simulator.provider_entry("huawei-video", auth="iam")["credentials"]
    api = configure(aws, monkeypatch, tmp_path, simulator, credentials=credentials)
    body = huawei_callback_saying_pass("hv-1")

    # When Huawei delivers a signed callback, verified by fetching the job
    response = api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(SEED, body)})

    # Then the token request does not spend the API's rate limit: the job is fetched within the callback
    assert response.status == 200
    assert [r.status for r in simulator.requests(IAM)] == [201]
    assert [r.status for r in simulator.requests("huawei-video")] == [200]
    assert api.get_job("huawei-video", "hv-1").body["suggestion"] == "block"


def test_an_iam_token_answer_without_a_token_object_acknowledges_the_callback_and_leaves_the_job_due(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    # Given an IAM user whose IAM issues a token with {"token": null} for its body
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    with answering(201, b'{"token": null}', headers={"X-Subject-Token": "issued-token"}) as iam:
        credentials = simulator.provider_entry("huawei-video", auth="iam", credentials={"iam_endpoint": iam})
        api = configure(aws, monkeypatch, tmp_path, simulator, credentials=credentials["credentials"])
        body = huawei_callback_saying_pass("hv-1")

        # When Huawei delivers a signed callback, which is verified by fetching the job
        response = api.callback(
            "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(SEED, body)}
        )

    # Then it is acknowledged, not answered 500, and the job waits for the poller
    assert response.status == 200
    assert api.get_job("huawei-video", "hv-1").body["status"] == "pending"
    (item,) = aws.table_items()
    assert item["poll_provider"]["S"] == "huawei-video"
    assert aws.published() == []
    assert simulator.requests("huawei-video") == []


def test_mns_notice_fetches_the_alibaba_job_within_the_deadline(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
) -> None:
    api = configure(aws, monkeypatch, tmp_path, simulator)
    simulator.put_job("alibaba-mps", "am-1", alibaba_job("am-1", "Success", "block", timeline_entries=3))

    response = mns_push(api, mns, "am-1")

    assert response.status == 204
    assert api.get_job("alibaba-mps", "am-1").body["status"] == "succeeded"
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["am-1"]


def test_with_credentials_an_azure_reviewer_decision_is_taken_from_the_body_and_a_job_callback_is_fetched(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    api, token = configure_azure(aws, monkeypatch, tmp_path, simulator)
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


def test_with_trust_body_a_callback_whose_result_cannot_be_read_is_refused_and_nothing_fetched(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    api = configure(aws, monkeypatch, tmp_path, simulator, trust="body")
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    body = huawei_callback_without_its_result("hv-1")

    response = api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(SEED, body)})

    # The body is the verdict with trust: body, and this one has none: refused, nothing stored or fetched
    assert response.status == 422
    assert response.body["error"]["code"] == "invalid_payload"
    assert "'result'" in response.body["error"]["message"]
    assert aws.table_items() == []
    assert simulator.requests("huawei-video") == []


def test_with_trust_fetch_a_body_naming_no_job_is_refused_and_nothing_fetched(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    # Given a Huawei route authenticated by a URL token (no seed: no signed fields checked before parsing)
    token = "huawei-fetch-test-token-01"
    api = configure(aws, monkeypatch, tmp_path, simulator, callback={"tokens": [token]})
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    payload = json.loads(huawei_callback_without_its_result("hv-1"))
    payload["job_id"] = ""  # no job's id: nothing to fetch

    response = api.callback("huawei-video", json.dumps(payload).encode(), query={"token": token})

    assert response.status == 422
    assert response.body["error"]["code"] == "invalid_payload"
    assert aws.table_items() == []
    assert simulator.requests("huawei-video") == []


def test_with_trust_fetch_an_azure_job_callback_whose_metadata_cannot_be_read_still_has_its_job_fetched(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    api, token = configure_azure(aws, monkeypatch, tmp_path, simulator)
    job_callback = load_payload("azure-review", "job-callback")
    job_id = job_callback["JobId"]
    simulator.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.95))
    job_callback["Metadata"] = {"adultscore": "not a score"}

    response = api.callback("azure-review", json.dumps(job_callback).encode(), query={"token": token})

    assert response.status == 200
    assert api.get_job("azure-review", job_id).body["suggestion"] == "block"
    assert [m["verdict"]["job_id"] for m in aws.published()] == [job_id]


@pytest.mark.parametrize("trust", ["fetch", "body"])
def test_a_reviewers_decision_whose_review_id_is_a_followed_jobs_id_is_refused_and_decides_nothing(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator, trust: str
) -> None:
    # Given a registered Azure job that Azure reports running
    api, token = configure_azure(aws, monkeypatch, tmp_path, simulator, trust=trust)
    job_callback = load_payload("azure-review", "job-callback")
    job_id = job_callback["JobId"]
    simulator.put_job("azure-review", job_id, azure_job(job_id, "InProgress"))
    assert api.register({"provider": "azure-review", "job_id": job_id}).status == 201

    # When whoever holds the callback token sends a "review" under that job's id (review and job ids share
    # the store's key space), tagging nothing: a pass
    forged = {
        "ReviewId": job_id,
        "CallBackType": "Review",
        "ReviewerResultTags": {"a": "False", "r": "False"},
    }
    response = api.callback("azure-review", json.dumps(forged).encode(), query={"token": token})

    # Then it is refused, and the job is left unfinished
    assert response.status == 409
    assert response.body["error"]["code"] == "id_conflict"
    assert api.get_job("azure-review", job_id).body["status"] == "pending"

    # And Azure's own result, when the job ends, is its verdict
    simulator.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.95))
    job_callback["Metadata"] = {"adultscore": "0.95", "a": "True", "racyscore": "0.1", "r": "False"}
    assert (
        api.callback("azure-review", json.dumps(job_callback).encode(), query={"token": token}).status == 200
    )
    stored = api.get_job("azure-review", job_id).body
    assert (stored["suggestion"], stored["decided_by"]) == ("block", "policy")
    assert [m["verdict"]["decided_by"] for m in aws.published()] == ["policy"]


def test_a_reviewers_revised_decision_is_still_kept_as_a_conflict_record(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    api, token = configure_azure(aws, monkeypatch, tmp_path, simulator)
    review = load_payload("azure-review", "review-callback")
    assert api.callback("azure-review", json.dumps(review).encode(), query={"token": token}).status == 200

    # When the reviewer changes their mind and Azure calls back again
    revised = {**review, "ReviewerResultTags": {k: "False" for k in review["ReviewerResultTags"]}}
    response = api.callback("azure-review", json.dumps(revised).encode(), query={"token": token})

    # Then the first decision stands, and the revision is kept beside it (its only copy)
    assert response.status == 200
    assert len([i for i in aws.table_items() if i["pk"]["S"] == f"azure-review#{review['ReviewId']}"]) == 2


# --- callbacks for jobs the store does not hold, or holds as finished --------------------------------------------


def test_mns_notice_for_a_job_neither_the_store_nor_mps_knows_stores_nothing(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
) -> None:
    # Given a signed MNS push naming a job id nobody registered and MPS does not know (MNS signs every
    # account's pushes alike, so anyone's topic can send one)
    api = configure(aws, monkeypatch, tmp_path, simulator)

    # When it arrives
    response = mns_push(api, mns, "someone-elses-job")

    # Then MNS gets its 204 (so it stops re-sending), MPS was asked once, and nothing is stored or published
    assert response.status == 204
    assert len(simulator.requests("alibaba-mps")) == 1
    assert aws.table_items() == []
    assert aws.published() == []
    assert api.get_job("alibaba-mps", "someone-elses-job").status == 404


def test_mns_notice_for_a_registered_job_mps_no_longer_knows_expires_it(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
) -> None:
    api = configure(aws, monkeypatch, tmp_path, simulator)
    assert api.register({"provider": "alibaba-mps", "job_id": "am-gone"}).status == 201

    response = mns_push(api, mns, "am-gone")

    assert response.status == 204
    assert api.get_job("alibaba-mps", "am-gone").body["status"] == "expired"
    assert [m["verdict"]["status"] for m in aws.published()] == ["expired"]


def test_mns_notice_for_a_job_registered_lately_that_mps_does_not_know_leaves_it_due(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
) -> None:
    # Given the default grace (an hour) and a job registered now that MPS does not know (a wrong region, say)
    api = configure(aws, monkeypatch, tmp_path, simulator)
    monkeypatch.setenv("UNKNOWN_JOB_GRACE_SECONDS", "3600")
    dependencies.cache_clear()
    assert api.register({"provider": "alibaba-mps", "job_id": "am-lately"}).status == 201

    response = mns_push(api, mns, "am-lately")

    # Then it is acknowledged and left due for the poller, neither expired nor published
    assert response.status == 204
    assert api.get_job("alibaba-mps", "am-lately").body["status"] == "pending"
    assert [j.job_id for j in dependencies().store.due_jobs("alibaba-mps", datetime.now(UTC))] == [
        "am-lately"
    ]
    assert aws.published() == []


def test_mns_notice_whose_fetch_fails_leaves_the_job_due_for_the_poller(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
) -> None:
    api = configure(aws, monkeypatch, tmp_path, simulator)
    simulator.inject("alibaba-mps", "error:503", times=5)

    response = mns_push(api, mns, "am-1")

    assert response.status == 204
    (item,) = aws.table_items()
    assert (item["job_id"]["S"], item["status"]["S"], item["poll_provider"]["S"]) == (
        "am-1",
        "pending",
        "alibaba-mps",
    )
    assert aws.published() == []


@pytest.fixture
def fetching_api(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> ApiClient:
    """The receiver with the simulated providers' API credentials (``configure``'s document)."""
    return configure(aws, monkeypatch, tmp_path, simulator)


def notice_while_mps_fails(api: ApiClient, simulator: ProviderSimulator, mns: MnsSigner, job_id: str) -> None:
    """A signed MNS push naming ``job_id``, acknowledged while MPS answers its fetch with a 503."""
    simulator.inject("alibaba-mps", "error:503", times=1)
    assert mns_push(api, mns, job_id).status == 204


def finished_block_job_noticed_while_mps_fails(
    api: ApiClient, simulator: ProviderSimulator, mns: MnsSigner, job_id: str, finished_ago: timedelta
) -> datetime:
    """A block job MPS keeps, finished ``finished_ago``, and a notice naming it acknowledged while MPS answers
    its fetch with a 503 (the job left due unconfirmed); when it finished."""
    finished = datetime.now(UTC) - finished_ago
    job = alibaba_job(job_id, "Success", "block", created=finished - timedelta(minutes=5), finished=finished)
    simulator.put_job("alibaba-mps", job_id, job)
    notice_while_mps_fails(api, simulator, mns, job_id)
    return finished


def job_items(aws: FakeAws) -> list[dict[str, Any]]:
    """The table's jobs (not the poller's discovery watermark)."""
    return [item for item in aws.table_items() if "job_id" in item]


def poll_once() -> CycleReport:
    """One poll cycle of the production wiring, on the environment ``configure`` set."""
    return build(Settings.from_env()).poller().run_cycle(lambda: 600.0)


def test_a_notice_naming_a_job_nobody_has_while_mps_cannot_be_asked_is_deleted_not_published(
    aws: FakeAws, fetching_api: ApiClient, simulator: ProviderSimulator, mns: MnsSigner
) -> None:
    api = fetching_api
    # Given a notice any Alibaba account could have MNS sign, naming an id nobody registered, while MPS fails
    notice_while_mps_fails(api, simulator, mns, "foreign-1")
    assert [i["job_id"]["S"] for i in aws.table_items()] == ["foreign-1"]  # left due: it may be real

    # When the poller asks MPS, which does not know it
    poll_once()

    # Then it is deleted, not expired: no verdict stored, nothing published
    assert job_items(aws) == []
    assert aws.published() == []
    assert api.get_job("alibaba-mps", "foreign-1").status == 404


def test_a_notice_naming_a_job_nobody_has_that_mps_knows_when_the_poller_asks_is_followed_to_its_verdict(
    aws: FakeAws, fetching_api: ApiClient, simulator: ProviderSimulator, mns: MnsSigner
) -> None:
    api = fetching_api
    # Given a real job's notice whose fetch failed, and MPS saying it is running when the poller first asks
    notice_while_mps_fails(api, simulator, mns, "am-real")
    simulator.put_job("alibaba-mps", "am-real", alibaba_job("am-real", "Analysing"))
    poll_once()

    # When MPS later no longer knows it (deleted), at the next poll
    simulator.remove_job("alibaba-mps", "am-real")
    (item,) = job_items(aws)
    assert item["status"]["S"] == "running"
    assert "unconfirmed" not in item  # MPS's answer vouched for it
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": item["pk"], "sk": item["sk"]},
        UpdateExpression="SET next_poll_at = :now",
        ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
    )
    poll_once()

    # Then it is expired and published as any job MPS once answered for
    assert [(m["verdict"]["job_id"], m["verdict"]["status"]) for m in aws.published()] == [
        ("am-real", "expired")
    ]


@pytest.mark.parametrize("answered_by", ["the-poller", "a-second-notice"])
def test_a_notice_naming_a_job_that_finished_too_long_ago_while_mps_cannot_be_asked_stores_nothing(
    aws: FakeAws,
    fetching_api: ApiClient,
    simulator: ProviderSimulator,
    mns: MnsSigner,
    caplog: pytest.LogCaptureFixture,
    answered_by: str,
) -> None:
    api = fetching_api
    # Given a block job MPS still keeps, finished 46 days ago (past half the default 90-day retention: one the
    # store deleted with its verdict), and a notice naming it acknowledged while MPS failed: left due unconfirmed
    finished_block_job_noticed_while_mps_fails(api, simulator, mns, "am-old", timedelta(days=46))
    assert [i["job_id"]["S"] for i in job_items(aws)] == ["am-old"]
    caplog.clear()

    # When MPS answers for it: to the poller, or to the fetch after a second notice
    if answered_by == "the-poller":
        report = poll_once().providers["alibaba-mps"]
        assert (report.retired, report.resolved) == (1, 0)  # deleted, not counted as a resolved job
    else:
        assert mns_push(api, mns, "am-old").status == 204

    # Then its answer is not stored: the job is deleted, nothing published, and the warning names it
    assert job_items(aws) == []
    assert aws.published() == []
    retired = [r for r in caplog.records if r.getMessage().startswith("callback for a job that finished")]
    assert [getattr(r, "job_id", None) for r in retired] == ["am-old"]


def test_a_notice_that_came_as_its_job_finished_is_stored_however_long_mps_could_not_be_asked(
    aws: FakeAws,
    fetching_api: ApiClient,
    simulator: ProviderSimulator,
    mns: MnsSigner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a 1-day retention (half of it, 12 h, the window past which a callback for a job the store does not
    # hold is retired), and a block job MPS finished 13 h ago whose notice came as it finished while MPS failed:
    # left due unconfirmed, with MPS out of reach since
    monkeypatch.setenv("RETENTION_DAYS", "1")
    api = fetching_api
    finished = finished_block_job_noticed_while_mps_fails(api, simulator, mns, "am-late", timedelta(hours=13))
    (item,) = job_items(aws)
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": item["pk"], "sk": item["sk"]},
        UpdateExpression="SET created_at = :at",
        ExpressionAttributeValues={":at": {"S": finished.isoformat()}},
    )

    # When MPS answers the poller at last
    poll_once()

    # Then the verdict is stored and published: the notice came in time, it only waited for MPS
    assert [(m["verdict"]["job_id"], m["verdict"]["suggestion"]) for m in aws.published()] == [
        ("am-late", "block")
    ]


def test_a_notice_naming_a_job_nobody_had_then_registered_is_expired_when_mps_does_not_know_it(
    aws: FakeAws, fetching_api: ApiClient, simulator: ProviderSimulator, mns: MnsSigner
) -> None:
    api = fetching_api
    # Given a notice whose fetch failed for an id nobody had, then registered by the platform
    notice_while_mps_fails(api, simulator, mns, "am-registered")
    assert api.register({"provider": "alibaba-mps", "job_id": "am-registered"}).status == 200

    # When the poller asks MPS, which does not know it
    poll_once()

    # Then the registration vouched for it: expired and published, as a registered job is
    assert [(m["verdict"]["job_id"], m["verdict"]["status"]) for m in aws.published()] == [
        ("am-registered", "expired")
    ]


def test_a_second_notice_for_an_unconfirmed_job_mps_does_not_know_deletes_it(
    aws: FakeAws, fetching_api: ApiClient, simulator: ProviderSimulator, mns: MnsSigner
) -> None:
    api = fetching_api
    # Given an id nobody had, held after a notice whose fetch failed
    notice_while_mps_fails(api, simulator, mns, "foreign-2")

    # When the same notice comes again and MPS answers that it does not know the job
    assert mns_push(api, mns, "foreign-2").status == 204

    # Then the job is deleted within the callback, nothing published
    assert aws.table_items() == []
    assert aws.published() == []


def test_notices_for_jobs_mps_does_not_know_are_counted_for_the_unknown_jobs_alarm(
    aws: FakeAws,
    fetching_api: ApiClient,
    simulator: ProviderSimulator,
    mns: MnsSigner,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = fetching_api
    # Given a notice naming an id nobody had, held after its fetch failed
    notice_while_mps_fails(api, simulator, mns, "foreign-4")
    capsys.readouterr()

    # When notices come that MPS answers it does not know: one for a job the store does not hold either, and
    # the held one again
    assert mns_push(api, mns, "never-registered").status == 204
    assert mns_push(api, mns, "foreign-4").status == 204

    # Then each is counted CallbackForUnknownJob, which JobsUnknownAlarm reads (a providers document naming the
    # wrong region makes MPS deny every job its notices name), and nothing is stored or published
    counts = emf_counts(capsys.readouterr().out, service="verdict-relay")
    assert counts.get("CallbackForUnknownJob") == 2
    assert aws.table_items() == []
    assert aws.published() == []


def test_two_writers_told_that_a_held_notice_job_is_unknown_delete_it_once_and_publish_nothing(
    aws: FakeAws, fetching_api: ApiClient, simulator: ProviderSimulator, mns: MnsSigner
) -> None:
    notice_while_mps_fails(fetching_api, simulator, mns, "foreign-3")
    ingest = build(Settings.from_env()).ingest
    now = datetime.now(UTC)

    # When a poll and a later notice's fetch both hear that MPS does not know it, one after the other
    first = ingest.unknown_to_provider("alibaba-mps", "foreign-3", now)
    second = ingest.unknown_to_provider("alibaba-mps", "foreign-3", now)

    # Then the first deletes it and the second does not create it again as expired
    assert (first, second) == ("deleted", "deleted")
    assert job_items(aws) == []
    assert aws.published() == []


def test_a_notice_that_read_its_job_before_it_was_deleted_leaves_it_unconfirmed(
    aws: FakeAws, fetching_api: ApiClient, simulator: ProviderSimulator, mns: MnsSigner
) -> None:
    # Given a held notice job, read as pending by a second notice just before the poller deleted it
    notice_while_mps_fails(fetching_api, simulator, mns, "foreign-4")
    deps = build(Settings.from_env())
    assert deps.store.drop_unconfirmed("alibaba-mps", "foreign-4") == ("deleted", None)

    def mps_down(job_ids: list[str]) -> FetchResult:
        raise ProviderUnavailableError("alibaba-mps: unavailable (HTTP 503)")

    # When that notice's fetch fails too, and it leaves the job due
    callbacks.accept(
        "alibaba-mps",
        CallbackResult(jobs_to_fetch=["foreign-4"]),
        b"{}",
        "fetch",
        deps.ingest,
        mps_down,
        datetime.now(UTC),
        stored_status=lambda provider, job_id: JobStatus.PENDING,
    )

    # Then it is held unconfirmed again, and the poller deletes it rather than publish it
    (item,) = job_items(aws)
    assert item["unconfirmed"] == {"BOOL": True}
    poll_once()
    assert job_items(aws) == []
    assert aws.published() == []


def test_a_held_notice_job_mps_answers_for_with_the_same_status_is_confirmed(
    aws: FakeAws, fetching_api: ApiClient, simulator: ProviderSimulator, mns: MnsSigner
) -> None:
    # Given a held notice job (pending), then MPS answering a second notice's fetch: still queuing
    notice_while_mps_fails(fetching_api, simulator, mns, "am-queued")
    simulator.put_job("alibaba-mps", "am-queued", alibaba_job("am-queued", "Queuing"))
    assert mns_push(fetching_api, mns, "am-queued").status == 204

    # Then MPS vouched for it: when MPS later no longer knows it, it is expired and published, not deleted
    (item,) = job_items(aws)
    assert "unconfirmed" not in item
    simulator.remove_job("alibaba-mps", "am-queued")
    poll_once()
    assert [(m["verdict"]["job_id"], m["verdict"]["status"]) for m in aws.published()] == [
        ("am-queued", "expired")
    ]


def test_mns_notice_for_an_unfinished_job_stores_its_progress_and_leaves_it_due(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
) -> None:
    api = configure(aws, monkeypatch, tmp_path, simulator)
    simulator.put_job("alibaba-mps", "am-1", alibaba_job("am-1", "Analysing"))

    response = mns_push(api, mns, "am-1")

    assert response.status == 204
    (item,) = aws.table_items()
    assert (item["status"]["S"], item["poll_provider"]["S"]) == ("running", "alibaba-mps")
    assert int(item["next_poll_at"]["N"]) <= int(time.time())


def test_replayed_callbacks_for_a_finished_job_make_no_provider_request(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    simulator: ProviderSimulator,
    mns: MnsSigner,
) -> None:
    # Given a Huawei job and an MPS job, each finished through its callback and one fetch
    api = configure(aws, monkeypatch, tmp_path, simulator)
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    simulator.put_job("alibaba-mps", "am-1", alibaba_job("am-1", "Success", "block"))
    body = huawei_callback_saying_pass("hv-1")
    signed = {"X-Auth-Signature": huawei_signature(SEED, body)}
    assert api.callback("huawei-video", body, headers=signed).status == 200
    assert mns_push(api, mns, "am-1").status == 204
    simulator.clear_requests()

    # When their callbacks are replayed (Huawei's signature has no timestamp; an MNS push re-signed in time)
    huawei = [api.callback("huawei-video", body, headers=signed) for _ in range(5)]
    alibaba = [mns_push(api, mns, "am-1") for _ in range(5)]

    # Then each is acknowledged without asking the provider again, and nothing is published again
    assert {r.status for r in huawei} == {200}
    assert {r.status for r in alibaba} == {204}
    assert simulator.requests("huawei-video") == []
    assert simulator.requests("alibaba-mps") == []
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == ["am-1", "hv-1"]


def test_a_signed_huawei_callback_shifted_to_another_job_id_stores_nothing_huawei_does_not_know(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: ProviderSimulator
) -> None:
    # Given a genuine signed callback for job "hv-12" with request id "r1"
    api = configure(aws, monkeypatch, tmp_path, simulator)
    simulator.put_job("huawei-video", "hv-12", huawei_video_job("hv-12", "succeeded", "block"))
    genuine = load_payload("huawei-video", "succeeded")
    genuine.update(job_id="hv-12", request_id="r1")
    signature = huawei_signature(SEED, json.dumps(genuine).encode())

    # When it is re-sent with the "2" moved from the job id to the request id: the signed message is the same,
    # and no documented format tells where the job id ends
    shifted = {**genuine, "job_id": "hv-1", "request_id": "2r1"}
    response = api.callback(
        "huawei-video", json.dumps(shifted).encode(), headers={"X-Auth-Signature": signature}
    )

    # Then the signature holds, but the job is only fetched: Huawei does not know "hv-1", so nothing is stored
    assert response.status == 200
    assert [r.path.rsplit("/", 1)[-1] for r in simulator.requests("huawei-video")] == ["hv-1"]
    assert aws.table_items() == []
    assert aws.published() == []
