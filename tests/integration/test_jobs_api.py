"""POST /jobs and GET /jobs/{provider}/{job_id}: registering jobs for the poller and reading verdicts."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.helpers import emf_counts, huawei_signature, load_payload_bytes, with_changes
from tests.integration.conftest import (
    AZURE_TOKENS,
    HUAWEI_SEEDS,
    PROVIDERS_DOCUMENT,
    ApiClient,
    NamedContext,
    configure_environment,
)
from verdict_relay.dal.archive import PayloadArchive
from verdict_relay.dal.store import JobStore
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.apigw import api_event
from verdict_relay.local.http_api import LambdaContext
from verdict_relay.models.verdict import Finding, JobStatus, Suggestion, Verdict


def test_registering_a_job_makes_it_outstanding_for_the_poller(api: ApiClient, aws: FakeAws) -> None:
    response = api.register(
        {"provider": "alibaba-mps", "job_id": "job-1", "metadata": {"content_id": "c-42"}}
    )

    assert response.status == 201
    assert response.body["status"] == "pending"
    assert response.body["metadata"] == {"content_id": "c-42"}
    (item,) = aws.table_items()
    assert item["poll_provider"]["S"] == "alibaba-mps"
    assert "next_poll_at" in item


def test_a_job_whose_provider_calls_back_is_first_polled_after_the_wait_its_entry_sets(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given Huawei video jobs expected to call back within half an hour, and Azure jobs with no such wait
    huawei = {"callback": {"seeds": HUAWEI_SEEDS, "first_poll_after_seconds": 1800}}
    configure_environment(monkeypatch, aws, tmp_path, {**PROVIDERS_DOCUMENT, "huawei-video": huawei})
    api = ApiClient()

    # When a job of each is registered
    before = datetime.now(UTC)
    assert api.register({"provider": "huawei-video", "job_id": "xxx"}).status == 201
    assert api.register({"provider": "azure-review", "job_id": "az-1"}).status == 201
    after = datetime.now(UTC)

    # Then the Huawei job is first polled half an hour later, the Azure one at the next cycle
    store = dependencies_module.dependencies().store
    (huawei_job,) = list(store.due_jobs("huawei-video", after + timedelta(seconds=1800)))
    assert int(before.timestamp()) + 1800 <= huawei_job.next_poll_at <= int(after.timestamp()) + 1801
    assert list(store.due_jobs("huawei-video", after + timedelta(seconds=1798))) == []
    assert [job.job_id for job in store.due_jobs("azure-review", after)] == ["az-1"]

    # And its callback finishes it meanwhile, with nothing polled
    body = load_payload_bytes("huawei-video", "succeeded")
    response = api.callback(
        "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
    )
    assert response.status == 200
    assert api.get_job("huawei-video", "xxx").body["status"] == "succeeded"
    assert list(store.due_jobs("huawei-video", after + timedelta(days=1))) == []


def test_a_job_registered_while_the_providers_document_does_not_load_is_polled_at_the_next_cycle(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a providers document that does not load (a key no entry takes)
    configure_environment(monkeypatch, aws, tmp_path, {"huawei-video": {"callback": {"no_such_key": 1}}})
    api = ApiClient()

    # When a job is registered, Then it is, and due at the next cycle: the job routes work without the document
    assert api.register({"provider": "huawei-video", "job_id": "job-1"}).status == 201
    store = dependencies_module.dependencies().store
    assert [job.job_id for job in store.due_jobs("huawei-video", datetime.now(UTC))] == ["job-1"]


def test_registering_the_same_job_twice_is_idempotent(api: ApiClient, aws: FakeAws) -> None:
    first = api.register({"provider": "alibaba-mps", "job_id": "job-1", "metadata": {"content_id": "c-42"}})
    second = api.register({"provider": "alibaba-mps", "job_id": "job-1", "metadata": {"content_id": "other"}})

    assert (first.status, second.status) == (201, 200)
    assert second.body["metadata"] == {"content_id": "c-42"}
    assert len(aws.table_items()) == 1


def test_a_registered_job_no_provider_answer_has_reached_shows_when_it_was_registered(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a job registered, of which its provider has said nothing yet
    before = datetime.now(UTC).replace(microsecond=0)
    registered = api.register({"provider": "azure-review", "job_id": "az-waiting"})
    after = datetime.now(UTC)

    # When the caller reads it back
    read = api.get_job("azure-review", "az-waiting")

    # Then both answers say it is pending since its registration, as the verdict's created_at documents
    assert (registered.status, read.status) == (201, 200)
    assert read.body["status"] == "pending"
    created = read.body["created_at"]
    assert created is not None
    assert before <= datetime.fromisoformat(created) <= after
    assert registered.body["created_at"] == created


def test_registered_metadata_is_published_with_the_verdict(api: ApiClient, aws: FakeAws) -> None:
    # Given a registered job
    api.register({"provider": "huawei-video", "job_id": "job-meta", "metadata": {"content_id": "c-7"}})
    body = with_changes("huawei-video", "succeeded", job_id="job-meta")

    # When its callback arrives
    api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)})

    # Then the published verdict and the stored one carry the caller's content id, and it left the poll index
    (message,) = aws.published()
    assert message["verdict"]["metadata"]["content_id"] == "c-7"
    assert api.get_job("huawei-video", "job-meta").body["metadata"]["content_id"] == "c-7"
    (item,) = aws.job_items()
    assert "poll_provider" not in item


def test_the_callers_metadata_stands_over_a_providers_key_of_the_same_name(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a job registered with the caller's own request id, under the key Huawei's result carries its own in
    api.register(
        {"provider": "huawei-video", "job_id": "job-req", "metadata": {"request_id": "caller-req-7"}}
    )
    body = with_changes("huawei-video", "succeeded", job_id="job-req", request_id="huawei-req-1")

    # When its callback arrives
    api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)})

    # Then the verdict published and read back carries the caller's value, as registered
    (message,) = aws.published()
    assert message["verdict"]["metadata"]["request_id"] == "caller-req-7"
    assert api.get_job("huawei-video", "job-req").body["metadata"]["request_id"] == "caller-req-7"


def test_registering_a_job_that_already_finished_keeps_its_verdict(api: ApiClient, aws: FakeAws) -> None:
    body = with_changes("huawei-video", "succeeded", job_id="job-done")
    api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)})

    response = api.register(
        {"provider": "huawei-video", "job_id": "job-done", "metadata": {"content_id": "c-9"}}
    )

    assert response.status == 200
    assert response.body["status"] == "succeeded"
    assert response.body["metadata"]["content_id"] == "c-9"
    (item,) = aws.job_items()
    assert "poll_provider" not in item


def test_registering_a_finished_job_again_keeps_the_metadata_it_was_first_given(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a finished job registered with the caller's metadata
    body = with_changes("huawei-video", "succeeded", job_id="job-kept")
    api.callback("huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)})
    first = api.register(
        {"provider": "huawei-video", "job_id": "job-kept", "metadata": {"content_id": "c-1"}}
    )

    # When it is registered again with other metadata (a retried request, or another caller)
    again = api.register(
        {"provider": "huawei-video", "job_id": "job-kept", "metadata": {"content_id": "c-2"}}
    )

    # Then it keeps the metadata it had, as an unfinished job does: both answers and the read say so
    assert (first.status, again.status) == (200, 200)
    assert again.body["metadata"]["content_id"] == "c-1"
    assert api.get_job("huawei-video", "job-kept").body["metadata"]["content_id"] == "c-1"


def test_a_registration_without_metadata_leaves_room_for_one_with_metadata(
    api: ApiClient, aws: FakeAws
) -> None:
    first = api.register({"provider": "alibaba-mps", "job_id": "job-1"})
    second = api.register({"provider": "alibaba-mps", "job_id": "job-1", "metadata": {"content_id": "c-42"}})

    assert (first.status, second.status) == (201, 200)
    assert second.body["metadata"] == {"content_id": "c-42"}
    assert api.get_job("alibaba-mps", "job-1").body["metadata"] == {"content_id": "c-42"}


def test_a_finished_job_removed_by_its_ttl_while_it_is_registered_is_registered_afresh(aws: FakeAws) -> None:
    client = aws.session.client("dynamodb")
    store = JobStore(
        aws.resources.table_name,
        client,
        PayloadArchive(aws.resources.bucket, lambda: aws.session.client("s3")),
    )
    now = datetime.now(UTC)
    done = Verdict(
        provider="huawei-video",
        job_id="job-old",
        status=JobStatus.SUCCEEDED,
        suggestion=Suggestion.PASS,
        decided_by="provider",
    )  # type: ignore[call-arg]
    store.record(done, b"{}", now, publish=False)
    deleted: list[bool] = []

    def expire_between_the_two_writes(params: dict[str, Any], **_: Any) -> None:
        # The second write of a registration of a finished job: TTL removes the item just before it
        if params.get("ConditionExpression", "").startswith("attribute_exists(pk)") and not deleted:
            aws.session.client("dynamodb").delete_item(
                TableName=aws.resources.table_name,
                Key={"pk": {"S": "huawei-video#job-old"}, "sk": {"S": "STATE"}},
            )
            deleted.append(True)

    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", expire_between_the_two_writes)

    created, job = store.register("huawei-video", "job-old", {"content_id": "c-1"}, now, first_poll_at=now)

    # A whole pending job, due for the poller; not a fragment holding only the metadata
    assert deleted == [True]
    assert created
    assert (job.status, job.caller_metadata) == (JobStatus.PENDING, {"content_id": "c-1"})
    assert [j.job_id for j in store.due_jobs("huawei-video", now)] == ["job-old"]


def test_a_job_past_its_retention_is_a_404_though_dynamodb_has_not_deleted_it_yet(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a finished job whose verdict was archived in S3, past its TTL: S3's lifecycle has deleted the
    # archived verdict, while DynamoDB, which deletes expired items up to a few days late, still has the item
    body = with_changes("huawei-video", "succeeded", job_id="job-expired")
    headers = {"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
    assert api.callback("huawei-video", body, headers=headers).status == 200
    assert api.get_job("huawei-video", "job-expired").status == 200
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": "huawei-video#job-expired"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET expires_at = :past, verdict_s3_key = :gone REMOVE verdict_gz",
        ExpressionAttributeValues={
            ":past": {"N": str(int(datetime.now(UTC).timestamp()) - 60)},
            ":gone": {"S": "jobs/huawei-video/job-expired/verdict.json.gz"},
        },
    )

    # When it is read, then it is gone (a 404), not a storage failure (a 503 for a client's ordinary read)
    response = api.get_job("huawei-video", "job-expired")
    assert response.status == 404
    assert response.body["error"]["code"] == "not_found"


@pytest.mark.parametrize("metadata", [{}, {"content_id": "c-2"}], ids=["without-metadata", "with-metadata"])
def test_a_job_past_its_retention_registered_again_is_followed_afresh(
    api: ApiClient, aws: FakeAws, metadata: dict[str, str]
) -> None:
    # Given a finished job past its TTL, whose archived verdict S3 has deleted, not yet deleted by DynamoDB
    body = with_changes("huawei-video", "succeeded", job_id="job-again")
    assert (
        api.callback(
            "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
        ).status
        == 200
    )
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": "huawei-video#job-again"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET expires_at = :past, verdict_s3_key = :gone REMOVE verdict_gz",
        ExpressionAttributeValues={
            ":past": {"N": str(int(datetime.now(UTC).timestamp()) - 60)},
            ":gone": {"S": "jobs/huawei-video/job-again/verdict.json.gz"},
        },
    )

    # When the same job id is registered
    response = api.register({"provider": "huawei-video", "job_id": "job-again", "metadata": metadata})

    # Then it is a new pending job, due for the poller (not the expired one, nor a 503 for its missing verdict)
    assert response.status == 201, response.body
    assert (response.body["status"], response.body["metadata"]) == ("pending", metadata)
    (item,) = aws.job_items()
    assert "expires_at" not in item
    assert "next_poll_at" in item


@pytest.mark.parametrize("content_type", ["Application/JSON", "APPLICATION/JSON; charset=UTF-8"])
def test_the_content_type_is_matched_without_regard_to_case(
    api: ApiClient, aws: FakeAws, content_type: str
) -> None:
    response = api.register({"provider": "alibaba-mps", "job_id": "job-1"}, content_type=content_type)

    assert response.status == 201, response.body
    assert api.get_job("alibaba-mps", "job-1").body["status"] == "pending"


def test_a_job_id_longer_than_any_job_can_have_is_a_404_not_a_storage_error(
    api: ApiClient, aws: FakeAws
) -> None:
    # DynamoDB refuses keys over 2,048 bytes (ValidationException, which would be a 503); moto does not, so
    # the test reads the answer the handler gives without asking the table
    for job_id in ("j" * 3000, "\u5b57" * 200):  # 200 characters, but 600 bytes
        response = api.get_job("alibaba-mps", job_id)

        assert response.status == 404
        assert response.body["error"]["code"] == "not_found"
        assert "longer than 512 bytes" in response.body["error"]["message"]


def test_a_job_whose_id_takes_exactly_the_most_bytes_a_job_id_may_take_is_read_back(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given jobs registered with ids of exactly 512 bytes, the most a job id may take (one in ASCII, one of
    # three-byte characters)
    job_ids = ["j" * 512, "\u5b57" * 170 + "jj"]
    for job_id in job_ids:
        assert len(job_id.encode("utf-8")) == 512
        assert api.register({"provider": "alibaba-mps", "job_id": job_id}).status == 201

    # When each is read back
    responses = [api.get_job("alibaba-mps", job_id) for job_id in job_ids]

    # Then each is found, not a 404 for an id no job can have
    assert [(r.status, r.body["job_id"]) for r in responses] == [(200, job_id) for job_id in job_ids]


def stored_huge_verdict(aws: FakeAws, job_id: str) -> Verdict:
    """A finished huawei-video verdict of 8,000 findings whose recognized text is full of quotes, stored (its
    verdict archived to S3): too large for a Lambda response once escaped, so the function answers it trimmed."""
    store = JobStore(
        aws.resources.table_name,
        aws.session.client("dynamodb"),
        PayloadArchive(aws.resources.bucket, lambda: aws.session.client("s3")),
    )
    findings = [
        Finding(
            category="porn",
            label=f"label-{i}",
            confidence=0.5 if i else 0.99,
            suggestion=Suggestion.BLOCK if i == 0 else Suggestion.REVIEW,
            time_offset=float(i),
            text='"' * 150 + hashlib.sha256(str(i).encode()).hexdigest(),  # compresses little
        )
        for i in range(8_000)
    ]
    huge = Verdict(
        provider="huawei-video",
        job_id=job_id,
        status=JobStatus.SUCCEEDED,
        suggestion=Suggestion.BLOCK,
        findings=findings,
        decided_by="provider",
    )  # type: ignore[call-arg]
    store.record(huge, b"{}", datetime.now(UTC), publish=False)
    return huge


@pytest.mark.parametrize("request_kind", ["read", "registered again"])
def test_a_verdict_too_large_for_a_lambda_response_is_answered_trimmed_and_says_so(
    api: ApiClient, aws: FakeAws, request_kind: str
) -> None:
    from verdict_relay.handlers.callback import lambda_handler

    # Given a verdict of 8,000 findings whose recognized text is full of quotes: under 5 MB of JSON, over 7 MB
    # once the proxy response escapes its quotes and backslashes again. Archived to S3.
    huge = stored_huge_verdict(aws, "job-long")
    assert len(huge.model_dump_json()) < 5_000_000
    assert len(json.dumps(huge.model_dump_json())) > 7_000_000
    assert any(key.startswith("jobs/") and key.endswith("/verdict.json.gz") for key in aws.bucket_keys())

    # When it is read, or registered again (a client retrying a registration: 200, the job as it is)
    if request_kind == "read":
        event = api_event(
            "GET",
            "/jobs/huawei-video/job-long",
            resource="/jobs/{provider}/{job_id}",
            path_parameters={"provider": "huawei-video", "job_id": "job-long"},
        )
    else:
        event = api_event(
            "POST",
            "/jobs",
            resource="/jobs",
            body=json.dumps({"provider": "huawei-video", "job_id": "job-long"}),
            headers={"Content-Type": "application/json"},
        )
    result = lambda_handler(event, LambdaContext())

    # Then the whole proxy response fits what Lambda may return, keeps the strongest finding, and the header
    # says it was trimmed
    assert result["statusCode"] == 200
    assert len(json.dumps(result, ensure_ascii=False).encode()) <= 6_291_456
    assert result["multiValueHeaders"]["X-Findings-Truncated"] == ["true"]
    body = json.loads(result["body"])
    assert body["findings"][0]["label"] == "label-0"
    assert 0 < len(body["findings"]) < 8_000


def test_unknown_job_is_a_404(api: ApiClient, aws: FakeAws) -> None:
    response = api.get_job("alibaba-mps", "nope")

    assert response.status == 404
    assert response.body["error"]["code"] == "not_found"


def test_job_of_an_unknown_provider_is_a_404(api: ApiClient, aws: FakeAws) -> None:
    response = api.get_job("acme", "nope")

    assert response.status == 404
    assert response.body["error"]["code"] == "unknown_provider"


def test_the_local_api_answers_requests_arriving_together_each_with_its_own_answer(api: ApiClient) -> None:
    # Given the local HTTP API (make run) in front of the real handler, and callbacks arriving at the same time,
    # every other one without its token
    from verdict_relay.handlers.callback import lambda_handler
    from verdict_relay.local.http_api import LocalHttpApi

    local = LocalHttpApi(lambda_handler, port=0).start()
    body = load_payload_bytes("azure-review", "job-callback")

    def callback(index: int) -> int:
        query = f"?token={AZURE_TOKENS[0]}" if index % 2 == 0 else ""
        request = urllib.request.Request(
            f"{local.base_url}/callbacks/azure-review{query}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(callback, range(60)))
    finally:
        local.stop()

    # Then each is answered as its own request deserves, as one Lambda container answers one at a time
    assert statuses == [200 if index % 2 == 0 else 401 for index in range(60)]


@pytest.mark.parametrize(
    ("job_id", "registered"),
    [
        ("job-é_Ü-42", True),  # letters of any script
        ("price-€", True),
        ("a?b", True),
        ('a"b', True),
        ("a`b", True),
        ("a\\b", True),
        ("a%41", True),  # read back as a%41, not aA
        ("-._~()'!*:@,;=+&$<>[]{}|^", True),
        ("a/b", False),  # API Gateway does not promise to keep an encoded slash in one path segment
        ("a b", False),
        ("a#b", False),
        ("abc\n", False),
        ("a\uffff", False),  # not characters: SQS carries only XML 1.0's
        ("a\ufffe", False),
        ("a\ufeffb", False),  # whitespace to the spec's pattern (ECMA-262's \s), though not to Python's
    ],
)
def test_a_job_id_is_registered_only_if_its_job_can_be_read_back(
    api: ApiClient, aws: FakeAws, job_id: str, registered: bool
) -> None:
    response = api.register({"provider": "azure-review", "job_id": job_id})

    if not registered:
        assert response.status == 422, response.body
        assert [d["field"] for d in response.body["error"]["details"]] == ["job_id"]
        assert aws.table_items() == []
        return
    assert response.status == 201, response.body
    read = api.get_job("azure-review", job_id)  # percent-encoded, as a client sends it
    assert (read.status, read.body.get("job_id")) == (200, job_id), read.body


def test_an_alibaba_job_id_with_a_comma_is_refused_as_mps_would_read_it_as_several(
    api: ApiClient, aws: FakeAws
) -> None:
    response = api.register({"provider": "alibaba-mps", "job_id": "job-a,job-b"})

    assert response.status == 422, response.body
    assert [d["field"] for d in response.body["error"]["details"]] == ["job_id"]
    assert aws.table_items() == []
    assert api.register({"provider": "huawei-video", "job_id": "job-a,job-b"}).status == 201


def test_a_job_id_with_characters_a_client_encodes_is_read_back_over_http(api: ApiClient) -> None:
    # Given a job whose id has characters an HTTP client percent-encodes in a path
    from verdict_relay.handlers.callback import lambda_handler
    from verdict_relay.local.http_api import LocalHttpApi

    job_id = "clip-é?v=2"
    assert api.register({"provider": "alibaba-mps", "job_id": job_id}).status == 201
    local = LocalHttpApi(lambda_handler, port=0).start()
    try:
        # When it is read through the local HTTP API, which passes the path on encoded as API Gateway does
        url = f"{local.base_url}/jobs/alibaba-mps/{urllib.parse.quote(job_id, safe='')}"
        with urllib.request.urlopen(url, timeout=30) as response:
            status, body = response.status, json.loads(response.read())
    finally:
        local.stop()

    # Then it is that job
    assert (status, body["job_id"]) == (200, job_id)


def test_a_trimmed_verdict_read_over_the_local_http_api_carries_the_header_that_says_so(
    api: ApiClient, aws: FakeAws
) -> None:
    from verdict_relay.handlers.callback import lambda_handler
    from verdict_relay.local.http_api import LocalHttpApi

    # Given a verdict too large for a Lambda response (as above), which the function answers trimmed
    stored_huge_verdict(aws, "job-long-http")
    local = LocalHttpApi(lambda_handler, port=0).start()
    try:
        # When a client reads it through the local HTTP API, as API Gateway serves it
        with urllib.request.urlopen(
            f"{local.base_url}/jobs/huawei-video/job-long-http", timeout=60
        ) as response:
            status, headers, body = response.status, response.headers, json.loads(response.read())
    finally:
        local.stop()

    # Then the client sees the header the function set (API Gateway passes a proxy result's multiValueHeaders
    # on), not only the trimmed body
    assert status == 200
    assert headers["X-Findings-Truncated"] == "true"
    assert headers["Content-Type"] == "application/json"
    assert 0 < len(body["findings"]) < 8_000


def test_the_receiver_counts_its_containers_first_invocation_as_a_cold_start(
    api: ApiClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.metrics.provider import cold_start

    # Given a new container of the callback receiver (the test process has invoked handlers before)
    monkeypatch.setattr(cold_start, "is_cold_start", True)
    client = ApiClient(NamedContext("verdict-relay-staging-ApiFunction"))
    capsys.readouterr()

    # When it is invoked twice
    client.register({"provider": "huawei-video", "job_id": "cold-1"})
    client.get_job("huawei-video", "cold-1")

    # Then its ColdStart is counted once, under its function's name: how often callbacks meet a cold start
    assert emf_counts(
        capsys.readouterr().out, service="verdict-relay", function_name="verdict-relay-staging-ApiFunction"
    ) == {"ColdStart": 1}
