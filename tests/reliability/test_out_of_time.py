"""The Lambda's time running out mid-cycle: a poll cycle over more due jobs than its time allows stops partway,
leaves the jobs it did not get to due (and what it could not publish owed), and a later cycle catches up, every
verdict published once. The production wiring (``handlers.dependencies.build``) against moto and the provider
simulator over HTTP."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from tests.conftest import FakeAws
from tests.integration.conftest import configure_environment
from verdict_relay.config import Settings
from verdict_relay.handlers.dependencies import build
from verdict_relay.local.simulator import ProviderSimulator, huawei_video_job
from verdict_relay.logic.ingest import PUBLISH_TIME_S
from verdict_relay.logic.poller import PollSettings
from verdict_relay.models.verdict import JobStatus

PROVIDER = "huawei-video"
JOBS = 30
START_S = 40.0
"""The invocation's time left when the first cycle starts."""
PER_REQUEST_S = 1.5
"""What each request the provider answers takes of it: after about 9 polls there is less than ``PUBLISH_TIME_S``
left (verdicts are left owed rather than published), after about 22 less than the safety margin (the cycle stops
taking jobs), well before the 30th."""
AMPLE = lambda: 120.0  # noqa: E731


def test_a_cycle_that_runs_out_of_time_partway_leaves_the_rest_due_and_a_later_cycle_publishes_each_once(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with ProviderSimulator() as simulator:
        # Given 30 registered jobs finished at the provider, block and review (both published); a rate limit
        # that is not what is tested (at Huawei's 5/s the polls alone would take 6 s)
        entry = {**simulator.provider_entry(PROVIDER), "rate_limit_per_s": 1000}
        configure_environment(monkeypatch, aws, tmp_path, {PROVIDER: entry})
        deps = build(Settings.from_env(), boto3.session.Session())
        job_ids = [f"oot-{i:02}" for i in range(JOBS)]
        suggestions = {job_id: ("block", "review")[i % 2] for i, job_id in enumerate(job_ids)}
        now = datetime.now(UTC)
        for job_id in job_ids:
            simulator.put_job(PROVIDER, job_id, huawei_video_job(job_id, "succeeded", suggestions[job_id]))
            deps.store.register(PROVIDER, job_id, {}, now, first_poll_at=now)
        assert sorted(j.job_id for j in deps.store.due_jobs(PROVIDER, datetime.now(UTC))) == job_ids

        def stored(job_id: str) -> Any:
            job = deps.store.get(PROVIDER, job_id)
            assert job is not None
            return job

        def draining() -> float:
            """The invocation's time left: each request the provider answered took PER_REQUEST_S of it."""
            return START_S - PER_REQUEST_S * len(simulator.requests(PROVIDER))

        # When one poll cycle runs whose time drains as it polls
        first = deps.poller().run_cycle(draining).providers[PROVIDER]

        # Then it stopped partway: it resolved some jobs, not all, and the others it did not even ask about
        polled_first = len(simulator.requests(PROVIDER))
        assert draining() < PollSettings().safety_margin_s
        assert 0 < first.resolved == first.polled == polled_first < JOBS
        assert first.left_due == JOBS - first.resolved
        assert (first.failed_requests, first.rescheduled, first.skipped) == (0, 0, None)
        resolved = {j for j in job_ids if stored(j).status is JobStatus.SUCCEEDED}
        assert len(resolved) == first.resolved
        # the rest are still due, unpolled (no backoff taken), unfinished and unpublished
        due = {j.job_id: j for j in deps.store.due_jobs(PROVIDER, datetime.now(UTC))}
        assert set(due) == set(job_ids) - resolved
        assert {(j.status, j.poll_attempts, j.verdict) for j in due.values()} == {
            (JobStatus.PENDING, 0, None)
        }
        # the verdicts resolved with time to publish went out, those resolved with less than PUBLISH_TIME_S left
        # are stored owed for the sweep (both happened: the time drained through that threshold)
        messages = aws.published()
        sent_first = Counter(m["verdict"]["job_id"] for m in messages)
        owed = {k.job_id for k in deps.store.unpublished(PROVIDER)}
        assert START_S - PER_REQUEST_S > PUBLISH_TIME_S
        assert sent_first
        assert owed
        assert set(sent_first) | owed == resolved
        assert not set(sent_first) & owed
        assert set(sent_first.values()) == {1}
        assert {stored(j).publish_state for j in owed} == {"pending"}

        # When a later cycle runs with ample time
        second = deps.poller().run_cycle(AMPLE).providers[PROVIDER]

        # Then it published what was owed and polled and published the rest, each job asked about once in all
        assert second.owed_published == len(owed)
        assert second.resolved == second.polled == JOBS - first.resolved
        assert second.left_due == 0
        requested = Counter(urlsplit(r.path).path.rsplit("/", 1)[-1] for r in simulator.requests(PROVIDER))
        assert requested == Counter(dict.fromkeys(job_ids, 1))
        messages += aws.published()
        sent = Counter(m["verdict"]["job_id"] for m in messages)
        assert sent == Counter(dict.fromkeys(job_ids, 1))
        # each message the job's own verdict (its suggestion, its findings), the relay's publish, not a republish
        for message in messages:
            job_id = message["verdict"]["job_id"]
            assert message["verdict"]["suggestion"] == suggestions[job_id]
            assert len(message["verdict"]["findings"]) == 3
            assert (message["attributes"]["suggestion"], message["attributes"]["republished"]) == (
                suggestions[job_id],
                "false",
            )
        # and every job is finished, published, neither due nor owed
        for job_id in job_ids:
            job = stored(job_id)
            assert (job.status, job.verdict.suggestion, job.publish_state, job.next_poll_at) == (
                JobStatus.SUCCEEDED,
                suggestions[job_id],
                "published",
                None,
            )
        assert list(deps.store.due_jobs(PROVIDER, datetime.now(UTC))) == []
        assert list(deps.store.unpublished(PROVIDER)) == []

        # When yet another cycle runs
        third = deps.poller().run_cycle(AMPLE).providers[PROVIDER]

        # Then there is nothing left to do: nothing polled, nothing published again
        assert (third.polled, third.owed_published) == (0, 0)
        assert len(simulator.requests(PROVIDER)) == JOBS
        assert aws.published() == []
