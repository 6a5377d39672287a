"""The fan-out queue: batches reach the workers whole, in messages SQS accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from pydantic import ValidationError

from tests.conftest import FakeAws
from verdict_relay.dal.poll_queue import PollBatch, PollQueue, PollQueueError, parse_batch
from verdict_relay.models.jobs import DueJob

SQS_URL = "https://sqs.us-east-1.amazonaws.com"


SQS_MAX_BYTES = 262_144
"""SQS's documented limit for one message and for one SendMessageBatch call, written out: the module's own
constant would let the sizes follow it past what SQS takes (the local SQS checks neither)."""


def test_a_batch_too_large_for_one_message_arrives_whole_in_several(aws: FakeAws) -> None:
    queue_url = aws.resources.queue_urls["PollQueue"]
    created = datetime(2026, 11, 1, tzinfo=UTC)
    # 1,000 jobs with 300-character ids: about 350 KiB of JSON, over SQS's 256 KiB.
    jobs = [DueJob(f"{i:04}-" + "x" * 295, poll_attempts=i % 7, created_at=created) for i in range(1000)]
    small = PollBatch(provider="huawei-video", jobs=[DueJob("short")])

    PollQueue(queue_url, aws.session.client("sqs")).send(
        [PollBatch(provider="alibaba-mps", jobs=jobs), small]
    )

    bodies = [message["Body"] for message in aws.drain(queue_url)]
    assert len(bodies) >= 3
    assert all(len(body.encode()) <= SQS_MAX_BYTES for body in bodies)
    batches = [parse_batch(body) for body in bodies]
    received = sorted(
        (job for batch in batches if batch.provider == "alibaba-mps" for job in batch.jobs),
        key=lambda job: job.job_id,
    )
    assert received == jobs  # ids, poll counts and creation times, all of them, once
    assert [batch.jobs for batch in batches if batch.provider == "huawei-video"] == [[DueJob("short")]]


def test_a_job_id_sqs_would_not_carry_as_it_is_travels_escaped_and_reads_back_the_same(aws: FakeAws) -> None:
    # Given a job whose id has characters outside XML 1.0 (stored before registration refused them): SQS would
    # replace or refuse them in a message body
    queue_url = aws.resources.queue_urls["PollQueue"]
    jobs = [DueJob("old-\uffff"), DueJob("old-\ufffe"), DueJob("prix-€")]

    PollQueue(queue_url, aws.session.client("sqs")).send([PollBatch(provider="azure-review", jobs=jobs)])

    (body,) = [message["Body"] for message in aws.drain(queue_url)]
    assert body.isascii()
    assert parse_batch(body).jobs == jobs


def test_batches_sqs_does_not_take_do_not_stop_the_ones_after_them(aws: FakeAws) -> None:
    # Given a send of 25 batches (three SendMessageBatch calls), of which SQS answers the first call that it did
    # not take one message
    client = aws.session.client("sqs")
    calls = []

    def first_entry_of_the_first_call_failed(parsed: dict[str, Any], **_: object) -> None:
        calls.append(parsed)
        if len(calls) == 1:
            parsed["Failed"] = [{"Id": "0", "SenderFault": False, "Code": "InternalError"}]
            parsed["Successful"] = parsed["Successful"][1:]

    client.meta.events.register("after-call.sqs.SendMessageBatch", first_entry_of_the_first_call_failed)
    batches = [PollBatch(provider="azure-review", jobs=[DueJob(f"az-{i:02}")]) for i in range(25)]

    with pytest.raises(PollQueueError, match=r"1 batches not sent \(InternalError\)") as raised:
        PollQueue(aws.resources.queue_urls["PollQueue"], client).send(batches)

    # Then the calls after it were made, and the error counts what went out
    assert len(calls) == 3
    assert raised.value.sent == 24


def test_a_message_that_is_not_a_batch_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="jobs"):
        parse_batch(json.dumps({"provider": "azure-review", "job_ids": ["j1"]}))


def test_a_providers_next_batch_is_handed_out_only_once_the_one_being_polled_is_done(aws: FakeAws) -> None:
    # One worker at a time per provider is what lets a worker poll at the provider's whole rate limit.
    queue_url = aws.resources.queue_urls["PollQueue"]
    sqs = aws.session.client("sqs")
    batches = [
        PollBatch(provider="huawei-video", jobs=[DueJob("hv-1")]),
        PollBatch(provider="huawei-video", jobs=[DueJob("hv-2")]),
        PollBatch(provider="azure-review", jobs=[DueJob("az-1")]),
    ]
    PollQueue(queue_url, sqs).send(batches)

    def receive() -> list[dict[str, str]]:  # as the event source mapping does for each worker: one message
        return sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1).get("Messages", [])

    first, second, third = receive(), receive(), receive()
    # Two workers take a batch each, from different providers; the third finds nothing it may take.
    assert sorted(parse_batch(m["Body"]).provider for m in first + second) == ["azure-review", "huawei-video"]
    assert third == []
    polling = next(m for m in first + second if parse_batch(m["Body"]).provider == "huawei-video")
    assert parse_batch(polling["Body"]).jobs == [DueJob("hv-1")]
    # Once the worker is done with its batch, the provider's next one is handed out.
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=polling["ReceiptHandle"])
    [after] = receive()
    assert parse_batch(after["Body"]).jobs == [DueJob("hv-2")]


def test_the_same_batch_sent_twice_within_minutes_is_queued_once(aws: FakeAws) -> None:
    queue_url = aws.resources.queue_urls["PollQueue"]
    queue = PollQueue(queue_url, aws.session.client("sqs"))
    batch = PollBatch(provider="azure-review", jobs=[DueJob("az-1")], until=datetime(2026, 11, 1, tzinfo=UTC))

    queue.send([batch])
    queue.send([batch])  # the same body: its deduplication id is its content's

    assert [parse_batch(m["Body"]) for m in aws.drain(queue_url)] == [batch]


def test_a_batch_that_keeps_failing_moves_to_the_dead_letter_queue_and_lets_its_providers_next_one_go(
    aws: FakeAws,
) -> None:
    queue_url = aws.resources.queue_urls["PollQueue"]
    sqs = aws.session.client("sqs")
    failing = PollBatch(provider="huawei-video", jobs=[DueJob("hv-1")])
    PollQueue(queue_url, sqs).send([failing, PollBatch(provider="huawei-video", jobs=[DueJob("hv-2")])])

    def receive() -> list[PollBatch]:  # a worker that fails its batch: it is visible again at once
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, VisibilityTimeout=0)
        return [parse_batch(m["Body"]) for m in messages.get("Messages", [])]

    # The template's maxReceiveCount (3) tries, then the batch is moved aside and the next one handed out.
    assert [receive() for _ in range(3)] == [[failing]] * 3
    assert [batch.jobs for batch in receive()] == [[DueJob("hv-2")]]
    assert [parse_batch(m["Body"]) for m in aws.drain(aws.resources.queue_urls["PollDeadLetterQueue"])] == [
        failing
    ]


@pytest.mark.parametrize(
    ("error", "sent"),
    [
        (ReadTimeoutError(endpoint_url=SQS_URL), None),  # SQS may have queued the batch
        (ConnectionClosedError(endpoint_url=SQS_URL), None),
        (EndpointConnectionError(endpoint_url=SQS_URL), 0),  # never reached
        (ConnectTimeoutError(endpoint_url=SQS_URL), 0),
        (NoCredentialsError(), 0),  # the request never left
    ],
    ids=["read-timeout", "connection-closed", "endpoint-unreachable", "connect-timeout", "no-credentials"],
)
def test_a_failed_send_says_whether_its_batches_may_have_gone_out(
    aws: FakeAws, error: Exception, sent: int | None
) -> None:
    from verdict_relay.handlers.dependencies import SQS_CONFIG

    client = aws.session.client("sqs", config=SQS_CONFIG)

    def fail(**_: object) -> None:
        raise error

    client.meta.events.register("before-send.sqs.SendMessageBatch", fail)

    with pytest.raises(PollQueueError) as raised:
        PollQueue(aws.resources.queue_urls["PollQueue"], client).send(
            [PollBatch(provider="azure-review", jobs=[DueJob("az-1")])]
        )

    assert raised.value.sent == sent


@pytest.mark.parametrize(
    "jobs_per_batch",
    # about 120 KiB a batch (two in a call: 240 KiB); about 90 KiB (three would be 270 KiB, just past SQS's limit)
    [1000, 800],
    ids=["two-full-batches-a-call", "three-would-just-pass-the-limit"],
)
def test_batches_that_together_exceed_one_request_are_sent_in_calls_sqs_takes_whole(
    aws: FakeAws, jobs_per_batch: int
) -> None:
    # Given three batches that together exceed the 262,144 bytes SQS takes in one SendMessageBatch call (it
    # refuses the whole call, BatchRequestTooLong, which the local SQS does not check), two of which fit in one
    queue_url = aws.resources.queue_urls["PollQueue"]
    client = aws.session.client("sqs")
    call_bytes: list[int] = []

    def measure(params: dict[str, Any], **_: object) -> None:
        call_bytes.append(sum(len(entry["MessageBody"].encode()) for entry in params["Entries"]))

    client.meta.events.register("before-parameter-build.sqs.SendMessageBatch", measure)
    created = datetime(2026, 11, 1, tzinfo=UTC)
    batches = [
        PollBatch(
            provider="huawei-video",
            jobs=[
                DueJob(f"{b}-{i:04}-" + "x" * 40, poll_attempts=3, created_at=created)
                for i in range(jobs_per_batch)
            ],
        )
        for b in range(3)
    ]

    # When they are sent
    PollQueue(queue_url, client).send(batches)

    # Then they go in two calls, none over SQS's limit, and every batch arrives whole
    assert len(call_bytes) == 2
    assert all(size <= SQS_MAX_BYTES for size in call_bytes)
    received = sorted((parse_batch(m["Body"]) for m in aws.drain(queue_url)), key=lambda b: b.jobs[0].job_id)
    assert received == batches


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url=SQS_URL),
        ClientError({"Error": {"Code": "RequestThrottled", "Message": "throttled"}}, "SendMessageBatch"),
    ],
    ids=["unreachable", "refused"],
)
def test_a_send_that_fails_after_its_first_call_went_out_says_that_call_did(
    aws: FakeAws, error: Exception
) -> None:
    from verdict_relay.handlers.dependencies import SQS_CONFIG

    # Given a send of 15 batches (two SendMessageBatch calls), whose second call fails: SQS out of reach, or
    # refusing it
    queue_url = aws.resources.queue_urls["PollQueue"]
    client = aws.session.client("sqs", config=SQS_CONFIG)
    calls: list[str] = []

    def fail_the_second_call(**_: object) -> None:
        calls.append("call")
        if len(calls) == 2:
            raise error

    client.meta.events.register("before-send.sqs.SendMessageBatch", fail_the_second_call)
    batches = [PollBatch(provider="azure-review", jobs=[DueJob(f"az-{i:02}")]) for i in range(15)]

    with pytest.raises(PollQueueError) as raised:
        PollQueue(queue_url, client).send(batches)

    # Then the error says the first call's 10 batches went out (they are with the workers: the poller keeps their
    # hold rather than polling the provider on top of them)
    assert raised.value.sent == 10
    assert len(aws.drain(queue_url)) == 10
