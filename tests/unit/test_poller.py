"""The poll cycle against the real store (moto) and scripted provider clients (fakes of the external API)."""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.conftest import FakeAws
from tests.helpers import aws_response
from verdict_relay.clients.base import (
    FetchedJob,
    FetchResult,
    ProviderAuthError,
    ProviderClient,
    ProviderOutOfTimeError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from verdict_relay.dal.archive import PayloadArchive
from verdict_relay.dal.codec import compress
from verdict_relay.dal.publisher import PUBLISH_ATTEMPTS, VerdictPublisher
from verdict_relay.dal.store import STATE, JobStore
from verdict_relay.errors import StorageError
from verdict_relay.logic.breaker import CircuitBreaker
from verdict_relay.logic.ingest import IngestService
from verdict_relay.logic.policy import VerdictPolicy
from verdict_relay.logic.poller import Poller, PollSettings, ProviderReport
from verdict_relay.models.jobs import DueJob, NextPoll, Transition
from verdict_relay.models.verdict import JobStatus, Suggestion, Verdict
from verdict_relay.observability import metrics

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PLENTY_OF_TIME = lambda: 600.0  # noqa: E731


@pytest.fixture(autouse=True)
def metrics_of_this_test_only() -> Iterator[None]:
    """The metrics a test counts are not carried into the next one (Powertools keeps them until a flush)."""
    yield
    metrics.clear_metrics()


class ScriptedClient(ProviderClient):
    """A provider API whose jobs and failures the test sets; records what it was asked."""

    def __init__(self, name: str, max_batch: int = 1) -> None:
        self.name = name
        self.max_batch = max_batch
        self.jobs: dict[str, Verdict] = {}
        self.missing: set[str] = set()
        self.failures: list[Exception] = []
        self.requests: list[list[str]] = []
        self.discoverable: list[str] = []
        self.discovers = True
        self.discovery_failures: list[Exception] = []
        self.discovery_windows: list[tuple[datetime, datetime]] = []
        self.unreadable: set[str] = set()
        """Jobs whose answer cannot be read: a request that includes one fails as a whole."""
        self.failing: set[str] = set()
        """Jobs the provider always answers with a 500: a request that includes one fails as a whole."""
        self.raw: dict[str, bytes] = {}
        """A job's raw payload, where it is not the default small one."""

    def fetch(self, job_ids: Sequence[str]) -> FetchResult:
        self.requests.append(list(job_ids))
        if self.failures:
            raise self.failures.pop(0)
        if self.unreadable.intersection(job_ids):
            raise ProviderResponseError(f"{self.name}: the answer for one of the jobs has an odd shape")
        if self.failing.intersection(job_ids):
            raise ProviderUnavailableError(f"{self.name}: unavailable (HTTP 500)")
        found = [
            FetchedJob(self.jobs[j], self.raw.get(j, b'{"raw": true}')) for j in job_ids if j in self.jobs
        ]
        return FetchResult(jobs=found, missing=[j for j in job_ids if j in self.missing])

    def discover(self, since: datetime, until: datetime) -> list[str]:
        self.discovery_windows.append((since, until))
        if self.discovery_failures:
            raise self.discovery_failures.pop(0)
        return list(self.discoverable)


def verdict(provider: str, job_id: str, status: JobStatus, suggestion: Suggestion | None = None) -> Verdict:
    return Verdict(
        provider=provider, job_id=job_id, status=status, suggestion=suggestion, decided_by="provider"
    )  # type: ignore[arg-type]


class World:
    def __init__(self, aws: FakeAws, *clients: ScriptedClient, concurrency: int | None = None) -> None:
        session = aws.session
        self.aws = aws
        self.clock = [NOW]
        self.slept: list[float] = []
        self.store = JobStore(
            aws.resources.table_name,
            session.client("dynamodb"),
            PayloadArchive(aws.resources.bucket, lambda: session.client("s3")),
        )
        self.ingest = IngestService(
            self.store,
            VerdictPublisher(aws.resources.topic_arn, lambda: session.client("sns")),
            VerdictPolicy(),
            CircuitBreaker(threshold=1, cooldown_s=30, clock=lambda: self.clock[0].timestamp()),
        )
        self.clients = {c.name: c for c in clients}
        self.breakers = {
            c.name: CircuitBreaker(threshold=3, cooldown_s=60, clock=lambda: self.clock[0].timestamp())
            for c in clients
        }
        self.poller = Poller(
            self.store,
            self.ingest,
            self.clients,
            self.breakers,
            PollSettings(),
            now=lambda: self.clock[0],
            rng=random.Random(1),
            concurrency=None if concurrency is None else {c.name: concurrency for c in clients},
            sleep=self.sleep,
        )

    def sleep(self, seconds: float) -> None:
        """The poller's sleep: the world's clock moves on instead."""
        self.slept.append(seconds)
        self.clock[0] += timedelta(seconds=seconds)

    def register(self, provider: str, *job_ids: str, at: datetime | None = None) -> None:
        for job_id in job_ids:
            self.store.register(provider, job_id, {}, at or self.clock[0], first_poll_at=at or self.clock[0])

    def status(self, provider: str, job_id: str) -> JobStatus:
        job = self.store.get(provider, job_id)
        assert job is not None
        return job.status

    def due(self, provider: str) -> list[str]:
        return [j.job_id for j in self.store.due_jobs(provider, self.clock[0])]


def test_finished_job_is_stored_and_published_once(aws: FakeAws) -> None:
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j1")
    client.jobs["j1"] = verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)

    report = world.poller.run_cycle(PLENTY_OF_TIME)

    assert report.providers["huawei-video"].resolved == 1
    assert world.status("huawei-video", "j1") is JobStatus.SUCCEEDED
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["j1"]
    assert world.due("huawei-video") == []
    # a second cycle finds nothing due and publishes nothing more
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert aws.published() == []


def test_running_job_is_rescheduled_with_backoff_and_not_published(aws: FakeAws) -> None:
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j1")
    client.jobs["j1"] = verdict("huawei-video", "j1", JobStatus.RUNNING)

    world.poller.run_cycle(PLENTY_OF_TIME)

    job = world.store.get("huawei-video", "j1")
    assert job is not None
    assert job.status is JobStatus.RUNNING
    assert job.poll_attempts == 1
    assert job.next_poll_at is not None
    assert job.next_poll_at >= (NOW + timedelta(seconds=PollSettings().min_interval_s)).timestamp()
    assert world.due("huawei-video") == []
    assert aws.published() == []


def _count_dynamodb_calls(aws: FakeAws) -> Counter[str]:
    """Counts the DynamoDB operations of clients created from now on (botocore's before-call event)."""
    calls: Counter[str] = Counter()
    aws.session.events.register(
        "before-call.dynamodb.*", lambda event_name, **_: calls.update([event_name.split(".")[2]])
    )
    return calls


def test_each_poll_of_a_running_job_is_one_write_that_also_reschedules_it(aws: FakeAws) -> None:
    calls = _count_dynamodb_calls(aws)
    client = ScriptedClient("huawei-video")
    client.discovers = False  # discovery's watermark is a write of its own, once per cycle
    world = World(aws, client)
    world.register("huawei-video", "j1")
    client.jobs["j1"] = verdict("huawei-video", "j1", JobStatus.RUNNING)

    calls.clear()
    world.poller.run_cycle(PLENTY_OF_TIME)  # pending -> running
    assert calls["UpdateItem"] == 1, calls
    assert calls["GetItem"] == 0, calls  # the due-jobs query already said how often it was polled
    first = world.store.get("huawei-video", "j1")
    assert first is not None
    assert first.status is JobStatus.RUNNING
    assert first.poll_attempts == 1

    assert first.next_poll_at is not None
    world.clock[0] = datetime.fromtimestamp(first.next_poll_at, UTC)
    calls.clear()
    world.poller.run_cycle(PLENTY_OF_TIME)  # still running: the status is the same, the poll time moves on
    assert calls["UpdateItem"] == 1, calls
    second = world.store.get("huawei-video", "j1")
    assert second is not None
    assert second.status is JobStatus.RUNNING
    assert second.poll_attempts == 2
    assert second.next_poll_at is not None
    assert second.next_poll_at > first.next_poll_at
    assert world.due("huawei-video") == []
    assert aws.published() == []


def test_a_fan_out_batch_is_polled_from_what_it_carries_without_reading_the_jobs(aws: FakeAws) -> None:
    calls = _count_dynamodb_calls(aws)
    client = ScriptedClient("huawei-image-batch")
    world = World(aws, client)
    world.register("huawei-image-batch", "polled-before", at=NOW - timedelta(minutes=5))
    world.register("huawei-image-batch", "too-old", at=NOW - timedelta(minutes=5))
    for job_id in ("polled-before", "too-old"):
        client.jobs[job_id] = verdict("huawei-image-batch", job_id, JobStatus.RUNNING)
    batch = [
        DueJob("polled-before", poll_attempts=3, created_at=NOW - timedelta(minutes=5)),
        DueJob("too-old", poll_attempts=1, created_at=NOW - timedelta(minutes=31)),
    ]

    calls.clear()
    report = world.poller.poll_jobs("huawei-image-batch", batch, PLENTY_OF_TIME)

    assert calls["GetItem"] == 0, calls
    assert (report.rescheduled, report.expired) == (1, 1)
    job = world.store.get("huawei-image-batch", "polled-before")
    assert job is not None
    assert job.status is JobStatus.RUNNING
    assert job.poll_attempts == 4  # the backoff goes on from the batch's count
    # the batch's creation time is what the age limit is checked against
    assert world.status("huawei-image-batch", "too-old") is JobStatus.EXPIRED


def test_a_job_answered_unreadably_or_left_out_of_the_answer_is_counted_where_its_alarm_watches(
    aws: FakeAws,
) -> None:
    # Given two due jobs: one whose answer cannot be read, one the provider's answer leaves out
    client = ScriptedClient("azure-review")
    world = World(aws, client)
    world.register("azure-review", "unreadable", "left-out")
    client.unreadable = {"unreadable"}
    metrics.clear_metrics()

    # When a cycle polls them
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then each is counted as unanswered (JobsUnansweredAlarm watches it) and stays outstanding
    assert sum(metrics.metric_set["JobUnanswered"]["Value"]) == 2
    assert [world.status("azure-review", j) for j in ("unreadable", "left-out")] == [JobStatus.PENDING] * 2


def test_a_job_whose_answer_cannot_be_read_backs_off_and_does_not_hold_its_batch_or_the_provider(
    aws: FakeAws,
) -> None:
    client = ScriptedClient("alibaba-mps", max_batch=10)
    world = World(aws, client)
    job_ids = [f"j{i}" for i in range(10)]
    world.register("alibaba-mps", *job_ids)
    for job_id in job_ids:
        client.jobs[job_id] = verdict("alibaba-mps", job_id, JobStatus.SUCCEEDED, Suggestion.PASS)
    client.unreadable = {"j3"}

    for _ in range(4):  # more cycles than the breaker's threshold
        report = world.poller.run_cycle(PLENTY_OF_TIME).providers["alibaba-mps"]
        assert report.skipped is None

    # The nine readable jobs were resolved in the first cycle, polled one by one once their batch failed
    assert [world.status("alibaba-mps", j) for j in job_ids if j != "j3"] == [JobStatus.SUCCEEDED] * 9
    # The unreadable one is still outstanding, polled again only after its backoff: not in every cycle
    job = world.store.get("alibaba-mps", "j3")
    assert job is not None
    assert job.status is JobStatus.PENDING
    assert job.poll_attempts == 1
    assert job.next_poll_at is not None
    assert job.next_poll_at > NOW.timestamp()
    assert sum("j3" in request for request in client.requests) == 2  # its batch, then alone
    assert not world.breakers["alibaba-mps"].is_open


def test_a_job_the_provider_always_fails_on_does_not_keep_the_breaker_open_over_the_other_jobs(
    aws: FakeAws,
) -> None:
    # Given a provider down long enough to open the breaker, and one job it answers with a 500 every time,
    # due before its 30 other jobs
    client = ScriptedClient("huawei-video")
    client.discovers = False
    world = World(aws, client)
    world.register("huawei-video", "poison", at=NOW - timedelta(minutes=5))
    others = [f"ok-{i:02d}" for i in range(30)]
    world.register("huawei-video", *others)
    for job_id in others:
        client.jobs[job_id] = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)
    client.failing = {"poison"}
    client.failures = [ProviderUnavailableError("huawei-video: unavailable (HTTP 503)")] * len(others)
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert world.breakers["huawei-video"].is_open
    # (the outage wrote only the jobs whose requests went out: those the open breaker held back stay due as they
    # were, so a long outage costs no write per due job)
    held_back = list(world.store.due_jobs("huawei-video", NOW))
    assert len(held_back) == 31 - len(client.requests) > 0
    assert {job.poll_attempts for job in held_back} == {0}

    # When the provider is back (for every job but that one) and cycles run a minute apart
    client.failures = []
    for _ in range(3):
        world.clock[0] += timedelta(minutes=1)
        world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the other jobs are polled and resolved: the failing job is not every half-open trial
    assert [world.status("huawei-video", j) for j in others] == [JobStatus.SUCCEEDED] * 30
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == others
    # and the failing job is still followed, polled again after its backoff each time its request failed
    job = world.store.get("huawei-video", "poison")
    assert job is not None
    assert job.status is JobStatus.PENDING
    assert job.poll_attempts == sum("poison" in r for r in client.requests) >= 2


def test_a_late_pending_answer_keeps_the_running_status_and_still_reschedules(aws: FakeAws) -> None:
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j1")
    client.jobs["j1"] = verdict("huawei-video", "j1", JobStatus.RUNNING)
    world.poller.run_cycle(PLENTY_OF_TIME)
    first = world.store.get("huawei-video", "j1")
    assert first is not None
    assert first.next_poll_at is not None

    client.jobs["j1"] = verdict("huawei-video", "j1", JobStatus.PENDING)
    world.clock[0] = datetime.fromtimestamp(first.next_poll_at, UTC)
    world.poller.run_cycle(PLENTY_OF_TIME)

    job = world.store.get("huawei-video", "j1")
    assert job is not None
    assert job.status is JobStatus.RUNNING
    assert job.poll_attempts == 2
    assert world.due("huawei-video") == []


def test_backoff_grows_with_attempts_and_is_capped() -> None:
    poller = Poller(
        None,
        None,
        {},
        {},
        PollSettings(min_interval_s=5, base_interval_s=10, max_interval_s=300),
        now=lambda: NOW,
        rng=random.Random(3),
    )  # type: ignore[arg-type]

    early = [poller.backoff(1) for _ in range(200)]
    late = [poller.backoff(12) for _ in range(200)]

    assert all(5 <= d <= 20 for d in early)
    assert all(5 <= d <= 300 for d in late)
    assert max(late) > 200  # full jitter spreads over the whole capped range
    assert len(set(late)) > 150  # and does not hand every job the same time


def test_image_batch_jobs_are_polled_at_least_every_30_s_as_huawei_asks() -> None:
    # Huawei keeps an image batch job 30 minutes: a job finishing late in its life must be polled before then
    poller = Poller(None, None, {}, {}, PollSettings(), now=lambda: NOW, rng=random.Random(5))  # type: ignore[arg-type]

    delays = [poller.backoff(attempts, "huawei-image-batch") for attempts in range(1, 30) for _ in range(50)]

    assert max(delays) <= 30
    assert max(poller.backoff(12, "huawei-video") for _ in range(50)) > 30  # other providers back off further


def test_job_the_provider_no_longer_knows_is_expired_and_published_as_review(aws: FakeAws) -> None:
    client = ScriptedClient("huawei-audio")
    world = World(aws, client)
    world.register("huawei-audio", "gone")
    client.missing.add("gone")

    world.poller.run_cycle(PLENTY_OF_TIME)

    assert world.status("huawei-audio", "gone") is JobStatus.EXPIRED
    (message,) = aws.published()
    assert message["verdict"]["suggestion"] == "review"
    assert message["verdict"]["error"]["code"] == "job_expired"


def test_image_batch_job_older_than_30_minutes_expires(aws: FakeAws) -> None:
    client = ScriptedClient("huawei-image-batch")
    world = World(aws, client)
    world.register("huawei-image-batch", "old", at=NOW - timedelta(minutes=31))
    world.register("huawei-image-batch", "young", at=NOW - timedelta(minutes=5))
    for job_id in ("old", "young"):
        client.jobs[job_id] = verdict("huawei-image-batch", job_id, JobStatus.RUNNING)

    world.poller.run_cycle(PLENTY_OF_TIME)

    assert world.status("huawei-image-batch", "old") is JobStatus.EXPIRED
    assert world.status("huawei-image-batch", "young") is JobStatus.RUNNING


def test_batches_follow_the_clients_batch_size(aws: FakeAws) -> None:
    client = ScriptedClient("alibaba-mps", max_batch=10)
    world = World(aws, client)
    world.register("alibaba-mps", *[f"j{i:02}" for i in range(25)])

    world.poller.run_cycle(PLENTY_OF_TIME)

    assert sorted(len(r) for r in client.requests) == [5, 10, 10]


def test_auth_failure_opens_the_breaker_at_once_and_leaves_jobs_due_while_others_poll_on(
    aws: FakeAws,
) -> None:
    failing = ScriptedClient("azure-review")
    healthy = ScriptedClient("huawei-video")
    world = World(aws, failing, healthy)
    world.register("azure-review", "a1", "a2")
    world.register("huawei-video", "h1")
    failing.failures = [ProviderAuthError("401 from provider")] * 5
    healthy.jobs["h1"] = verdict("huawei-video", "h1", JobStatus.SUCCEEDED, Suggestion.REVIEW)

    report = world.poller.run_cycle(PLENTY_OF_TIME)

    assert world.breakers["azure-review"].is_open
    assert len(failing.requests) == 1  # not retried hot
    assert sorted(world.due("azure-review")) == ["a1", "a2"]
    assert report.providers["huawei-video"].resolved == 1
    # the next cycle skips the provider until the cool-down ends
    assert world.poller.run_cycle(PLENTY_OF_TIME).providers["azure-review"].skipped == "circuit open"
    assert len(failing.requests) == 1


def test_repeated_5xx_trips_the_breaker_and_it_half_opens_after_the_cooldown(aws: FakeAws) -> None:
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    job_ids = ["j1", "j2", "j3"]
    world.register("huawei-video", *job_ids)
    client.failures = [ProviderUnavailableError("503")] * 3
    for job_id in job_ids:
        client.jobs[job_id] = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)

    world.poller.run_cycle(PLENTY_OF_TIME)

    assert world.breakers["huawei-video"].is_open
    assert [world.status("huawei-video", j) for j in job_ids] == [JobStatus.PENDING] * 3
    assert (
        world.due("huawei-video") == []
    )  # each polled again after its backoff (at most 30 s after a first poll)
    assert aws.published() == []
    # after the cool-down a trial goes through and succeeds, and the breaker lets the others go
    world.clock[0] += timedelta(seconds=61)
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert not world.breakers["huawei-video"].is_open
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert [world.status("huawei-video", j) for j in job_ids] == [JobStatus.SUCCEEDED] * 3
    assert len(aws.published()) == 3


def test_breaker_half_open_lets_one_trial_out_and_its_outcome_decides() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown_s=60, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()
    assert (breaker.is_open, breaker.allow()) == (True, False)

    now[0] = 61.0  # cooled down: half-open, one trial at a time
    assert [breaker.allow() for _ in range(3)] == [True, False, False]
    breaker.record_failure()  # the trial failed: open again for a whole cool-down
    now[0] = 120.0
    assert breaker.allow() is False
    now[0] = 122.0
    assert [breaker.allow() for _ in range(2)] == [True, False]
    breaker.record_success()  # the trial succeeded: closed
    assert [breaker.allow() for _ in range(3)] == [True, True, True]


def test_only_consecutive_failures_open_the_breaker() -> None:
    # Given a breaker opening at three failures in a row, whose provider fails now and then over a warm
    # container's life, each time answering the next request
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown_s=60, clock=lambda: now[0])
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()

    # When it fails once more
    breaker.record_failure()

    # Then it stays closed: twelve stray failures spread over hours are not an outage
    assert (breaker.is_open, breaker.allow()) == (False, True)


def test_a_success_ends_a_credentials_trip_so_a_later_outage_is_waited_out_again() -> None:
    # Given a breaker tripped by refused credentials, whose trial succeeded once they were corrected
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown_s=60, clock=lambda: now[0])
    breaker.record_failure(trip=True)
    assert breaker.tripped
    now[0] = 61.0
    assert breaker.allow()
    breaker.record_success()

    # When the provider later fails three times in a row (an outage, not our credentials)
    for _ in range(3):
        breaker.record_failure()

    # Then the breaker is open but not tripped: a poll batch waits out its cool-down if its time allows, rather
    # than leaving its jobs due as it does when the credentials are refused
    assert (breaker.is_open, breaker.tripped) == (True, False)


def test_a_wait_a_service_asked_for_is_not_ended_by_a_call_that_was_already_out() -> None:
    # Given a throttle saying "come back in 120 s", while other calls were already on their way
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown_s=60, clock=lambda: now[0])
    breaker.record_failure(retry_after_s=120)

    # When one of those calls succeeds
    breaker.record_success()

    # Then nothing goes out until the 120 s are over, and then everything does
    now[0] = 119.0
    assert (breaker.is_open, breaker.is_closed, breaker.allow()) == (True, False, False)
    now[0] = 120.0
    assert (breaker.is_open, breaker.is_closed, [breaker.allow() for _ in range(2)]) == (
        False,
        True,
        [True, True],
    )


def test_breaker_trial_that_never_reports_is_given_up_after_a_cooldown() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, cooldown_s=60, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 61.0
    assert breaker.allow()  # the trial's invocation ends before it reports
    now[0] = 100.0
    assert breaker.allow() is False
    now[0] = 122.0
    assert breaker.allow()


def test_after_the_cooldown_a_provider_still_failing_gets_one_request_not_one_per_batch(
    aws: FakeAws,
) -> None:
    client = ScriptedClient("huawei-video")
    client.discovers = False
    world = World(aws, client)
    world.register("huawei-video", *[f"j{i}" for i in range(8)])
    client.failures = [ProviderUnavailableError("503")] * 20
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert world.breakers["huawei-video"].is_open
    sent = len(client.requests)

    world.clock[0] += timedelta(seconds=61)
    report = world.poller.run_cycle(PLENTY_OF_TIME)

    assert len(client.requests) - sent == 1  # the trial; it failed, so the other batches stayed due
    assert report.providers["huawei-video"].left_due == 7  # (the trial's job waits out its backoff)
    assert world.breakers["huawei-video"].is_open
    assert len(world.due("huawei-video")) == 7


def test_running_out_of_time_leaves_jobs_due_and_does_not_open_the_breaker(aws: FakeAws) -> None:
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j1")
    client.failures = [ProviderOutOfTimeError("huawei-video: no time left for another request")] * 5

    # 12 s left: past the safety margin, so the request goes out, with 8 s for it: the invocation's time ran out
    reports = [world.poller.run_cycle(lambda: 12.0) for _ in range(4)]

    assert [r.providers["huawei-video"].left_due for r in reports] == [1, 1, 1, 1]
    assert not world.breakers["huawei-video"].is_open
    assert world.due("huawei-video") == ["j1"]


class SlowJobClient(ScriptedClient):
    """Alibaba, with one job whose answer takes longer to fetch than a poll has: a request that includes it runs
    out of time however early it starts (as its long timeline's detail pages would)."""

    def __init__(self, slow: str) -> None:
        super().__init__("alibaba-mps", max_batch=10)
        self.discovers = False
        self.slow = slow

    def fetch(self, job_ids: Sequence[str]) -> FetchResult:
        if self.slow in job_ids:
            self.requests.append(list(job_ids))
            raise ProviderOutOfTimeError("alibaba-mps: no time left for another request")
        return super().fetch(job_ids)


def test_a_batch_that_runs_out_of_time_with_ample_time_does_not_starve_its_batch_mates(aws: FakeAws) -> None:
    # Given ten due Alibaba jobs, one batch, one of which cannot be fetched in the time a poll has
    client = SlowJobClient(slow="slow")
    world = World(aws, client)
    others = [f"j{i}" for i in range(9)]
    world.register("alibaba-mps", "slow", *others)
    for job_id in others:
        client.jobs[job_id] = verdict("alibaba-mps", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)
    metrics.clear_metrics()

    # When cycles run a minute apart, each with ample time
    for _ in range(3):
        world.poller.run_cycle(PLENTY_OF_TIME)
        world.clock[0] += timedelta(minutes=1)

    # Then the batch-mates are resolved at their next poll, polled alone once their batch ran out of time
    assert [world.status("alibaba-mps", j) for j in others] == [JobStatus.SUCCEEDED] * 9
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == others
    # and the slow job, alone, waits out its backoff instead of burning the quota every cycle, and is counted
    slow = world.store.get("alibaba-mps", "slow")
    assert slow is not None
    assert slow.status is JobStatus.PENDING
    polls_of_slow = [r for r in client.requests if "slow" in r]
    assert sorted(polls_of_slow[0]) == sorted(["slow", *others])
    assert polls_of_slow[1:] == [["slow"]] * (len(polls_of_slow) - 1)
    assert (
        slow.poll_attempts == len(polls_of_slow) - 1 >= 1
    )  # each poll alone rescheduled it with its backoff
    assert sum(metrics.metric_set["JobOutOfTime"]["Value"]) == slow.poll_attempts


def test_jobs_polled_alone_after_a_slow_batch_are_batched_again_once_the_provider_answers_for_them(
    aws: FakeAws,
) -> None:
    # Given ten running Alibaba jobs whose one batch ran out of time with ample time (so they are polled alone)
    client = SlowJobClient(slow="slow")
    world = World(aws, client)
    jobs = ["slow", *[f"j{i}" for i in range(9)]]
    world.register("alibaba-mps", *jobs)
    for job_id in jobs:
        client.jobs[job_id] = verdict("alibaba-mps", job_id, JobStatus.RUNNING)
    world.poller.run_cycle(PLENTY_OF_TIME)
    # and the slow job's answer is quick again, so the next cycle's polls of them, one per batch, are answered
    client.slow = "none"
    world.clock[0] += timedelta(minutes=1)
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert sorted(client.requests[1:]) == sorted([job] for job in jobs)

    # When they are due again
    world.clock[0] += timedelta(minutes=20)
    del client.requests[:]
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then they are asked about in one request again, not one request each for good
    assert [sorted(r) for r in client.requests] == [sorted(jobs)]


def test_a_job_that_ran_out_of_time_alone_is_not_batched_with_jobs_registered_later(aws: FakeAws) -> None:
    # Given an Alibaba job that cannot be fetched in the time a poll has, polled alone (the only due job)
    client = SlowJobClient(slow="slow")
    world = World(aws, client)
    world.register("alibaba-mps", "slow")
    world.poller.run_cycle(PLENTY_OF_TIME)
    # and nine finished jobs registered afterwards
    others = [f"j{i}" for i in range(9)]
    world.register("alibaba-mps", *others)
    for job_id in others:
        client.jobs[job_id] = verdict("alibaba-mps", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)

    # When the next cycle runs, the slow job due again
    world.clock[0] += timedelta(hours=1)
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the others are resolved in it: the slow job is polled alone, not in their batch
    assert [world.status("alibaba-mps", j) for j in others] == [JobStatus.SUCCEEDED] * 9
    assert all(r == ["slow"] for r in client.requests if "slow" in r)


def test_credentials_refused_at_a_poll_raise_the_auth_alarm_and_leave_the_job_due(aws: FakeAws) -> None:
    # Given a provider that does not list its jobs (Azure), whose API now refuses our credentials
    client = ScriptedClient("azure-review")
    client.discovers = False
    world = World(aws, client)
    world.register("azure-review", "r1")
    client.failures = [ProviderAuthError("401 from provider")]
    metrics.clear_metrics()

    # When a cycle polls its job
    report = world.poller.run_cycle(PLENTY_OF_TIME).providers["azure-review"]

    # Then the refusal is counted where ProviderAuthFailedAlarm watches, and the job stays due
    assert sum(metrics.metric_set["ProviderAuthFailed"]["Value"]) == 1
    assert (report.failed_requests, report.left_due) == (1, 1)
    assert world.due("azure-review") == ["r1"]


def test_a_half_open_trial_answered_unreadably_closes_the_breaker_for_the_other_jobs(aws: FakeAws) -> None:
    # Given a provider whose breaker three 5xx opened, and three due jobs whose answers cannot be read
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    job_ids = ["j1", "j2", "j3"]
    world.register("huawei-video", *job_ids)
    client.failures = [ProviderUnavailableError("503")] * 3
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert world.breakers["huawei-video"].is_open
    client.unreadable.update(job_ids)
    del client.requests[:]

    # When the cool-down and their backoff have passed and a cycle runs
    world.clock[0] += timedelta(minutes=2)
    report = world.poller.run_cycle(PLENTY_OF_TIME).providers["huawei-video"]

    # Then the provider answered the trial, so the breaker closes and every job is asked about, none left due
    assert sorted(client.requests) == [[j] for j in job_ids]
    assert report.left_due == 0
    assert world.breakers["huawei-video"].is_closed


def test_a_poll_batch_for_a_provider_not_polled_here_is_counted_as_left_due(aws: FakeAws) -> None:
    # Given a container whose providers document polls only Alibaba, and a fan-out batch of two Huawei jobs
    world = World(aws, ScriptedClient("alibaba-mps"))
    world.register("huawei-video", "j1", "j2")
    metrics.clear_metrics()

    # When a poll worker of that container takes the batch
    report = world.poller.poll_jobs("huawei-video", [DueJob("j1"), DueJob("j2")], PLENTY_OF_TIME)

    # Then the jobs stay due, and are counted where the jobs a poll left due are
    assert (report.skipped, report.left_due) == ("not configured", 2)
    assert sum(metrics.metric_set["JobsLeftDue"]["Value"]) == 2
    assert world.due("huawei-video") == ["j1", "j2"]


def test_a_cycle_that_skips_a_provider_behind_its_open_breaker_counts_it_for_the_alarm(aws: FakeAws) -> None:
    # Given a provider that asked to be left alone for ten minutes (a throttle's Retry-After), and a due job
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j1")
    world.breakers["huawei-video"].record_failure(retry_after_s=600)
    metrics.clear_metrics()

    # When a scheduled cycle runs
    report = world.poller.run_cycle(PLENTY_OF_TIME).providers["huawei-video"]

    # Then nothing is asked, and the skip is counted where ProviderRequestsFailingAlarm watches
    assert (report.skipped, client.requests) == ("circuit open", [])
    assert sum(metrics.metric_set["ProviderSkippedCircuitOpen"]["Value"]) == 1
    assert world.due("huawei-video") == ["j1"]


def test_cycle_stops_taking_work_when_time_runs_low_and_leaves_the_rest_due(aws: FakeAws) -> None:
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", *[f"j{i}" for i in range(10)])
    for i in range(10):
        client.jobs[f"j{i}"] = verdict("huawei-video", f"j{i}", JobStatus.SUCCEEDED, Suggestion.BLOCK)

    report = world.poller.run_cycle(lambda: 1.0)  # less than the safety margin from the start

    assert report.providers["huawei-video"].left_due == 10
    assert client.requests == []
    assert len(world.due("huawei-video")) == 10


def test_credentials_refused_at_discovery_count_as_an_auth_failure_and_pause_the_provider(
    aws: FakeAws,
) -> None:
    # Given a provider that discovers jobs (Alibaba, Huawei image batches) and now refuses our credentials
    client = ScriptedClient("alibaba-mps")
    client.discovery_failures = [ProviderAuthError("alibaba-mps: InvalidAccessKeyId.NotFound")]
    world = World(aws, client)
    world.register("alibaba-mps", "j1")
    metrics.clear_metrics()

    report = world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the failure is counted where the alarm watches it, and no job request follows the refused one
    assert "ProviderAuthFailed" in metrics.metric_set
    assert report.providers["alibaba-mps"].left_due == 1
    assert client.requests == []
    assert world.due("alibaba-mps") == ["j1"]


def test_a_list_api_that_keeps_failing_never_stops_the_providers_job_polls(aws: FakeAws) -> None:
    # Given a provider whose job list keeps failing (an entry it cannot read, a 5xx of that API only) while its
    # job query works, over more cycles than the breaker's threshold
    client = ScriptedClient("huawei-image-batch")
    world = World(aws, client)
    client.discovery_failures = [
        ProviderResponseError("huawei-image-batch: unexpected response: result.0.status"),
        ProviderUnavailableError("huawei-image-batch: HTTP 502"),
    ] * 5
    metrics.clear_metrics()
    for _ in range(5):
        world.poller.run_cycle(PLENTY_OF_TIME)
        world.clock[0] += timedelta(minutes=1)

    # When a job is registered and finishes
    world.register("huawei-image-batch", "j1")
    client.jobs["j1"] = verdict("huawei-image-batch", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then it is polled and published: the failing list never opened the breaker over the job polls
    assert client.requests == [["j1"]]
    assert world.status("huawei-image-batch", "j1") is JobStatus.SUCCEEDED
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["j1"]
    assert "DiscoveryFailed" in metrics.metric_set


def test_after_an_outage_discovery_catches_up_an_hour_a_cycle_instead_of_listing_days_at_once(
    aws: FakeAws,
) -> None:
    # Given a provider whose last discovery was three days ago (its credentials were refused meanwhile)
    client = ScriptedClient("alibaba-mps")
    world = World(aws, client)
    world.store.set_watermark("alibaba-mps", NOW - timedelta(days=3))

    # When cycles run
    for _ in range(3):
        world.poller.run_cycle(PLENTY_OF_TIME)
        world.clock[0] += timedelta(minutes=1)

    # Then each lists one hour, the next starting where the last ended (less the minute stepped back), so a
    # listing that could never finish in one invocation never holds the watermark back for good
    start = NOW - timedelta(days=3)
    assert client.discovery_windows == [
        (start, start + timedelta(hours=1)),
        (start + timedelta(minutes=59), start + timedelta(minutes=119)),
        (start + timedelta(minutes=118), start + timedelta(minutes=178)),
    ]
    assert world.store.watermark("alibaba-mps") == start + timedelta(minutes=177)


def test_after_a_long_gap_image_batch_discovery_lists_all_huawei_still_keeps_at_once(aws: FakeAws) -> None:
    # Given Huawei image batches, which Huawei lists for 30 minutes only, last discovered two days ago
    client = ScriptedClient("huawei-image-batch")
    world = World(aws, client)
    world.store.set_watermark("huawei-image-batch", NOW - timedelta(days=2))

    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the first discovery covers the 30 minutes Huawei still holds, not an hour two days back
    assert client.discovery_windows == [(NOW - timedelta(minutes=30), NOW)]


def test_a_discovery_window_that_could_not_be_listed_in_time_is_halved_until_one_can(aws: FakeAws) -> None:
    # Given an Alibaba backlog whose hour-long window takes longer to list than discovery's share of a cycle
    client = ScriptedClient("alibaba-mps")
    world = World(aws, client)
    start = NOW - timedelta(days=1)
    world.store.set_watermark("alibaba-mps", start)
    client.discovery_failures = [ProviderOutOfTimeError("alibaba-mps: no time left for another request")]
    metrics.clear_metrics()

    # When cycles run
    for _ in range(3):
        world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the next window is half as long, and the watermark moves on with it, a half hour at a time
    assert client.discovery_windows == [
        (start, start + timedelta(hours=1)),
        (start, start + timedelta(minutes=30)),
        (start + timedelta(minutes=29), start + timedelta(minutes=59)),
    ]
    # (the halving is no failure to alarm on), and once discovery has caught up, the window is an hour again
    assert "DiscoveryFailed" not in metrics.metric_set
    world.store.set_watermark("alibaba-mps", NOW - timedelta(minutes=10))
    world.poller.run_cycle(PLENTY_OF_TIME)  # lists up to now
    world.clock[0] += timedelta(hours=3)
    world.poller.run_cycle(PLENTY_OF_TIME)
    caught_up = NOW - timedelta(minutes=1)
    assert client.discovery_windows[-1] == (caught_up, caught_up + timedelta(hours=1))


def test_a_discovery_that_cannot_list_even_the_shortest_window_in_time_raises_its_alarm(aws: FakeAws) -> None:
    # Given an Alibaba backlog whose listing runs out of time whatever the window
    client = ScriptedClient("alibaba-mps")
    world = World(aws, client)
    start = NOW - timedelta(days=1)
    world.store.set_watermark("alibaba-mps", start)
    client.discovery_failures = [ProviderOutOfTimeError("alibaba-mps: no time left for another request")] * 5
    metrics.clear_metrics()

    # When cycles run until the window is the shortest (an hour halved to 30, 15, 7.5, then 5 minutes)
    for _ in range(4):
        world.poller.run_cycle(PLENTY_OF_TIME)
    assert "DiscoveryFailed" not in metrics.metric_set
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert client.discovery_windows[-1] == (start, start + timedelta(minutes=5))

    # Then that one running out of time too is a stuck discovery: DiscoveryFailed (its alarm), not a provider
    # failing (our time ran out, not its patience)
    assert sum(metrics.metric_set["DiscoveryFailed"]["Value"]) == 1
    assert "ProviderRequestFailed" not in metrics.metric_set
    assert world.store.watermark("alibaba-mps") == start


def test_a_listing_too_long_to_mark_due_in_discoverys_share_leaves_the_polls_their_time_and_moves_on(
    aws: FakeAws,
) -> None:
    # Given an invocation whose every DynamoDB call takes 0.4 s (its clock moves with them), an Alibaba window
    # listing 100 jobs nobody registered (a read and a write each to mark due: longer than discovery's share of
    # the 50 s), and a registered job that is due
    elapsed = [0.0]

    def tick(**_: Any) -> None:
        elapsed[0] += 0.4

    aws.session.events.register("before-call.dynamodb.*", tick)
    client = ScriptedClient("alibaba-mps", max_batch=10)
    world = World(aws, client)
    start = NOW - timedelta(hours=3)
    world.store.set_watermark("alibaba-mps", start)
    client.discoverable = [f"mps-{i:03d}" for i in range(100)]
    world.register("alibaba-mps", "registered", at=NOW - timedelta(minutes=5))
    client.jobs["registered"] = verdict("alibaba-mps", "registered", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    elapsed[0] = 0.0

    # When a cycle runs
    first = world.poller.run_cycle(lambda: 50.0 - elapsed[0]).providers["alibaba-mps"]

    # Then discovery stops within its share, and the due job is polled and resolved in the same cycle
    assert 0 < first.discovered < 100
    assert world.status("alibaba-mps", "registered") is JobStatus.SUCCEEDED
    # and the watermark stays, the next cycle listing half the window again, marking the rest, and moving on
    assert world.store.watermark("alibaba-mps") == start
    second = world.poller.run_cycle(PLENTY_OF_TIME, held={"alibaba-mps"}).providers[
        "alibaba-mps"
    ]  # discovery
    assert client.discovery_windows[-1] == (start, start + timedelta(minutes=30))
    assert first.discovered + second.discovered == 100
    assert world.store.watermark("alibaba-mps") == start + timedelta(minutes=29)


def test_a_window_whose_last_listed_job_could_not_be_marked_due_in_time_is_listed_again(aws: FakeAws) -> None:
    # Given an Alibaba window listing three jobs nobody registered, and an invocation whose clock moves 0.4 s with
    # every DynamoDB read, leaving discovery the time to check all but the last of them
    elapsed = [0.0]

    def tick(**_: Any) -> None:
        elapsed[0] += 0.4

    aws.session.events.register("before-call.dynamodb.GetItem", tick)
    client = ScriptedClient("alibaba-mps")
    world = World(aws, client)
    start = NOW - timedelta(hours=3)
    world.store.set_watermark("alibaba-mps", start)
    client.discoverable = ["mps-0", "mps-1", "mps-2"]
    elapsed[0] = 0.0

    # When a cycle runs
    first = world.poller.run_cycle(lambda: 5.0 - elapsed[0]).providers["alibaba-mps"]

    # Then the job it had no time for is not left behind: the watermark stays, and the next cycle lists the
    # same window's start again (the watermark moving on would never list that job again)
    assert first.discovered == 2
    assert world.store.watermark("alibaba-mps") == start
    world.poller.run_cycle(PLENTY_OF_TIME, held={"alibaba-mps"})
    assert client.discovery_windows[-1][0] == start
    assert world.store.exists("alibaba-mps", "mps-2")


def test_a_polled_result_that_differs_from_the_stored_verdict_is_kept_as_a_conflict_and_not_published(
    aws: FakeAws,
) -> None:
    # Given a job a callback finished as block, while a poll that had fetched it earlier was still on its way
    world = World(aws, ScriptedClient("azure-review"))
    block = verdict("azure-review", "r1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    assert world.ingest.ingest(block, b"{}", NOW).published

    # When the poll's different result (a pass) is ingested
    world.ingest.ingest(verdict("azure-review", "r1", JobStatus.SUCCEEDED, Suggestion.PASS), b"{}", NOW)

    # Then the first verdict stands, the second is kept aside, and only the first was published
    assert world.store.get("azure-review", "r1").verdict.suggestion is Suggestion.BLOCK  # type: ignore[union-attr]
    assert [c.suggestion for c in world.store.conflicts("azure-review", "r1")] == [Suggestion.PASS]
    assert [m["verdict"]["suggestion"] for m in aws.published()] == ["block"]


def test_discovery_makes_unknown_jobs_due_and_leaves_known_ones_alone(aws: FakeAws) -> None:
    client = ScriptedClient("alibaba-mps")
    world = World(aws, client)
    world.register("alibaba-mps", "known")
    client.jobs["known"] = verdict("alibaba-mps", "known", JobStatus.SUCCEEDED, Suggestion.PASS)
    world.poller.run_cycle(PLENTY_OF_TIME)
    client.discoverable = ["known", "stranger"]
    client.jobs["stranger"] = verdict("alibaba-mps", "stranger", JobStatus.SUCCEEDED, Suggestion.BLOCK)

    report = world.poller.run_cycle(PLENTY_OF_TIME)

    assert report.providers["alibaba-mps"].discovered == 1
    assert world.status("alibaba-mps", "stranger") is JobStatus.SUCCEEDED
    assert world.status("alibaba-mps", "known") is JobStatus.SUCCEEDED
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["stranger"]
    assert world.store.watermark("alibaba-mps") is not None


def test_cycle_publishes_verdicts_whose_publish_failed_earlier(aws: FakeAws) -> None:
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    sns = aws.session.client("sns")
    endpoint = sns.list_subscriptions_by_topic(TopicArn=aws.resources.topic_arn)["Subscriptions"][0][
        "Endpoint"
    ]
    sns.delete_topic(TopicArn=aws.resources.topic_arn)
    world.ingest.ingest(verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK), None, NOW)
    sns.create_topic(Name=aws.resources.topic_arn.rsplit(":", 1)[1])
    sns.subscribe(TopicArn=aws.resources.topic_arn, Protocol="sqs", Endpoint=endpoint)
    world.clock[0] += timedelta(seconds=61)  # past the failed writer's publish claim

    report = world.poller.run_cycle(PLENTY_OF_TIME)

    assert report.providers["huawei-video"].owed_published == 1
    assert len(aws.published()) == 1


def test_sweep_leaves_a_verdict_alone_while_its_writer_may_still_be_publishing_it(aws: FakeAws) -> None:
    # Given a verdict whose winning write just landed and whose publish is in flight (not yet confirmed)
    world = World(aws, ScriptedClient("huawei-video"))
    finished = verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    result = world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=True)
    assert result.publish

    # When a poll cycle's sweep runs at that moment, and again after the writer's claim ran out
    during = world.ingest.publish_owed("huawei-video", lambda: NOW + timedelta(seconds=1))
    after = world.ingest.publish_owed("huawei-video", lambda: NOW + timedelta(seconds=61))
    again = world.ingest.publish_owed("huawei-video", lambda: NOW + timedelta(seconds=62))

    # Then the sweep keeps off the in-flight verdict, takes it over once it is abandoned, and only once
    assert (during, after, again) == (0, 1, 0)
    assert len(aws.published()) == 1


def test_each_verdict_of_a_batch_is_claimed_from_its_own_write_so_a_sweep_cannot_send_it_again(
    aws: FakeAws,
) -> None:
    # Given a batch of three finished jobs, and SNS taking 35 s per publish
    client = ScriptedClient("huawei-video", max_batch=3)
    for job_id in ("j0", "j1", "j2"):
        client.jobs[job_id] = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)
    world: World
    publishes: list[str] = []  # SNS Publish calls so far
    swept: list[int] = []

    def slow_publish(params: dict[str, Any], **_: Any) -> None:
        world.clock[0] += timedelta(seconds=35)
        publishes.append(params["TopicArn"])
        if len(publishes) == 2:
            # When a sweep runs (70 s in) while the batch's second verdict is being published
            swept.append(world.ingest.publish_owed("huawei-video", lambda: world.clock[0]))

    aws.session.events.register("provide-client-params.sns.Publish", slow_publish)
    world = World(aws, client)
    world.register("huawei-video", "j0", "j1", "j2")

    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the sweep leaves it to its writer, whose claim started when it was written, not with the batch
    assert swept == [0]
    assert Counter(m["verdict"]["job_id"] for m in aws.published()) == {"j0": 1, "j1": 1, "j2": 1}


class SnsOutOfReach:
    """SNS's endpoint refusing connections (as botocore sees it), until ``up`` is set; counts Publish calls."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    def before_call(self, **_: Any) -> None:
        self.calls += 1

    def before_send(self, request: Any, **_: Any) -> None:
        if not self.up:
            raise EndpointConnectionError(endpoint_url=request.url)


def test_sns_out_of_reach_pauses_publishing_so_polling_goes_on_and_the_sweep_sends_all_once_back(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SNS out of reach while five polled jobs finish with block verdicts
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    sns = SnsOutOfReach()
    aws.session.events.register("before-call.sns.Publish", sns.before_call)
    aws.session.events.register("before-send.sns.Publish", sns.before_send)
    client = ScriptedClient("huawei-video", max_batch=5)  # one batch: its verdicts are written one by one
    world = World(aws, client)
    job_ids = [f"j{i}" for i in range(5)]
    world.register("huawei-video", *job_ids)
    for job_id in job_ids:
        client.jobs[job_id] = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)

    report = world.poller.run_cycle(PLENTY_OF_TIME)

    # Then only the first publish waited on SNS (its attempts, none of which connected); every verdict is
    # stored with its publish owed
    assert report.providers["huawei-video"].resolved == 5
    assert sns.calls == PUBLISH_ATTEMPTS
    assert sorted(k.job_id for k in world.store.unpublished("huawei-video")) == job_ids

    # When a cycle runs within the cool-down, SNS still down: the sweep sends nothing either
    world.clock[0] += timedelta(seconds=10)
    assert world.poller.run_cycle(PLENTY_OF_TIME).providers["huawei-video"].owed_published == 0
    assert sns.calls == PUBLISH_ATTEMPTS

    # When SNS is back and a cycle runs after the cool-down and the writers' claims
    sns.up = True
    world.clock[0] += timedelta(seconds=61)
    report = world.poller.run_cycle(PLENTY_OF_TIME)
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then one trial publish reopened the way and each verdict went out once
    assert report.providers["huawei-video"].owed_published == 5
    assert Counter(m["verdict"]["job_id"] for m in aws.published()) == Counter(dict.fromkeys(job_ids, 1))
    assert list(world.store.unpublished("huawei-video")) == []


def test_a_message_sns_refuses_does_not_pause_the_others(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SNS answering (not unreachable) but refusing the message of one verdict
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    def refuse_one(params: dict[str, Any], **_: Any) -> None:
        if json.loads(params["Message"])["job_id"] == "j0":
            error = {"Code": "InvalidParameter", "Message": "Invalid parameter: MessageAttributes"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "Publish")

    aws.session.events.register("provide-client-params.sns.Publish", refuse_one)
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j0", "j1", "j2")
    for job_id in ("j0", "j1", "j2"):
        client.jobs[job_id] = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)

    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the other verdicts were published at once, and only the refused one is owed
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == ["j1", "j2"]
    assert [k.job_id for k in world.store.unpublished("huawei-video")] == ["j0"]


@pytest.mark.parametrize("head", ["refused by SNS", "unreadable"])
def test_owed_verdicts_at_the_head_of_the_sweep_that_keep_failing_do_not_starve_the_ones_behind(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, head: str
) -> None:
    # Given two owed verdicts that fail every time, finished before an ordinary owed one
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    failing = {"j0", "j1"}

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if json.loads(params["Message"])["job_id"] in failing:
            error = {"Code": "InvalidParameter", "Message": "Invalid parameter: MessageAttributes"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "Publish")

    if head == "refused by SNS":
        aws.session.events.register("provide-client-params.sns.Publish", refuse)
    world = World(aws, ScriptedClient("huawei-video"))
    for i, job_id in enumerate(["j0", "j1", "j2"]):
        finished = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)
        world.store.record(VerdictPolicy().finalize(finished), None, NOW + timedelta(seconds=i), publish=True)
    if head == "unreadable":  # items the code cannot load (as a verdict written by a later version)
        for job_id in failing:
            aws.session.client("dynamodb").update_item(
                TableName=aws.resources.table_name,
                Key={"pk": {"S": f"huawei-video#{job_id}"}, "sk": {"S": STATE}},
                UpdateExpression="SET #s = :bogus",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":bogus": {"S": "no-such-status"}},
            )

    # When sweeps that take two at a time run, each after the claims of the one before have run out
    for sweep in range(1, 4):
        at = NOW + timedelta(seconds=61 * sweep)
        world.ingest.publish_owed("huawei-video", lambda at=at: at, limit=2)

    # Then the ordinary one went out; the failing ones are still owed
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["j2"]
    assert sorted(k.job_id for k in world.store.unpublished("huawei-video")) == ["j0", "j1"]


def test_the_sweep_stops_when_its_time_runs_out_and_leaves_the_rest_owed(aws: FakeAws) -> None:
    # Given five verdicts whose publish is owed (their writers' claims have run out)
    world = World(aws, ScriptedClient("huawei-video"))
    for i in range(5):
        finished = verdict("huawei-video", f"j{i}", JobStatus.SUCCEEDED, Suggestion.BLOCK)
        world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=True)
    later = NOW + timedelta(seconds=61)
    time_left = iter([5.0, 2.0, 0.0])

    # When a sweep finds its time gone after two publishes
    swept = world.ingest.publish_owed("huawei-video", lambda: later, time_left_s=lambda: next(time_left))

    # Then it started no third one: the rest stay owed, unclaimed, for the next sweep
    assert swept == 2
    assert len(aws.published()) == 2
    assert world.ingest.publish_owed("huawei-video", lambda: later) == 3


def test_a_cycle_sweeps_more_than_a_hundred_owed_verdicts_of_a_provider_with_the_time_its_polling_leaves(
    aws: FakeAws,
) -> None:
    # Given 101 verdicts whose publish is owed (their writers' claims have run out): an outage's backlog
    world = World(aws, ScriptedClient("huawei-video"))
    for i in range(101):
        finished = verdict("huawei-video", f"j{i:03}", JobStatus.SUCCEEDED, Suggestion.BLOCK)
        world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=True)
    world.clock[0] = NOW + timedelta(seconds=61)

    # When a cycle runs that polls the provider itself (a hundred swept first, as the fan-out planned the polling
    # with the cycle's whole time), with no job due
    report = world.poller.run_cycle(lambda: 60.0)

    # Then the time the polling left publishes the rest: all of them, once each, and none is left owed
    assert report.providers["huawei-video"].owed_published == 101
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == [f"j{i:03}" for i in range(101)]
    assert list(world.store.unpublished("huawei-video")) == []


def test_a_sweep_whose_claim_took_so_long_that_the_publish_could_be_cut_off_gives_the_claim_up(
    aws: FakeAws,
) -> None:
    from verdict_relay.logic.ingest import PUBLISH_TIME_S

    # Given an owed verdict (its writer's claim has run out)
    world = World(aws, ScriptedClient("huawei-video"))
    finished = verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=True)
    later = NOW + timedelta(seconds=61)

    # When a sweep claims it in time, but once claimed the invocation has too little left to publish it
    swept = world.ingest.publish_owed(
        "huawei-video", lambda: later, time_left_s=lambda: 1.0, invocation_left_s=lambda: PUBLISH_TIME_S - 1
    )

    # Then it is not published (the end of the invocation could cut it off before it is confirmed), and the
    # next sweep sends it, once, without waiting out the claim this one gave up
    assert swept == 0
    assert aws.published() == []
    assert world.ingest.publish_owed("huawei-video", lambda: later + timedelta(seconds=1)) == 1
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["j1"]


def test_a_writers_release_tried_again_leaves_the_claim_a_sweep_took_meanwhile(aws: FakeAws) -> None:
    # Given a writer that left its verdict to the sweep and released its claim, whose answer was lost
    world = World(aws, ScriptedClient("huawei-video"))
    finished = verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    written = world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=True).job
    assert written is not None
    assert written.publish_claimed_until is not None
    world.store.release_publish("huawei-video", "j1", written.publish_claimed_until, NOW)
    # and a sweep that claimed it meanwhile and is publishing it
    assert world.store.claim_publish("huawei-video", "j1", NOW + timedelta(seconds=1)) is not None

    # When the release is tried again
    world.store.release_publish("huawei-video", "j1", written.publish_claimed_until, NOW)

    # Then the sweep's claim stands: nobody else may take the verdict while it publishes
    assert world.store.claim_publish("huawei-video", "j1", NOW + timedelta(seconds=2)) is None


def test_a_cycle_inside_its_safety_margin_starts_no_owed_publish(aws: FakeAws) -> None:
    world = World(aws, ScriptedClient("huawei-video"))
    finished = verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=True)
    world.clock[0] = NOW + timedelta(seconds=61)

    report = world.poller.run_cycle(lambda: PollSettings().safety_margin_s)

    assert report.providers["huawei-video"].owed_published == 0
    assert aws.published() == []


def test_a_cycle_with_less_than_its_safety_margin_left_sends_no_request(aws: FakeAws) -> None:
    # Given a due job, and an invocation with less than the safety margin left but more than half of it (more
    # than the requests' own margin)
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j1")
    client.jobs["j1"] = verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    left = PollSettings().safety_margin_s * 0.75

    # When a cycle runs
    report = world.poller.run_cycle(lambda: left)

    # Then it asks the provider nothing: the time left is kept for the writes and publishes under way
    assert client.requests == []
    assert report.providers["huawei-video"].left_due == 1
    assert world.status("huawei-video", "j1") is JobStatus.PENDING


def stored_item(aws: FakeAws, provider: str, job_id: str) -> dict[str, Any]:
    (item,) = [
        i for i in aws.table_items() if i["pk"]["S"] == f"{provider}#{job_id}" and i["sk"]["S"] == STATE
    ]
    return item


def test_a_notice_whose_fetch_failed_leaves_a_job_finished_meanwhile_as_it_is(aws: FakeAws) -> None:
    # Given a job that finished (a pass: its retention's TTL set, out of the poll index) after a callback read
    # its status as unfinished
    world = World(aws, ScriptedClient("huawei-video"))
    finished = verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.PASS)
    world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=False)

    # When that callback, its fetch failed, makes the job due
    world.store.mark_due("huawei-video", "j1", NOW + timedelta(seconds=5), unconfirmed=True)

    # Then the finished job keeps its TTL and is not polled again
    item = stored_item(aws, "huawei-video", "j1")
    assert ("expires_at" in item, "poll_provider" in item) == (True, False)
    assert list(world.store.due_jobs("huawei-video", NOW + timedelta(hours=1))) == []


def test_a_notice_whose_fetch_failed_does_not_mark_a_registered_job_unconfirmed(aws: FakeAws) -> None:
    # Given a job the caller registered (it vouches for the job), not yet due
    world = World(aws, ScriptedClient("alibaba-mps"))
    world.store.register("alibaba-mps", "j1", {}, NOW, first_poll_at=NOW + timedelta(minutes=5))

    # When an MNS notice names it and its fetch fails: the job is made due, as one only the notice vouches for
    world.store.mark_due("alibaba-mps", "j1", NOW, unconfirmed=True)

    # Then it stays a registered job: MPS then saying it does not know the job expires it (a published
    # verdict), never deletes it as a forged notice's id
    assert "unconfirmed" not in stored_item(aws, "alibaba-mps", "j1")
    assert world.store.drop_unconfirmed("alibaba-mps", "j1")[0] == "kept"


def test_a_watermark_and_a_fan_out_hold_never_move_back(aws: FakeAws) -> None:
    # Given a provider's discovery watermark and fan-out hold set by one scheduled run
    world = World(aws, ScriptedClient("huawei-video"))
    later, earlier = NOW + timedelta(minutes=10), NOW + timedelta(minutes=5)
    world.store.set_watermark("huawei-video", later)
    world.store.set_fanout_hold("huawei-video", later, 100, later)

    # When a slower run that overlapped it sets earlier ones
    world.store.set_watermark("huawei-video", earlier)
    world.store.set_fanout_hold("huawei-video", earlier, 50, earlier)

    # Then both stay where the later run put them: windows listed are not listed again, held jobs not polled
    # by the scheduler beside the workers
    hold = world.store.fanout_hold("huawei-video")
    assert (world.store.watermark("huawei-video"), hold and hold.until, hold and hold.through) == (
        later,
        later,
        100,
    )


def test_jobs_due_in_the_holds_last_second_are_not_read_again_as_due_after_it(aws: FakeAws) -> None:
    # Given a job due at the second a fan-out's hold runs through (sent to the workers with the hold)
    world = World(aws, ScriptedClient("huawei-video"))
    world.register("huawei-video", "j1", at=NOW)
    through = int(NOW.timestamp())

    # When the next schedule reads the jobs due after that second
    due = list(world.store.due_to_poll("huawei-video", NOW + timedelta(minutes=1), after=through))

    # Then it is not among them (it would be polled twice)
    assert due == []


def test_a_repeated_status_is_a_duplicate_and_a_higher_one_an_advance(aws: FakeAws) -> None:
    world = World(aws, ScriptedClient("huawei-video"))
    running = verdict("huawei-video", "j1", JobStatus.RUNNING)
    poll = NextPoll(NOW + timedelta(minutes=1), 1)

    first = world.store.record(verdict("huawei-video", "j1", JobStatus.PENDING), None, NOW, publish=False)
    advanced = world.store.record(running, None, NOW, publish=False, next_poll=poll)
    repeated = world.store.record(running, None, NOW, publish=False, next_poll=poll)

    assert [r.transition for r in (first, advanced, repeated)] == [
        Transition.CREATED,
        Transition.ADVANCED,
        Transition.DUPLICATE,
    ]


def test_an_unfinished_job_has_no_ttl_so_it_is_never_dropped_while_followed_and_its_verdict_gets_one(
    aws: FakeAws,
) -> None:
    # Given a job registered now, still unfinished months later (an Azure review waiting for a reviewer, or a
    # provider refusing our credentials for longer than the retention, when no poll writes to the job)
    world = World(aws, ScriptedClient("azure-review"))
    world.register("azure-review", "r1")
    retention = timedelta(days=90)  # the store's default

    def expires_at() -> datetime | None:
        item = next(i for i in aws.table_items() if i["pk"]["S"] == "azure-review#r1")
        return datetime.fromtimestamp(int(item["expires_at"]["N"]), UTC) if "expires_at" in item else None

    assert expires_at() is None
    # When each kind of write to an unfinished job lands, on an item an earlier version gave a TTL
    writes = {
        "reschedule": lambda at: world.store.reschedule("azure-review", "r1", at, 3),
        "notice": lambda at: world.store.mark_due("azure-review", "r1", at),
        "poll": lambda at: world.store.record(
            verdict("azure-review", "r1", JobStatus.RUNNING),
            None,
            at,
            publish=False,
            next_poll=NextPoll(at, 4),
        ),
        "registration": lambda at: world.store.register("azure-review", "r1", {}, at, first_poll_at=at),
    }
    for days, (write, apply) in zip((60, 120, 180, 240), writes.items(), strict=True):
        aws.session.client("dynamodb").update_item(
            TableName=aws.resources.table_name,
            Key={"pk": {"S": "azure-review#r1"}, "sk": {"S": "STATE"}},
            UpdateExpression="SET expires_at = :soon",
            ExpressionAttributeValues={":soon": {"N": str(int(NOW.timestamp()) + 86400)}},
        )
        apply(NOW + timedelta(days=days))

        # Then it has no TTL (DynamoDB would delete it, and with it the job's place in the poller's index)
        assert expires_at() is None, write

    # And once it has its verdict, it is kept for the retention after it
    done = NOW + timedelta(days=300)
    world.store.record(
        verdict("azure-review", "r1", JobStatus.SUCCEEDED, Suggestion.PASS), None, done, publish=False
    )
    assert expires_at() == done + retention


def test_an_owed_verdict_an_earlier_version_stored_with_a_ttl_gets_one_from_its_publish(aws: FakeAws) -> None:
    # Given a verdict owed as an earlier version stored it: a TTL from the start, no retention kept aside
    world = World(aws, ScriptedClient("azure-review"))
    finished = verdict("azure-review", "r1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    assert world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=False).job is not None
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": "azure-review#r1"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET publish_state = :pending, unpublished_provider = :p",
        ExpressionAttributeValues={":pending": {"S": "pending"}, ":p": {"S": "azure-review"}},
    )

    # When its publish is confirmed
    later = NOW + timedelta(days=3)
    assert world.store.mark_published("azure-review", "r1", later)

    # Then it is confirmed (not refused for the attribute it lacks, which would send it again at every sweep)
    (item,) = aws.table_items()
    assert item["publish_state"]["S"] == "published"
    assert int(item["expires_at"]["N"]) == int((later + timedelta(days=90)).timestamp())
    assert list(world.store.unpublished("azure-review")) == []


def test_a_verdict_owed_for_a_job_an_earlier_version_gave_a_ttl_has_none_until_its_publish(
    aws: FakeAws,
) -> None:
    # Given a job registered by an earlier version, which gave it a TTL at creation, that no write has touched
    # since (no poll yet: its callback comes first)
    world = World(aws, ScriptedClient("azure-review"))
    world.register("azure-review", "r1")
    soon = int(NOW.timestamp()) + 86400
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": "azure-review#r1"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET expires_at = :soon",
        ExpressionAttributeValues={":soon": {"N": str(soon)}},
    )

    # When its block verdict is stored with its publish owed (SNS refusing it, say)
    finished = VerdictPolicy().finalize(verdict("azure-review", "r1", JobStatus.SUCCEEDED, Suggestion.BLOCK))
    assert world.store.record(finished, None, NOW, publish=True).publish

    # Then the old TTL is gone, so DynamoDB cannot delete the owed verdict before SNS takes it; its retention is
    # kept aside for the confirmation
    (item,) = aws.table_items()
    assert "expires_at" not in item
    assert int(item["retain_until"]["N"]) == int((NOW + timedelta(days=90)).timestamp())
    assert world.store.get("azure-review", "r1") is not None
    assert [key.job_id for key in world.store.unpublished("azure-review")] == ["r1"]


def test_owed_publish_of_a_provider_without_api_credentials_is_swept(aws: FakeAws) -> None:
    # Given a callbacks-only provider (no poll client) whose verdict's publish failed after it was stored
    world = World(aws, ScriptedClient("huawei-video"))
    finished = verdict("azure-review", "r1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    assert world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=True).publish

    # When poll cycles run after the failed writer's claim has run out
    world.clock[0] = NOW + timedelta(seconds=61)
    report = world.poller.run_cycle(PLENTY_OF_TIME)
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the verdict is published, once
    assert report.providers["azure-review"].owed_published == 1
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["r1"]


@pytest.mark.parametrize(
    "stored",
    [
        compress(b'{"not": "a verdict"}'),  # a shape the code cannot load
        b"not gzip",  # bytes that do not decompress
        compress(b'{"job_id": "bad"}')[:-9],  # cut short
    ],
    ids=["not a verdict", "not gzip", "truncated"],
)
def test_an_owed_verdict_that_cannot_be_read_does_not_hold_back_the_others(
    aws: FakeAws, stored: bytes
) -> None:
    # Given two owed verdicts, one of them stored as something the code cannot read
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    for job_id in ("bad", "good"):
        finished = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)
        world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=True)
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": "huawei-video#bad"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET verdict_gz = :v",
        ExpressionAttributeValues={":v": {"B": stored}},
    )
    world.register("huawei-video", "due-1")
    client.jobs["due-1"] = verdict("huawei-video", "due-1", JobStatus.SUCCEEDED, Suggestion.REVIEW)
    metrics.clear_metrics()

    # When a poll cycle runs after the claims have run out
    world.clock[0] = NOW + timedelta(seconds=61)
    report = world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the readable one is published, the due job is polled, and the unreadable one stays owed, counted for
    # its alarm
    assert report.providers["huawei-video"].owed_published == 1
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == ["due-1", "good"]
    bad = next(i for i in aws.table_items() if i["pk"]["S"] == "huawei-video#bad")
    assert bad["publish_state"]["S"] == "pending"
    assert sum(metrics.metric_set["OwedPublishUnreadable"]["Value"]) == 1


@pytest.mark.parametrize("provider", ["huawei-video", "huawei-image-batch"])
def test_a_result_s3_will_not_archive_waits_its_backoff_and_does_not_hold_back_the_others(
    aws: FakeAws, provider: str
) -> None:
    # Given a due job whose result is too large for its item, the oldest due (registered 31 minutes ago: past
    # the 30 minutes Huawei keeps an image batch), ten small ones, and S3 refusing every upload (its bucket
    # gone: an outage, a bucket policy or key that refuses) while DynamoDB works
    client = ScriptedClient(provider)
    world = World(aws, client, concurrency=1)
    world.register(provider, "large", at=NOW - timedelta(minutes=31))
    small = [f"small-{i}" for i in range(10)]
    world.register(provider, *small)
    for job_id in ["large", *small]:
        client.jobs[job_id] = verdict(provider, job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)
    client.raw["large"] = random.Random(7).randbytes(400 * 1024)  # incompressible: archived in S3
    s3 = aws.session.client("s3")
    s3.delete_bucket(Bucket=aws.resources.bucket)
    metrics.clear_metrics()

    # When a poll cycle runs
    report = world.poller.run_cycle(PLENTY_OF_TIME).providers[provider]

    # Then the small ones are stored and published, and the large one, nothing of it stored, is polled again
    # after its backoff (not at the head of the due jobs, where it stopped every cycle; not expired for its age
    # either, the provider having just answered for it), counted as a storage failure
    assert (report.resolved, report.rescheduled, report.expired, report.skipped) == (10, 1, 0, None)
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == small
    assert world.status(provider, "large") is JobStatus.PENDING
    assert "large" not in world.due(provider)
    assert sum(metrics.metric_set["PollerStorageFailed"]["Value"]) == 1

    # And once S3 is back, its next poll stores and publishes its verdict
    s3.create_bucket(Bucket=aws.resources.bucket)
    world.clock[0] += timedelta(hours=1)
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert world.status(provider, "large") is JobStatus.SUCCEEDED
    assert [(m["verdict"]["job_id"], m["verdict"]["suggestion"]) for m in aws.published()] == [
        ("large", "block")
    ]


def test_a_table_that_throttles_the_sweeps_claims_stops_the_sweep_as_a_storage_failure(aws: FakeAws) -> None:
    # Given three owed verdicts, and DynamoDB throttling the sweep's claims past the SDK's retries
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    for job_id in ("a", "b", "c"):
        finished = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)
        world.store.record(VerdictPolicy().finalize(finished), None, NOW, publish=True)
    claims: list[str] = []

    def throttle_claims(request: Any, **_: Any) -> Any:
        if b"publish_claimed_until = :until" not in (request.body or b"") or b":pending" not in request.body:
            return None
        claims.append(json.loads(request.body)["Key"]["pk"]["S"])
        body = b'{"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}'
        return aws_response(request, 400, body, "application/x-amz-json-1.0")

    events = world.store._client.meta.events
    events.register_first("before-send.dynamodb.UpdateItem", throttle_claims)
    metrics.clear_metrics()

    # When a poll cycle runs after their writers' claims have run out
    world.clock[0] = NOW + timedelta(seconds=61)
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the sweep stops at the first claim (no verdict is called unreadable, no requeue is written to the
    # throttled table), counted as the table failing; the verdicts stay owed, nothing is published
    assert len(set(claims)) == 1  # each attempt the SDK made, of the first claim alone
    assert "OwedPublishUnreadable" not in metrics.metric_set
    assert sum(metrics.metric_set["PollerStorageFailed"]["Value"]) == 1
    assert aws.published() == []
    assert sorted(key.job_id for key in world.store.unpublished("huawei-video")) == ["a", "b", "c"]

    # And once the table answers again, the next sweep sends each once
    events.unregister("before-send.dynamodb.UpdateItem", throttle_claims)
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == ["a", "b", "c"]


@pytest.mark.parametrize("order", ["poll-first", "callback-first"])
def test_callback_and_poll_for_the_same_job_give_one_verdict_and_one_publish(
    aws: FakeAws, order: str
) -> None:
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j1")
    finished = verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    client.jobs["j1"] = finished

    if order == "poll-first":
        world.poller.run_cycle(PLENTY_OF_TIME)
        world.ingest.ingest(finished, b"{}", NOW)
    else:
        world.ingest.ingest(finished, b"{}", NOW)
        world.poller.poll_jobs("huawei-video", [DueJob("j1")], PLENTY_OF_TIME)

    assert world.status("huawei-video", "j1") is JobStatus.SUCCEEDED
    assert len(aws.published()) == 1


@pytest.mark.parametrize("answer", ["unreadable", "left out"])
def test_an_image_batch_past_30_minutes_without_a_readable_answer_expires_instead_of_being_asked_forever(
    aws: FakeAws, answer: str
) -> None:
    client = ScriptedClient("huawei-image-batch")
    world = World(aws, client)
    world.register("huawei-image-batch", "old", at=NOW - timedelta(minutes=31))
    world.register("huawei-image-batch", "young", at=NOW - timedelta(minutes=5))
    if answer == "unreadable":  # an error code nobody documented for a job Huawei dropped
        client.unreadable.update({"old", "young"})
    # "left out": Huawei answers without the jobs (ScriptedClient returns only the jobs it has)

    world.poller.run_cycle(PLENTY_OF_TIME)

    assert world.status("huawei-image-batch", "old") is JobStatus.EXPIRED
    assert world.status("huawei-image-batch", "young") is JobStatus.PENDING
    (message,) = aws.published()
    assert message["verdict"]["job_id"] == "old"


def test_a_job_finished_with_too_little_invocation_time_left_to_publish_is_left_owed_not_cut_off(
    aws: FakeAws,
) -> None:
    from verdict_relay.logic.ingest import PUBLISH_TIME_S

    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j1")
    client.jobs["j1"] = verdict("huawei-video", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    short = PUBLISH_TIME_S - 1  # more than the poller's safety margin: the job is still polled
    assert short > PollSettings().safety_margin_s

    report = world.poller.run_cycle(lambda: short)

    assert report.providers["huawei-video"].resolved == 1
    assert world.status("huawei-video", "j1") is JobStatus.SUCCEEDED
    assert aws.published() == []  # a publish the end of the invocation could cut off would be sent twice
    # The writer gave its claim up: the next schedule's sweep publishes it, once, without waiting the claim out.
    world.clock[0] = NOW + timedelta(seconds=30)
    world.poller.run_cycle(PLENTY_OF_TIME)
    world.poller.run_cycle(PLENTY_OF_TIME)
    (message,) = aws.published()
    assert message["verdict"]["job_id"] == "j1"


def test_a_throttled_provider_is_not_asked_again_before_its_retry_after(aws: FakeAws) -> None:
    from verdict_relay.clients.base import ProviderThrottledError

    client = ScriptedClient("azure-review")
    world = World(aws, client)
    world.register("azure-review", "j1")
    client.jobs["j1"] = verdict("azure-review", "j1", JobStatus.SUCCEEDED, Suggestion.BLOCK)
    client.failures.append(ProviderThrottledError("azure-review: throttled (HTTP 429)", retry_after=120.0))

    world.poller.run_cycle(PLENTY_OF_TIME)
    world.clock[0] = NOW + timedelta(seconds=61)  # past the breaker's own cool-down, not the provider's wait
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert len(client.requests) == 1

    world.clock[0] = NOW + timedelta(seconds=121)
    world.poller.run_cycle(PLENTY_OF_TIME)
    assert len(client.requests) == 2
    assert world.status("azure-review", "j1") is JobStatus.SUCCEEDED


def test_a_retry_after_is_kept_whatever_fails_meanwhile_and_is_capped() -> None:
    from verdict_relay.logic.breaker import MAX_RETRY_AFTER_S, CircuitBreaker

    clock = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown_s=60, clock=lambda: clock[0])
    breaker.record_failure(retry_after_s=300)
    for _ in range(3):  # batches still in flight fail the ordinary way: the provider's wait is not shortened
        breaker.record_failure()
    clock[0] = 61
    assert not breaker.allow()
    clock[0] = 301
    assert breaker.allow()  # the trial

    breaker.record_success()
    breaker.record_failure(retry_after_s=10)  # a short one opens it at once too
    assert not breaker.allow()
    breaker.record_failure(retry_after_s=1e9)  # a wrong or hostile header
    clock[0] = 301 + MAX_RETRY_AFTER_S + 1
    assert breaker.allow()


# -- a fan-out batch and its provider's breaker -------------------------------------------------------------------


def fan_out_world(aws: FakeAws, provider: str, count: int) -> tuple[World, ScriptedClient, list[datetime]]:
    """A world polling one batch at a time (as a worker's single thread would, so the order is the test's): the
    provider has ``count`` finished jobs ``j0``...; the returned list gets the time of each request."""
    client = ScriptedClient(provider)
    world = World(aws, client, concurrency=1)
    job_ids = [f"j{i}" for i in range(count)]
    world.register(provider, *job_ids)
    for job_id in job_ids:
        client.jobs[job_id] = verdict(provider, job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)
    times: list[datetime] = []
    fetch = client.fetch

    def timed_fetch(job_ids: Sequence[str]) -> FetchResult:
        times.append(world.clock[0])
        return fetch(job_ids)

    client.fetch = timed_fetch  # type: ignore[method-assign]
    return world, client, times


def poll_held_batch(
    poller: Poller, provider: str, count: int, time_left_s: Callable[[], float] = PLENTY_OF_TIME
) -> ProviderReport:
    """A worker's batch of jobs ``j0``... of ``provider``, held for 10 minutes, polled as the worker does."""
    jobs = [DueJob(f"j{i}") for i in range(count)]
    return poller.poll_jobs(provider, jobs, time_left_s, requests_until=NOW + timedelta(minutes=10))


def test_a_fan_out_batch_waits_out_a_retry_after_that_ends_in_its_time_instead_of_leaving_its_jobs_due(
    aws: FakeAws,
) -> None:
    from verdict_relay.clients.base import ProviderThrottledError

    # Given a worker's batch of five jobs, held for 10 minutes, whose first request is told "come back in 30 s"
    world, client, times = fan_out_world(aws, "azure-review", 5)
    client.failures.append(ProviderThrottledError("azure-review: throttled (HTTP 429)", retry_after=30.0))

    # When the batch is polled
    report = poll_held_batch(world.poller, "azure-review", 5)

    # Then nothing went out for 30 s, and then the other four jobs were polled instead of left due until the
    # hold ends (the throttled job waits for the scheduler, as a throttled job of a cycle does)
    assert times[1] - times[0] >= timedelta(seconds=30)
    assert max(world.slept) <= 1.0
    assert (report.resolved, report.left_due, report.skipped) == (4, 1, None)
    assert world.due("azure-review") == ["j0"]


def test_a_fan_out_batch_waits_out_a_cool_down_and_its_trial_then_polls_the_rest(aws: FakeAws) -> None:
    # Given a batch whose provider fails three requests in a row (a brief outage): its breaker opens for 60 s
    world, client, times = fan_out_world(aws, "huawei-video", 6)
    client.failures = [ProviderUnavailableError("huawei-video: unavailable (HTTP 503)")] * 3

    report = poll_held_batch(world.poller, "huawei-video", 6)

    # Then, after the cool-down, the trial and the rest went out: the failed requests' jobs wait out their
    # backoff, the others are resolved
    assert times[3] - times[2] >= timedelta(seconds=60)
    assert (report.resolved, report.left_due, report.failed_requests) == (3, 0, 3)
    assert [world.status("huawei-video", f"j{i}") for i in range(3, 6)] == [JobStatus.SUCCEEDED] * 3


@pytest.mark.parametrize(
    ("retry_after", "requests_until"),
    [(900.0, NOW + timedelta(hours=1)), (120.0, NOW + timedelta(seconds=100))],
    ids=["past-the-invocation", "past-the-hold"],
)
def test_a_fan_out_batch_does_not_wait_for_a_breaker_that_ends_past_its_time(
    aws: FakeAws, retry_after: float, requests_until: datetime
) -> None:
    from verdict_relay.clients.base import ProviderThrottledError

    # Given a batch told to come back after its invocation's 600 s, or after its hold
    world, client, times = fan_out_world(aws, "azure-review", 3)
    client.failures.append(
        ProviderThrottledError("azure-review: throttled (HTTP 429)", retry_after=retry_after)
    )
    jobs = [DueJob(f"j{i}") for i in range(3)]
    metrics.clear_metrics()

    first = world.poller.poll_jobs("azure-review", jobs, PLENTY_OF_TIME, requests_until=requests_until)
    second = world.poller.poll_jobs("azure-review", jobs, PLENTY_OF_TIME, requests_until=requests_until)

    # Then its jobs are left due at once, and so are the next batch's, which says why
    assert (len(times), world.slept) == (1, [])
    assert (first.left_due, first.skipped) == (3, None)
    assert (second.left_due, second.skipped) == (3, "circuit open")
    assert sum(metrics.metric_set["JobsLeftDue"]["Value"]) == 6
    assert sum(metrics.metric_set["ProviderSkippedCircuitOpen"]["Value"]) == 1


def test_a_fan_out_batch_for_a_provider_not_polled_here_leaves_its_jobs_due(aws: FakeAws) -> None:
    # Given a worker whose providers document polls Huawei video only (Azure removed since the batch was sent)
    world = World(aws, ScriptedClient("huawei-video"))
    world.register("azure-review", "a1")

    report = world.poller.poll_jobs("azure-review", [DueJob("a1")], PLENTY_OF_TIME)

    assert (report.skipped, report.left_due) == ("not configured", 1)
    assert world.due("azure-review") == ["a1"]


def test_a_batch_whose_results_cannot_be_stored_stops_the_others_requests(aws: FakeAws) -> None:
    # Given a provider answering, and a table that is gone once the first answer is in
    world, client, _ = fan_out_world(aws, "huawei-video", 4)
    fetch = client.fetch

    def fetch_then_lose_the_table(job_ids: Sequence[str]) -> FetchResult:
        result = fetch(job_ids)
        if len(client.requests) == 1:
            aws.session.client("dynamodb").delete_table(TableName=aws.resources.table_name)
        return result

    client.fetch = fetch_then_lose_the_table  # type: ignore[method-assign]

    with pytest.raises(StorageError):
        world.poller.poll_jobs("huawei-video", [DueJob(f"j{i}") for i in range(4)], PLENTY_OF_TIME)

    # Then the other jobs were not asked for: their answers could not have been written
    assert len(client.requests) == 1


def test_a_due_job_whose_stored_progress_cannot_be_read_is_polled_with_the_others(aws: FakeAws) -> None:
    # Given two due jobs, one of whose stored progress verdict was archived to S3 and is gone from there
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "j1", "j2")
    world.ingest.ingest(verdict("huawei-video", "j1", JobStatus.RUNNING), None, NOW)
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": "huawei-video#j1"}, "sk": {"S": STATE}},
        UpdateExpression="SET verdict_s3_key = :key REMOVE verdict_gz",
        ExpressionAttributeValues={":key": {"S": "jobs/gone"}},
    )
    for job_id in ("j1", "j2"):
        client.jobs[job_id] = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)

    # When a cycle polls the provider
    report = world.poller.run_cycle(PLENTY_OF_TIME).providers["huawei-video"]

    # Then both are polled and resolved: polling reads of a due job only what a poll needs
    assert (report.resolved, report.skipped) == (2, None)
    assert [world.status("huawei-video", j) for j in ("j1", "j2")] == [JobStatus.SUCCEEDED] * 2


def test_a_fan_out_batch_waiting_on_a_trial_that_never_reports_stops_when_its_time_does(aws: FakeAws) -> None:
    # Given a provider whose half-open trial another batch took and never reported on (its time ran out), and a
    # batch with 20 s of invocation left
    world, _, times = fan_out_world(aws, "huawei-video", 3)
    breaker = world.breakers["huawei-video"]
    for _ in range(3):
        breaker.record_failure()
    world.clock[0] += timedelta(seconds=61)
    assert breaker.allow()  # the trial, out elsewhere
    deadline = world.clock[0] + timedelta(seconds=20)

    report = poll_held_batch(
        world.poller, "huawei-video", 3, lambda: (deadline - world.clock[0]).total_seconds()
    )

    # Then it waits only while a request would still fit (not until the trial is given up a cool-down later),
    # sends nothing, and leaves its jobs due
    assert times == []
    assert report.left_due == 3
    assert world.clock[0] <= deadline - timedelta(seconds=7)


def test_a_trial_cut_off_by_the_callers_time_lets_the_next_request_try_at_once() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, cooldown_s=60, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 61.0
    assert breaker.allow()  # the trial

    breaker.release_trial()  # it ran out of the caller's time: no outcome

    assert (breaker.allow(), breaker.allow()) == (True, False)


def test_a_fan_out_batch_does_not_wait_to_try_refused_credentials_again(aws: FakeAws) -> None:
    # Given a batch whose provider refuses the credentials (the breaker opens at once, for a 60 s cool-down)
    world, client, times = fan_out_world(aws, "azure-review", 3)
    client.failures = [ProviderAuthError("azure-review: credentials refused (HTTP 401)")] * 3

    report = poll_held_batch(world.poller, "azure-review", 3)

    # Then the rest is left due at once: the same credentials would be refused after the cool-down too
    assert (len(times), world.slept, report.left_due) == (1, [], 3)


def test_an_image_batch_the_provider_no_longer_keeps_is_expired_without_the_grace(aws: FakeAws) -> None:
    # Given a grace of an hour, and an image batch job 31 minutes old (Huawei keeps them 30) Huawei does not know
    client = ScriptedClient("huawei-image-batch")
    world = World(aws, client)
    world.ingest = IngestService(
        world.store,
        VerdictPublisher(aws.resources.topic_arn, lambda: aws.session.client("sns")),
        VerdictPolicy(),
        unknown_grace=timedelta(hours=1),
    )
    world.poller = Poller(
        world.store, world.ingest, world.clients, world.breakers, PollSettings(), now=lambda: world.clock[0]
    )
    world.register("huawei-image-batch", "old", at=NOW - timedelta(minutes=31))
    world.register("huawei-image-batch", "young", at=NOW - timedelta(minutes=5))
    client.missing.update({"old", "young"})
    metrics.clear_metrics()

    report = world.poller.run_cycle(PLENTY_OF_TIME).providers["huawei-image-batch"]

    # Then the old one is expired by the provider's own limit, the young one waits for the grace
    assert (world.status("huawei-image-batch", "old"), world.status("huawei-image-batch", "young")) == (
        JobStatus.EXPIRED,
        JobStatus.PENDING,
    )
    assert (report.expired, report.rescheduled) == (1, 1)
    assert sum(metrics.metric_set["JobUnknownToProvider"]["Value"]) == 1


def test_an_image_batch_expired_for_its_age_is_counted_where_the_dashboard_reads_it(aws: FakeAws) -> None:
    # Given an image batch job 31 minutes old (Huawei keeps them 30) that Huawei answers with a 500
    client = ScriptedClient("huawei-image-batch")
    world = World(aws, client)
    world.register("huawei-image-batch", "old", at=NOW - timedelta(minutes=31))
    client.failing.add("old")
    metrics.clear_metrics()

    # When the poller runs a cycle
    report = world.poller.run_cycle(PLENTY_OF_TIME).providers["huawei-image-batch"]

    # Then it is expired, and the expiry is counted once: in the cycle's report and in JobExpired
    assert world.status("huawei-image-batch", "old") is JobStatus.EXPIRED
    assert report.expired == 1
    assert sum(metrics.metric_set["JobExpired"]["Value"]) == 1


def test_only_the_thread_holding_the_trial_can_give_it_back() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, cooldown_s=60, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 61.0
    took, give_back, given_back = [], threading.Event(), threading.Event()

    def trial() -> None:
        took.append(breaker.allow())
        give_back.wait(5)
        breaker.release_trial()
        given_back.set()

    holder = threading.Thread(target=trial)
    holder.start()
    while not took:
        time.sleep(0.01)

    # A request of another thread that ran out of time (sent while the breaker was closed) is not the trial
    breaker.release_trial()
    assert (took, breaker.allow()) == ([True], False)

    give_back.set()
    assert given_back.wait(5)
    holder.join(5)
    assert breaker.allow() is True


def test_a_fan_out_batch_after_refused_credentials_waits_for_the_trial_another_batch_has_out(
    aws: FakeAws,
) -> None:
    # Given a provider whose credentials were refused (then rotated), half-open, its trial out elsewhere
    world, _, times = fan_out_world(aws, "azure-review", 2)
    breaker = world.breakers["azure-review"]
    breaker.record_failure(trip=True)
    world.clock[0] += timedelta(seconds=61)
    taken = threading.Thread(target=breaker.allow)
    taken.start()
    taken.join()

    def trial_reports_success_while_we_wait(seconds: float) -> None:
        world.sleep(seconds)
        breaker.record_success()  # the new credentials work

    poller = Poller(
        world.store,
        world.ingest,
        world.clients,
        world.breakers,
        PollSettings(),
        now=lambda: world.clock[0],
        concurrency={"azure-review": 1},
        sleep=trial_reports_success_while_we_wait,
    )

    report = poll_held_batch(poller, "azure-review", 2)

    # Then it waits for that trial's outcome instead of leaving its jobs due, and polls them once it succeeds
    assert (len(times), report.resolved, report.left_due) == (2, 2, 0)


def test_jobs_of_a_provider_nothing_polls_are_counted_overdue_at_every_cycle_once_unheard_of_for_a_day(
    aws: FakeAws, caplog: pytest.LogCaptureFixture
) -> None:
    # Given huawei-video served by callbacks only (no client), a job stored 25 hours ago whose callback never
    # came, one stored 23 hours ago, and one stored 25 hours ago that its callback finished
    world = World(aws, ScriptedClient("alibaba-mps"))
    world.register("huawei-video", "hv-silent", at=NOW - timedelta(hours=25))
    world.register("huawei-video", "hv-young", at=NOW - timedelta(hours=23))
    world.register("huawei-video", "hv-done", at=NOW - timedelta(hours=25))
    done = verdict("huawei-video", "hv-done", JobStatus.SUCCEEDED, Suggestion.PASS)
    world.ingest.ingest(done, None, NOW - timedelta(hours=24))
    metrics.clear_metrics()

    # When two cycles run
    for _ in range(2):
        world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the silent job is counted overdue at each (JobsOverdueAlarm), named, and left as it is: pending and
    # due, for a poller given credentials to poll at once
    assert sum(metrics.metric_set["JobOverdue"]["Value"]) == 2
    warnings = [r for r in caplog.records if "no callback for long" in r.getMessage()]
    assert [r.__dict__["job_ids"] for r in warnings] == [["hv-silent"], ["hv-silent"]]
    assert world.status("huawei-video", "hv-silent") is JobStatus.PENDING
    assert world.due("huawei-video") == ["hv-silent", "hv-young"]


def test_each_unheard_job_of_a_provider_nothing_polls_is_counted_overdue(aws: FakeAws) -> None:
    # Given huawei-video served by callbacks only (no client), and three jobs stored 25 hours ago whose callbacks
    # never came
    world = World(aws, ScriptedClient("alibaba-mps"))
    world.register("huawei-video", "hv-1", "hv-2", "hv-3", at=NOW - timedelta(hours=25))
    metrics.clear_metrics()

    # When a cycle runs
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then JobOverdue counts the jobs, as it does for polled ones, not the cycle
    assert sum(metrics.metric_set["JobOverdue"]["Value"]) == 3


def test_a_running_job_with_a_long_result_so_far_is_stored_with_its_strongest_findings(aws: FakeAws) -> None:
    from verdict_relay.dal.store import PROGRESS_VERDICT_BYTES
    from verdict_relay.models.verdict import Finding

    # Given a running job whose answer so far holds 20,000 findings with labels that do not compress (some 1 MB
    # of JSON: past DynamoDB's 400 KB item, which every write of the job would then be refused), two of them block
    rng = random.Random(7)
    findings = [
        Finding(
            category="porn", label=f"{rng.getrandbits(128):032x}", confidence=0.1, suggestion=Suggestion.PASS
        )
        for _ in range(20_000)
    ]
    strongest = [
        Finding(category="porn", label="sexy", confidence=0.99, suggestion=Suggestion.BLOCK, time_offset=t)
        for t in (10.0, 20.0)
    ]
    client = ScriptedClient("alibaba-mps")
    world = World(aws, client)
    world.register("alibaba-mps", "long")
    running = verdict("alibaba-mps", "long", JobStatus.RUNNING)
    client.jobs["long"] = running.model_copy(
        update={"findings": findings[:10_000] + strongest + findings[10_000:]}
    )

    # When it is polled, twice
    world.poller.run_cycle(PLENTY_OF_TIME)
    job = world.store.get("alibaba-mps", "long")
    assert job is not None
    assert job.next_poll_at is not None
    world.clock[0] = datetime.fromtimestamp(job.next_poll_at, UTC)
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then each poll is stored (running, polled twice), with its findings so far trimmed to the strongest
    job = world.store.get("alibaba-mps", "long")
    assert job is not None
    assert (job.status, job.poll_attempts) == (JobStatus.RUNNING, 2)
    assert job.verdict is not None
    assert len(job.verdict.model_dump_json()) <= PROGRESS_VERDICT_BYTES
    assert job.verdict.findings[:2] == strongest
    assert aws.published() == []


def test_a_write_the_table_refuses_for_one_job_leaves_it_to_its_backoff_and_the_others_are_stored(
    aws: FakeAws,
) -> None:
    # Given three due jobs, the first of them running, and a table that refuses that job's write for good (an
    # item DynamoDB will not take: a ValidationException, not a throttle)
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.register("huawei-video", "refused", at=NOW - timedelta(seconds=2))
    world.register("huawei-video", "a", "b")
    client.jobs["refused"] = verdict("huawei-video", "refused", JobStatus.RUNNING)
    for job_id in ("a", "b"):
        client.jobs[job_id] = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.BLOCK)

    def refuse_its_record(request: Any, **_: Any) -> Any:
        body = json.loads(request.body or b"{}")
        if (
            body.get("Key", {}).get("pk", {}).get("S") != "huawei-video#refused"
            or ":verdict" not in request.body.decode()
        ):
            return None
        error = b'{"__type": "com.amazon.coral.validate#ValidationException", "message": "Item size has exceeded the maximum allowed size"}'
        return aws_response(request, 400, error, "application/x-amz-json-1.0")

    world.store._client.meta.events.register_first("before-send.dynamodb.UpdateItem", refuse_its_record)
    metrics.clear_metrics()

    # When a cycle polls them
    report = world.poller.run_cycle(PLENTY_OF_TIME).providers["huawei-video"]

    # Then the others are stored and published; the refused one is counted and waits out its backoff, so it does
    # not stay at the head of the due jobs and stop every cycle
    assert report.skipped is None
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == ["a", "b"]
    assert sum(metrics.metric_set["PollerStorageFailed"]["Value"]) == 1
    assert world.due("huawei-video") == []
    job = world.store.get("huawei-video", "refused")
    assert job is not None
    assert (job.status, job.poll_attempts) == (JobStatus.PENDING, 1)


def test_a_table_that_denies_a_jobs_write_stops_the_cycle_counted_once(aws: FakeAws) -> None:
    # Given two running jobs, and a table that denies every write of the poller's (access denied: the table
    # failing, not one job's item)
    client = ScriptedClient("huawei-video")
    client.discovers = False  # discovery's watermark is a write of its own
    world = World(aws, client)
    world.register("huawei-video", "a", "b")
    for job_id in ("a", "b"):
        client.jobs[job_id] = verdict("huawei-video", job_id, JobStatus.RUNNING)

    def deny(request: Any, **_: Any) -> Any:
        error = b'{"__type": "com.amazon.coral.service#AccessDeniedException", "message": "not authorized"}'
        return aws_response(request, 400, error, "application/x-amz-json-1.0")

    world.store._client.meta.events.register_first("before-send.dynamodb.UpdateItem", deny)
    metrics.clear_metrics()

    # When a cycle polls them, then it stops at the first, counted once, with no job said to be polled later
    report = world.poller.run_cycle(PLENTY_OF_TIME).providers["huawei-video"]

    assert report.skipped == "storage failed"
    assert sum(metrics.metric_set["PollerStorageFailed"]["Value"]) == 1
    assert report.rescheduled == 0
    assert sorted(world.due("huawei-video")) == ["a", "b"]


def running_with_large_progress(world: World, client: ScriptedClient, count: int) -> list[str]:
    """``count`` running jobs due now, each holding findings so far that do not compress (some 45 KB an item):
    the ``outstanding`` index holds them whole and a Query page ends at 1 MB, so more than 22 span two pages.
    The provider has finished each one."""
    rng = random.Random(3)
    job_ids = [f"j{n:02}" for n in range(count)]
    world.register("huawei-video", *job_ids)
    for job_id in job_ids:
        noise = base64.b64encode(rng.randbytes(45_000)).decode()
        running = verdict("huawei-video", job_id, JobStatus.RUNNING).model_copy(
            update={"metadata": {"n": noise}}
        )
        world.store.record(running, None, NOW, publish=False)
        client.jobs[job_id] = verdict("huawei-video", job_id, JobStatus.SUCCEEDED, Suggestion.PASS)
    return job_ids


def test_due_jobs_past_a_query_page_are_all_polled(aws: FakeAws) -> None:
    # Given 30 running jobs due, spanning two Query pages
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    job_ids = running_with_large_progress(world, client, 30)

    # When a cycle runs
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then every due job was polled and is finished, none left for a later cycle
    assert sorted(job for request in client.requests for job in request) == job_ids
    assert all(world.status("huawei-video", job_id) is JobStatus.SUCCEEDED for job_id in job_ids)
    assert world.due("huawei-video") == []


def test_a_cycle_reads_no_more_due_jobs_than_its_limit_across_query_pages(aws: FakeAws) -> None:
    # Given 30 running jobs due, spanning two Query pages, and a poller that takes 25 due jobs a cycle
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    running_with_large_progress(world, client, 30)
    world.poller = Poller(
        world.store, world.ingest, world.clients, world.breakers, PollSettings(due_limit=25), now=lambda: NOW
    )

    # When a cycle runs
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then it polled 25 of them, the oldest due first, and left 5 due for the next cycle
    assert len([job for request in client.requests for job in request]) == 25
    assert len(world.due("huawei-video")) == 5


def test_a_job_first_heard_of_in_a_progress_callback_is_polled_to_its_end(aws: FakeAws) -> None:
    # Given a job nobody registered, first known from a callback saying it is running
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.store.record(verdict("huawei-video", "cb-first", JobStatus.RUNNING), None, NOW, publish=False)
    client.jobs["cb-first"] = verdict("huawei-video", "cb-first", JobStatus.SUCCEEDED, Suggestion.BLOCK)

    # When a cycle runs
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the poller found it, and its verdict is stored and published
    assert client.requests == [["cb-first"]]
    assert world.status("huawei-video", "cb-first") is JobStatus.SUCCEEDED
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["cb-first"]


def test_a_registration_after_the_callback_keeps_the_job_due_when_the_callback_made_it(aws: FakeAws) -> None:
    # Given a job a callback's notice made due now, and then registered with a first poll half an hour away
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.store.mark_due("huawei-video", "early", NOW)
    world.store.register("huawei-video", "early", {}, NOW, first_poll_at=NOW + timedelta(minutes=30))
    client.jobs["early"] = verdict("huawei-video", "early", JobStatus.SUCCEEDED, Suggestion.BLOCK)

    # When a cycle runs now
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the job was polled and its verdict published, not held back to the registration's first poll
    assert client.requests == [["early"]]
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["early"]


def test_a_notice_without_a_result_makes_a_registered_job_due_at_once(aws: FakeAws) -> None:
    # Given a job registered with a first poll half an hour away, then a callback's notice that it finished
    client = ScriptedClient("huawei-video")
    world = World(aws, client)
    world.store.register("huawei-video", "noticed", {}, NOW, first_poll_at=NOW + timedelta(minutes=30))
    world.store.mark_due("huawei-video", "noticed", NOW)
    client.jobs["noticed"] = verdict("huawei-video", "noticed", JobStatus.SUCCEEDED, Suggestion.BLOCK)

    # When a cycle runs now
    world.poller.run_cycle(PLENTY_OF_TIME)

    # Then the job was polled and its verdict published, not left until its scheduled poll
    assert client.requests == [["noticed"]]
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["noticed"]
