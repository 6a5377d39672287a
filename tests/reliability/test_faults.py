"""Faults: DynamoDB throttling and outage, SNS out of reach, SNS refusing messages (its topic gone). For each:
nothing lost, nothing duplicated, jobs left due.

Faults are injected where AWS would produce them — as HTTP responses or connection failures to the SDK (botocore
``before-send``) or an unreachable endpoint — so the SDK's own retries and our error handling both take part.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from tests.conftest import FakeAws
from tests.helpers import (
    ConfirmationThrottle,
    DynamoDBThrottle,
    QuietHandler,
    aws_response,
    emf_counts,
    huawei_signature,
    serving,
    with_changes,
)
from tests.integration.conftest import HUAWEI_SEEDS, PROVIDERS_DOCUMENT, ApiClient, configure_environment
from verdict_relay.dal.publisher import PUBLISH_ATTEMPTS
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.http_api import LambdaContext
from verdict_relay.local.stack import free_port
from verdict_relay.logic.ingest import PUBLISH_TIME_S
from verdict_relay.models.verdict import JobStatus
from verdict_relay.providers.registry import get_adapter


class ConfirmationRefused:
    """Answers the write that confirms a publish as IAM refuses it (``denied``), or with a body the SDK cannot
    read (``unreadable``): not a fault a moment heals."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.injected = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if b"publish_state = :published" not in (request.body or b""):
            return None
        self.injected += 1
        if self.how == "unreadable":
            body = json.dumps({"Attributes": "not-a-map"}).encode()
            return aws_response(request, 200, body, "application/x-amz-json-1.0")
        body = json.dumps(
            {"__type": "com.amazon.coral.service#AccessDeniedException", "Message": "not authorized"}
        ).encode()
        return aws_response(request, 400, body, "application/x-amz-json-1.0")


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Callable[..., Any]], None]:
    """Register a botocore handler on every session the functions create from now on."""
    handlers: list[tuple[str, Callable[..., Any]]] = []
    original = boto3.session.Session

    def session_with_faults(*args: Any, **kwargs: Any) -> Any:
        session = original(*args, **kwargs)
        for event, handler in handlers:
            session.events.register(event, handler)
        return session

    monkeypatch.setattr(boto3.session, "Session", session_with_faults)
    return lambda event, handler: handlers.append((event, handler))


def signed_callback(job_id: str) -> tuple[bytes, dict[str, str]]:
    body = with_changes("huawei-video", "succeeded", job_id=job_id)
    return body, {"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}


@pytest.fixture
def api_on_server(
    server_aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ApiClient]:
    configure_environment(monkeypatch, server_aws, tmp_path, PROVIDERS_DOCUMENT)
    yield ApiClient()
    dependencies_module.dependencies.cache_clear()


def test_brief_dynamodb_throttling_is_absorbed_by_sdk_retries(
    server_aws: FakeAws, inject: Callable[[str, Callable[..., Any]], None], api_on_server: ApiClient
) -> None:
    throttle = DynamoDBThrottle(times=2)
    inject("before-send.dynamodb", throttle)
    body, headers = signed_callback("throttled-1")

    response = api_on_server.callback("huawei-video", body, headers=headers)

    assert throttle.injected == 2
    assert response.status == 200
    assert api_on_server.get_job("huawei-video", "throttled-1").body["status"] == "succeeded"
    assert len(server_aws.published()) == 1


def test_sustained_throttling_refuses_the_callback_with_503_and_the_resend_lands_once(
    server_aws: FakeAws, inject: Callable[[str, Callable[..., Any]], None], api_on_server: ApiClient
) -> None:
    throttle = DynamoDBThrottle(times=1000)
    inject("before-send.dynamodb", throttle)
    body, headers = signed_callback("throttled-2")

    refused = api_on_server.callback("huawei-video", body, headers=headers)

    # Not acknowledged: the provider re-sends; nothing half-stored, nothing published
    assert refused.status == 503
    assert refused.body["error"]["code"] == "storage_unavailable"
    assert server_aws.table_items() == []
    assert server_aws.published() == []

    # When throttling ends and the provider re-sends (twice, as providers do)
    throttle.remaining = 0
    statuses = [api_on_server.callback("huawei-video", body, headers=headers).status for _ in range(2)]

    assert statuses == [200, 200]
    assert len(server_aws.published()) == 1


@pytest.mark.parametrize(
    ("throttled_calls", "code", "status"),
    [
        (1, "ProvisionedThroughputExceededException", 400),
        (2, "ProvisionedThroughputExceededException", 400),
        (1, "ThrottlingException", 400),
        (1, "InternalFailure", 500),
    ],
)
def test_a_throttled_publish_confirmation_is_tried_again_so_the_sweep_does_not_send_the_verdict_twice(
    server_aws: FakeAws,
    inject: Callable[[str, Callable[..., Any]], None],
    api_on_server: ApiClient,
    throttled_calls: int,
    code: str,
    status: int,
) -> None:
    # Given DynamoDB throttling the write that confirms a publish, after SNS took the verdict: every one of the
    # SDK's three attempts, of one confirmation or of two in a row (a provisioned table's throttling, an
    # on-demand table's past its maximum throughput, or a failure on DynamoDB's side)
    throttle = ConfirmationThrottle(times=3 * throttled_calls, code=code, status=status)
    inject("before-send.dynamodb", throttle)
    body, headers = signed_callback("confirm-throttled")

    # When the callback's verdict is stored and published
    response = api_on_server.callback("huawei-video", body, headers=headers)

    # Then the confirmation is tried again until it lands: nothing is left owed, so the sweep, once the publish
    # claim has run out, sends nothing again
    assert response.status == 200
    assert throttle.injected == 3 * throttled_calls
    deps = dependencies_module.dependencies()
    assert list(deps.store.unpublished("huawei-video")) == []
    later = datetime.now(UTC) + timedelta(minutes=15)
    assert deps.ingest.publish_owed("huawei-video", lambda: later) == 0
    assert [m["verdict"]["job_id"] for m in server_aws.published()] == ["confirm-throttled"]


class ConfirmationOutOfReach:
    """The next ``times`` attempts of the write that confirms a publish fail as botocore sees a table out of
    reach: ``error`` raised before any answer (no connection made, or a read that timed out)."""

    def __init__(self, times: int, error: type[Exception]) -> None:
        self.remaining = times
        self.error = error
        self.injected = 0

    def __call__(self, request: Any, **_: Any) -> None:
        if self.remaining <= 0 or b"publish_state = :published" not in (request.body or b""):
            return
        self.remaining -= 1
        self.injected += 1
        raise self.error(endpoint_url=request.url)


@pytest.mark.parametrize("error", [EndpointConnectionError, ReadTimeoutError])
def test_a_publish_confirmation_out_of_reach_is_tried_again_so_the_sweep_does_not_send_the_verdict_twice(
    server_aws: FakeAws,
    inject: Callable[[str, Callable[..., Any]], None],
    api_on_server: ApiClient,
    error: type[Exception],
) -> None:
    # Given DynamoDB out of reach for the write that confirms a publish, after SNS took the verdict: every one of
    # the SDK's three attempts fails to connect, or has its read time out
    fault = ConfirmationOutOfReach(times=3, error=error)
    inject("before-send.dynamodb", fault)
    body, headers = signed_callback("confirm-out-of-reach")

    # When the callback's verdict is stored and published
    response = api_on_server.callback("huawei-video", body, headers=headers)

    # Then the confirmation is tried again once DynamoDB answers: nothing is left owed, so the sweep, once the
    # publish claim has run out, sends nothing again
    assert response.status == 200
    assert fault.injected == 3
    deps = dependencies_module.dependencies()
    assert list(deps.store.unpublished("huawei-video")) == []
    later = datetime.now(UTC) + timedelta(minutes=15)
    assert deps.ingest.publish_owed("huawei-video", lambda: later) == 0
    assert [m["verdict"]["job_id"] for m in server_aws.published()] == ["confirm-out-of-reach"]


class DrainingContext(LambdaContext):
    """An invocation with ``seconds`` left when it starts, running down ``speed`` times as fast as the clock (so
    a test need not wait out a whole publish's budget)."""

    def __init__(self, seconds: float, speed: float = 1.0) -> None:
        super().__init__()
        self.seconds = seconds
        self.speed = speed
        self.started = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        spent = (time.monotonic() - self.started) * self.speed
        return max(0, int((self.seconds - spent) * 1000))


def test_a_publish_confirmation_throttled_past_the_invocations_time_is_given_up_and_counted_in_time(
    server_aws: FakeAws,
    inject: Callable[[str, Callable[..., Any]], None],
    api_on_server: ApiClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given DynamoDB throttling the confirmation of a publish for longer than the invocation has left, a callback
    # whose invocation has just the time a publish takes, and a little more
    throttle = ConfirmationThrottle(times=10_000)
    inject("before-send.dynamodb", throttle)
    body, headers = signed_callback("confirm-out-of-time")
    seconds, speed = PUBLISH_TIME_S + 6, 3.0
    api = ApiClient(DrainingContext(seconds, speed))
    answers: list[int] = []
    callback = threading.Thread(
        target=lambda: answers.append(api.callback("huawei-video", body, headers=headers).status)
    )
    capsys.readouterr()

    # When the callback's verdict is stored and published
    callback.start()
    callback.join(timeout=seconds / speed + 5)
    still_trying = callback.is_alive()
    throttle.remaining = 0  # lets a callback still trying finish, whatever the outcome
    callback.join(timeout=60)

    # Then the confirmation is tried again only while another attempt fits in the time left: the callback is
    # answered before the invocation would be cut off, and the unconfirmed publish is counted (its alarm says a
    # verdict will be sent again by the sweep), the verdict left owed
    assert not still_trying, "the confirmation was still tried after the invocation's time had run out"
    assert answers == [200]
    assert throttle.injected >= 3
    assert emf_counts(capsys.readouterr().out, service="verdict-relay").get("PublishUnconfirmed") == 1
    deps = dependencies_module.dependencies()
    assert [key.job_id for key in deps.store.unpublished("huawei-video")] == ["confirm-out-of-time"]
    assert [m["verdict"]["job_id"] for m in server_aws.published()] == ["confirm-out-of-time"]


def test_a_publish_confirmation_is_not_tried_again_past_the_writers_publish_claim(
    server_aws: FakeAws,
    inject: Callable[[str, Callable[..., Any]], None],
    api_on_server: ApiClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a verdict whose write (and publish claim) came 50 s before SNS took it, with time enough left in the
    # invocation, and DynamoDB throttling the confirmation for longer than the claim has left
    throttle = ConfirmationThrottle(times=10_000)
    inject("before-send.dynamodb", throttle)
    (verdict,) = get_adapter("huawei-video").parse_bytes(with_changes("huawei-video", "succeeded"))
    deps = dependencies_module.dependencies()
    written = datetime.now(UTC) - timedelta(seconds=50)
    outcomes: list[bool] = []
    writer = threading.Thread(
        target=lambda: outcomes.append(
            deps.ingest.ingest(verdict, None, written, time_left_s=lambda: 600.0).published
        )
    )

    # When it is stored and published
    writer.start()
    writer.join(timeout=20)
    still_trying = writer.is_alive()
    throttle.remaining = 0  # lets a writer still trying finish, whatever the outcome
    writer.join(timeout=60)

    # Then the confirmation is not tried again once another attempt would end past the claim (a sweep may take
    # the verdict then): it is given up and counted, the verdict left owed for that sweep
    assert not still_trying, "the confirmation was still tried after the writer's publish claim had run out"
    assert outcomes == [True]
    unconfirmed = [r.job_id for r in caplog.records if r.getMessage().startswith("publish not confirmed")]
    assert unconfirmed == [verdict.job_id]
    assert [key.job_id for key in deps.store.unpublished("huawei-video")] == [verdict.job_id]
    assert [m["verdict"]["job_id"] for m in server_aws.published()] == [verdict.job_id]


@pytest.mark.parametrize("how", ["denied", "unreadable"])
def test_a_refused_publish_confirmation_is_not_tried_again_and_the_sweep_sends_the_verdict_once_more(
    server_aws: FakeAws,
    inject: Callable[[str, Callable[..., Any]], None],
    api_on_server: ApiClient,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    # Given a table that refuses the confirmation of a publish (access denied), or answers it with what the SDK
    # cannot read, not for a moment
    denied = ConfirmationRefused(how)
    inject("before-send.dynamodb", denied)
    body, headers = signed_callback("confirm-denied")

    # When the callback's verdict is stored and published
    response = api_on_server.callback("huawei-video", body, headers=headers)

    # Then the callback is taken (SNS has its verdict), the confirmation is not tried again (waiting would not
    # help), it is counted, and the verdict stays owed: the sweep sends it once more after the claim, the one
    # repeat the confirmation exists to prevent
    assert response.status == 200
    assert denied.injected == 1
    assert emf_counts(capsys.readouterr().out, service="verdict-relay").get("PublishUnconfirmed") == 1
    deps = dependencies_module.dependencies()
    assert [key.job_id for key in deps.store.unpublished("huawei-video")] == ["confirm-denied"]
    later = datetime.now(UTC) + timedelta(minutes=15)
    assert deps.ingest.publish_owed("huawei-video", lambda: later) == 1
    assert [m["verdict"]["job_id"] for m in server_aws.published()] == ["confirm-denied"] * 2


def test_dynamodb_unreachable_is_a_503_and_never_a_lost_acknowledgement(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    dependencies_module.dependencies.cache_clear()
    body, headers = signed_callback("unreachable-1")

    response = ApiClient().callback("huawei-video", body, headers=headers)

    assert response.status == 503
    assert response.body["error"]["code"] == "storage_unavailable"
    assert aws.published() == []
    dependencies_module.dependencies.cache_clear()


_HOP_HEADERS = {"content-length", "connection", "transfer-encoding", "server", "date"}


@contextmanager
def dynamodb_whose_first_answer_stalls(target: str, marker: bytes) -> Iterator[tuple[str, list[float]]]:
    """A DynamoDB endpoint in front of ``target``: every request is passed on, but the answer to the first one
    whose body holds ``marker`` never comes back (DynamoDB applied it; the answer was lost on the way). Yields
    its URL and the times of the requests holding ``marker``."""
    marked: list[float] = []
    released = threading.Event()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            request = urllib.request.Request(target, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, answer_headers, payload = answer.status, answer.headers.items(), answer.read()
            except urllib.error.HTTPError as refused:
                status, answer_headers, payload = refused.code, refused.headers.items(), refused.read()
            if marker in body:
                marked.append(time.monotonic())
                if len(marked) == 1:
                    released.wait(timeout=120)
                    return  # the connection closes with no answer
            self.send_response(status)
            for name, value in answer_headers:
                if name.lower() not in _HOP_HEADERS:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    with serving(Handler) as url:
        try:
            yield url, marked
        finally:
            released.set()  # before the server stops: the stalled request ends too


def test_a_publish_confirmation_whose_answer_stalls_lands_in_time_and_the_verdict_goes_out_once(
    server_aws: FakeAws, api_on_server: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DynamoDB applies the confirmation of a publish but its answer never comes back
    confirmation = b"SET publish_state = :published"
    with dynamodb_whose_first_answer_stalls(os.environ["AWS_ENDPOINT_URL"], confirmation) as (endpoint, sent):
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        dependencies_module.dependencies.cache_clear()
        body, headers = signed_callback("stalled-confirmation-1")
        answers: list[int] = []
        callback = threading.Thread(
            target=lambda: answers.append(
                api_on_server.callback("huawei-video", body, headers=headers).status
            )
        )

        callback.start()
        callback.join(timeout=PUBLISH_TIME_S)

        # Then the stalled attempt is given up and tried again within the time the receiver keeps for a publish
        # and its confirmation (with botocore's 60 s reads, the function's timeout would cut it off first)
        assert not callback.is_alive(), "the confirmation was still waiting for its lost answer"
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
    dependencies_module.dependencies.cache_clear()
    assert answers == [200]
    assert len(sent) == 2
    # And the verdict is recorded as published, so no sweep sends it a second time
    (item,) = server_aws.job_items()
    assert item["publish_state"] == {"S": "published"}
    assert "unpublished_provider" not in item
    assert [m["verdict"]["job_id"] for m in server_aws.published()] == ["stalled-confirmation-1"]


class SnsOutOfReach:
    """SNS's endpoint out of reach, as botocore sees it (no connection made), until ``up`` is set. Counts the
    Publish requests botocore tried to send."""

    def __init__(self) -> None:
        self.up = False
        self.attempts = 0

    def __call__(self, request: Any, **_: Any) -> None:
        self.attempts += 1
        if not self.up:
            raise EndpointConnectionError(endpoint_url=request.url)


def test_sns_out_of_reach_on_the_callback_path_leaves_every_verdict_owed_and_a_sweep_publishes_each_once_back(
    server_aws: FakeAws,
    inject: Callable[[str, Callable[..., Any]], None],
    api_on_server: ApiClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given SNS out of reach (every Publish fails to connect) while 20 signed callbacks finish their jobs
    sns = SnsOutOfReach()
    inject("before-send.sns.Publish", sns)
    job_ids = [f"sns-unreachable-{i:02}" for i in range(20)]

    # When they arrive
    statuses = [api_on_server.callback("huawei-video", *signed_callback(job_id)).status for job_id in job_ids]

    # Then each is acknowledged and stored with its publish owed, and none is published
    assert statuses == [200] * 20
    store = dependencies_module.dependencies().store
    assert sorted(key.job_id for key in store.unpublished("huawei-video")) == job_ids
    assert all(store.status("huawei-video", job_id) is JobStatus.SUCCEEDED for job_id in job_ids)
    assert server_aws.published() == []
    # And the first publish took the unavailable path (its attempts, none connected, then the breaker opened),
    # so the other 19 were left owed without waiting on SNS (its 30 s cool-down outlasts the 20 callbacks)
    assert sns.attempts == PUBLISH_ATTEMPTS
    failed = [(r.job_id, r.sns_unavailable) for r in caplog.records if hasattr(r, "sns_unavailable")]
    assert failed == [(job_ids[0], True)]
    deferred = [r.job_id for r in caplog.records if r.getMessage().startswith("SNS out of reach moments ago")]
    assert deferred == job_ids[1:]

    # When SNS is back and the poller's owed-publish sweep (its own container) runs after the writers' claims
    sns.up = True
    dependencies_module.dependencies.cache_clear()
    later = datetime.now(UTC) + timedelta(minutes=2)
    swept = dependencies_module.dependencies().ingest.publish_owed("huawei-video", lambda: later)

    # Then every verdict was published exactly once, and none is owed any more
    assert swept == 20
    assert Counter(m["verdict"]["job_id"] for m in server_aws.published()) == Counter(
        dict.fromkeys(job_ids, 1)
    )
    assert list(dependencies_module.dependencies().store.unpublished("huawei-video")) == []


def test_verdicts_sns_refuses_while_the_topic_is_gone_stay_owed_and_concurrent_sweeps_publish_each_once(
    server_aws: FakeAws, api_on_server: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the topic deleted while 20 jobs finish: SNS answers, and refuses each message (404 NotFound)
    sns = server_aws.session.client("sns")
    endpoint = sns.list_subscriptions_by_topic(TopicArn=server_aws.resources.topic_arn)["Subscriptions"][0][
        "Endpoint"
    ]
    sns.delete_topic(TopicArn=server_aws.resources.topic_arn)
    job_ids = [f"outage-{i:02}" for i in range(20)]
    for job_id in job_ids:
        body, headers = signed_callback(job_id)
        assert api_on_server.callback("huawei-video", body, headers=headers).status == 200

    # Then SNS is not taken for out of reach: every verdict's publish was tried, and each refused one is owed
    refused = [(r.job_id, r.sns_unavailable) for r in caplog.records if hasattr(r, "sns_unavailable")]
    assert refused == [(job_id, False) for job_id in job_ids]
    store = dependencies_module.dependencies().store
    assert sorted(key.job_id for key in store.unpublished("huawei-video")) == job_ids

    # When the topic is back and four sweeps (poll cycles, operators) run at once
    sns.create_topic(Name=server_aws.resources.topic_arn.rsplit(":", 1)[1])
    sns.subscribe(TopicArn=server_aws.resources.topic_arn, Protocol="sqs", Endpoint=endpoint)
    ingest = dependencies_module.dependencies().ingest
    later = datetime.now(UTC) + timedelta(minutes=2)
    counts: list[int] = []
    sweeps = [
        threading.Thread(target=lambda: counts.append(ingest.publish_owed("huawei-video", lambda: later)))
        for _ in range(4)
    ]
    for sweep in sweeps:
        sweep.start()
    for sweep in sweeps:
        sweep.join(timeout=120)

    # Then every verdict was published exactly once
    assert sum(counts) == 20
    assert Counter(m["verdict"]["job_id"] for m in server_aws.published()) == Counter(
        dict.fromkeys(job_ids, 1)
    )


def test_a_verdict_sns_refuses_for_longer_than_the_retention_is_not_deleted_by_ttl_and_goes_out_once_back(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a retention of a day and the topic gone (SNS refuses every message) when a block verdict arrives
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT, RETENTION_DAYS="1")
    sns = aws.session.client("sns")
    endpoint = sns.list_subscriptions_by_topic(TopicArn=aws.resources.topic_arn)["Subscriptions"][0][
        "Endpoint"
    ]
    sns.delete_topic(TopicArn=aws.resources.topic_arn)
    body, headers = signed_callback("owed-long")
    assert ApiClient().callback("huawei-video", body, headers=headers).status == 200
    stored_at = datetime.now(UTC)

    def state() -> dict[str, Any]:
        return next(i for i in aws.table_items() if i["pk"]["S"] == "huawei-video#owed-long")

    # Then while its publish is owed it has no TTL (its retention kept aside), so DynamoDB cannot delete it
    owed = state()
    assert owed["publish_state"]["S"] == "pending"
    assert "expires_at" not in owed
    retain_until = int(owed["retain_until"]["N"])
    assert abs(retain_until - (stored_at + timedelta(days=1)).timestamp()) < 5

    # When SNS refuses for longer than the retention, then takes messages again and a sweep runs
    sns.create_topic(Name=aws.resources.topic_arn.rsplit(":", 1)[1])
    sns.subscribe(TopicArn=aws.resources.topic_arn, Protocol="sqs", Endpoint=endpoint)
    ingest = dependencies_module.dependencies().ingest
    assert ingest.publish_owed("huawei-video", lambda: datetime.now(UTC) + timedelta(days=2)) == 1

    # Then it went out once, and only now has its TTL: the retention its verdict was stored with
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["owed-long"]
    published = state()
    assert published["publish_state"]["S"] == "published"
    assert int(published["expires_at"]["N"]) == retain_until
    assert "retain_until" not in published


def test_a_response_the_sdk_cannot_parse_is_a_json_500_and_nothing_is_acknowledged(
    server_aws: FakeAws, inject: Callable[[str, Callable[..., Any]], None], api_on_server: ApiClient
) -> None:
    # Given DynamoDB answers with a body the SDK's parser chokes on (as a broken endpoint might)
    def garbled(request: Any, **_: Any) -> AWSResponse:
        body = json.dumps({"Attributes": "not-a-map"}).encode()
        return aws_response(request, 200, body, "application/x-amz-json-1.0")

    inject("before-send.dynamodb.UpdateItem", garbled)
    body, headers = signed_callback("garbled-1")

    response = api_on_server.callback("huawei-video", body, headers=headers)

    # Then the sender gets a JSON 500 (it will re-send), not a dropped connection or an HTML page
    assert response.status == 500
    assert response.body["error"]["code"] == "internal_error"
    # saying nothing of the fault (the log has it): no exception, no AWS detail
    assert response.body["error"]["message"] == "internal error; nothing was acknowledged, send again"
    assert server_aws.published() == []


def test_a_finishing_write_whose_answer_is_lost_is_published_by_its_own_callback_once(
    server_aws: FakeAws, api_on_server: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DynamoDB applies the write that finishes a job and claims its publish, but its answer never comes
    # back: the SDK's retry of that very write meets the job already finished
    finishing = b"claim_token = :claim_token"
    with dynamodb_whose_first_answer_stalls(os.environ["AWS_ENDPOINT_URL"], finishing) as (endpoint, sent):
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        dependencies_module.dependencies.cache_clear()
        body, headers = signed_callback("lost-answer-1")

        # When the callback arrives
        response = api_on_server.callback("huawei-video", body, headers=headers)

    # Then the retry knows the transition for its own (it holds the claim): the callback publishes the verdict
    # now, once, and confirms it, rather than leaving it owed to a sweep after the claim has run out
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
    dependencies_module.dependencies.cache_clear()
    assert response.status == 200
    assert len(sent) == 2
    assert [m["verdict"]["job_id"] for m in server_aws.published()] == ["lost-answer-1"]
    (item,) = server_aws.job_items()
    assert item["publish_state"] == {"S": "published"}
    later = datetime.now(UTC) + timedelta(minutes=15)
    assert dependencies_module.dependencies().ingest.publish_owed("huawei-video", lambda: later) == 0
    assert server_aws.published() == []
