"""The provider clients against the provider simulator, over real HTTP on 127.0.0.1.

What is proven here: each client turns the provider's answers into the adapter's verdicts, "missing" jobs and
the typed errors; the simulator checks every signature and key, so a request the clients sign wrongly is
refused there, not waved through; retries, waits and the rate limiter hold on the wire (the simulator's own
record of what it received is the evidence).
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import alibabacloud_tea_openapi.utils as tea_utils
import pytest
import requests
import urllib3.connection
from aliyunsdkcore.auth.composer import rpc_signature_composer
from aliyunsdkcore.utils import parameter_helper
from darabonba.request import DaraRequest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from tests.helpers import QuietHandler, Received, answering, recording, serving
from verdict_relay.clients.base import (
    FetchResult,
    ProviderAuthError,
    ProviderClient,
    ProviderOutOfTimeError,
    ProviderResponseError,
    ProviderThrottledError,
    ProviderUnavailableError,
    finish_within,
)
from verdict_relay.clients.factory import build_client
from verdict_relay.clients.http import HttpOptions, OutgoingRequest, ProviderHttp
from verdict_relay.clients.huawei import JOB_NOT_FOUND, job_not_found
from verdict_relay.clients.ratelimit import TokenBucket
from verdict_relay.config import ProviderSettings
from verdict_relay.errors import ConfigurationError
from verdict_relay.local.simulator import (
    IAM,
    ProviderSimulator,
    alibaba_job,
    azure_job,
    huawei_audio_job,
    huawei_image_batch_job,
    huawei_video_job,
)
from verdict_relay.models.verdict import PROVIDER_NAMES, JobStatus, Suggestion
from verdict_relay.signing import encode_query, new_nonce, sign_huawei, sign_rpc_v1

# Short waits so the whole file stays fast; the behaviour is the production one.
FAST = HttpOptions(backoff_factor=0.01, backoff_jitter=0.01, read_timeout_s=2.0, max_retry_wait_s=2.0)

Connect = Callable[..., ProviderClient]


@pytest.fixture
def simulator() -> Iterator[ProviderSimulator]:
    with ProviderSimulator() as running:
        yield running


@pytest.fixture
def connect(simulator: ProviderSimulator) -> Iterator[Connect]:
    """Builds a client for a provider pointed at the simulator (through build_client); closes it afterwards."""
    clients: list[ProviderClient] = []

    def make(provider: str, *, options: HttpOptions = FAST, **entry: Any) -> ProviderClient:
        settings = ProviderSettings.model_validate(simulator.provider_entry(provider, **entry))
        client = build_client(provider, settings, options=options)
        assert client is not None
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def statuses(simulator: ProviderSimulator, provider: str) -> list[int]:
    return [request.status for request in simulator.requests(provider)]


FINISHED_SUGGESTION = {
    "huawei-video": Suggestion.BLOCK,
    "huawei-audio": Suggestion.REVIEW,
    "huawei-image-batch": Suggestion.BLOCK,
    "alibaba-mps": Suggestion.BLOCK,
    "azure-review": Suggestion.BLOCK,
}


def put_finished_job(simulator: ProviderSimulator, provider: str, job_id: str) -> None:
    """A finished job whose verdict is FINISHED_SUGGESTION[provider]."""
    bodies = {
        "huawei-video": lambda: huawei_video_job(job_id, "succeeded", "block"),
        "huawei-audio": lambda: huawei_audio_job(job_id, "succeeded", "review"),
        "huawei-image-batch": lambda: huawei_image_batch_job(
            job_id, "finish", [("https://img.example/1.jpg", "block")]
        ),
        "alibaba-mps": lambda: alibaba_job(job_id, "Success", "block"),
        "azure-review": lambda: azure_job(job_id, "Complete", adult_score=0.95, racy_score=0.1),
    }
    simulator.put_job(provider, job_id, bodies[provider]())


# --- Huawei v3 --------------------------------------------------------------------------------------------------


def test_huawei_video_client_reads_running_and_finished_jobs_signed_with_aksk(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    # Given a running job and a finished one that Huawei blocked
    simulator.put_job("huawei-video", "job-running", huawei_video_job("job-running", "running"))
    finished = huawei_video_job("job-done", "succeeded", "block", frames=3)
    simulator.put_job("huawei-video", "job-done", finished)
    client = connect("huawei-video")

    # When each is fetched with an AK/SK-signed request
    running = client.fetch(["job-running"])
    done = client.fetch(["job-done"])

    # Then the verdicts are the adapter's, and the simulator verified both signatures
    assert running.jobs[0].verdict.status is JobStatus.RUNNING
    assert running.jobs[0].verdict.suggestion is None
    verdict = done.jobs[0].verdict
    assert (verdict.job_id, verdict.status, verdict.suggestion) == (
        "job-done",
        JobStatus.SUCCEEDED,
        Suggestion.BLOCK,
    )
    assert verdict.decided_by == "provider"
    assert len([finding for finding in verdict.findings if finding.category == "porn"]) == 3
    assert json.loads(done.jobs[0].raw) == finished
    assert statuses(simulator, "huawei-video") == [200, 200]


def test_huawei_audio_client_authenticates_with_a_static_token(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    simulator.put_job(
        "huawei-audio", "audio-1", huawei_audio_job("audio-1", "succeeded", "review", segments=2)
    )

    result = connect("huawei-audio", auth="token").fetch(["audio-1"])

    verdict = result.jobs[0].verdict
    assert (verdict.status, verdict.suggestion) == (JobStatus.SUCCEEDED, Suggestion.REVIEW)
    assert len(verdict.findings) == 2


def test_huawei_job_the_provider_does_not_know_is_missing(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    result = connect("huawei-video").fetch(["expired-job"])

    assert result.jobs == []
    assert result.missing == ["expired-job"]
    assert statuses(simulator, "huawei-video") == [400]  # AIS.0030


def test_huawei_request_signed_with_a_wrong_secret_is_refused_by_the_provider(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "huawei-video", "job-1")
    client = connect("huawei-video", credentials={"sk": "not-the-secret"})

    with pytest.raises(ProviderAuthError):
        client.fetch(["job-1"])

    assert statuses(simulator, "huawei-video") == [401]  # checked by the simulator, and not retried


def test_huawei_iam_token_is_fetched_once_for_several_requests(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    for job_id in ("job-1", "job-2", "job-3"):
        put_finished_job(simulator, "huawei-video", job_id)
    client = connect("huawei-video", auth="iam")

    for job_id in ("job-1", "job-2", "job-3"):
        assert client.fetch([job_id]).jobs[0].verdict.suggestion is Suggestion.BLOCK

    iam_calls = simulator.requests(IAM)
    assert [(call.method, call.status) for call in iam_calls] == [("POST", 201)]
    assert statuses(simulator, "huawei-video") == [200, 200, 200]


def test_huawei_iam_token_refused_by_the_api_is_fetched_again_once(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "huawei-video", "job-1")
    client = connect("huawei-video", auth="iam")
    client.fetch(["job-1"])

    # Given IAM no longer honours the cached token
    simulator.revoke_tokens()

    # When the client fetches again, it gets a 401, fetches a new token and succeeds
    assert client.fetch(["job-1"]).jobs[0].verdict.suggestion is Suggestion.BLOCK
    assert statuses(simulator, IAM) == [201, 201]
    assert statuses(simulator, "huawei-video") == [200, 401, 200]


def test_concurrent_requests_refused_with_the_same_iam_token_fetch_one_new_token() -> None:
    # Answers take 0.5 s, so all four requests are out with the revoked token before the first 401 is back.
    with ProviderSimulator(latency_s=0.5) as slow:
        job_ids = [f"job-{i}" for i in range(4)]
        for job_id in job_ids:
            put_finished_job(slow, "huawei-video", job_id)
        settings = ProviderSettings.model_validate(slow.provider_entry("huawei-video", auth="iam"))
        client = build_client("huawei-video", settings, options=FAST)
        assert client is not None
        client.fetch(["job-0"])
        slow.revoke_tokens()

        with ThreadPoolExecutor(max_workers=4) as pool:
            fetched = list(pool.map(lambda job_id: client.fetch([job_id]), job_ids))
        client.close()

        assert [result.jobs[0].verdict.suggestion for result in fetched] == [Suggestion.BLOCK] * 4
        assert statuses(slow, "huawei-video").count(401) == 4
        # The first 401 renews the token; the others retry with it instead of each fetching another.
        assert statuses(slow, IAM) == [201, 201]


def test_huawei_iam_token_within_an_hour_of_expiry_is_not_reused(connect: Connect) -> None:
    # A token valid 30 minutes is already inside the one-hour renewal margin: every call fetches a fresh one.
    with ProviderSimulator(iam_token_ttl_s=1800) as short_lived:
        put_finished_job(short_lived, "huawei-video", "job-1")
        settings = ProviderSettings.model_validate(short_lived.provider_entry("huawei-video", auth="iam"))
        client = build_client("huawei-video", settings, options=FAST)
        assert client is not None
        client.fetch(["job-1"])
        client.fetch(["job-1"])
        client.close()
        assert statuses(short_lived, IAM) == [201, 201]


def test_huawei_iam_user_with_a_wrong_password_is_an_auth_error(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    client = connect("huawei-video", auth="iam", credentials={"password": "wrong-password"})

    with pytest.raises(ProviderAuthError):
        client.fetch(["job-1"])

    assert statuses(simulator, IAM) == [401]
    assert simulator.requests("huawei-video") == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"token": null}',
        b'{"token": "a-token"}',
        b'{"token": []}',
        b"[]",
        b'"token"',
        b'{"token": {"expires_at": null}}',
        b'{"token": {"expires_at": 1767225600}}',
        b'{"token": {"expires_at": "tomorrow"}}',
        b'{"token": {"expires_at": "0001-01-01T00:30:00Z"}}',  # its renewal time is before year 1
    ],
    ids=[
        "token-null",
        "token-string",
        "token-list",
        "list",
        "string",
        "expires-null",
        "expires-number",
        "expires-unreadable",
        "expires-at-year-1",
    ],
)
def test_an_iam_token_answer_of_an_odd_shape_is_a_response_error_and_nothing_is_sent(
    simulator: ProviderSimulator, connect: Connect, body: bytes
) -> None:
    # Given IAM issuing a token (201, X-Subject-Token) with a body that does not say when it expires
    put_finished_job(simulator, "huawei-video", "job-1")
    with answering(201, body, headers={"X-Subject-Token": "issued-token"}) as iam:
        client = connect("huawei-video", auth="iam", credentials={"iam_endpoint": iam})

        # When a job is fetched, Then the poller gets an unreadable answer, not a crash
        with pytest.raises(ProviderResponseError, match="expires_at"):
            client.fetch(["job-1"])

    assert simulator.requests("huawei-video") == []


def answers(answer: Callable[[str], tuple[int, Any, dict[str, str]]]) -> Callable[[str], Any]:
    """``answer``, its JSON body encoded, for :func:`recording`."""

    def encoded(path: str) -> tuple[int, bytes, dict[str, str]]:
        status, payload, headers = answer(path)
        return status, json.dumps(payload).encode(), headers

    return encoded


def requests_of_a_fetch(
    simulator: ProviderSimulator, provider: str, answer: Callable[[str], tuple[int, Any, dict[str, str]]]
) -> list[Received]:
    """What the provider's client sends to fetch job-1 from an API answering ``answer``."""
    seen: list[Received] = []
    with recording(answers(answer), seen) as url:
        settings = ProviderSettings.model_validate(simulator.provider_entry(provider, endpoint=url))
        client = build_client(provider, settings, options=FAST)
        assert client is not None
        client.fetch(["job-1"])
        client.close()
    return seen


def signed_headers(request: Received) -> list[str]:
    """The headers an ACS3 or Huawei SDK-HMAC signature covers (its Authorization's SignedHeaders)."""
    return request.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")


def test_huawei_aksk_request_carries_the_project_id_and_signs_it(simulator: ProviderSimulator) -> None:
    # Given a Huawei v3 API that answers a finished job, signed with AK/SK for a project
    project = simulator.credentials.huawei_project_id
    finished = huawei_video_job("job-1", "succeeded", "block")

    # When a job is fetched
    seen = requests_of_a_fetch(simulator, "huawei-video", lambda path: (200, finished, {}))

    # Then the request names the project in X-Project-Id, among the headers its signature covers, as Huawei's
    # SDK sends it (APIG checks only the signed headers: an unsigned project header could be swapped in transit)
    ((request),) = seen
    assert request.path == f"/v3/{project}/moderation/video/jobs/job-1"
    assert request.headers["X-Project-Id"] == project
    assert "x-project-id" in signed_headers(request)


@pytest.mark.parametrize(
    ("entry", "scope"),
    [
        ({}, {"project": {"id": "PROJECT"}}),
        ({"project_id": None}, {"project": {"name": "REGION"}}),
    ],
    ids=["project-id", "region"],
)
def test_huawei_iam_token_is_asked_for_the_configured_project(
    simulator: ProviderSimulator, entry: dict[str, Any], scope: dict[str, Any]
) -> None:
    # Given an IAM user for the image batch API, with a project id configured, or only a region
    expires = f"{datetime.now(UTC) + timedelta(hours=24):%Y-%m-%dT%H:%M:%S.%f}Z"

    def answer(path: str) -> tuple[int, Any, dict[str, str]]:
        if path.startswith("/v3/auth/tokens"):
            return 201, {"token": {"expires_at": expires}}, {"X-Subject-Token": "issued-token"}
        return 200, huawei_image_batch_job("batch-1", "running"), {}

    seen: list[Received] = []
    with recording(answers(answer), seen) as url:
        settings = ProviderSettings.model_validate(
            simulator.provider_entry(
                "huawei-image-batch", auth="iam", endpoint=url, credentials={"iam_endpoint": url}, **entry
            )
        )
        client = build_client("huawei-image-batch", settings, options=FAST)
        assert client is not None

        # When a job is fetched
        client.fetch(["batch-1"])
        client.close()

    # Then the token asked for is scoped to that project (by its id; by the region's project name without one):
    # an unscoped token, or one asked for a project "named" by its id, is refused by the moderation API
    token_request, job_request = seen
    assert (token_request.method, token_request.path) == ("POST", "/v3/auth/tokens")
    expected = json.loads(
        json.dumps(scope)
        .replace("PROJECT", simulator.credentials.huawei_project_id)
        .replace("REGION", simulator.credentials.huawei_region)
    )
    assert json.loads(token_request.body)["auth"]["scope"] == expected
    assert job_request.headers["X-Auth-Token"] == "issued-token"


# --- Huawei image batch -----------------------------------------------------------------------------------------


def test_image_batch_client_reads_running_and_finished_jobs_with_item_errors(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    simulator.put_job(
        "huawei-image-batch", "batch-running", huawei_image_batch_job("batch-running", "running")
    )
    items = [
        ("https://img.example/a.jpg", "block"),
        ("https://img.example/b.jpg", "pass"),
        ("https://img.example/c.jpg", "error"),
    ]
    simulator.put_job(
        "huawei-image-batch", "batch-done", huawei_image_batch_job("batch-done", "finish", items)
    )
    client = connect("huawei-image-batch")

    running = client.fetch(["batch-running"]).jobs[0].verdict
    done = client.fetch(["batch-done"]).jobs[0].verdict

    assert running.status is JobStatus.RUNNING
    assert (done.status, done.suggestion) == (JobStatus.SUCCEEDED, Suggestion.BLOCK)
    assert [error.item for error in done.item_errors] == ["https://img.example/c.jpg"]


def test_image_batch_job_past_its_retention_is_missing(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    simulator.put_job("huawei-image-batch", "batch-1", huawei_image_batch_job("batch-1", "finish", []))
    simulator.remove_job("huawei-image-batch", "batch-1")

    assert connect("huawei-image-batch").fetch(["batch-1"]).missing == ["batch-1"]


def test_image_batch_discover_lists_finished_and_failed_jobs_of_the_window(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    in_window = now - timedelta(minutes=5)
    jobs = {
        "finished": huawei_image_batch_job("finished", "finish", [], created=in_window, updated=in_window),
        "failed": huawei_image_batch_job("failed", "failed", [], created=in_window, updated=in_window),
        "running": huawei_image_batch_job("running", "running", created=in_window, updated=in_window),
        "too-old": huawei_image_batch_job(
            "too-old", "finish", [], created=now - timedelta(hours=2), updated=now - timedelta(hours=2)
        ),
    }
    for job_id, body in jobs.items():
        simulator.put_job("huawei-image-batch", job_id, body)

    found = connect("huawei-image-batch").discover(now - timedelta(minutes=30), now)

    assert sorted(found) == ["failed", "finished"]


def test_image_batch_discover_finds_a_job_by_when_it_finished_not_when_it_was_created(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    # Given a batch job created before the window (still running then, so no earlier listing of finished jobs
    # had it) that finished within it
    now = datetime.now(UTC).replace(microsecond=0)
    job = huawei_image_batch_job(
        "long-batch", "finish", [], created=now - timedelta(minutes=25), updated=now - timedelta(minutes=2)
    )
    simulator.put_job("huawei-image-batch", "long-batch", job)

    # When the window [now - 10 min, now) is discovered
    found = connect("huawei-image-batch").discover(now - timedelta(minutes=10), now)

    # Then it is found: its update_time is in the window, and no later window would list it
    assert found == ["long-batch"]


# --- Alibaba MPS ------------------------------------------------------------------------------------------------


def test_alibaba_batch_of_ten_with_two_unknown_gives_eight_verdicts_and_two_missing(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    known = [f"job-{index}" for index in range(8)]
    for job_id in known:
        simulator.put_job("alibaba-mps", job_id, alibaba_job(job_id, "Success", "review"))
    client = connect("alibaba-mps")
    assert client.max_batch == 10

    result = client.fetch([*known[:4], "unknown-1", *known[4:], "unknown-2"])

    assert sorted(job.verdict.job_id for job in result.jobs) == sorted(known)
    assert all(job.verdict.suggestion is Suggestion.REVIEW for job in result.jobs)
    assert sorted(result.missing) == ["unknown-1", "unknown-2"]
    assert statuses(simulator, "alibaba-mps") == [200]  # one QueryMediaCensorJobList for the whole batch


def test_alibaba_resource_not_found_for_a_batch_expires_only_the_ids_unknown_alone(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    # MPS does not document which ids an InvalidParameter.ResourceNotFound answer to a list of ids is about.
    for job_id in ("live-1", "live-2"):
        simulator.put_job("alibaba-mps", job_id, alibaba_job(job_id, "Success", "block"))
    simulator.inject("alibaba-mps", "not-found")

    result = connect("alibaba-mps").fetch(["live-1", "gone", "live-2"])

    assert sorted(job.verdict.job_id for job in result.jobs) == ["live-1", "live-2"]
    assert result.missing == ["gone"]
    assert statuses(simulator, "alibaba-mps") == [404, 200, 200, 200]


def test_alibaba_resource_not_found_followed_by_a_failure_keeps_the_answers_so_far(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    for job_id in ("live-1", "live-2"):
        simulator.put_job("alibaba-mps", job_id, alibaba_job(job_id, "Success", "block"))
    simulator.inject("alibaba-mps", "not-found")  # the batch call
    simulator.inject("alibaba-mps", "slow:0")  # the first single-id call goes through
    simulator.inject("alibaba-mps", "error:503", times=20)  # then MPS fails, retries included

    result = connect("alibaba-mps").fetch(["live-1", "gone", "live-2"])

    assert [job.verdict.job_id for job in result.jobs] == ["live-1"]
    assert result.missing == []  # "gone" and "live-2" are in neither list: polled again later


def test_alibaba_batch_answered_over_several_pages_is_read_from_every_page(connect: Connect) -> None:
    # MPS pages its lists; a batch larger than a page must not leave jobs for a later cycle
    with ProviderSimulator(list_page_limit=4) as small_pages:
        known = [f"job-{index}" for index in range(9)]
        for job_id in known:
            small_pages.put_job("alibaba-mps", job_id, alibaba_job(job_id, "Success", "block"))
        entry = small_pages.provider_entry("alibaba-mps", batch_size=11)
        client = build_client("alibaba-mps", ProviderSettings.model_validate(entry), options=FAST)
        assert client is not None

        result = client.fetch([*known, "unknown-1", "unknown-2"])
        client.close()

        assert sorted(job.verdict.job_id for job in result.jobs) == sorted(known)
        assert sorted(result.missing) == ["unknown-1", "unknown-2"]
        assert statuses(small_pages, "alibaba-mps") == [200, 200, 200]  # 4 + 4 + 3 ids


def test_alibaba_batch_asks_for_a_page_as_large_as_the_batch(connect: Connect) -> None:
    with ProviderSimulator() as provider:  # MPS's default page is 30 entries
        known = [f"job-{index}" for index in range(40)]
        for job_id in known:
            provider.put_job("alibaba-mps", job_id, alibaba_job(job_id, "Success", "pass"))
        entry = provider.provider_entry("alibaba-mps", batch_size=40)
        client = build_client("alibaba-mps", ProviderSettings.model_validate(entry), options=FAST)
        assert client is not None

        result = client.fetch(known)
        client.close()

        assert len(result.jobs) == 40
        assert statuses(provider, "alibaba-mps") == [200]  # one page holds the whole batch


def test_alibaba_rpc_v1_signature_is_accepted(simulator: ProviderSimulator, connect: Connect) -> None:
    simulator.put_job("alibaba-mps", "job-1", alibaba_job("job-1", "Analysing"))

    result = connect("alibaba-mps", credentials={"signature": "HMAC-SHA1"}).fetch(["job-1"])

    assert result.jobs[0].verdict.status is JobStatus.RUNNING
    [request] = simulator.requests("alibaba-mps")
    assert "Signature=" in request.path
    assert request.status == 200


def test_simulator_accepts_an_rpc_v1_post_with_a_form_body(simulator: ProviderSimulator) -> None:
    # MPS takes RPC parameters in a form body on POST as well; the signature covers them.
    simulator.put_job("alibaba-mps", "job-1", alibaba_job("job-1"))
    creds = simulator.credentials
    params = sign_rpc_v1(
        "POST",
        {"Action": "QueryMediaCensorJobList", "Version": "2014-06-18", "JobIds": "job-1"},
        creds.alibaba_access_key_id,
        creds.alibaba_access_key_secret,
        datetime.now(UTC),
        new_nonce(),
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    answer = requests.post(f"{simulator.base_url}/", data=encode_query(params), headers=headers, timeout=5)
    tampered = {**params, "SignatureNonce": new_nonce(), "JobIds": "job-2"}
    refused = requests.post(f"{simulator.base_url}/", data=encode_query(tampered), headers=headers, timeout=5)

    assert answer.json()["MediaCensorJobList"]["MediaCensorJob"][0]["JobId"] == "job-1"
    assert (refused.status_code, refused.json()["Code"]) == (400, "SignatureDoesNotMatch")


@pytest.mark.parametrize("signature", ["ACS3-HMAC-SHA256", "HMAC-SHA1"])
def test_alibaba_request_signed_with_a_wrong_secret_is_refused_by_the_provider(
    simulator: ProviderSimulator, connect: Connect, signature: str
) -> None:
    put_finished_job(simulator, "alibaba-mps", "job-1")
    client = connect(
        "alibaba-mps", credentials={"access_key_secret": "not-the-secret", "signature": signature}
    )

    with pytest.raises(ProviderAuthError):
        client.fetch(["job-1"])

    assert statuses(simulator, "alibaba-mps") == [400]  # SignatureDoesNotMatch, found by the simulator


def test_alibaba_long_timeline_is_merged_from_every_page(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    # Given a job with 1,000 timeline frames, 100 on the list call's page, and MPS's detail pages of 30 entries
    # unless the call asks for more (at most 300)
    simulator.put_job("alibaba-mps", "long", alibaba_job("long", "Success", "block", timeline_entries=1000))

    [fetched] = connect("alibaba-mps").fetch(["long"]).jobs

    # Then every frame is in the verdict and in the raw job, and no page token is left behind
    frames = {finding.item for finding in fetched.verdict.findings if finding.time_offset is not None}
    assert frames == {f"output{index:05d}.jpg" for index in range(1000)}
    raw = json.loads(fetched.raw)
    assert len(raw["VensorCensorResult"]["VideoTimelines"]["VideoTimeline"]) == 1000
    assert "NextPageToken" not in raw["VensorCensorResult"]
    # the list call, then QueryMediaCensorJobDetail for the other 900 frames, 300 a page (30 pages by default)
    assert len(simulator.requests("alibaba-mps")) == 4


def test_a_running_alibaba_jobs_timeline_so_far_is_not_fetched_page_by_page(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    # Given a job still analysing with 1,000 timeline frames so far, 100 on the list call's page
    analysing = {**alibaba_job("long", "Success", "block", timeline_entries=1000), "State": "Analysing"}
    del analysing["FinishTime"]
    simulator.put_job("alibaba-mps", "long", analysing)

    [fetched] = connect("alibaba-mps").fetch(["long"]).jobs

    # Then it is read from the list call alone: its verdict is not published, and its pages would cost a request
    # each from the rate limit at every poll
    assert fetched.verdict.status is JobStatus.RUNNING
    assert len(simulator.requests("alibaba-mps")) == 1
    frames = {finding.item for finding in fetched.verdict.findings if finding.time_offset is not None}
    assert frames <= {f"output{index:05d}.jpg" for index in range(100)}


def test_alibaba_acs3_request_asks_for_json_and_signs_that(simulator: ProviderSimulator) -> None:
    # Given MPS answering a finished job to a request signed with ACS3-HMAC-SHA256
    listed = {"MediaCensorJobList": {"MediaCensorJob": [alibaba_job("job-1", "Success", "block")]}}

    # When it is fetched
    seen = requests_of_a_fetch(simulator, "alibaba-mps", lambda path: (200, listed, {}))

    # Then the request asks for JSON with a signed Accept header, as Alibaba's SDK does: the query carries no
    # Format, and an RPC API answers XML unless asked for JSON
    ((request),) = seen
    assert request.headers["accept"] == "application/json"
    assert "accept" in signed_headers(request)


@pytest.mark.parametrize("where", ["job-list", "timeline"])
def test_alibaba_next_page_token_handed_out_again_ends_the_paging_at_once(
    simulator: ProviderSimulator, where: str
) -> None:
    # Given MPS handing out the same NextPageToken again: for the job list, or for a finished job's timeline
    job = alibaba_job("job-1", "Success", "block")
    job["VensorCensorResult"]["NextPageToken"] = "page-2"
    detail = {
        "MediaCensorJobDetail": {
            "JobId": "job-1",
            "VensorCensorResult": copy.deepcopy(job["VensorCensorResult"]),
        }
    }
    listing: dict[str, Any] = {"MediaCensorJobList": {"MediaCensorJob": [job]}}
    if where == "job-list":
        listing = {"MediaCensorJobList": {"MediaCensorJob": []}, "NextPageToken": "list-2"}

    def answer(path: str) -> tuple[int, Any, dict[str, str]]:
        return 200, detail if "page-2" in path else listing, {}

    seen: list[Received] = []
    with recording(answers(answer), seen) as url:
        settings = ProviderSettings.model_validate(simulator.provider_entry("alibaba-mps", endpoint=url))
        client = build_client("alibaba-mps", settings, options=FAST)
        assert client is not None

        # When jobs are discovered (the list) or the job is fetched (its timeline)
        now = datetime.now(UTC)
        read: Callable[[], object] = (
            (lambda: client.discover(now - timedelta(hours=1), now))
            if where == "job-list"
            else (lambda: client.fetch(["job-1"]))
        )
        # (within 5 s: a client that kept paging would run out of that time instead, not hang the test)
        with finish_within(5), pytest.raises(ProviderResponseError):
            read()
        client.close()

    # Then the client stops at the repeat, an unreadable answer, after two requests: not a request after another
    # from the provider's rate limit until the page guard (or the Lambda's timeout) ends it
    assert len(seen) == 2


def test_alibaba_discover_follows_next_page_token(connect: Connect) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with ProviderSimulator(list_page_limit=3) as small_pages:
        in_window = [f"job-{index}" for index in range(7)]
        for index, job_id in enumerate(in_window):
            created = now - timedelta(minutes=50) + timedelta(minutes=index)
            small_pages.put_job("alibaba-mps", job_id, alibaba_job(job_id, created=created))
        small_pages.put_job("alibaba-mps", "before", alibaba_job("before", created=now - timedelta(hours=3)))
        small_pages.put_job("alibaba-mps", "after", alibaba_job("after", created=now + timedelta(minutes=1)))
        settings = ProviderSettings.model_validate(small_pages.provider_entry("alibaba-mps"))
        client = build_client("alibaba-mps", settings, options=FAST)
        assert client is not None

        found = client.discover(now - timedelta(hours=1), now)
        client.close()

        assert found == in_window
        assert statuses(small_pages, "alibaba-mps") == [200, 200, 200]  # 3 + 3 + 1 jobs


def test_alibaba_discover_asks_for_pages_of_at_most_100_jobs(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    # Given 250 jobs created in the window (the simulator pages up to 300, as MPS's API page says)
    now = datetime.now(UTC).replace(microsecond=0)
    in_window = [f"job-{index:03d}" for index in range(250)]
    for index, job_id in enumerate(in_window):
        created = now - timedelta(minutes=50) + timedelta(seconds=index)
        simulator.put_job("alibaba-mps", job_id, alibaba_job(job_id, created=created))

    found = connect("alibaba-mps").discover(now - timedelta(hours=1), now)

    # Then all are found, each listing asking for at most 100, the bound of the SDKs' API metadata
    assert found == in_window
    sizes = [
        parse_qs(urlsplit(request.path).query)["MaximumPageSize"]
        for request in simulator.requests("alibaba-mps")
    ]
    assert sizes == [["100"]] * 3


def test_alibaba_discover_lists_a_job_it_cannot_read_with_the_others(connect: Connect) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with ProviderSimulator() as provider:
        created = now - timedelta(minutes=5)
        provider.put_job("alibaba-mps", "job-good", alibaba_job("job-good", created=created))
        odd = {
            **alibaba_job("job-odd", created=created),
            "State": "Processing",
        }  # a state MPS does not document
        provider.put_job("alibaba-mps", "job-odd", odd)
        settings = ProviderSettings.model_validate(provider.provider_entry("alibaba-mps"))
        client = build_client("alibaba-mps", settings, options=FAST)
        assert client is not None

        found = client.discover(now - timedelta(hours=1), now)
        client.close()

    # Both are found (the odd one is reported when it is polled), and discovery can move on
    assert sorted(found) == ["job-good", "job-odd"]


@pytest.mark.parametrize("signature", ["ACS3-HMAC-SHA256", "HMAC-SHA1"])
def test_alibaba_retry_after_a_503_carries_a_fresh_signature_nonce(
    simulator: ProviderSimulator, signature: str
) -> None:
    # Given MPS answering 503 once, then the finished job (the simulator answers a fault before it reads the
    # nonce, so only the requests themselves show whether the retry re-sent the first attempt's)
    listed = {"MediaCensorJobList": {"MediaCensorJob": [alibaba_job("job-1", "Success", "block")]}}
    unavailable = {
        "Code": "ServiceUnavailable",
        "Message": "The request has failed due to a temporary failure.",
    }
    replies = iter([(503, unavailable, {}), (200, listed, {})])
    seen: list[Received] = []
    with recording(answers(lambda path: next(replies)), seen) as url:
        entry = simulator.provider_entry("alibaba-mps", endpoint=url, credentials={"signature": signature})
        client = build_client("alibaba-mps", ProviderSettings.model_validate(entry), options=FAST)
        assert client is not None

        # When the job is fetched
        result = client.fetch(["job-1"])
        client.close()

    # Then the retry is signed afresh with a nonce of its own: MPS accepts a nonce once (SignatureNonceUsed)
    assert result.jobs[0].verdict.suggestion is Suggestion.BLOCK
    first, retry = seen

    def nonce(request: Received) -> str:
        if signature == "HMAC-SHA1":
            return dict(parse_qsl(urlsplit(request.path).query))["SignatureNonce"]
        return wire_header(request, "x-acs-signature-nonce")

    assert nonce(first) != nonce(retry)


def test_alibaba_throttling_waits_for_x_acs_retry_after(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "alibaba-mps", "job-1")
    simulator.inject("alibaba-mps", "throttle:0.3")  # x-acs-retry-after: 300 (milliseconds)

    result = connect("alibaba-mps").fetch(["job-1"])

    assert result.jobs[0].verdict.suggestion is Suggestion.BLOCK
    first, second = simulator.requests("alibaba-mps")
    assert (first.status, second.status) == (400, 200)  # MPS throttles with a 400, retried after its wait
    assert second.at - first.at >= 0.29


def test_alibaba_resource_not_found_answer_makes_the_batch_missing(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    simulator.inject("alibaba-mps", "not-found")

    result = connect("alibaba-mps").fetch(["job-1", "job-2"])

    assert (result.jobs, result.missing) == ([], ["job-1", "job-2"])


# --- Azure ------------------------------------------------------------------------------------------------------


def test_azure_client_reads_in_progress_and_completed_jobs(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    simulator.put_job("azure-review", "job-running", azure_job("job-running", "InProgress"))
    simulator.put_job("azure-review", "job-adult", azure_job("job-adult", "Complete", adult_score=0.92))
    client = connect("azure-review")

    running = client.fetch(["job-running"]).jobs[0].verdict
    adult = client.fetch(["job-adult"]).jobs[0].verdict

    assert running.status is JobStatus.RUNNING
    assert (adult.status, adult.suggestion, adult.decided_by) == (
        JobStatus.SUCCEEDED,
        Suggestion.BLOCK,
        "policy",
    )


def test_azure_wrong_subscription_key_is_refused_by_the_provider(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "azure-review", "job-1")

    with pytest.raises(ProviderAuthError):
        connect("azure-review", credentials={"subscription_key": "not-the-key"}).fetch(["job-1"])

    assert statuses(simulator, "azure-review") == [401]


def test_azure_unknown_job_is_missing(connect: Connect) -> None:
    assert connect("azure-review").fetch(["no-such-job"]).missing == ["no-such-job"]


# --- faults, for every provider ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_one_503_then_an_answer_is_retried_to_a_verdict(
    simulator: ProviderSimulator, connect: Connect, provider: str
) -> None:
    put_finished_job(simulator, provider, "job-1")
    simulator.inject(provider, "error:503")

    result = connect(provider).fetch(["job-1"])

    assert result.jobs[0].verdict.suggestion is FINISHED_SUGGESTION[provider]
    assert statuses(simulator, provider) == [503, 200]


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_malformed_body_is_a_response_error(
    simulator: ProviderSimulator, connect: Connect, provider: str
) -> None:
    put_finished_job(simulator, provider, "job-1")
    simulator.inject(provider, "malformed")

    with pytest.raises(ProviderResponseError):
        connect(provider).fetch(["job-1"])


TIME_FIELD = {
    "huawei-video": "update_time",
    "huawei-audio": "update_time",
    "huawei-image-batch": "result.update_time",
    "alibaba-mps": "FinishTime",
    "azure-review": "jobexecutionreport.0.ts",
}


def with_time_past_the_calendar(provider: str, body: dict[str, Any]) -> dict[str, Any]:
    """A finished job whose time, turned to UTC, falls outside the years 1..9999 a datetime holds."""
    if provider in ("huawei-video", "huawei-audio"):
        return {**body, "update_time": "9999-12-31T23:59:59-01:00"}
    if provider == "huawei-image-batch":
        return {**body, "result": {**body["result"], "update_time": "9999-12-31T23:59:59-01:00"}}
    if provider == "alibaba-mps":
        return {**body, "FinishTime": "9999-12-31T23:59:59-01:00"}
    if provider == "azure-review":
        report = [{**entry, "Ts": "0001-01-01T00:00:00+01:00"} for entry in body["JobExecutionReport"]]
        return {**body, "JobExecutionReport": report}
    raise ValueError(f"no time past the calendar for {provider!r}: add where its jobs carry a time")


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_a_job_time_outside_the_calendar_in_utc_is_a_response_error(
    simulator: ProviderSimulator, connect: Connect, provider: str
) -> None:
    # Given a provider that answers with a time a datetime cannot hold once turned to UTC
    put_finished_job(simulator, provider, "job-1")
    body = simulator.job(provider, "job-1")
    assert body is not None
    simulator.put_job(provider, "job-1", with_time_past_the_calendar(provider, body))

    # When the poller's client fetches it, then it is an unreadable answer naming the field, not a crash of
    # the poll cycle
    with pytest.raises(ProviderResponseError) as raised:
        connect(provider).fetch(["job-1"])

    assert f"field '{TIME_FIELD[provider]}'" in raised.value.message


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_auth_fault_is_an_auth_error(simulator: ProviderSimulator, connect: Connect, provider: str) -> None:
    put_finished_job(simulator, provider, "job-1")
    simulator.inject(provider, "auth")

    with pytest.raises(ProviderAuthError):
        connect(provider).fetch(["job-1"])


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("huawei-video", {"error_code": "AIS.0002", "error_msg": "The authentication token is abnormal."}),
        ("huawei-video", {"error_code": "AIS.0004", "error_msg": "The request is not authorized."}),
        ("huawei-image-batch", {"error_code": "APIG.0303", "error_msg": "Incorrect app authentication"}),
        ("alibaba-mps", {"Code": "InvalidTimeStamp.Expired", "Message": "Specified time stamp is expired."}),
        ("alibaba-mps", {"Code": "SignatureNonceUsed", "Message": "Specified signature nonce was used."}),
        ("alibaba-mps", {"Code": "NoPermission", "Message": "You are not authorized."}),
        (
            "alibaba-mps",
            {"Code": "InvalidAccessKeyId.Inactive", "Message": "Specified access key is disabled."},
        ),
        ("alibaba-mps", {"Code": "Forbidden.RAM", "Message": "User not authorized to operate."}),
        ("alibaba-mps", {"Code": "InvalidSecurityToken.Expired", "Message": "Specified token has expired."}),
    ],
    ids=lambda value: value if isinstance(value, str) else str(value.get("error_code") or value.get("Code")),
)
def test_a_credentials_error_code_answered_with_http_400_is_an_auth_error(
    simulator: ProviderSimulator, connect: Connect, provider: str, body: dict[str, str]
) -> None:
    # Given the provider refusing our credentials with its own code on an HTTP 400 (Huawei's errors mostly
    # come as 400, MPS's always do)
    with answering(400, json.dumps({"RequestId": "r-1", **body}).encode()) as url:
        client = connect(provider, endpoint=url)

        # When a job is fetched, Then it is an auth error: the poller pauses the provider at once and raises
        # ProviderAuthFailed (its alarm), rather than retrying each job as an unreadable answer
        with pytest.raises(ProviderAuthError):
            client.fetch(["job-1"])


@pytest.mark.parametrize("code", ["Throttling", "Throttling.User", "Throttling.Api"])
def test_an_mps_throttling_code_on_a_400_is_a_throttle(connect: Connect, code: str) -> None:
    # Given MPS throttling with one of its Throttling codes on an HTTP 400 (how MPS answers every error), and
    # no x-acs-retry-after to wait for
    body = {"RequestId": "r-1", "Code": code, "Message": "Request was denied due to flow control."}
    with answering(400, json.dumps(body).encode()) as url:
        client = connect("alibaba-mps", endpoint=url)

        # When a batch is fetched, Then it is a throttle: the poller leaves the batch due and backs off, rather
        # than reading an unreadable answer and polling each job of the batch on its own into the throttle
        with pytest.raises(ProviderThrottledError):
            client.fetch(["job-1", "job-2"])


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_not_found_fault_is_missing(simulator: ProviderSimulator, connect: Connect, provider: str) -> None:
    put_finished_job(simulator, provider, "job-1")
    simulator.inject(provider, "not-found")

    result = connect(provider).fetch(["job-1"])

    assert (result.jobs, result.missing) == ([], ["job-1"])


def test_5xx_outlasting_the_retries_is_unavailable(simulator: ProviderSimulator, connect: Connect) -> None:
    put_finished_job(simulator, "huawei-video", "job-1")
    simulator.inject("huawei-video", "error:500", times=10)

    with pytest.raises(ProviderUnavailableError):
        connect("huawei-video").fetch(["job-1"])

    assert statuses(simulator, "huawei-video") == [500] * (1 + FAST.retries)


def test_throttle_with_retry_after_is_waited_out_then_retried(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "azure-review", "job-1")
    simulator.inject("azure-review", "throttle:1")  # 429, Retry-After: 1

    result = connect("azure-review").fetch(["job-1"])

    assert result.jobs[0].verdict.suggestion is Suggestion.BLOCK
    first, second = simulator.requests("azure-review")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.99


def two_jobs_then_a_throttle(simulator: ProviderSimulator, provider: str, seconds: int) -> None:
    """Two finished jobs at the provider, job-1 and job-2, whose next answer is "come back in ``seconds``"."""
    put_finished_job(simulator, provider, "job-1")
    put_finished_job(simulator, provider, "job-2")
    simulator.inject(provider, f"throttle:{seconds}")


def test_a_throttle_holds_back_the_clients_other_requests_too(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    # Given a client whose first request is told "429, come back in 1 s"
    two_jobs_then_a_throttle(simulator, "azure-review", seconds=1)
    client = connect("azure-review")
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(client.fetch, ["job-1"])
        assert client.limiter is not None
        while client.limiter.deferred_s() == 0:  # the client has read the 429 (not only the provider sent it)
            time.sleep(0.01)

        # When another thread of the same client fetches meanwhile
        second = pool.submit(client.fetch, ["job-2"])
        assert first.result().jobs
        assert second.result().jobs

    # Then that request too waits until the provider said to come back
    throttled, *after = simulator.requests("azure-review")
    assert throttled.status == 429
    assert [r.status for r in after] == [200, 200]
    assert min(r.at for r in after) - throttled.at >= 0.99


@pytest.mark.parametrize(("provider", "status"), [("huawei-video", 429), ("alibaba-mps", 400)])
def test_a_throttle_longer_than_the_client_waits_is_reported_and_refuses_its_other_requests_until_it_ends(
    simulator: ProviderSimulator, connect: Connect, provider: str, status: int
) -> None:
    # Given a client told "come back in 30 s" (MPS: HTTP 400 Throttling with x-acs-retry-after)
    two_jobs_then_a_throttle(simulator, provider, seconds=30)
    client = connect(provider)
    with pytest.raises(ProviderThrottledError) as raised:
        client.fetch(["job-1"])
    assert raised.value.retry_after == 30

    # When the client is asked for another job inside that window (a batch already past the poller's breaker)
    with pytest.raises(ProviderThrottledError) as raised:
        client.fetch(["job-2"])

    # Then it is refused at once with the time still to wait (nearly all of it: it did not wait), and the
    # provider sees no request inside the window
    assert 28 <= (raised.value.retry_after or 0) <= 30
    assert statuses(simulator, provider) == [status]


def test_a_request_waiting_for_its_token_when_a_throttle_is_read_is_refused_unsent(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    # Given a client at one request a second, whose first request is answered "429, come back in 30 s" 0.3 s
    # after it went out
    two_jobs_then_a_throttle(simulator, "azure-review", seconds=30)
    simulator.latency_s = 0.3
    client = connect("azure-review", rate_limit_per_s=1)

    # When a second fetch starts with it, so it sleeps for the next token (a second on) while that answer comes
    with ThreadPoolExecutor(max_workers=2) as pool:
        fetches = [pool.submit(client.fetch, [job]) for job in ("job-1", "job-2")]
        outcomes = [fetch.exception(timeout=10) for fetch in fetches]

    # Then neither goes out again inside the 30 s: the waiting one is refused with the time still to wait
    assert all(isinstance(outcome, ProviderThrottledError) for outcome in outcomes)
    assert statuses(simulator, "azure-review") == [429]


def test_answer_slower_than_the_read_timeout_is_unavailable_without_waiting_again(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "huawei-video", "job-1")
    simulator.inject("huawei-video", "slow:1.5")
    client = connect("huawei-video", options=HttpOptions(read_timeout_s=0.3, backoff_factor=0.01))

    # The answer would come after 1.5 s: waited for, the fetch would return it
    with pytest.raises(ProviderUnavailableError):
        client.fetch(["job-1"])

    assert len(simulator.requests("huawei-video")) == 1  # one timeout, no retry


@contextmanager
def unreachable_client() -> Iterator[ProviderClient]:
    """An Azure client pointed at a port nothing listens on any more."""
    with ProviderSimulator() as gone:
        settings = ProviderSettings.model_validate(gone.provider_entry("azure-review"))
    client = build_client("azure-review", settings, options=FAST)
    assert client is not None
    try:
        yield client
    finally:
        client.close()


def test_provider_that_cannot_be_reached_is_unavailable() -> None:
    with unreachable_client() as client, pytest.raises(ProviderUnavailableError, match="connection"):
        client.fetch(["job-1"])


def test_a_retry_that_would_end_past_the_deadline_is_not_started(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "azure-review", "job-1")
    simulator.inject("azure-review", "throttle:1")  # 429, Retry-After: 1; outside a deadline it is waited out
    client = connect("azure-review")

    # 1 s of waiting and a whole attempt (2 s connect + 2 s read) do not fit in 3 s
    with finish_within(3.0), pytest.raises(ProviderThrottledError):
        client.fetch(["job-1"])

    assert statuses(simulator, "azure-review") == [429]


def test_a_connection_failure_is_not_retried_past_the_deadline() -> None:
    with (
        unreachable_client() as client,
        finish_within(3.0),
        pytest.raises(ProviderUnavailableError, match="no time left to retry"),
    ):
        client.fetch(["job-1"])


def test_no_request_is_started_with_less_than_a_second_left(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "huawei-video", "job-1")
    client = connect("huawei-video")

    with finish_within(0.5), pytest.raises(ProviderOutOfTimeError):
        client.fetch(["job-1"])

    assert simulator.requests("huawei-video") == []


def azure_with_its_saved_token_spent(simulator: ProviderSimulator, connect: Connect) -> ProviderClient:
    """An Azure client at a token every 4 s that has just used its saved one; job-2 is there to fetch."""
    for job_id in ("job-1", "job-2"):
        put_finished_job(simulator, "azure-review", job_id)
    client = connect("azure-review", rate_limit_per_s=0.25)
    client.fetch(["job-1"])
    return client


def test_a_request_that_would_wait_for_its_rate_limit_token_past_the_deadline_does_not_go_out(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    client = azure_with_its_saved_token_spent(simulator, connect)

    # Refused for the rate limit's wait, not sent and then cut off (that no time is slept for a token that would
    # come too late is test_ratelimit.py's, on a fake clock)
    with (
        finish_within(2.5),
        pytest.raises(ProviderOutOfTimeError, match="no time left to wait for the provider's rate limit"),
    ):
        client.fetch(["job-2"])

    assert len(simulator.requests("azure-review")) == 1


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_every_providers_client_that_takes_over_waits_its_turn_instead_of_sending_the_request_its_bucket_saved(
    simulator: ProviderSimulator, connect: Connect, provider: str
) -> None:
    # Given a client the factory built, at one request every 10 s and idle since: its bucket saved one request
    put_finished_job(simulator, provider, "job-1")
    client = connect(provider, rate_limit_per_s=0.1)

    # When it takes over the provider's requests from another sender, with 5 s to fetch a job
    client.take_over()
    with finish_within(5.0), pytest.raises(ProviderOutOfTimeError):
        client.fetch(["job-1"])

    # Then the saved request was given up: nothing went out, the next one waits a whole interval after the other
    # sender's last, as one bucket would have sent them
    assert simulator.requests(provider) == []


def test_a_slow_answer_after_a_long_token_wait_is_the_callers_time_running_out_not_the_providers_fault(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    client = azure_with_its_saved_token_spent(simulator, connect)
    simulator.inject("azure-review", "slow:3")

    # Its full timeouts fit when the request starts; after the ~4 s wait for its token they are cut to ~2 s.
    with finish_within(6.0), pytest.raises(ProviderOutOfTimeError):
        client.fetch(["job-2"])


def test_a_slow_answer_is_waited_for_only_as_long_as_the_time_left(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "huawei-video", "job-1")
    simulator.inject("huawei-video", "slow:3")
    client = connect("huawei-video", options=HttpOptions(read_timeout_s=5.0, backoff_factor=0.01))

    # The answer would come after 3 s, inside the read timeout: waited for, the fetch would return it; and the
    # caller's time running out is not reported as the provider's fault (ProviderUnavailableError)
    with finish_within(1.5), pytest.raises(ProviderOutOfTimeError):
        client.fetch(["job-1"])


# --- answers too slow or too large to read ----------------------------------------------------------------------

TOO_LARGE = 33 * 1024 * 1024  # past the 32 MiB an answer may have (clients/http.py MAX_ANSWER_BYTES)


class AzureStandIn(QuietHandler):
    """Azure answering over HTTP/1.1 keep-alive: a finished job for most ids; for ``trickle`` and ``trickle-open``
    a body a byte every 0.2 s (with and without a length), for ``too-large`` a length past the limit, for
    ``too-large-chunked`` chunks of 1 MiB past it, for ``slow-to-answer`` its headers after 0.7 s and then its
    body in three parts 0.3 s apart. Each request's connection (client port) is recorded."""

    protocol_version = "HTTP/1.1"
    connections: list[int]

    def do_GET(self) -> None:
        self.connections.append(self.client_address[1])
        job_id = self.path.rsplit("/", 1)[-1]
        # The client hangs up on the answers it cuts off: writing to it then fails, which is expected.
        with contextlib.suppress(OSError):
            if job_id.startswith("trickle"):
                self.trickle(length=job_id == "trickle")
            elif job_id == "too-large":
                self.start(200, {"Content-Length": str(TOO_LARGE)})
                self.wfile.write(b"{")
                self.wfile.flush()
                time.sleep(3)
            elif job_id == "slow-to-answer":
                time.sleep(0.7)
                body = json.dumps(azure_job(job_id, "Complete", adult_score=0.95)).encode()
                self.start(200, {"Content-Length": str(len(body))})
                third = len(body) // 3 + 1
                for start in range(0, len(body), third):
                    self.wfile.write(body[start : start + third])
                    self.wfile.flush()
                    time.sleep(0.3)
            elif job_id == "too-large-chunked":
                self.start(200, {"Transfer-Encoding": "chunked"})
                chunk = b" " * (1024 * 1024)
                for _ in range(TOO_LARGE // len(chunk) + 1):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            else:
                body = json.dumps(azure_job(job_id, "Complete", adult_score=0.95)).encode()
                self.start(200, {"Content-Length": str(len(body))})
                self.wfile.write(body)

    def trickle(self, *, length: bool) -> None:
        if length:
            self.start(200, {"Content-Length": "2000"})
        else:  # the body ends when the connection does
            self.close_connection = True
            self.start(200, {"Connection": "close"})
        for _ in range(30):  # 6 s of it
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(0.2)

    def start(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


@contextmanager
def azure_stand_in(options: HttpOptions = FAST, **entry: Any) -> Iterator[tuple[ProviderClient, list[int]]]:
    """An Azure client talking to :class:`AzureStandIn`, and the connections the stand-in saw requests on."""
    connections: list[int] = []
    handler = type("Handler", (AzureStandIn,), {"connections": connections})
    with serving(handler) as url:
        client = azure_client(url, options=options, **entry)
        try:
            yield client, connections
        finally:
            client.close()


@pytest.mark.parametrize("job_id", ["trickle", "trickle-open"], ids=["with-length", "until-closed"])
def test_an_answer_trickling_in_past_the_read_timeout_is_cut_off_as_unavailable(job_id: str) -> None:
    # Given an answer whose body comes a byte every 0.2 s: each socket read is well inside the read timeout
    with azure_stand_in(HttpOptions(read_timeout_s=1.0, backoff_factor=0.01)) as (client, connections):
        # When it is fetched, Then it is cut off once the read timeout is spent (read for 6 s, the body would be
        # 30 spaces: a malformed answer, or a socket timeout's "no answer"), not retried, and a body without a
        # length is not taken to end where it was cut off
        with pytest.raises(ProviderUnavailableError, match="not whole within 1 s"):
            client.fetch([job_id])

        assert len(connections) == 1


def test_an_answer_slow_to_start_whose_body_comes_within_the_read_timeout_is_read() -> None:
    # Given an answer whose headers come after 0.7 s and whose body takes 0.6 s more: 1.3 s in all, each part
    # inside the 1 s read timeout
    with azure_stand_in(HttpOptions(read_timeout_s=1.0, backoff_factor=0.01)) as (client, _):
        # When it is fetched, Then it is read: the body's time starts with its headers
        assert client.fetch(["slow-to-answer"]).jobs[0].verdict.job_id == "slow-to-answer"


def test_an_answer_trickling_in_past_the_time_left_is_cut_off_as_out_of_time() -> None:
    # The caller's time ran out, not the provider's patience: not counted against the provider (read to the end,
    # the body would fail as a timeout or a malformed answer, the provider's fault)
    with (
        azure_stand_in(HttpOptions(read_timeout_s=5.0, backoff_factor=0.01)) as (client, _),
        finish_within(1.5),
        pytest.raises(ProviderOutOfTimeError),
    ):
        client.fetch(["trickle"])


@pytest.mark.parametrize("job_id", ["too-large", "too-large-chunked"], ids=["declared", "streamed"])
def test_an_answer_past_the_size_limit_is_a_response_error(job_id: str) -> None:
    with azure_stand_in() as (client, _), pytest.raises(ProviderResponseError, match="limit"):
        client.fetch([job_id])


def test_answers_read_whole_keep_their_connection_and_cut_off_ones_free_their_pool_slot() -> None:
    # One connection in the pool, which blocks for a free one: a slot a cut-off answer kept would hang the next
    with azure_stand_in(max_concurrency=1) as (client, connections):
        for job_id in ("job-1", "job-2", "job-3"):
            assert client.fetch([job_id]).jobs[0].verdict.job_id == job_id
        assert len(set(connections)) == 1  # answers read whole return their connection for reuse

        with pytest.raises(ProviderResponseError):
            client.fetch(["too-large"])
        with finish_within(1.5), pytest.raises(ProviderOutOfTimeError):
            client.fetch(["trickle"])

        with ThreadPoolExecutor(max_workers=1) as pool:
            after = pool.submit(client.fetch, ["job-4"]).result(timeout=10)
        assert after.jobs[0].verdict.job_id == "job-4"


def test_discover_refuses_times_without_a_zone(connect: Connect) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        connect("huawei-image-batch").discover(datetime(2024, 1, 1), datetime(2024, 1, 2))


# --- rate limits ------------------------------------------------------------------------------------------------


def most_in_any_second(timestamps: list[float], slack: float = 0.005) -> int:
    """The most requests in any one-second window, the window shortened by ``slack`` for clock granularity."""
    ordered = sorted(timestamps)
    most = 0
    for index, start in enumerate(ordered):
        in_window = [at for at in ordered[index:] if at < start + 1.0 - slack]
        most = max(most, len(in_window))
    return most


def fetched_at_once(limit: int, fetches: int) -> tuple[list[FetchResult], list[float], int]:
    """``fetches`` fetches of one finished job from 4 threads at once, by a client at ``limit`` requests/s with
    burst 1, from a simulator that admits ``limit`` a second: the results, when the simulator received each
    request, and how many it refused. The simulator shares this process (and its GIL) with the client's
    threads, so under a loaded CI machine its arrival times jitter by more than a real provider's network makes
    them: the client keeps 15 % of the limit unused here, not the default 5 % (which absorbs ~50 ms of jitter
    at 20/s; clients/ratelimit.py says why)."""
    with ProviderSimulator(rate_limits={"huawei-video": limit}) as limited:
        put_finished_job(limited, "huawei-video", "job-1")
        settings = ProviderSettings.model_validate(
            limited.provider_entry("huawei-video", rate_limit_per_s=limit, max_concurrency=4)
        )
        client = build_client("huawei-video", settings, options=replace(FAST, rate_headroom=0.15))
        assert client is not None
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda _: client.fetch(["job-1"]), range(fetches)))
        client.close()
        return (
            results,
            [request.at for request in limited.requests("huawei-video")],
            limited.over_limit("huawei-video"),
        )


@pytest.mark.parametrize(
    ("provider", "limit"), [("huawei-video", 5), ("alibaba-mps", 50), ("azure-review", 2.5)]
)
def test_a_client_lets_out_at_most_its_limits_requests_in_any_window_as_timed_when_they_leave(
    simulator: ProviderSimulator, provider: str, limit: float
) -> None:
    settings = ProviderSettings.model_validate(simulator.provider_entry(provider, rate_limit_per_s=limit))

    client = build_client(provider, settings)

    # 5 % under the limit, and no more than the limit's whole number of requests in the time that many tokens take
    assert client is not None
    assert client.limiter is not None
    assert client.limiter.rate_per_s == pytest.approx(limit * 0.95)
    whole = int(limit)
    assert client.limiter.window == whole
    assert client.limiter.window_s == pytest.approx(max(whole / (limit * 0.95), 1 / 0.95))
    # never in less than a second, as a provider counts them: a fractional limit's whole number included
    assert client.limiter.window_s > 1.0
    client.close()


def test_client_never_exceeds_the_provider_rate_limit() -> None:
    # Given a provider that admits 20 requests/s and a client configured for 20/s, When 60 fetches are made from
    # 4 threads at once
    results, received, refused = fetched_at_once(20, 60)

    # Then the provider never had to refuse one, and no second saw more than 20
    assert all(result.jobs for result in results)
    assert refused == 0
    assert len(received) == 60
    assert most_in_any_second(received) <= 20


def test_requests_on_connections_slow_to_open_still_reach_the_provider_within_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a provider that admits 5 requests/s, reached over connections that take 300 ms to open (a TLS
    # handshake with a distant region), and a client polling it from 4 threads, each on a new connection
    real_connect = urllib3.connection.HTTPConnection.connect

    def slow_connect(self: urllib3.connection.HTTPConnection) -> None:
        time.sleep(0.3)
        real_connect(self)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", slow_connect)

    # When 12 fetches are made at once
    results, received, refused = fetched_at_once(5, 12)

    # Then each token was taken once its connection was up, not before it was opened: the requests the bucket
    # spaced out reach the provider as far apart, and none is refused
    assert all(result.jobs for result in results)
    assert refused == 0
    assert most_in_any_second(received) <= 5


def test_an_answer_awaited_past_the_time_the_token_wait_left_is_cut_off_as_out_of_time() -> None:
    # Given a provider at 1 request/s whose token was just spent, answering 1.8 s after each request, and a
    # caller with 2.5 s left: the request waits about a second for its token once connected, which leaves it
    # 1.45 s, less than the answer takes (the 2 s read timeout its send was given would have waited it out)
    options = HttpOptions(connect_timeout_s=0.5, read_timeout_s=5.0, retries=0)
    with ProviderSimulator(latency_s=1.8) as slow:
        put_finished_job(slow, "huawei-video", "job-1")
        settings = ProviderSettings.model_validate(slow.provider_entry("huawei-video", rate_limit_per_s=1))
        client = build_client("huawei-video", settings, options=options)
        assert client is not None
        assert client.limiter is not None
        assert client.limiter.try_acquire()

        # When it is fetched, Then the wait for the answer ends with the caller's time, before the answer came
        # (not once its headers had come, while reading its body): out of time, not the provider's fault
        with finish_within(2.5), pytest.raises(ProviderOutOfTimeError, match="no answer in the time left"):
            client.fetch(["job-1"])
        client.close()


class KeepAliveAnswers(QuietHandler):
    """Answers every GET with ``{}`` on keep-alive connections."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


class CountingServer(ThreadingHTTPServer):
    """Counts the connections it accepts, in its accept loop: one accepted before a request that was answered
    is counted by the time the answer comes."""

    daemon_threads = True
    accepted = 0

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.accepted += 1
        return True


def test_a_request_refused_unsent_opens_no_connection() -> None:
    server = CountingServer(("127.0.0.1", 0), KeepAliveAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/job"
    request = lambda: OutgoingRequest("GET", url)  # noqa: E731
    try:
        # Given a client asked by the provider to leave it alone for a minute, and one whose next token comes
        # later than its caller's time lasts
        paused = ProviderHttp("huawei-video", TokenBucket(100), HttpOptions(retries=0), max_concurrency=1)
        paused.limiter.defer(60)
        slow = ProviderHttp("huawei-video", TokenBucket(0.1), HttpOptions(retries=0), max_concurrency=1)
        assert slow.limiter.try_acquire()

        # When each is asked for a request, Then each refuses it unsent
        with pytest.raises(ProviderThrottledError):
            paused.send(request)
        with finish_within(2.0), pytest.raises(ProviderOutOfTimeError):
            slow.send(request)

        # And opened no connection for it: no handshake with a provider that asked for a pause, none of the
        # caller's time spent on one (a request sent now is the first connection the provider sees)
        sent = ProviderHttp("huawei-video", TokenBucket(100), HttpOptions(retries=0), max_concurrency=1)
        assert sent.send(request).ok
        assert server.accepted == 1
        for client in (paused, slow, sent):
            client.close()
    finally:
        server.shutdown()
        server.server_close()


class StoppedClock:
    """The simulator's clock, moved by the test alone: a rate window's edges without sleeping or racing."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def azure_job_get(simulator: ProviderSimulator, session: requests.Session) -> requests.Response:
    url = f"{simulator.base_url}/contentmoderator/review/v1.0/teams/teamA/jobs/job-1"
    return session.get(
        url, headers={"Ocp-Apim-Subscription-Key": simulator.credentials.azure_subscription_key}, timeout=5
    )


def huawei_video_get(simulator: ProviderSimulator, session: requests.Session) -> requests.Response:
    """A GET of a Huawei v3 video job, signed with the simulator's AK/SK as the relay's client signs it."""
    url = f"{simulator.base_url}/v3/{simulator.credentials.huawei_project_id}/moderation/video/jobs/job-1"
    keys = simulator.credentials
    headers = sign_huawei("GET", url, {}, b"", keys.huawei_ak, keys.huawei_sk, datetime.now(UTC))
    return session.get(url, headers=headers, timeout=5)


def test_simulator_refuses_requests_over_its_limit() -> None:
    # The check above means something only if the simulator does refuse a client that ignores the limit.
    with ProviderSimulator(rate_limits={"azure-review": 2}, clock=StoppedClock()) as limited:
        put_finished_job(limited, "azure-review", "job-1")
        with requests.Session() as session:
            codes = [azure_job_get(limited, session).status_code for _ in range(5)]

        assert codes == [200, 200, 429, 429, 429]
        assert limited.over_limit("azure-review") == 3


def test_simulator_limits_and_counts_each_provider_apart() -> None:
    # Given Azure limited to 1 request a second and Huawei video to 3, their clock stopped inside one second
    with ProviderSimulator(
        rate_limits={"azure-review": 1, "huawei-video": 3}, clock=StoppedClock()
    ) as limited:
        put_finished_job(limited, "azure-review", "job-1")
        put_finished_job(limited, "huawei-video", "job-1")
        with requests.Session() as session:
            # When each gets one request more than its limit
            azure = [azure_job_get(limited, session).status_code for _ in range(2)]
            huawei = [huawei_video_get(limited, session).status_code for _ in range(4)]

            # Then each admits its own limit, whatever the other received, and each counts its own refusal
            assert azure == [200, 429]
            assert huawei == [200, 200, 200, 429]
            assert (limited.over_limit("azure-review"), limited.over_limit("huawei-video")) == (1, 1)
            assert limited.over_limit("alibaba-mps") == 0
            # and a benchmark's measurement that starts after them counts none of them
            limited.clear_requests()
            assert [limited.over_limit(provider) for provider in ("azure-review", "huawei-video")] == [0, 0]
            # while the providers' seconds run on: a request inside the same second is refused, and counted
            assert azure_job_get(limited, session).status_code == 429
        assert limited.over_limit("azure-review") == 1


@pytest.mark.parametrize(
    ("limit", "admitted"),
    [(2.5, 2), (0.5, 1)],
    ids=["a-fraction-admits-its-whole-part", "under-one-a-second-admits-one"],
)
def test_simulator_admits_no_more_than_a_fractional_limit_in_a_second(limit: float, admitted: int) -> None:
    # Given a provider limited to a rate that is not a whole number of requests a second
    with ProviderSimulator(rate_limits={"azure-review": limit}, clock=StoppedClock()) as limited:
        put_finished_job(limited, "azure-review", "job-1")

        # When 4 requests come within a second
        with requests.Session() as session:
            codes = [azure_job_get(limited, session).status_code for _ in range(4)]

        # Then no more are admitted than the limit allows in a second (rounded down), the rest refused and counted
        assert codes == [200] * admitted + [429] * (4 - admitted)
        assert limited.over_limit("azure-review") == 4 - admitted


def test_simulator_window_is_a_whole_second_and_its_retry_after_when_it_has_room() -> None:
    # Given a provider limited to 2 requests a second that has admitted 2, 0.1 s apart
    clock = StoppedClock()
    with ProviderSimulator(rate_limits={"azure-review": 2}, clock=clock) as limited:
        put_finished_job(limited, "azure-review", "job-1")
        first = clock.now
        with requests.Session() as session:
            assert azure_job_get(limited, session).status_code == 200
            clock.now = first + 0.1
            assert azure_job_get(limited, session).status_code == 200

            # When a third comes 0.6 s after the first, still inside that second
            clock.now = first + 0.6
            refused = azure_job_get(limited, session)

            # Then it is refused, and told to come back when the second is over (0.4 s, in whole seconds: 1)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "1"
            assert limited.over_limit("azure-review") == 1

            # And at the very end of the first's second only its place is free again (a window of one second:
            # the second's request still holds its place), while a refused request took none
            clock.now = first + 1.0
            assert [azure_job_get(limited, session).status_code for _ in range(2)] == [200, 429]
            # and once the second's is over too, a place is free again
            clock.now = first + 1.1
            assert azure_job_get(limited, session).status_code == 200
        assert limited.over_limit("azure-review") == 2


# --- the factory ------------------------------------------------------------------------------------------------


def test_provider_without_credentials_has_no_client() -> None:
    assert build_client("huawei-video", ProviderSettings(endpoint="https://moderation.example.com")) is None


def test_huawei_v3_client_needs_a_project_id(simulator: ProviderSimulator) -> None:
    entry = simulator.provider_entry("huawei-video")
    entry.pop("project_id")

    with pytest.raises(ConfigurationError, match="project_id"):
        build_client("huawei-video", ProviderSettings.model_validate(entry))


def test_alibaba_batch_size_comes_from_the_settings(simulator: ProviderSimulator) -> None:
    settings = ProviderSettings.model_validate(simulator.provider_entry("alibaba-mps", batch_size=4))
    client = build_client("alibaba-mps", settings)
    assert client is not None
    assert client.max_batch == 4
    with pytest.raises(ValueError, match="at most 4"):
        client.fetch([f"job-{index}" for index in range(5)])
    client.close()


def test_azure_404_about_the_team_is_an_error_not_a_missing_job(
    simulator: ProviderSimulator, connect: Connect
) -> None:
    put_finished_job(simulator, "azure-review", "job-1")

    # A wrong team name would otherwise expire every job of the team
    with pytest.raises(ProviderResponseError, match=r"(?i)team"):
        connect("azure-review", team="no-such-team").fetch(["job-1"])


AZURE_GATEWAY_NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}


def azure_client(endpoint: str, options: HttpOptions = FAST, **entry: Any) -> ProviderClient:
    settings = ProviderSettings.model_validate(
        {"endpoint": endpoint, "team": "teamA", "credentials": {"subscription_key": "k" * 32}, **entry}
    )
    client = build_client("azure-review", settings, options=options)
    assert client is not None
    return client


def test_azure_gateway_404_for_a_path_nothing_serves_is_an_error_not_a_missing_job() -> None:
    # Given an endpoint entered with the API's path on it, so the client doubles the path, and Azure's gateway
    # answering such a path with its own 404 body
    paths: list[str] = []
    with answering(404, json.dumps(AZURE_GATEWAY_NOT_FOUND).encode(), paths=paths) as url:
        client = azure_client(f"{url}/contentmoderator/review/v1.0")

        # When a job is fetched, Then it is an unreadable answer, not a job the provider no longer knows
        with pytest.raises(ProviderResponseError, match="Resource not found"):
            client.fetch(["job-1"])
        client.close()

    assert paths == ["/contentmoderator/review/v1.0/contentmoderator/review/v1.0/teams/teamA/jobs/job-1"]


@pytest.mark.parametrize(
    ("status", "body", "missing"),
    [
        (404, {"Error": {"Code": "NotFound", "Message": "Job not found."}}, True),  # the Review API's own
        (404, AZURE_GATEWAY_NOT_FOUND, False),  # the gateway: no operation at this path
        (
            404,
            {"error": {"code": "NotFound", "message": "Job not found."}},
            False,
        ),  # not the Review API's keys
        (404, {"Error": {"Code": "NotFound", "Message": "Team not found."}}, False),  # a wrong team
        (404, {"Error": {"Code": "NotFound", "Message": "Not found."}}, False),  # says nothing of the job
        (404, {"Error": {"Code": "ResourceNotFound", "Message": "Job not found."}}, False),
        (404, {"Error": {"Code": "404", "Message": "Resource not found"}}, False),
        (404, {"Error": "Job not found."}, False),
        (404, ["Job not found."], False),
        (404, "<html><body>404 - File or directory not found.</body></html>", False),  # sent as raw text
        (400, {"Error": {"Code": "NotFound", "Message": "Job not found."}}, False),  # not a 404
    ],
    ids=[
        "review-api-job",
        "gateway",
        "lowercase-keys",
        "team",
        "no-job-named",
        "other-code",
        "gateway-code",
        "no-object",
        "list",
        "html",
        "status-400",
    ],
)
def test_only_the_review_apis_own_job_not_found_makes_an_azure_job_missing(
    status: int, body: Any, missing: bool
) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    with answering(status, raw) as url:
        client = azure_client(url)
        if missing:
            result = client.fetch(["job-1"])
            assert (result.jobs, result.missing) == ([], ["job-1"])
        else:
            with pytest.raises(ProviderResponseError):
                client.fetch(["job-1"])
        client.close()


@pytest.mark.parametrize(
    ("status", "code", "missing"),
    [
        (400, "AIS.0030", True),  # "Job not found", as Huawei documents it
        (404, "AIS.0030", True),
        (404, "AIS.0031", True),  # an undocumented job code on a 404 (an image batch past its retention)
        (404, "AIS.0005", False),  # "The service does not exist.": a wrong endpoint or region
        (404, "AIS.0002", False),  # credentials refused
        (404, "APIG.0101", False),  # the gateway: no such API
        (404, None, False),  # not Huawei's error body at all
        (400, "AIS.0010", False),
    ],
)
def test_huawei_error_answers_that_mean_the_job_is_unknown(
    status: int, code: str | None, missing: bool
) -> None:
    assert job_not_found(status, code, frozenset({JOB_NOT_FOUND})) is missing


# --- the wire request against the providers' official signers ---------------------------------------------------
# The simulator checks signatures with verdict_relay.signing itself, so a broken canonicalization rule signs and
# verifies alike and every test above still passes. These re-sign the request as it arrived with the providers' own
# SDKs (test-only oracles, as in tests/unit/test_signing.py): only that shows the provider would accept it.


def wire_header(request: Received, name: str) -> str:
    return next(value for key, value in request.headers.items() if key.lower() == name.lower())


@pytest.mark.parametrize("provider", ["huawei-video", "huawei-image-batch"])
def test_huawei_aksk_request_on_the_wire_carries_the_official_sdks_signature(
    simulator: ProviderSimulator, provider: str
) -> None:
    # Given a Huawei API answering a finished job
    bodies = {
        "huawei-video": huawei_video_job("job-1", "succeeded", "block"),
        "huawei-image-batch": huawei_image_batch_job(
            "job-1", "finish", [("https://img.example/1.jpg", "block")]
        ),
    }

    seen: list[Received] = []
    with recording(answers(lambda path: (200, bodies[provider], {})), seen) as url:
        settings = ProviderSettings.model_validate(simulator.provider_entry(provider, endpoint=url))
        client = build_client(provider, settings, options=FAST)
        assert client is not None

        # When the job is fetched with an AK/SK-signed request
        client.fetch(["job-1"])
        client.close()

    # Then huaweicloudsdkcore's Signer, given the configured endpoint and the request as it arrived (the headers
    # the SDK itself sets; it adds Host from the endpoint), computes the very Authorization our client sent
    ((request),) = seen
    parts = urlsplit(request.path)
    sent_names = {key.lower() for key in request.headers}
    sdk_request = SdkRequest(
        method=request.method,
        schema="http",
        host=urlsplit(url).netloc,
        resource_path=parts.path,
        query_params=parse_qsl(parts.query, keep_blank_values=True),
        header_params={
            name: wire_header(request, name)
            for name in ("X-Sdk-Date", "Content-Type", "X-Project-Id")
            if name.lower() in sent_names
        },
        body=request.body,
    )
    creds = simulator.credentials
    oracle = Signer(BasicCredentials(ak=creds.huawei_ak, sk=creds.huawei_sk)).sign(sdk_request)
    assert wire_header(request, "Authorization") == oracle.header_params["Authorization"]


def test_alibaba_acs3_request_on_the_wire_carries_tea_openapis_signature(
    simulator: ProviderSimulator,
) -> None:
    # Given MPS answering a finished job
    listed = {"MediaCensorJobList": {"MediaCensorJob": [alibaba_job("job-1", "Success", "block")]}}

    # When it is fetched with an ACS3-signed request
    seen = requests_of_a_fetch(simulator, "alibaba-mps", lambda path: (200, listed, {}))

    # Then tea-openapi's signer, given that request as it arrived (the headers the SDK itself sends), computes the
    # very Authorization our client sent
    ((request),) = seen
    parts = urlsplit(request.path)
    oracle_request = DaraRequest()
    oracle_request.method = request.method
    oracle_request.pathname = parts.path
    oracle_request.query = dict(parse_qsl(parts.query, keep_blank_values=True))
    oracle_request.headers = {
        name: wire_header(request, name)
        for name in (
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
            "accept",
        )
    }
    payload_hash = tea_utils.Utils.hash(request.body, "ACS3-HMAC-SHA256").hex()
    creds = simulator.credentials
    oracle = tea_utils.Utils.get_authorization(
        oracle_request,
        "ACS3-HMAC-SHA256",
        payload_hash,
        creds.alibaba_access_key_id,
        creds.alibaba_access_key_secret,
    )
    assert wire_header(request, "Authorization") == oracle


def test_alibaba_rpc_v1_request_on_the_wire_carries_aliyunsdkcores_signature(
    simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given MPS answering a finished job, and the client set to sign with RPC v1 (HMAC-SHA1)
    listed = {"MediaCensorJobList": {"MediaCensorJob": [alibaba_job("job-1", "Success", "block")]}}
    seen: list[Received] = []
    with recording(answers(lambda path: (200, listed, {})), seen) as url:
        entry = simulator.provider_entry("alibaba-mps", endpoint=url, credentials={"signature": "HMAC-SHA1"})
        client = build_client("alibaba-mps", ProviderSettings.model_validate(entry), options=FAST)
        assert client is not None

        # When it is fetched
        client.fetch(["job-1"])
        client.close()

    # Then aliyunsdkcore, given the request's own parameters, time and nonce, computes the very Signature sent
    ((request),) = seen
    sent = dict(parse_qsl(urlsplit(request.path).query, keep_blank_values=True))
    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: sent["Timestamp"])
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: sent["SignatureNonce"])
    common = {"Timestamp", "SignatureMethod", "SignatureType", "SignatureVersion", "SignatureNonce"}
    own = {k: v for k, v in sent.items() if k not in {*common, "AccessKeyId", "Format", "Signature"}}
    creds = simulator.credentials
    sdk_url, _ = rpc_signature_composer.get_signed_url(
        own, creds.alibaba_access_key_id, creds.alibaba_access_key_secret, sent["Format"], request.method, {}
    )
    assert sent["Signature"] == dict(parse_qsl(urlsplit(sdk_url).query))["Signature"]
