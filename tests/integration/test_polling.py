"""The poller end to end: real clients over HTTP to the provider simulator, the real store and topic (moto)."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3.connection

from tests.conftest import FakeAws
from tests.helpers import answering, emf_counts
from tests.integration.conftest import LambdaContext, NamedContext, configure_environment
from verdict_relay.clients.base import ProviderAuthError
from verdict_relay.clients.http import HttpOptions
from verdict_relay.config import Settings
from verdict_relay.dal.store import JobStore
from verdict_relay.handlers.dependencies import Dependencies, build
from verdict_relay.handlers.poller import STAMP_LAG_S
from verdict_relay.local.simulator import (
    ProviderSimulator,
    alibaba_job,
    azure_job,
    huawei_image_batch_job,
    huawei_video_job,
)
from verdict_relay.local.stack import sqs_event
from verdict_relay.logic.breaker import CircuitBreaker
from verdict_relay.models.jobs import Transition
from verdict_relay.models.verdict import JobStatus, Suggestion, Verdict
from verdict_relay.providers.profiles import PROFILES

PLENTY = lambda: 120.0  # noqa: E731


def due_before_the_reread() -> datetime:
    """Due before the seconds a fan-out's read reads again (its own, and STAMP_LAG_S before it, where a job may
    have been written due after the read): its hold covers such jobs, so a later schedule does not send them
    again."""
    return datetime.now(UTC) - timedelta(seconds=STAMP_LAG_S + 1)


class Harness:
    """The production wiring (``handlers.dependencies.build``, with ``env`` added to the functions' environment)
    on a session that counts DynamoDB calls. The container's poll circuit breakers are the ones ``deps.poller()``
    makes, on a clock the test can move on (:meth:`after_cool_down`)."""

    def __init__(
        self,
        aws: FakeAws,
        simulator: ProviderSimulator,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        providers: dict[str, dict[str, Any]],
        **env: str,
    ) -> None:
        self.aws = aws
        self.simulator = simulator
        configure_environment(monkeypatch, aws, tmp_path, providers, **env)
        self.dynamodb_calls: list[str] = []
        session = boto3.session.Session()
        session.events.register("before-call.dynamodb.*", self._count)
        self.deps: Dependencies = build(Settings.from_env(), session)
        self._breakers_ahead_s = 0.0
        # deps.poller() keeps these (it only adds the breakers missing), as a container keeps its breakers
        for name in providers:
            self.deps._breakers[name] = CircuitBreaker(clock=self._breaker_clock)

    def _breaker_clock(self) -> float:
        return time.monotonic() + self._breakers_ahead_s

    def after_cool_down(self) -> None:
        """Move the breakers' clock on by a breaker's cool-down (``BREAKER_COOL_DOWN_S``): what the container's
        breakers see of the minute after refused credentials or a failing provider opened them."""
        self._breakers_ahead_s += BREAKER_COOL_DOWN_S

    def _count(self, event_name: str, **_: Any) -> None:
        self.dynamodb_calls.append(event_name.rsplit(".", 1)[-1])

    def register(
        self, provider: str, *job_ids: str, at: datetime | None = None, due: datetime | None = None
    ) -> None:
        """Register jobs, created ``at`` (now by default) and due ``due`` (now by default)."""
        now = datetime.now(UTC)
        for job_id in job_ids:
            self.deps.store.register(provider, job_id, {}, at or now, first_poll_at=due or now)

    def poll(self) -> dict[str, Any]:
        report = self.deps.poller().run_cycle(PLENTY)
        return {name: vars(r) for name, r in report.providers.items()}

    def status(self, provider: str, job_id: str) -> JobStatus:
        job = self.deps.store.get(provider, job_id)
        assert job is not None
        return job.status

    def due(self, provider: str) -> list[str]:
        return [j.job_id for j in self.deps.store.due_jobs(provider, datetime.now(UTC))]


def every_polled_provider(simulator: ProviderSimulator) -> dict[str, dict[str, Any]]:
    return {
        name: simulator.provider_entry(name)
        for name in ("huawei-video", "huawei-image-batch", "alibaba-mps", "azure-review")
    }


@pytest.fixture
def harness(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Harness:
    return Harness(aws, simulator, monkeypatch, tmp_path, every_polled_provider(simulator))


BACKOFF_S = 3
"""The backoff of a job's first poll without an answer, in :func:`short_backoff`'s harness: its
POLL_MIN_INTERVAL_SECONDS, above the jitter's ceiling there (POLL_BASE_INTERVAL_SECONDS of 1: 2 s for a first
attempt), so it is exactly this, whatever the draw."""

BREAKER_COOL_DOWN_S = 60.0
"""How long a poll circuit breaker stays open before its trial (``CircuitBreaker``'s default cool-down, as
``handlers.dependencies`` makes the poll breakers)."""

REQUEST_ATTEMPTS = 1 + HttpOptions().retries
"""The requests a poll client sends for one fetch that keeps failing with a 5xx: the first and its retries."""


@pytest.fixture
def short_backoff(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Harness:
    """The harness with a job's first backoff ``BACKOFF_S`` long: seconds, not the 5 to 30 s of the defaults."""
    env = {"POLL_MIN_INTERVAL_SECONDS": str(BACKOFF_S), "POLL_BASE_INTERVAL_SECONDS": "1"}
    return Harness(aws, simulator, monkeypatch, tmp_path, every_polled_provider(simulator), **env)


def assert_resolved_once_after_the_fault(harness: Harness, aws: FakeAws, report: dict[str, Any]) -> None:
    """The Azure job ``az-1`` (finished, adult score 0.95) resolved by the cycle of ``report``, its verdict stored
    and published once, and no longer due: nothing lost, nothing duplicated. Another cycle sends nothing more."""
    assert report["azure-review"]["resolved"] == 1
    stored = harness.deps.store.get("azure-review", "az-1")
    assert stored is not None
    assert stored.verdict is not None
    assert (stored.status, stored.verdict.suggestion) == (JobStatus.SUCCEEDED, Suggestion.BLOCK)
    assert stored.publish_state == "published"
    assert harness.due("azure-review") == []
    harness.poll()
    assert [(m["verdict"]["job_id"], m["verdict"]["suggestion"]) for m in aws.published()] == [
        ("az-1", "block")
    ]


def test_poll_resolves_finished_jobs_of_every_provider_and_publishes_each_once(
    harness: Harness, aws: FakeAws
) -> None:
    sim = harness.simulator
    sim.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    sim.put_job(
        "huawei-image-batch",
        "hb-1",
        huawei_image_batch_job("hb-1", "finish", [("https://img/1.jpg", "review")]),
    )
    sim.put_job("alibaba-mps", "am-1", alibaba_job("am-1", "Success", "block", timeline_entries=250))
    sim.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.95))
    for provider, job_id in [
        ("huawei-video", "hv-1"),
        ("huawei-image-batch", "hb-1"),
        ("alibaba-mps", "am-1"),
        ("azure-review", "az-1"),
    ]:
        harness.register(provider, job_id)

    harness.poll()
    harness.poll()  # nothing more to do: no second publish

    published = {m["verdict"]["job_id"]: m["verdict"] for m in aws.published()}
    assert set(published) == {"hv-1", "hb-1", "am-1", "az-1"}
    assert published["hv-1"]["suggestion"] == "block"
    assert published["hb-1"]["suggestion"] == "review"
    assert published["az-1"]["suggestion"] == "block"
    # every one of the 250 timeline entries survived the detail pagination
    timeline = [f for f in published["am-1"]["findings"] if f["time_offset"] is not None]
    assert len(timeline) >= 250


def test_running_job_stays_outstanding_until_it_finishes(harness: Harness, aws: FakeAws) -> None:
    sim = harness.simulator
    sim.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "running"))
    harness.register("huawei-video", "hv-1")

    harness.poll()

    assert harness.status("huawei-video", "hv-1") is JobStatus.RUNNING
    assert aws.published() == []
    # it finishes; once due again the poll resolves it
    sim.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "review"))
    harness.deps.store.reschedule(
        "huawei-video", "hv-1", __import__("datetime").datetime.now(__import__("datetime").UTC), 1
    )
    harness.poll()
    assert harness.status("huawei-video", "hv-1") is JobStatus.SUCCEEDED
    assert len(aws.published()) == 1


@pytest.mark.parametrize(
    ("fault", "times", "polls", "wait_s"),
    [
        ("error:503", REQUEST_ATTEMPTS, 1, BACKOFF_S),
        ("slow:7", 1, 1, BACKOFF_S),
        ("auth", 1, 0, 0),
        ("throttle:6", 1, 0, 6),
    ],
    ids=["5xx", "timeout", "auth", "throttled"],
)
def test_provider_fault_stores_and_publishes_nothing_and_the_job_is_polled_again(
    short_backoff: Harness, aws: FakeAws, fault: str, times: int, polls: int, wait_s: float
) -> None:
    # Given a finished Azure job, and Azure answering the requests of one fetch with the fault (a 5xx every
    # attempt; a read timeout; refused credentials; "429, come back in 6 s", longer than a client waits itself)
    harness = short_backoff
    sim = harness.simulator
    sim.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.95))
    harness.register("azure-review", "az-1")
    sim.inject("azure-review", fault, times=times)

    # When the poller runs a cycle
    report = harness.poll()

    # Then nothing is stored or published, and every faulted answer was given: the fault is over
    assert report["azure-review"]["failed_requests"] == 1
    assert len(sim.requests("azure-review")) == times
    job = harness.deps.store.get("azure-review", "az-1")
    assert job is not None
    assert job.status is JobStatus.PENDING
    # A request that failed (a 5xx, a timeout) may fail for this job alone: it waits out its backoff, so it does
    # not head the due jobs for good. Refused credentials and a throttle are about us: the job stays due.
    assert job.poll_attempts == polls
    assert harness.due("azure-review") == ([] if polls else ["az-1"])
    assert aws.published() == []

    # When the job's backoff (or the Retry-After the client's bucket keeps) and the breaker's cool-down have
    # passed, and the poller runs its next cycle
    time.sleep(wait_s)
    harness.after_cool_down()
    report = harness.poll()

    # Then the job is resolved by it: its verdict stored and published once, and it is no longer due
    assert_resolved_once_after_the_fault(harness, aws, report)


def test_an_answer_that_is_not_json_stores_nothing_and_the_job_is_polled_again_after_its_backoff(
    short_backoff: Harness, aws: FakeAws
) -> None:
    # Given a finished Azure job, and Azure's next answer cut in half
    harness = short_backoff
    sim = harness.simulator
    sim.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.95))
    harness.register("azure-review", "az-1")
    sim.inject("azure-review", "malformed", times=1)

    # When the poller runs a cycle
    report = harness.poll()

    # Then not left at the head of the due jobs, to be asked again every cycle: rescheduled like a running job
    assert report["azure-review"]["failed_requests"] == 1
    assert len(sim.requests("azure-review")) == 1  # the cut answer given: the fault is over
    job = harness.deps.store.get("azure-review", "az-1")
    assert job is not None
    assert (job.status, job.poll_attempts) == (JobStatus.PENDING, 1)
    assert harness.due("azure-review") == []
    assert aws.published() == []

    # When its backoff has passed and the poller runs its next cycle
    time.sleep(BACKOFF_S)
    report = harness.poll()

    # Then the job is resolved by it: its verdict stored and published once, and it is no longer due
    assert_resolved_once_after_the_fault(harness, aws, report)


def test_transient_5xx_is_retried_within_the_same_poll(harness: Harness, aws: FakeAws) -> None:
    sim = harness.simulator
    sim.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.95))
    harness.register("azure-review", "az-1")
    sim.inject("azure-review", "error:503", times=1)

    harness.poll()

    assert harness.status("azure-review", "az-1") is JobStatus.SUCCEEDED
    assert len(aws.published()) == 1


def test_near_the_end_of_the_invocation_a_5xx_is_not_retried_past_the_time_left(
    short_backoff: Harness, aws: FakeAws
) -> None:
    harness = short_backoff
    sim = harness.simulator
    sim.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.95))
    harness.register("azure-review", "az-1")
    sim.inject("azure-review", "error:503", times=1)

    # 10 s left: enough to take the batch (margin 8 s), too little for a retry's wait plus a whole attempt
    # (2 s connect + 5 s read) before the half margin kept for writing results.
    report = harness.deps.poller().run_cycle(lambda: 10.0)

    assert [r.status for r in sim.requests("azure-review")] == [503]
    assert report.providers["azure-review"].failed_requests == 1
    job = harness.deps.store.get("azure-review", "az-1")
    assert job is not None
    assert (job.status, job.poll_attempts) == (JobStatus.PENDING, 1)  # polled again after its backoff
    assert aws.published() == []

    # When its backoff has passed and the next invocation, with plenty of time, runs a cycle
    time.sleep(BACKOFF_S)
    report = harness.poll()

    # Then the job is resolved by it: its verdict stored and published once, and it is no longer due
    assert_resolved_once_after_the_fault(harness, aws, report)


def test_job_not_found_is_expired_and_published_as_review(
    harness: Harness, aws: FakeAws, caplog: pytest.LogCaptureFixture
) -> None:
    # Given jobs created longer ago than UNKNOWN_JOB_GRACE_SECONDS (an hour) that the providers do not know
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1, seconds=1)
    harness.register("huawei-video", "vanished", at=an_hour_ago)
    harness.register("alibaba-mps", "never-existed", at=an_hour_ago)

    harness.poll()

    assert harness.status("huawei-video", "vanished") is JobStatus.EXPIRED
    assert harness.status("alibaba-mps", "never-existed") is JobStatus.EXPIRED
    suggestions = {m["verdict"]["job_id"]: m["verdict"]["suggestion"] for m in aws.published()}
    assert suggestions == {"vanished": "review", "never-existed": "review"}
    # and each is a warning naming the job: its content went out unmoderated, for good
    expired = [vars(r) for r in caplog.records if r.getMessage() == "job expired as unmoderated"]
    assert {(r["levelname"], r["provider"], r["job_id"], r["published"]) for r in expired} == {
        ("WARNING", "huawei-video", "vanished", True),
        ("WARNING", "alibaba-mps", "never-existed", True),
    }


def test_a_job_the_provider_no_longer_knows_is_counted_expired_in_the_metric_and_the_cycles_report(
    harness: Harness,
) -> None:
    from verdict_relay.observability import metrics

    # Given a job created longer ago than UNKNOWN_JOB_GRACE_SECONDS that the provider does not know
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1, seconds=1)
    harness.register("huawei-video", "vanished", at=an_hour_ago)
    metrics.clear_metrics()

    # When the poller runs a cycle
    report = harness.poll()

    # Then its expiry shows where an operator looks: the JobExpired metric and the cycle's report
    assert harness.status("huawei-video", "vanished") is JobStatus.EXPIRED
    assert sum(metrics.metric_set["JobExpired"]["Value"]) == 1
    assert report["huawei-video"]["expired"] == 1
    metrics.clear_metrics()


def test_jobs_a_wrongly_configured_region_denies_wait_for_the_document_to_be_corrected(
    harness: Harness, aws: FakeAws
) -> None:
    from verdict_relay.observability import metrics

    # Given Alibaba and Huawei jobs registered now that the providers deny, as MPS does in a region the document
    # names wrongly (Alibaba keys work in every region; MPS jobs live in one)
    harness.register("alibaba-mps", "am-1")
    harness.register("huawei-video", "hv-1")
    metrics.clear_metrics()

    report = harness.poll()

    # Then neither is expired nor published: each is asked again after its backoff, and counted for the alarm
    assert [harness.status(p, j) for p, j in [("alibaba-mps", "am-1"), ("huawei-video", "hv-1")]] == [
        JobStatus.PENDING
    ] * 2
    assert (report["alibaba-mps"]["expired"], report["alibaba-mps"]["rescheduled"]) == (0, 1)
    assert aws.published() == []
    assert sum(metrics.metric_set["JobUnknownToProvider"]["Value"]) == 2
    assert "JobExpired" not in metrics.metric_set
    metrics.clear_metrics()
    job = harness.deps.store.get("alibaba-mps", "am-1")
    assert job is not None
    assert job.poll_attempts == 1
    assert (job.next_poll_at or 0) > time.time()  # after its backoff

    # When the document is corrected (the provider now knows the job, finished as a block) and it is due again
    harness.simulator.put_job("alibaba-mps", "am-1", alibaba_job("am-1", "Success", "block"))
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": "alibaba-mps#am-1"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET next_poll_at = :now",
        ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
    )
    harness.poll()

    # Then its real verdict is the one stored and published
    assert harness.status("alibaba-mps", "am-1") is JobStatus.SUCCEEDED
    assert [(m["verdict"]["job_id"], m["verdict"]["suggestion"]) for m in aws.published()] == [
        ("am-1", "block")
    ]


def test_jobs_still_unfinished_a_day_after_they_were_stored_are_counted_overdue_at_each_poll(
    harness: Harness,
) -> None:
    from verdict_relay.observability import metrics

    # Given two jobs the provider still reports running, one stored 25 hours ago and one just now, and a third
    # stored 25 hours ago that the provider fails on (500) every time
    a_day_ago = datetime.now(UTC) - timedelta(hours=25)
    sim = harness.simulator
    for job_id in ("az-old", "az-new"):
        sim.put_job("azure-review", job_id, azure_job(job_id, "InProgress"))
    harness.register("azure-review", "az-old", at=a_day_ago)
    harness.register("azure-review", "az-new")
    sim.put_job("huawei-video", "hv-failing", huawei_video_job("hv-failing", "running"))
    harness.register("huawei-video", "hv-failing", at=a_day_ago)
    sim.inject("huawei-video", "error:500", times=10)
    metrics.clear_metrics()

    # When they are polled
    harness.poll()

    # Then the two old ones are counted overdue (its alarm pages after three hours of it), each polled again
    # after its backoff, and the new one is not
    assert sum(metrics.metric_set["JobOverdue"]["Value"]) == 2
    assert harness.status("azure-review", "az-old") is JobStatus.RUNNING
    assert harness.status("azure-review", "az-new") is JobStatus.RUNNING
    metrics.clear_metrics()


def test_azure_gateways_404_for_a_wrong_endpoint_expires_and_publishes_nothing(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given an Azure endpoint entered with the API's path on it, so every job is asked for at a path nothing
    # serves, and the gateway answering each with its own 404
    gateway_not_found = json.dumps({"error": {"code": "404", "message": "Resource not found"}}).encode()
    with answering(404, gateway_not_found) as url:
        entry = {
            "endpoint": f"{url}/contentmoderator/review/v1.0",
            "team": "teamA",
            "credentials": {"subscription_key": "k" * 32},
        }
        harness = Harness(aws, simulator, monkeypatch, tmp_path, {"azure-review": entry})
        harness.register("azure-review", "az-1", "az-2")

        # When the poller runs a cycle
        report = harness.poll()

    # Then no job is expired or published: each waits for a later poll
    assert report["azure-review"]["expired"] == 0
    assert report["azure-review"]["failed_requests"] == 2
    assert {harness.status("azure-review", job) for job in ("az-1", "az-2")} == {JobStatus.PENDING}
    assert aws.published() == []


def test_an_iam_token_answer_without_a_token_object_fails_only_that_providers_polls(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a Huawei IAM user whose IAM issues a token with {"token": null} for its body, and an Azure job
    simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    simulator.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.95))
    with answering(201, b'{"token": null}', headers={"X-Subject-Token": "issued-token"}) as iam:
        providers = {
            "huawei-video": simulator.provider_entry(
                "huawei-video", auth="iam", credentials={"iam_endpoint": iam}
            ),
            "azure-review": simulator.provider_entry("azure-review"),
        }
        harness = Harness(aws, simulator, monkeypatch, tmp_path, providers)
        harness.register("huawei-video", "hv-1")
        harness.register("azure-review", "az-1")

        # When the poller runs a cycle
        report = harness.poll()

    # Then the cycle completes: the Huawei job waits for a later poll, the Azure job is resolved
    assert report["huawei-video"]["failed_requests"] == 1
    assert harness.status("huawei-video", "hv-1") is JobStatus.PENDING
    assert harness.status("azure-review", "az-1") is JobStatus.SUCCEEDED
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["az-1"]


def test_auth_failure_of_one_provider_does_not_stop_the_others(harness: Harness, aws: FakeAws) -> None:
    sim = harness.simulator
    sim.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.95))
    sim.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    harness.register("azure-review", "az-1")
    harness.register("huawei-video", "hv-1")
    sim.inject("azure-review", "auth", times=100)

    harness.poll()
    requests_after_first_cycle = len(sim.requests("azure-review"))
    harness.poll()

    assert harness.status("huawei-video", "hv-1") is JobStatus.SUCCEEDED
    assert harness.due("azure-review") == ["az-1"]
    assert len(sim.requests("azure-review")) == requests_after_first_cycle  # breaker open: not retried hot


def test_discovery_finds_finished_jobs_nobody_registered(harness: Harness, aws: FakeAws) -> None:
    sim = harness.simulator
    sim.put_job(
        "huawei-image-batch",
        "unregistered",
        huawei_image_batch_job(
            "unregistered",
            "finish",
            [("https://img/9.jpg", "block")],
            created=datetime.now(UTC) - timedelta(minutes=2),
            updated=datetime.now(UTC) - timedelta(minutes=1),
        ),
    )

    harness.poll()  # discovery makes it due
    harness.poll()  # and the next cycle (or the same, if it was due in time) resolves it

    assert harness.status("huawei-image-batch", "unregistered") is JobStatus.SUCCEEDED
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["unregistered"]


def test_a_discovery_window_halved_in_one_invocation_is_halved_in_the_next(harness: Harness) -> None:
    # Given Alibaba's watermark a day behind, and an invocation with too little time left to list an hour
    start = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    harness.deps.store.set_watermark("alibaba-mps", start)
    harness.deps.poller().run_cycle(lambda: 4.5)
    assert harness.simulator.requests("alibaba-mps") == []  # no time to list anything

    # When the next invocation (a poller built anew, as every scheduled one is) discovers
    harness.poll()

    # Then it asks for half the window, so the watermark moves on instead of asking for the same hour forever
    (listing,) = [
        r for r in harness.simulator.requests("alibaba-mps") if "StartOfJobCreatedTimeRange" in r.path
    ]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(listing.path).query)
    assert (query["StartOfJobCreatedTimeRange"], query["EndOfJobCreatedTimeRange"]) == (
        [start.strftime("%Y-%m-%dT%H:%M:%SZ")],
        [(start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")],
    )


def test_backlog_beyond_the_rate_limit_is_polled_within_it_and_without_a_scan(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given 80 finished jobs at a provider limited to 10 requests/s (the simulator refuses any excess), and the
    # client configured 15 % under it: the simulator shares this process with the client, so on a loaded machine
    # its arrival times jitter more than a network makes them (see test_client_never_exceeds_the_provider_rate_
    # limit). The store alone would let a cycle send them several times faster: the client's limit paces it.
    with ProviderSimulator(rate_limits={"azure-review": 10.0}) as sim:
        entry = sim.provider_entry("azure-review", rate_limit_per_s=8.5, max_concurrency=8)
        harness = Harness(aws, sim, monkeypatch, tmp_path, {"azure-review": entry})
        job_ids = [f"job-{i:03}" for i in range(80)]
        for job_id in job_ids:
            sim.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.01))
        harness.register("azure-review", *job_ids)
        harness.dynamodb_calls.clear()

        # When one poll cycle runs
        harness.poll()

        # Then every job is resolved, no request went over the limit, and the table was never scanned
        assert harness.due("azure-review") == []
        assert sim.over_limit("azure-review") == 0
        stamps = [r.at for r in sim.requests("azure-review")]
        assert len(stamps) == 80
        assert max(sum(1 for t in stamps if start <= t < start + 1.0) for start in stamps) <= 10
        assert "Scan" not in harness.dynamodb_calls
        assert "Query" in harness.dynamodb_calls


def test_an_answer_with_text_cut_inside_a_character_is_resolved_with_the_replacement_character(
    harness: Harness, aws: FakeAws
) -> None:
    # Given a finished job whose answer has speech text cut in the middle of an emoji: a lone surrogate escape
    job = huawei_video_job("hv-cut", "succeeded", "block")
    job["result"]["audio_detail"][0]["audio_text"] = "you are an \ud83d"
    harness.simulator.put_job("huawei-video", "hv-cut", job)
    harness.register("huawei-video", "hv-cut")

    # When it is polled (twice: a job whose answer failed would still be due)
    harness.poll()
    harness.poll()

    # Then its verdict is stored and published once, the cut character replaced
    assert harness.status("huawei-video", "hv-cut") is JobStatus.SUCCEEDED
    published = aws.published()
    assert [p["verdict"]["job_id"] for p in published] == ["hv-cut"]
    assert "you are an \ufffd" in json.dumps(published[0]["verdict"], ensure_ascii=False)


def test_a_job_said_to_finish_late_in_the_year_9999_is_resolved_and_does_not_stop_the_others(
    harness: Harness, aws: FakeAws
) -> None:
    # Given a finished job whose provider says it finished at the end of the calendar (a time a datetime holds,
    # and half the retention after it does not), registered before another finished job
    late = datetime(9999, 12, 31, tzinfo=UTC)
    harness.simulator.put_job(
        "huawei-video", "hv-late", huawei_video_job("hv-late", "succeeded", "block", updated=late)
    )
    harness.simulator.put_job("huawei-video", "hv-2", huawei_video_job("hv-2", "succeeded", "block"))
    harness.register("huawei-video", "hv-late", at=datetime.now(UTC) - timedelta(minutes=1))
    harness.register("huawei-video", "hv-2")

    # When they are polled (twice: a job whose answer failed would still be due)
    harness.poll()
    harness.poll()

    # Then both are stored and published once each
    assert [harness.status("huawei-video", job_id) for job_id in ("hv-late", "hv-2")] == [
        JobStatus.SUCCEEDED
    ] * 2
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == ["hv-2", "hv-late"]


def test_poller_handler_runs_a_cycle_and_counts_its_outcomes_by_provider(
    harness: Harness, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    from verdict_relay.handlers import dependencies as dependencies_module
    from verdict_relay.handlers.poller import lambda_handler

    harness.simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    harness.register("huawei-video", "hv-1")
    dependencies_module.dependencies.cache_clear()
    capsys.readouterr()

    result = lambda_handler({"source": "aws.scheduler"}, LambdaContext())

    assert result["resolved"] == 1
    assert json.loads(json.dumps(result))["fanned_out"] == {}
    assert len(aws.published()) == 1
    by_provider = emf_counts(capsys.readouterr().out, service="verdict-relay", provider="huawei-video")
    assert by_provider == {"VerdictRecorded": 1, "VerdictPublished": 1}


@pytest.mark.parametrize("function", ["poller", "poll_worker"])
def test_each_scheduled_function_counts_its_containers_first_invocation_as_a_cold_start(
    function: str,
    harness: Harness,
    aws: FakeAws,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    from aws_lambda_powertools.metrics.provider import cold_start

    from verdict_relay.handlers import dependencies as dependencies_module

    handler = importlib.import_module(f"verdict_relay.handlers.{function}").lambda_handler
    # Given a new container of the function (the test process has invoked handlers before), and a job to poll
    harness.simulator.put_job("azure-review", "job-1", azure_job("job-1", "Complete", adult_score=0.9))
    harness.register("azure-review", "job-1")
    event = {"source": "aws.scheduler"} if function == "poller" else sqs_event([one_job_batch(1, "job-1")])
    monkeypatch.setattr(cold_start, "is_cold_start", True)
    dependencies_module.dependencies.cache_clear()
    capsys.readouterr()

    # When it is invoked twice
    context = NamedContext(f"verdict-relay-staging-{function}")
    handler(event, context)
    handler(event, context)

    # Then its ColdStart is counted once, under its function's name (docs/architecture.md)
    assert emf_counts(
        capsys.readouterr().out, service="verdict-relay", function_name=f"verdict-relay-staging-{function}"
    ) == {"ColdStart": 1}


class ShortContext(LambdaContext):
    """An invocation with too little time left to poll a backlog itself."""

    def get_remaining_time_in_millis(self) -> int:
        return 12_000


def with_poll_queue(aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> tuple[str, JobStore]:
    """The poll queue in the environment, as a deployed stack has it, and the handlers' dependencies built
    afresh with it: the queue's URL and their store."""
    from verdict_relay.handlers import dependencies as dependencies_module

    queue_url = aws.resources.queue_urls["PollQueue"]
    monkeypatch.setenv("POLL_QUEUE_URL", queue_url)
    dependencies_module.dependencies.cache_clear()
    return queue_url, dependencies_module.dependencies().store


def azure_backlog(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, **env: str
) -> tuple[str, list[str]]:
    """30 finished Azure jobs registered, with the poll queue (and ``env``) in the environment: a backlog to fan
    out. Returns the queue's URL and the job ids."""
    from verdict_relay.handlers import dependencies as dependencies_module

    queue_url = aws.resources.queue_urls["PollQueue"]
    for name, value in {"POLL_QUEUE_URL": queue_url, **env}.items():
        monkeypatch.setenv(name, value)
    dependencies_module.dependencies.cache_clear()
    job_ids = [f"job-{i:02}" for i in range(30)]
    for job_id in job_ids:
        harness.simulator.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.9))
    harness.register("azure-review", *job_ids)
    return queue_url, job_ids


def test_backlog_beyond_one_invocation_fans_out_to_workers_that_resolve_it(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers import dependencies as dependencies_module
    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.handlers.poller import lambda_handler as scheduler

    # Small batches, so there are several (24 jobs each at 10/s over 3 s). The test runs every batch in one
    # invocation, as one worker at a time polls a provider's batches, at the provider's rate.
    queue_url, job_ids = azure_backlog(harness, aws, monkeypatch, POLL_WORKER_BUDGET_SECONDS="3")
    for job_id in job_ids:  # polled twice before, and due again
        harness.deps.store.reschedule("azure-review", job_id, datetime.now(UTC), attempts=2)

    # When the scheduler has too little time for the backlog
    result = scheduler({"source": "aws.scheduler"}, ShortContext())

    # Then it sent every due job to the queue with its poll count, and polled none itself
    assert result["fanned_out"] == {"azure-review": 30}
    assert harness.simulator.requests("azure-review") == []
    messages = aws.drain(queue_url)
    assert len(messages) > 1
    sent = [job for m in messages for job in json.loads(m["Body"])["jobs"]]
    assert sorted(job["job_id"] for job in sent) == job_ids
    assert {job["poll_attempts"] for job in sent} == {2}
    # through the container's queue client, made once, not at every schedule
    deps = dependencies_module.dependencies()
    assert deps.poll_queue() is deps.poll_queue() is not None

    # When the workers consume the batches (one of them malformed)
    broken = {**messages[0], "MessageId": "broken", "Body": '{"provider": "acme"}'}
    response = worker(sqs_event([*messages, broken]), LambdaContext())

    # Then every job is resolved and published once, and only the malformed message is reported failed
    assert response["batchItemFailures"] == [{"itemIdentifier": "broken"}]
    assert all(harness.status("azure-review", j) is JobStatus.SUCCEEDED for j in job_ids)
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == job_ids


def test_a_worker_whose_batch_fails_leaves_the_batches_behind_it_to_be_delivered_again_in_order(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.handlers.poller import lambda_handler as scheduler

    # Given a provider's batches fanned out, and a message that cannot be read ahead of them in its FIFO group
    queue_url, job_ids = azure_backlog(harness, aws, monkeypatch, POLL_WORKER_BUDGET_SECONDS="3")
    scheduler({"source": "aws.scheduler"}, ShortContext())
    messages = aws.drain(queue_url)
    broken = {**messages[0], "MessageId": "broken", "Body": '{"provider": "acme"}'}

    # When a worker receives them, Then it polls none of the batches behind the failed one: the invocation
    # fails whole (every record failed), so SQS delivers them again in their order, rather than this worker
    # polling them beside the redelivery of the one before
    with pytest.raises(BatchProcessingError, match=f"{len(messages) + 1} individual errors"):
        worker(sqs_event([broken, *messages]), LambdaContext())
    assert harness.simulator.requests("azure-review") == []
    assert sorted(harness.due("azure-review")) == job_ids


def test_a_provider_that_said_when_to_come_back_is_not_fanned_out_to_workers_that_would_not_know(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers.poller import lambda_handler as scheduler

    queue_url, _ = azure_backlog(harness, aws, monkeypatch)
    # Given a cycle that Azure answered "429, come back in 60 s"
    harness.simulator.inject("azure-review", "throttle:60", times=4)
    scheduler({"source": "aws.scheduler"}, LambdaContext())
    asked = len(harness.simulator.requests("azure-review"))

    # When the next schedule has too little time for the backlog
    result = scheduler({"source": "aws.scheduler"}, ShortContext())

    # Then nothing goes to the workers (a fresh container's breaker would not know), nor to Azure
    assert result["fanned_out"] == {}
    assert result["providers"]["azure-review"]["skipped"] == "circuit open"
    assert aws.drain(queue_url) == []
    assert len(harness.simulator.requests("azure-review")) == asked


def test_while_workers_hold_a_provider_the_scheduler_sends_only_newly_due_jobs_and_still_sweeps_it(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers import dependencies as dependencies_module
    from verdict_relay.handlers.poller import lambda_handler as scheduler
    from verdict_relay.models.verdict import Suggestion, Verdict

    queue_url = aws.resources.queue_urls["PollQueue"]
    monkeypatch.setenv("POLL_QUEUE_URL", queue_url)
    dependencies_module.dependencies.cache_clear()
    job_ids = [f"job-{i:02}" for i in range(30)]
    harness.register("azure-review", *job_ids, due=due_before_the_reread())
    scheduler({"source": "aws.scheduler"}, ShortContext())
    assert len([j for m in aws.drain(queue_url) for j in json.loads(m["Body"])["jobs"]]) == 30
    held = dependencies_module.dependencies().store.fanout_hold("azure-review")
    assert held is not None

    # Given, while the workers hold the provider: a job that came due since, and a verdict whose publish is owed
    harness.register("azure-review", "late-1")
    owed = Verdict(
        provider="azure-review",
        job_id="owed-1",
        status=JobStatus.SUCCEEDED,
        suggestion=Suggestion.BLOCK,
        decided_by="policy",
    )  # type: ignore[call-arg]
    harness.deps.store.record(owed, b"{}", datetime.now(UTC) - timedelta(minutes=5), publish=True)

    # When the next schedule runs, with plenty of time
    result = scheduler({"source": "aws.scheduler"}, LambdaContext())

    # Then only the newly due job went to the workers: the held ones were not sent again, nothing was polled
    # here, and the provider still got its owed-publish sweep
    assert result["fanned_out"] == {"azure-review": 1}
    assert [j["job_id"] for m in aws.drain(queue_url) for j in json.loads(m["Body"])["jobs"]] == ["late-1"]
    assert harness.simulator.requests("azure-review") == []
    assert result["providers"]["azure-review"]["skipped"] == "due jobs with the poll workers"
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["owed-1"]
    after = dependencies_module.dependencies().store.fanout_hold("azure-review")
    assert after is not None
    # The newly sent job's drain time is added to the hold, but not another worker budget of slack: a trickle
    # of newly due jobs every minute must not push the hold hours ahead
    assert timedelta(0) < after.until - held.until < timedelta(seconds=5)


def test_while_workers_hold_a_provider_that_lists_its_jobs_they_and_the_schedulers_discovery_split_its_rate(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.logic.poller import DISCOVERY_RATE_SHARE, DueJob

    # Given Alibaba jobs nobody registered (discovery lists them), and a batch of registered ones for a worker
    now = datetime.now(UTC)
    for i in range(3):
        job_id = f"listed-{i}"
        harness.simulator.put_job(
            "alibaba-mps", job_id, alibaba_job(job_id, "Analysing", created=now - timedelta(minutes=2))
        )
    harness.register("alibaba-mps", "batch-1", "batch-2")
    poller = harness.deps.poller()
    client = harness.deps._poll_clients["alibaba-mps"]
    assert client.limiter is not None
    full = client.limiter.rate_per_s
    # the rate each Alibaba request leaves at, whether it lists jobs or fetches them
    rates: list[tuple[str, float]] = []
    real_request = urllib3.connection.HTTPConnection.request

    def request(self: urllib3.connection.HTTPConnection, method: str, url: str, *args: Any, **kw: Any) -> Any:
        kind = "list" if "StartOfJobCreatedTimeRange=" in url else "fetch" if "JobIds=" in url else None
        if kind is not None:
            assert client.limiter is not None
            rates.append((kind, client.limiter.rate_per_s))
        return real_request(self, method, url, *args, **kw)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "request", request)

    # When the scheduler's cycle runs while the workers hold Alibaba, then a worker polls its batch, then a cycle
    # runs with no hold
    poller.run_cycle(PLENTY, providers=["alibaba-mps"], held={"alibaba-mps"})
    held_discovery = list(rates)
    rates.clear()
    poller.poll_jobs("alibaba-mps", [DueJob("batch-1"), DueJob("batch-2")], PLENTY)
    worker = list(rates)
    rates.clear()
    harness.deps.store.set_watermark("alibaba-mps", now - timedelta(minutes=5))
    poller.run_cycle(PLENTY, providers=["alibaba-mps"])

    # Then the held cycle lists at the discovery's share of the rate, the worker polls at the rest, and alone the
    # scheduler does both at the whole rate
    assert held_discovery == [("list", pytest.approx(full * DISCOVERY_RATE_SHARE))]
    assert worker == [("fetch", pytest.approx(full * (1 - DISCOVERY_RATE_SHARE)))]
    assert {kind for kind, _ in rates} == {"list", "fetch"}
    assert all(rate == full for _, rate in rates)
    assert client.limiter.rate_per_s == full


def test_a_listing_provider_whose_limit_cannot_be_split_is_listed_only_once_the_workers_hold_ends(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from verdict_relay.logic.poller import DueJob

    # Given Huawei image batches at 1 request a second (a window of one request, which two senders cannot split),
    # a finished job nobody registered, and one for a worker
    entry = simulator.provider_entry("huawei-image-batch", rate_limit_per_s=1)
    harness = Harness(aws, simulator, monkeypatch, tmp_path, {"huawei-image-batch": entry})
    now = datetime.now(UTC)
    job = huawei_image_batch_job(
        "listed-1",
        "finish",
        [("https://img/1.jpg", "block")],
        created=now - timedelta(minutes=2),
        updated=now - timedelta(minutes=1),
    )
    simulator.put_job("huawei-image-batch", "listed-1", job)
    simulator.put_job("huawei-image-batch", "batch-1", huawei_image_batch_job("batch-1", "running", []))
    harness.register("huawei-image-batch", "batch-1")
    poller = harness.deps.poller()

    # When the scheduler's cycle runs while the workers hold the provider, and a worker polls its batch
    held = poller.run_cycle(PLENTY, providers=["huawei-image-batch"], held={"huawei-image-batch"})
    listed_while_held = len(simulator.requests("huawei-image-batch"))
    poller.poll_jobs("huawei-image-batch", [DueJob("batch-1")], PLENTY)

    # Then nothing was listed beside the worker, which polled at the whole rate; once the hold is over, the
    # scheduler lists the job
    assert (held.providers["huawei-image-batch"].discovered, listed_while_held) == (0, 0)
    assert poller.workers_share("huawei-image-batch") == 1.0
    after = poller.run_cycle(PLENTY, providers=["huawei-image-batch"])
    assert after.providers["huawei-image-batch"].discovered == 1


def test_a_job_that_comes_due_in_the_second_of_a_fan_outs_read_after_it_is_sent_by_the_next_schedule(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers import poller as poller_module
    from verdict_relay.handlers.poller import lambda_handler as scheduler

    queue_url, store = with_poll_queue(aws, monkeypatch)

    class ReadClock:  # the fan-out's clock: its read runs 0.2 s into a whole second
        @staticmethod
        def now(tz: Any = None) -> datetime:
            return read

    # Given a fan-out of a backlog due in seconds that had passed before its read
    read = datetime.fromtimestamp(int(time.time()) - 5 + 0.2, UTC)
    harness.register("azure-review", *[f"job-{i:02}" for i in range(30)], due=read - timedelta(seconds=10))
    monkeypatch.setattr(poller_module, "datetime", ReadClock)
    scheduler({"source": "aws.scheduler"}, ShortContext())
    monkeypatch.setattr(poller_module, "datetime", datetime)
    assert len([j for m in aws.drain(queue_url) for j in json.loads(m["Body"])["jobs"]]) == 30
    assert store.fanout_hold("azure-review") is not None
    # and, written after it, a job made due later in the second of the read (a registration, discovery's mark)
    # and ones due seconds before the read (a callback's notice, due as of the request's start, after its
    # fetch), up to STAMP_LAG_S before it: in the fifth whole second before the read's
    harness.register("azure-review", "same-second", due=read + timedelta(seconds=0.5))
    harness.register("azure-review", "stamped-earlier", due=read - timedelta(seconds=3))
    harness.register("azure-review", "stamped-at-lag", due=read - timedelta(seconds=STAMP_LAG_S - 0.5))

    # When the next schedule runs while the workers hold the provider
    result = scheduler({"source": "aws.scheduler"}, ShortContext())

    # Then the job goes to the workers now, not at the hold's end; the jobs due in the seconds that had passed
    # before the read are not sent again
    assert result["providers"]["azure-review"]["skipped"] == "due jobs with the poll workers"
    assert sorted(j["job_id"] for m in aws.drain(queue_url) for j in json.loads(m["Body"])["jobs"]) == [
        "same-second",
        "stamped-at-lag",
        "stamped-earlier",
    ]
    assert harness.simulator.requests("azure-review") == []


def test_jobs_the_workers_left_due_are_sent_again_once_the_holds_first_batches_should_have_been_polled(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers.poller import lambda_handler as scheduler

    queue_url, store = with_poll_queue(aws, monkeypatch)
    job_ids = [f"job-{i:02}" for i in range(30)]
    harness.register("azure-review", *job_ids, due=due_before_the_reread())
    scheduler({"source": "aws.scheduler"}, ShortContext())
    aws.drain(queue_url)  # the workers got the batches and left every job due (the provider was down)
    first = store.fanout_hold("azure-review")
    assert first is not None
    assert first.rescan_at == first.until

    # Given jobs coming due every minute, each renewing the hold
    time.sleep(1.1)
    harness.register("azure-review", "late-1")
    scheduler({"source": "aws.scheduler"}, ShortContext())
    assert [j["job_id"] for m in aws.drain(queue_url) for j in json.loads(m["Body"])["jobs"]] == ["late-1"]
    renewed = store.fanout_hold("azure-review")
    assert renewed is not None
    assert renewed.until > first.until
    assert renewed.rescan_at == first.rescan_at  # a renewal does not postpone the rescan

    # When the time comes by which the hold's first batches should all have been polled
    store.set_fanout_hold(
        "azure-review", renewed.until + timedelta(seconds=1), renewed.through, datetime.now(UTC)
    )
    time.sleep(1.1)
    harness.register("azure-review", "late-2")
    scheduler({"source": "aws.scheduler"}, ShortContext())

    # Then the next schedule sends every job still due, the ones the workers left included, and starts a new
    # round of the hold
    resent = [j["job_id"] for m in aws.drain(queue_url) for j in json.loads(m["Body"])["jobs"]]
    assert sorted(resent) == sorted([*job_ids, "late-1", "late-2"])
    again = store.fanout_hold("azure-review")
    assert again is not None
    assert again.rescan_at == again.until


def test_a_backlog_beyond_an_hour_of_the_workers_polling_waits_in_the_index_until_they_catch_up(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers import poller as poller_module
    from verdict_relay.handlers.poller import FANOUT_HORIZON_S
    from verdict_relay.handlers.poller import lambda_handler as scheduler

    queue_url, store = with_poll_queue(aws, monkeypatch)
    slack = timedelta(seconds=240)  # a worker's budget, which a hold adds once for the batch picked up last
    # Given workers holding Azure with a minute more than the horizon's worth of its polling still queued, and
    # jobs that came due since the hold's read
    now = datetime.now(UTC)
    through = int(now.timestamp()) - 600
    rescan_at = now + timedelta(hours=3)
    store.set_fanout_hold(
        "azure-review", now + timedelta(seconds=FANOUT_HORIZON_S + 60) + slack, through, rescan_at
    )
    held = store.fanout_hold("azure-review")
    harness.register("azure-review", "late-1", "late-2", due=now - timedelta(seconds=60))

    # When the next schedule runs
    result = scheduler({"source": "aws.scheduler"}, ShortContext())

    # Then it sends them nothing more: the jobs wait in the index, the hold unchanged, nothing polled here
    assert result["fanned_out"] == {"azure-review": 0}
    assert aws.drain(queue_url) == []
    assert sorted(harness.due("azure-review")) == ["late-1", "late-2"]
    assert store.fanout_hold("azure-review") == held
    assert harness.simulator.requests("azure-review") == []

    class TwoMinutesLater:  # the fan-out's clock, once the workers have polled two minutes of it
        @staticmethod
        def now(tz: Any = None) -> datetime:
            return datetime.now(tz) + timedelta(minutes=2)

    # When the workers have polled their way back within the horizon
    monkeypatch.setattr(poller_module, "datetime", TwoMinutesLater)
    result = scheduler({"source": "aws.scheduler"}, ShortContext())

    # Then the next schedule sends them the jobs that waited
    assert result["fanned_out"] == {"azure-review": 2}
    assert sorted(j["job_id"] for m in aws.drain(queue_url) for j in json.loads(m["Body"])["jobs"]) == [
        "late-1",
        "late-2",
    ]


def test_once_the_workers_finish_the_last_batch_sent_the_next_schedule_sends_more_whatever_the_estimate(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.dal.poll_queue import PollBatch, PollQueue
    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.handlers.poller import FANOUT_HORIZON_S
    from verdict_relay.handlers.poller import lambda_handler as scheduler
    from verdict_relay.models.jobs import DueJob

    queue_url, store = with_poll_queue(aws, monkeypatch)
    # Given a hold whose estimate has two hours of Azure's polling still queued (planned at a rate since raised)
    now = datetime.now(UTC)
    until = now + timedelta(seconds=2 * FANOUT_HORIZON_S + 240)
    store.set_fanout_hold("azure-review", until, int(now.timestamp()) - 600, now + timedelta(hours=3))
    # and a worker that has just polled the last batch sent under it
    harness.simulator.put_job("azure-review", "az-last", azure_job("az-last", "Complete", adult_score=0.9))
    harness.register("azure-review", "az-last", due=now - timedelta(hours=1))
    PollQueue(queue_url, aws.session.client("sqs")).send(
        [PollBatch(provider="azure-review", jobs=[DueJob("az-last")], until=until)]
    )
    assert worker(sqs_event(aws.drain(queue_url)), LambdaContext())["batchItemFailures"] == []
    assert harness.status("azure-review", "az-last") is JobStatus.SUCCEEDED
    # and jobs that came due since
    harness.register("azure-review", "late-1", "late-2", due=now - timedelta(seconds=60))

    # When the next schedule runs
    result = scheduler({"source": "aws.scheduler"}, ShortContext())

    # Then it sends them to the workers now: the queue is empty, whatever the estimate said
    assert result["fanned_out"] == {"azure-review": 2}
    assert sorted(j["job_id"] for m in aws.drain(queue_url) for j in json.loads(m["Body"])["jobs"]) == [
        "late-1",
        "late-2",
    ]
    # behind the batches the hold expects queued, not ahead of them (each batch carries its send's end, so a
    # mark alone cannot tell how much of a send is still queued)
    hold = store.fanout_hold("azure-review")
    assert hold is not None
    assert hold.until > until


def test_a_worker_stops_polling_when_its_batchs_hold_ends(harness: Harness, aws: FakeAws) -> None:
    from verdict_relay.dal.poll_queue import PollBatch, PollQueue
    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.models.jobs import DueJob

    # Given a batch whose hold ends in half a second: too little for a request before the scheduler takes the
    # provider back
    harness.simulator.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.9))
    harness.register("azure-review", "az-1")
    ending = PollBatch(
        provider="azure-review", jobs=[DueJob("az-1")], until=datetime.now(UTC) + timedelta(seconds=0.5)
    )
    queue_url = aws.resources.queue_urls["PollQueue"]
    PollQueue(queue_url, aws.session.client("sqs")).send([ending])

    response = worker(sqs_event(aws.drain(queue_url)), LambdaContext())

    # Then it sends the provider nothing, and the job stays due
    assert response["batchItemFailures"] == []
    assert harness.simulator.requests("azure-review") == []
    assert harness.due("azure-review") == ["az-1"]


def test_a_worker_told_to_come_back_within_its_batchs_time_waits_and_polls_the_batch(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from verdict_relay.dal.poll_queue import PollBatch, PollQueue
    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.models.jobs import DueJob

    # Given a batch of four finished Azure jobs held for 10 minutes, Azure polled one request at a time (so none
    # is already on its way when the answer comes), and answering the first "429, come back in 6 s" (longer
    # than a client waits by itself)
    entry = harness.simulator.provider_entry("azure-review", max_concurrency=1)
    (tmp_path / "worker").mkdir()
    configure_environment(monkeypatch, aws, tmp_path / "worker", {"azure-review": entry})
    job_ids = [f"az-{i}" for i in range(4)]
    for job_id in job_ids:
        harness.simulator.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.9))
    harness.register("azure-review", *job_ids)
    harness.simulator.inject("azure-review", "throttle:6")
    batch = PollBatch(
        provider="azure-review",
        jobs=[DueJob(j) for j in job_ids],
        until=datetime.now(UTC) + timedelta(minutes=10),
    )
    queue_url = aws.resources.queue_urls["PollQueue"]
    PollQueue(queue_url, aws.session.client("sqs")).send([batch])

    # When a worker polls it
    response = worker(sqs_event(aws.drain(queue_url)), LambdaContext())

    # Then it waited the 6 s and polled the other jobs, rather than leaving them due until the hold ends
    assert response["batchItemFailures"] == []
    throttled, *after = harness.simulator.requests("azure-review")
    assert (throttled.status, [r.status for r in after]) == (429, [200] * 3)
    assert after[0].at - throttled.at >= 6.0
    assert len(harness.due("azure-review")) == 1  # the throttled request's job, as in a cycle


def test_a_provider_whose_fan_out_put_nothing_on_an_unreachable_queue_is_polled_by_the_cycle_itself(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers import dependencies as dependencies_module
    from verdict_relay.handlers.poller import lambda_handler as scheduler

    # Given a poll queue that does not exist, a backlog of finished jobs that would fan out, no earlier hold of
    # that provider, and another provider's due job
    missing_queue = aws.resources.queue_urls["PollQueue"].rsplit("/", 1)[0] + "/no-such-queue"
    monkeypatch.setenv("POLL_QUEUE_URL", missing_queue)
    dependencies_module.dependencies.cache_clear()
    job_ids = [f"az-{i:02}" for i in range(30)]
    for job_id in job_ids:
        harness.simulator.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.9))
    harness.register("azure-review", *job_ids)
    harness.simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    harness.register("huawei-video", "hv-1")

    result = scheduler({"source": "aws.scheduler"}, ShortContext())

    # Then, as the workers have none of the provider's jobs, the cycle polled them itself (as it does without a
    # queue) instead of leaving them to nobody, and says the fan-out failed
    assert all(harness.status("azure-review", j) is JobStatus.SUCCEEDED for j in job_ids)
    assert harness.due("azure-review") == []
    assert "azure-review" not in result["fanned_out"]
    assert result["providers"]["azure-review"]["skipped"] is None
    assert result["fan_out_failed"] == ["azure-review"]
    assert result["providers"]["azure-review"]["fan_out_failed"] is True
    # and no hold is left that would keep the next schedule from polling the provider
    hold = harness.deps.store.fanout_hold("azure-review")
    assert hold is None or hold.until <= datetime.now(UTC)
    # The other provider's job is polled too; with 12 s left its publish is owed to the sweep, not cut off
    assert harness.status("huawei-video", "hv-1") is JobStatus.SUCCEEDED
    assert [key.job_id for key in harness.deps.store.unpublished("huawei-video")] == ["hv-1"]
    after_claim = lambda: datetime.now(UTC) + timedelta(seconds=61)  # noqa: E731
    assert harness.deps.ingest.publish_owed("huawei-video", after_claim) == 1
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["hv-1"]


def test_a_fan_out_that_fails_while_an_earlier_hold_lasts_leaves_the_provider_to_the_workers(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from verdict_relay.handlers.poller import scheduled_cycle

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com")

    deps, queue_url = fan_out_wiring(aws, monkeypatch, "before-call.sqs.SendMessageBatch", unreachable)
    # Given the workers hold the provider (an earlier schedule's batches, due by a minute ago) for 5 more minutes
    now = datetime.now(UTC)
    deps.store.set_fanout_hold(
        "azure-review", now + timedelta(minutes=5), int(now.timestamp()) - 60, now + timedelta(minutes=5)
    )
    # and jobs that came due since, which the schedule would send them, while SQS is out of reach
    harness.register("azure-review", *[f"az-{i:02}" for i in range(30)])

    result = scheduled_cycle(deps, PLENTY)

    # Then the fan-out failed, but the provider stays the workers': this cycle polls none of its jobs, which
    # would add its rate to theirs, and the hold stands
    assert result["fan_out_failed"] == ["azure-review"]
    assert result["fanned_out"] == {"azure-review": 0}
    assert result["providers"]["azure-review"]["skipped"] == "due jobs with the poll workers"
    assert harness.simulator.requests("azure-review") == []
    assert aws.drain(queue_url) == []
    hold = deps.store.fanout_hold("azure-review")
    assert hold is not None
    assert hold.until > datetime.now(UTC)


def fan_out_wiring(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, event: str, hook: Callable[..., None]
) -> tuple[Dependencies, str]:
    """The scheduler's wiring with small worker batches (a 3 s budget) on a session whose SQS calls
    ``hook`` sees at ``event`` (for as long as the wiring lasts: its queue client is made once); the poll
    queue's URL."""
    queue_url = aws.resources.queue_urls["PollQueue"]
    monkeypatch.setenv("POLL_QUEUE_URL", queue_url)
    monkeypatch.setenv("POLL_WORKER_BUDGET_SECONDS", "3")
    session = boto3.session.Session()
    session.events.register(event, hook)
    return build(Settings.from_env(), session), queue_url


def test_a_fan_out_whose_send_fails_part_way_still_holds_the_provider_for_the_batches_sent(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers.poller import fan_out

    failing = True

    def lose_the_last_entry(parsed: dict[str, Any], **_: Any) -> None:
        if failing:
            parsed["Failed"] = [{"Id": "1", "SenderFault": False, "Code": "InternalError"}]

    deps, queue_url = fan_out_wiring(aws, monkeypatch, "after-call.sqs.SendMessageBatch", lose_the_last_entry)
    harness.register("azure-review", *[f"az-{i:02}" for i in range(30)], due=due_before_the_reread())

    # A send SQS answers with one entry failed: the fan-out fails, but the other batches are with the workers
    assert fan_out(deps, 2.0).held["azure-review"] == 0
    assert aws.drain(queue_url)

    # The next schedule neither sends the jobs again nor (held) polls the provider on top of the workers
    failing = False
    assert fan_out(deps, 2.0).held.get("azure-review", 0) == 0
    assert aws.drain(queue_url) == []
    assert deps.store.fanout_hold("azure-review") is not None


def test_a_fan_out_of_which_nothing_was_sent_holds_the_jobs_back_from_neither_this_schedule_nor_the_next(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from verdict_relay.handlers.poller import fan_out

    sqs_down = True

    def unreachable(**_: Any) -> None:
        if sqs_down:
            raise EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com")

    deps, queue_url = fan_out_wiring(aws, monkeypatch, "before-call.sqs.SendMessageBatch", unreachable)
    harness.register("azure-review", *[f"az-{i:02}" for i in range(30)])

    # Nothing went out and no earlier hold lasts: the provider is not held, so this schedule's cycle polls it
    fanned = fan_out(deps, 2.0)
    assert fanned.failed == ["azure-review"]
    assert "azure-review" not in fanned.held
    assert aws.drain(queue_url) == []

    # SQS is back: the next schedule sends them all, as no worker has any of them
    sqs_down = False
    assert fan_out(deps, 2.0).held["azure-review"] == 30
    sent = [job for m in aws.drain(queue_url) for job in json.loads(m["Body"])["jobs"]]
    assert len(sent) == 30


def test_a_fan_out_whose_answer_from_sqs_was_lost_keeps_the_hold_for_the_batches_it_may_have_sent(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ReadTimeoutError

    from verdict_relay.handlers.poller import fan_out

    losing = True

    def answer_lost(**_: Any) -> None:  # SQS queued the batches; their answer never came back
        if losing:
            raise ReadTimeoutError(endpoint_url="https://sqs.us-east-1.amazonaws.com")

    deps, queue_url = fan_out_wiring(aws, monkeypatch, "after-call.sqs.SendMessageBatch", answer_lost)
    harness.register("azure-review", *[f"az-{i:02}" for i in range(30)], due=due_before_the_reread())

    assert fan_out(deps, 2.0).held["azure-review"] == 0
    assert len([job for m in aws.drain(queue_url) for job in json.loads(m["Body"])["jobs"]]) == 30

    # The batches are with the workers: the next schedule neither sends them again nor polls the provider itself
    losing = False
    assert deps.store.fanout_hold("azure-review") is not None
    assert fan_out(deps, 2.0).held["azure-review"] == 0
    assert aws.drain(queue_url) == []


def test_a_fan_out_whose_first_answer_was_lost_keeps_the_hold_whatever_a_later_attempt_would_say(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    from verdict_relay.handlers.poller import fan_out

    attempts: list[str] = []

    def lost_then_unreachable(**_: Any) -> None:  # inside botocore's retry loop, unlike after-call
        attempts.append("sent")
        if len(attempts) == 1:  # SQS may have queued this one: its answer never came back
            raise ReadTimeoutError(endpoint_url="https://sqs.us-east-1.amazonaws.com")
        raise EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com")

    deps, _ = fan_out_wiring(aws, monkeypatch, "before-send.sqs.SendMessageBatch", lost_then_unreachable)
    harness.register("azure-review", *[f"az-{i:02}" for i in range(30)])

    assert fan_out(deps, 2.0).held["azure-review"] == 0

    # One attempt: a retry that never reached SQS must not make the first one pass for nothing sent.
    assert attempts == ["sent"]
    assert deps.store.fanout_hold("azure-review") is not None


def test_a_hold_lasts_as_long_as_a_worker_polling_at_its_own_pace_needs(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers.poller import fan_out
    from verdict_relay.logic.fanout import drain_seconds

    # A worker counted on for 2 jobs a second, below Azure's 10 requests a second.
    monkeypatch.setenv("POLL_JOBS_PER_SECOND", "2")
    deps, queue_url = fan_out_wiring(aws, monkeypatch, "before-send.sqs.SendMessageBatch", lambda **_: None)
    harness.register("azure-review", *[f"az-{i:02}" for i in range(30)])
    started = datetime.now(UTC)

    assert fan_out(deps, 2.0).held["azure-review"] == 30

    hold = deps.store.fanout_hold("azure-review")
    assert hold is not None
    # 18.75 s, not the 3.75 s Azure's rate alone would take; plus the 3 s worker budget as slack
    assert hold.until - started >= timedelta(seconds=drain_seconds(30, 2, 1) + 3)
    # and a batch is what the worker polls in its 3 s budget at that pace
    assert {len(json.loads(m["Body"])["jobs"]) for m in aws.drain(queue_url)} == {4, 2}


def test_providers_fanned_out_together_are_each_held_for_their_own_batches_only(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers import dependencies as dependencies_module
    from verdict_relay.handlers.poller import lambda_handler as scheduler
    from verdict_relay.logic.fanout import drain_seconds

    monkeypatch.setenv("POLL_QUEUE_URL", aws.resources.queue_urls["PollQueue"])
    dependencies_module.dependencies.cache_clear()
    harness.register("azure-review", *[f"az-{i:02}" for i in range(60)])
    harness.register("huawei-video", *[f"hv-{i:02}" for i in range(60)])
    started = datetime.now(UTC)

    scheduler({"source": "aws.scheduler"}, ShortContext())

    # Each provider has a worker of its own: a hold covers that provider's batches at its own rate (and the
    # slack for the one picked up last), not the other provider's queued before them.
    store = dependencies_module.dependencies().store
    for provider in ("azure-review", "huawei-video"):
        hold = store.fanout_hold(provider)
        assert hold is not None
        own = timedelta(seconds=drain_seconds(60, PROFILES[provider].rate_limit_per_s, 1))  # 7.5 s, 15 s
        assert own + timedelta(seconds=240) <= hold.until - started < own + timedelta(seconds=240 + 3)
    batches = [json.loads(m["Body"]) for m in aws.drain(aws.resources.queue_urls["PollQueue"])]
    assert {(b["provider"], datetime.fromisoformat(b["until"])) for b in batches} == {
        ("azure-review", store.fanout_hold("azure-review").until),  # type: ignore[union-attr]
        ("huawei-video", store.fanout_hold("huawei-video").until),  # type: ignore[union-attr]
    }


def test_a_batch_received_after_its_hold_ended_is_left_to_the_scheduler(
    harness: Harness, aws: FakeAws
) -> None:
    from verdict_relay.dal.poll_queue import PollBatch, PollQueue
    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.models.jobs import DueJob

    harness.simulator.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.9))
    harness.register("azure-review", "az-1")
    stale = PollBatch(
        provider="azure-review", jobs=[DueJob("az-1")], until=datetime.now(UTC) - timedelta(seconds=1)
    )
    queue_url = aws.resources.queue_urls["PollQueue"]
    PollQueue(queue_url, aws.session.client("sqs")).send([stale])

    response = worker(sqs_event(aws.drain(queue_url)), LambdaContext())

    assert response["batchItemFailures"] == []
    assert harness.simulator.requests("azure-review") == []
    assert harness.due("azure-review") == ["az-1"]
    assert aws.published() == []


def test_a_schedule_that_cannot_read_the_fan_out_holds_polls_no_provider_the_workers_may_hold(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from verdict_relay.handlers.poller import scheduled_cycle

    def holds_unreadable(params: dict[str, Any], **_: Any) -> None:
        if params["Key"]["sk"]["S"].startswith("FANOUT#"):
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    deps, queue_url = fan_out_wiring(
        aws, monkeypatch, "before-parameter-build.dynamodb.GetItem", holds_unreadable
    )
    # Given the workers hold Azure for 5 more minutes, and a finished Azure job due
    now = datetime.now(UTC)
    harness.deps.store.set_fanout_hold(
        "azure-review", now + timedelta(minutes=5), int(now.timestamp()) - 60, now + timedelta(minutes=5)
    )
    harness.simulator.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.9))
    harness.register("azure-review", "az-1")

    # When a schedule runs while DynamoDB does not answer its reads of the fan-out holds
    result = scheduled_cycle(deps, PLENTY)

    # Then its fan-out failed, and as any provider may be with the workers, it polls none of them on top of them
    assert "azure-review" in result["fan_out_failed"]
    assert result["providers"]["azure-review"]["skipped"] == "due jobs with the poll workers"
    assert harness.simulator.requests("azure-review") == []
    assert harness.due("azure-review") == ["az-1"]
    assert aws.drain(queue_url) == []


def test_a_fan_out_that_stops_at_its_read_limit_sends_the_jobs_past_it_at_the_next_schedules(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers import poller as poller_module
    from verdict_relay.handlers.poller import lambda_handler as scheduler

    queue_url, _ = with_poll_queue(aws, monkeypatch)
    # Given a fan-out that reads at most 20 of a provider's due jobs (20,000 deployed), and 40 jobs due one a
    # second, minutes ago
    monkeypatch.setattr(poller_module, "FANOUT_SCAN_LIMIT", 20)
    start = datetime.now(UTC) - timedelta(minutes=5)
    job_ids = [f"job-{i:02}" for i in range(40)]
    for i, job_id in enumerate(job_ids):
        harness.register("azure-review", job_id, due=start + timedelta(seconds=i))

    # When one schedule fans the first 20 out, and the next two run while the workers hold them
    sent: list[list[str]] = []
    for _ in range(3):
        scheduler({"source": "aws.scheduler"}, ShortContext())
        sent.append(sorted(j["job_id"] for m in aws.drain(queue_url) for j in json.loads(m["Body"])["jobs"]))

    # Then those schedules send the jobs the first read did not reach, rather than leaving them due until the
    # hold's rescan (most of an hour for a backlog this read limit is hit by)
    assert sent[0] == job_ids[:20]
    assert set(job_ids[20:]) <= set(sent[1]) | set(sent[2])
    assert harness.simulator.requests("azure-review") == []


def test_a_hold_of_a_provider_listed_beside_the_workers_lasts_as_long_as_they_need_at_their_share(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.handlers.poller import fan_out
    from verdict_relay.logic.fanout import drain_seconds
    from verdict_relay.logic.poller import DISCOVERY_RATE_SHARE

    # Given Huawei image batches (10 requests a second, listed by the scheduler's discovery while the workers
    # hold them, at its share of that rate), and a backlog of 120 jobs
    deps, queue_url = fan_out_wiring(aws, monkeypatch, "before-send.sqs.SendMessageBatch", lambda **_: None)
    harness.register("huawei-image-batch", *[f"ib-{i:03}" for i in range(120)])
    workers_rate = 10 * (1 - DISCOVERY_RATE_SHARE)
    started = datetime.now(UTC)

    # When it is fanned out
    assert fan_out(deps, 2.0).held["huawei-image-batch"] == 120

    # Then the hold lasts as long as the workers need at the rate they poll at (16.7 s, not the 15 s of the
    # provider's whole rate), plus the 3 s worker budget as slack: a shorter one would end before a worker
    # reached the last batches, which it would then leave stale
    hold = deps.store.fanout_hold("huawei-image-batch")
    assert hold is not None
    assert hold.until - started >= timedelta(seconds=drain_seconds(120, workers_rate, 1) + 3)
    # and a batch is what a worker polls in its 3 s budget at that rate (21 jobs, not 24)
    assert {len(json.loads(m["Body"])["jobs"]) for m in aws.drain(queue_url)} == {21, 120 - 5 * 21}


def test_a_polled_batch_whose_drained_mark_cannot_be_written_is_done_not_delivered_again(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from verdict_relay.dal.poll_queue import PollBatch, PollQueue
    from verdict_relay.handlers import dependencies as dependencies_module
    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.models.jobs import DueJob

    # Given a batch of a finished Azure job under a hold lasting 10 more minutes
    now = datetime.now(UTC)
    until = now + timedelta(minutes=10)
    harness.deps.store.set_fanout_hold("azure-review", until, int(now.timestamp()) - 60, until)
    harness.simulator.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.9))
    harness.register("azure-review", "az-1")
    queue_url = aws.resources.queue_urls["PollQueue"]
    PollQueue(queue_url, aws.session.client("sqs")).send(
        [PollBatch(provider="azure-review", jobs=[DueJob("az-1")], until=until)]
    )

    # and a worker whose write of the hold's drained mark DynamoDB does not take
    def mark_unwritable(params: dict[str, Any], **_: Any) -> None:
        if params["Key"]["sk"]["S"].startswith("FANOUT#"):
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    class MarkUnwritable(boto3.session.Session):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.events.register("before-parameter-build.dynamodb.UpdateItem", mark_unwritable)

    monkeypatch.setattr(boto3.session, "Session", MarkUnwritable)
    dependencies_module.dependencies.cache_clear()

    # When the worker polls the batch
    response = worker(sqs_event(aws.drain(queue_url)), LambdaContext())

    # Then the batch is done: its job resolved and published once, and SQS is not told to deliver it again (to
    # be polled a second time, then dead-lettered)
    assert response["batchItemFailures"] == []
    assert harness.status("azure-review", "az-1") is JobStatus.SUCCEEDED
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["az-1"]
    assert [r.status for r in harness.simulator.requests("azure-review")] == [200]


def test_poll_once_from_the_command_line_runs_one_cycle(
    harness: Harness, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    from verdict_relay.cli import main
    from verdict_relay.handlers import dependencies as dependencies_module

    harness.simulator.put_job("huawei-video", "hv-1", huawei_video_job("hv-1", "succeeded", "block"))
    harness.register("huawei-video", "hv-1")
    dependencies_module.dependencies.cache_clear()

    code = main(["poll", "--once", "--budget", "60"])

    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["huawei-video"]["resolved"] == 1
    assert harness.status("huawei-video", "hv-1") is JobStatus.SUCCEEDED


def azure_jobs_at_one_request_per_second(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *also: str
) -> list[str]:
    """Three finished Azure jobs, registered, with Azure limited to one request a second (and the providers in
    ``also`` configured too) in the functions' environment; their ids."""
    harness.simulator.set_rate_limit("azure-review", 1.0)
    document = {"azure-review": harness.simulator.provider_entry("azure-review", rate_limit_per_s=1.0)}
    document.update({provider: harness.simulator.provider_entry(provider) for provider in also})
    (tmp_path / "worker").mkdir()
    configure_environment(monkeypatch, aws, tmp_path / "worker", document)
    job_ids = ["job-1", "job-2", "job-3"]
    for job_id in job_ids:
        harness.simulator.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.9))
    harness.register("azure-review", *job_ids)
    return job_ids


def one_job_batch(i: int, job_id: str) -> dict[str, str]:
    """The poll queue's message of an Azure batch of one job, as SQS delivers it."""
    body = json.dumps({"provider": "azure-review", "jobs": [{"job_id": job_id}]})
    return {
        "MessageId": f"m-{i}",
        "ReceiptHandle": f"r-{i}",
        "Body": body,
        "MD5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
    }


def test_back_to_back_worker_invocations_share_one_rate_limit_and_build_only_the_polled_client(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from verdict_relay.handlers import dependencies as dependencies_module
    from verdict_relay.handlers.poll_worker import lambda_handler as worker

    # One request per second, one worker, two providers configured: three invocations of one job each, as
    # fast as they come.
    job_ids = azure_jobs_at_one_request_per_second(harness, aws, monkeypatch, tmp_path, "huawei-video")

    for i, job_id in enumerate(job_ids):
        assert worker(sqs_event([one_job_batch(i, job_id)]), LambdaContext()) == {"batchItemFailures": []}

    # A client per invocation would start each with a full bucket: three requests inside one second.
    requests = harness.simulator.requests("azure-review")
    assert harness.simulator.over_limit("azure-review") == 0, [(round(r.at, 2), r.status) for r in requests]
    assert len(requests) == 3
    assert requests[2].at - requests[0].at >= 1.0
    assert all(harness.status("azure-review", j) is JobStatus.SUCCEEDED for j in job_ids)
    # Only the polled provider's client was built.
    built = set(dependencies_module.dependencies()._poll_clients)
    assert built == {"azure-review"}


def test_a_providers_next_batch_polled_in_a_fresh_container_does_not_add_a_request_to_the_last_second(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from verdict_relay.handlers import dependencies as dependencies_module
    from verdict_relay.handlers.poll_worker import lambda_handler as worker

    # One request per second, counted by the simulator over any sliding second.
    job_ids = azure_jobs_at_one_request_per_second(harness, aws, monkeypatch, tmp_path)

    # The provider's batches one after the other, as its message group hands them out, each in a container of
    # its own: the second and third workers' buckets are new, and full.
    for i, job_id in enumerate(job_ids):
        dependencies_module.dependencies.cache_clear()
        assert worker(sqs_event([one_job_batch(i, job_id)]), LambdaContext()) == {"batchItemFailures": []}

    requests = harness.simulator.requests("azure-review")
    assert len(requests) == 3
    assert harness.simulator.over_limit("azure-review") == 0, [round(r.at, 2) for r in requests]
    assert all(harness.status("azure-review", j) is JobStatus.SUCCEEDED for j in job_ids)


def test_a_callback_token_the_provider_echoes_is_not_kept_in_the_stored_raw_payload(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token, retired = "azure-token-current-0001", "azure-token-retired-0001"
    entry = {**simulator.provider_entry("azure-review"), "callback": {"tokens": [token]}}
    harness = Harness(aws, simulator, monkeypatch, tmp_path, {"azure-review": entry})
    # Azure returns the job's CallBackEndpoint, our callback URL with its token, in every job it is asked for.
    for job_id, url_token in [("job-1", token), ("job-2", retired)]:
        job = azure_job(job_id, "Complete", adult_score=0.95)
        job["CallBackEndpoint"] = f"https://api.example.com/prod/callbacks/azure-review?token={url_token}"
        simulator.put_job("azure-review", job_id, job)
        harness.register("azure-review", job_id)

    harness.poll()

    raw = harness.deps.store.raw_payload("azure-review", "job-1")
    assert raw is not None
    stored = json.loads(raw)
    assert stored["CallBackEndpoint"] == "https://api.example.com/prod/callbacks/azure-review?token=REDACTED"
    assert token.encode() not in raw
    assert stored["ResultMetaData"] == azure_job("job-1", "Complete", adult_score=0.95)["ResultMetaData"]
    # A token no longer configured is refused at the door, so it is kept as it came.
    assert retired.encode() in (harness.deps.store.raw_payload("azure-review", "job-2") or b"")
    assert sorted(m["verdict"]["job_id"] for m in aws.published()) == ["job-1", "job-2"]


def test_a_callback_token_quoted_in_a_failed_jobs_message_is_neither_stored_nor_published_in_its_verdict(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a failed Azure job whose reason quotes our callback URL, with its token
    token = "azure-token-current-0001"
    entry = {**simulator.provider_entry("azure-review"), "callback": {"tokens": [token]}}
    harness = Harness(aws, simulator, monkeypatch, tmp_path, {"azure-review": entry})
    url = f"https://api.example.com/prod/callbacks/azure-review?token={token}"
    job = azure_job("job-1", "Failed")
    job["JobExecutionReport"] = [
        {"Ts": "2017-09-21T22:00:49", "Msg": f"Could not post results to {url}: 503"}
    ]
    simulator.put_job("azure-review", "job-1", job)
    harness.register("azure-review", "job-1")

    # When it is polled
    harness.poll()

    # Then its verdict, stored and published, says why with the token replaced
    expected = (
        "Could not post results to https://api.example.com/prod/callbacks/azure-review?token=REDACTED: 503"
    )
    stored = harness.deps.store.get("azure-review", "job-1")
    assert stored is not None
    assert stored.verdict.error is not None
    assert stored.verdict.error.message == expected
    [message] = aws.published()
    assert message["verdict"]["error"]["message"] == expected
    assert token not in json.dumps(message)


def providers_in_secrets_manager(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, document: dict[str, Any]
) -> Any:
    """The functions' environment reading ``document`` from Secrets Manager on every use (cache age 0); the
    Secrets Manager client, to change it."""
    secrets = aws.session.client("secretsmanager")
    secrets.create_secret(Name="verdict-relay/providers", SecretString=json.dumps(document))
    configure_environment(
        monkeypatch,
        aws,
        tmp_path,
        {},
        PROVIDERS_SECRET_ID="verdict-relay/providers",
        PROVIDERS_CACHE_SECONDS="0",
    )
    return secrets


def test_storing_a_verdict_never_reloads_the_providers_document_for_its_tokens(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = "azure-token-current-0001"
    document = {"azure-review": {"callback": {"tokens": [token]}}}
    secrets = providers_in_secrets_manager(aws, monkeypatch, tmp_path, document)
    deps = build(Settings.from_env(), boto3.session.Session())
    # Due for a reload (cache age 0), which would fail: a verdict must still be stored, its raw payload redacted.
    secrets.put_secret_value(SecretId="verdict-relay/providers", SecretString="{not json")
    verdict = Verdict(
        provider="azure-review",
        job_id="job-1",
        status=JobStatus.SUCCEEDED,
        suggestion=Suggestion.BLOCK,
        decided_by="provider",
    )  # type: ignore[call-arg]
    raw = json.dumps(
        {"Id": "job-1", "CallBackEndpoint": f"https://api.example.com/cb?token={token}"}
    ).encode()

    result = deps.ingest.ingest(verdict, raw, datetime.now(UTC))

    assert result.transition is Transition.CREATED
    stored = deps.store.raw_payload("azure-review", "job-1")
    assert stored is not None
    assert token.encode() not in stored


def azure_in_secrets_manager(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Dependencies, Callable[[str], None]]:
    """The production wiring with an azure-review entry in Secrets Manager, re-read on every use (cache age 0),
    and a function that rotates the entry's subscription key there."""
    entry = simulator.provider_entry("azure-review")
    secrets = providers_in_secrets_manager(aws, monkeypatch, tmp_path, {"azure-review": entry})

    def rotate_key(key: str) -> None:
        rotated = {**entry, "credentials": {"subscription_key": key}}
        secrets.put_secret_value(
            SecretId="verdict-relay/providers", SecretString=json.dumps({"azure-review": rotated})
        )

    return build(Settings.from_env(), boto3.session.Session()), rotate_key


def test_rotated_api_credentials_reach_the_kept_poll_clients(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deps, rotate_key = azure_in_secrets_manager(aws, simulator, monkeypatch, tmp_path)
    for job_id in ("job-1", "job-2"):
        simulator.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.9))
    now = datetime.now(UTC)
    deps.store.register("azure-review", "job-1", {}, now, first_poll_at=now)
    deps.poller().run_cycle(PLENTY)

    # The key is rotated to one the provider refuses: the next invocation's poller must use it.
    rotate_key("rotated-key-the-provider-does-not-know")
    deps.store.register("azure-review", "job-2", {}, now, first_poll_at=now)
    report = deps.poller().run_cycle(PLENTY)

    assert [r.status for r in simulator.requests("azure-review")] == [200, 401]
    assert report.providers["azure-review"].failed_requests == 1
    assert [j.job_id for j in deps.store.due_jobs("azure-review", datetime.now(UTC))] == ["job-2"]


def test_rotated_api_credentials_reach_the_kept_callback_fetch_clients(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deps, rotate_key = azure_in_secrets_manager(aws, simulator, monkeypatch, tmp_path)
    simulator.put_job("azure-review", "job-1", azure_job("job-1", "Complete", adult_score=0.9))
    fetch = deps.callback_fetcher("azure-review")
    assert fetch is not None
    assert len(fetch(["job-1"]).jobs) == 1

    # The key is rotated to one the provider refuses: the next callback's fetch must use it.
    rotate_key("rotated-key-the-provider-does-not-know")
    fetch = deps.callback_fetcher("azure-review")
    assert fetch is not None
    with pytest.raises(ProviderAuthError):
        fetch(["job-1"])

    assert [r.status for r in simulator.requests("azure-review")] == [200, 401]


def test_poll_once_from_the_command_line_leaves_a_provider_the_workers_hold_to_them(
    harness: Harness, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from verdict_relay.cli import main
    from verdict_relay.handlers import dependencies as dependencies_module

    # Given a deployed stack's poll queue, and workers holding the provider's due jobs
    queue_url = aws.resources.queue_urls["PollQueue"]
    monkeypatch.setenv("POLL_QUEUE_URL", queue_url)
    dependencies_module.dependencies.cache_clear()
    harness.register("azure-review", "az-1")
    store = dependencies_module.dependencies().store
    now = datetime.now(UTC)
    store.set_fanout_hold(
        "azure-review", now + timedelta(minutes=5), int(now.timestamp()), now + timedelta(minutes=5)
    )

    # When an operator runs a cycle from the command line
    code = main(["poll", "--once", "--budget", "60"])

    # Then it does what the schedule does: nothing polled on top of the workers' rate
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["azure-review"]["skipped"] == "due jobs with the poll workers"
    assert harness.simulator.requests("azure-review") == []
    assert harness.due("azure-review") == ["az-1"]
