"""The poll cycle: every outstanding job is resolved by polling its provider, within the provider's limits.

One cycle, per provider with API credentials (providers run side by side, each isolated from the others):

1. publish verdicts whose publish failed earlier (SNS was down), in at most half of the time left when the
   provider is polled next;
2. discover jobs nobody registered (providers that can list jobs) and make them due, listing and marking in
   ``discovery_share`` of the time left, so a long list cannot take the polls' time;
3. read the jobs that are due from the sparse ``outstanding`` index (no Scan), fetch them in batches where the
   API allows it, and send each result through the same ingest path as callbacks: one verdict, one publish,
   whichever arrives first;
4. reschedule unfinished jobs with capped exponential backoff and full jitter; jobs the provider no longer knows
   (once past the ingest's grace for jobs created lately, which a wrong region would otherwise expire all of),
   and image-batch jobs older than the provider keeps them, become ``expired`` (published as review by policy).

Failures stay contained: a provider that keeps failing trips its circuit breaker and is skipped until the
cool-down ends, then one request goes out as a trial; an authentication failure opens it at once (retrying bad
credentials hot helps nobody). The jobs of a request that failed (a 5xx, a timeout) or whose answer cannot be
read wait out their backoff, as unfinished jobs do: a job the provider always fails on must not keep the oldest
poll time, or it would be every trial, and the breaker would never close again. Jobs of a request refused for
our credentials or our pace (a throttle), and jobs held back by an open breaker, stay due and are not written.
The cycle stops taking work when the invocation's time runs low, and a client does not start a retry it could
not finish in the time left; what is left stays due for the next run. The rate limit itself lives in each
client's token bucket.

A fetch that runs out of time is not the provider's failure (no breaker). Most often the invocation's time ran
out, and its jobs stay due. But one that started with ample time (``PollSettings.ample_fetch_s``) is slow in
itself: an Alibaba job with a long video timeline takes more detail pages than a poll has time for. Left due,
its batch would be the oldest again next cycle, the same jobs in it, and run out of time again, every cycle,
starving its batch-mates. So the rule is: the jobs of such a batch are polled one per batch from then on (this
container remembers them until a fetch answers), and the batch-mates are resolved at their next poll; a job that
runs out of time alone, with ample time, waits out its backoff as an unfinished job does (asked again after a
backoff that grows to 15 minutes, not every cycle), is polled alone again, and is counted (``JobOutOfTime``, its
id in the poller's warning) so an operator sees a job the poller cannot fetch.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from verdict_relay.clients.base import (
    FetchResult,
    ProviderAuthError,
    ProviderClient,
    ProviderOutOfTimeError,
    ProviderResponseError,
    ProviderThrottledError,
    finish_within,
    seconds_left,
)
from verdict_relay.errors import ArchiveError, ItemRefusedError, ProviderApiError, StorageError
from verdict_relay.logic.breaker import CircuitBreaker
from verdict_relay.logic.ingest import PUBLISH_TIME_S, SWEEP_LIMIT, IngestService
from verdict_relay.models.jobs import DueAt, DueJob, NextPoll
from verdict_relay.models.verdict import PROVIDER_NAMES
from verdict_relay.observability import count, logger
from verdict_relay.providers.profiles import PROFILES


class PollStorePort(Protocol):
    def due_to_poll(self, provider: str, now: datetime, limit: int = 100) -> Iterable[DueAt]: ...

    def reschedule(self, provider: str, job_id: str, next_poll_at: datetime, attempts: int) -> bool: ...

    def exists(self, provider: str, job_id: str) -> bool: ...

    def watermark(self, provider: str) -> datetime | None: ...

    def set_watermark(self, provider: str, until: datetime) -> None: ...


SWEEP_LIMIT_WHILE_POLLING = 100
"""Owed verdicts a cycle sweeps at most before it polls the provider itself: the fan-out planned that polling with
the cycle's whole time, and a few seconds of sweep leave it that. The rest, up to ``SWEEP_LIMIT``, are swept with
the time the polling leaves; a provider the workers hold, or that only calls back, is swept up to
``SWEEP_LIMIT`` at once."""
UNHEARD_READ_LIMIT = 100
"""Jobs of a provider without a client read per cycle to count overdue (``Poller._count_unheard``): enough to
page; more would only cost reads every minute."""
UNHEARD_NAMED = 10
"""How many of them the cycle's warning names."""


@dataclass(frozen=True)
class PollSettings:
    min_interval_s: float = 5.0
    """Shortest delay before polling an unfinished job again."""
    base_interval_s: float = 15.0
    """Backoff base: the n-th poll of an unfinished job waits up to base * 2**n (full jitter), capped."""
    max_interval_s: float = 900.0
    due_limit: int = 2000
    """Due jobs read per provider per cycle."""
    ample_fetch_s: float = 15.0
    """A fetch that runs out of time although it started with at least this long for its requests is slow in
    itself, not merely late in the invocation: that is more than two of a request's longest attempts (2 s to
    connect, 5 s to read), where a job's answer is one request or a few."""
    safety_margin_s: float = 8.0
    """Stop taking work when less than this remains of the invocation. A request's retries end by half of it
    (:func:`~verdict_relay.clients.base.finish_within`), which leaves the other half for writing results."""
    discovery_lookback: timedelta = timedelta(hours=1)
    """How far back the first discovery looks (later ones start at the stored watermark)."""
    discovery_window: timedelta = timedelta(hours=1)
    """The most one discovery lists: after an outage the watermark catches up a window a cycle, instead of one
    listing of days of jobs that cannot finish in an invocation and so never moves the watermark on. A window
    that could not be listed, or its jobs marked due, in discovery's time is halved for the next cycle (down to
    ``MIN_DISCOVERY_WINDOW``), until discovery has caught up."""
    discovery_horizon: Mapping[str, timedelta] = field(
        default_factory=lambda: {
            n: p.discovery_horizon for n, p in PROFILES.items() if p.discovery_horizon is not None
        }
    )
    """How far back a provider's job list reaches (``discovery_horizon`` of its profile): discovery never starts
    before it, so after a long gap it lists what the provider still has at once instead of catching up on windows
    it no longer holds jobs for."""
    discovery_share: float = 0.5
    """The part of the invocation's time left that discovery may take, listing and then marking the listed jobs
    the store does not hold due: the due jobs' polls get the rest."""
    expire_after: Mapping[str, timedelta] = field(
        default_factory=lambda: {n: p.expire_after for n, p in PROFILES.items() if p.expire_after is not None}
    )
    """Providers that drop jobs after a while (``expire_after`` of their profiles): an unfinished job older than
    this is expired."""
    count_unheard: bool = True
    """Whether a full cycle counts the overdue jobs of the providers without a client (``_count_unheard``). Not
    the sweeper's, which has no client because the providers document did not load, not for want of credentials."""
    overdue_after: timedelta = timedelta(hours=24)
    """A job still unfinished this long after its creation is counted ``JobOverdue`` at each poll that finds it
    so, or fails on it (``JOB_OVERDUE_HOURS``)."""
    max_interval_for: Mapping[str, float] = field(
        default_factory=lambda: {
            n: p.max_poll_interval_s for n, p in PROFILES.items() if p.max_poll_interval_s is not None
        }
    )
    """A provider's own cap on the backoff, below ``max_interval_s`` (``max_poll_interval_s`` of its profile):
    Huawei keeps image batch jobs 30 minutes and asks to be polled every 30 s; at the general cap, a job that
    finished late in its life would be gone before its next poll."""


BREAKER_CHECK_S = 1.0
"""The longest a fan-out batch sleeps before asking its provider's breaker again."""

TRIAL_CHECK_S = 0.25
"""How often a fan-out batch asks the breaker while another batch's half-open trial is out."""

MAX_POLLED_ALONE = 1000
"""The most jobs of a provider remembered to be polled one per batch (the longest remembered are forgotten
first): one finished by a callback meanwhile is never polled again, and so never forgotten otherwise."""

MIN_DISCOVERY_WINDOW = timedelta(minutes=5)
"""The shortest discovery window: longer than the minute each discovery steps back, so the watermark moves on."""

DISCOVERY_RATE_SHARE = 0.1
"""The part of a provider's rate the scheduler's discovery takes while poll workers hold the provider, the
workers polling at the rest: side by side at the whole rate each, an hour of Alibaba's jobs listed after an
outage (up to 27 s of listing at 47.5 requests a second) would double the provider's rate. At 10 %, Alibaba's
listing is still 4.75 pages of 100 jobs a second, 28,500 jobs a minute."""


@dataclass
class ProviderReport:
    polled: int = 0
    resolved: int = 0
    expired: int = 0
    retired: int = 0
    """Finished jobs deleted rather than stored: only a replayed notice vouched for them, and they finished longer
    ago than half the retention (``IngestService.retired``; metric ``CallbackForRetiredJob``)."""
    rescheduled: int = 0
    failed_requests: int = 0
    owed_published: int = 0
    discovered: int = 0
    left_due: int = 0
    skipped: str | None = None


@dataclass
class CycleReport:
    providers: dict[str, ProviderReport] = field(default_factory=dict)

    @property
    def resolved(self) -> int:
        return sum(r.resolved + r.expired for r in self.providers.values())


class Poller:
    def __init__(
        self,
        store: PollStorePort,
        ingest: IngestService,
        clients: Mapping[str, ProviderClient],
        breakers: Mapping[str, CircuitBreaker],
        settings: PollSettings,
        now: Callable[[], datetime],
        concurrency: Mapping[str, int] | None = None,
        rng: random.Random | None = None,
        discovery_windows: dict[str, timedelta] | None = None,
        polled_alone: dict[str, dict[str, None]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._ingest = ingest
        self._clients = clients
        self._breakers = breakers
        self._settings = settings
        self._now = now
        self._concurrency = concurrency or {}
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._rng_lock = threading.Lock()
        self._discovery_windows = discovery_windows if discovery_windows is not None else {}
        """A provider's discovery window while it is shorter than the settings' (halved after one ran out of
        time, until discovery has caught up). The caller keeps it from one poller to the next (the functions'
        ``Dependencies``, as long as the container: the scheduled poller's stays warm minute to minute)."""
        self._polled_alone = polled_alone if polled_alone is not None else {}
        """A provider's jobs to poll one per batch (an ordered set): their batch ran out of time although it
        started with ample time, so one of them is too slow to fetch with others. Kept by the caller as the
        discovery windows are; a cold start forgets them, and such a batch then runs out of time once more."""
        self._polled_alone_lock = threading.Lock()
        self._sleep = sleep

    @property
    def providers(self) -> list[str]:
        return list(self._clients)

    @property
    def due_limit(self) -> int:
        """Due jobs one cycle reads, and so polls, per provider."""
        return self._settings.due_limit

    def batch_size(self, provider: str) -> int:
        return self._clients[provider].max_batch

    def workers_share(self, provider: str) -> float:
        """The part of the provider's rate its poll workers poll at: all of it, less what the scheduler's
        discovery takes meanwhile (``DISCOVERY_RATE_SHARE``) for a provider that lists its jobs."""
        return 1.0 - DISCOVERY_RATE_SHARE if _lists_beside_workers(self._clients[provider]) else 1.0

    def is_paused(self, provider: str) -> bool:
        """Whether the provider's circuit breaker is open here: it keeps failing, or it asked to be left alone
        for a while (a Retry-After), so nothing is sent to it from this container now."""
        return self._breakers[provider].is_open

    def run_cycle(
        self,
        time_left_s: Callable[[], float],
        providers: Iterable[str] | None = None,
        held: Collection[str] = (),
    ) -> CycleReport:
        """One full cycle over every provider with a client (or the ones given), the providers side by side.
        A provider in ``held`` has its due jobs with the poll workers: it gets steps 1 and 2, not 3. A full
        cycle also sweeps the owed publishes of the providers without a client (callbacks only): their
        verdicts come from callbacks, and a publish that failed there is owed all the same."""
        report = CycleReport()
        names = [p for p in (self._clients if providers is None else providers) if p in self._clients]
        sweep_only = [p for p in PROVIDER_NAMES if p not in self._clients] if providers is None else []
        with ThreadPoolExecutor(
            max_workers=max(1, len(names) + len(sweep_only)), thread_name_prefix="poll"
        ) as pool:
            futures = {
                name: pool.submit(self._run_provider, name, time_left_s, name not in held) for name in names
            }
            futures.update({name: pool.submit(self._sweep_only, name, time_left_s) for name in sweep_only})
            for name, future in futures.items():
                report.providers[name] = future.result()
        return report

    def _sweep(self, provider: str, time_left_s: Callable[[], float], share: float, limit: int) -> int:
        """Step 1 with ``share`` of the time left (after the safety margin), at most ``limit`` verdicts: a slow
        SNS must not take the time the provider's polling needs, nor start a publish the invocation could cut
        off (none is claimed with less than ``PUBLISH_TIME_S`` left)."""
        margin = self._settings.safety_margin_s
        ends = time.monotonic() + (time_left_s() - margin) * share

        def sweep_left_s() -> float:
            return min(time_left_s() - max(margin, PUBLISH_TIME_S), ends - time.monotonic())

        return self._ingest.publish_owed(
            provider, self._now, limit, time_left_s=sweep_left_s, invocation_left_s=time_left_s
        )

    def _sweep_only(self, provider: str, time_left_s: Callable[[], float]) -> ProviderReport:
        report = ProviderReport(skipped="no API credentials: owed publishes only")
        try:
            report.owed_published = self._sweep(provider, time_left_s, share=1.0, limit=SWEEP_LIMIT)
            if self._settings.count_unheard:
                self._count_unheard(provider)
        except StorageError as exc:
            logger.error(
                "owed-publish sweep or overdue count failed: storage failed",
                provider=provider,
                error=exc.message,
            )
            count("PollerStorageFailed", provider)
        return report

    def _count_unheard(self, provider: str) -> None:
        """Jobs of a provider nothing polls (no client: callbacks only) with no word of them for
        ``overdue_after``: their callback was lost or refused, and only a callback can finish them. Counted
        ``JobOverdue`` at every cycle while so, as a polled job is at every poll (``JobsOverdueAlarm``), and
        named in a warning. They are read by their poll time, which nothing polling them is when they were
        stored (a callback's progress notice keeps it): due from then on, so credentials added to the provider's
        entry have every one polled at once. Nothing is written."""
        cutoff = self._now() - self._settings.overdue_after
        unheard = [job.job_id for job, _ in self._store.due_to_poll(provider, cutoff, UNHEARD_READ_LIMIT)]
        if not unheard:
            return
        count("JobOverdue", provider, len(unheard))
        logger.warning(
            "jobs of a provider nothing polls have had no callback for long; only a callback, or API credentials"
            " in the provider's entry of the providers document, can finish them",
            provider=provider,
            jobs=len(unheard),
            job_ids=unheard[:UNHEARD_NAMED],
            overdue_after_hours=self._settings.overdue_after.total_seconds() / 3600,
        )

    def _run_provider(self, provider: str, time_left_s: Callable[[], float], poll: bool) -> ProviderReport:
        report = ProviderReport()
        if poll:
            # The fan-out planned this cycle's polling with all of its time: a sweep of a backlog after an SNS
            # outage would take half of it. So a hundred first, and the rest with the time the polling leaves.
            # The workers' providers, and callback-only ones, have it all.
            self._sweep_into(report, provider, time_left_s, share=0.5, limit=SWEEP_LIMIT_WHILE_POLLING)
            self._poll_provider(provider, time_left_s, poll, report)
            # More may be owed once any went out (fewer than a hundred when some could not be sent): one more
            # keys-only read of the index, only when a backlog is likely.
            if report.owed_published > 0:
                self._sweep_into(
                    report, provider, time_left_s, share=1.0, limit=SWEEP_LIMIT - SWEEP_LIMIT_WHILE_POLLING
                )
        else:
            self._sweep_into(report, provider, time_left_s, share=1.0, limit=SWEEP_LIMIT)
            self._poll_provider(provider, time_left_s, poll, report)
        return report

    def _sweep_into(
        self,
        report: ProviderReport,
        provider: str,
        time_left_s: Callable[[], float],
        share: float,
        limit: int,
    ) -> None:
        try:
            report.owed_published += self._sweep(provider, time_left_s, share=share, limit=limit)
        except StorageError as exc:
            # The owed verdicts stay owed for the next cycle; this provider's polling need not wait for them.
            logger.error("owed-publish sweep failed: storage failed", provider=provider, error=exc.message)
            count("PollerStorageFailed", provider)

    def _poll_provider(
        self, provider: str, time_left_s: Callable[[], float], poll: bool, report: ProviderReport
    ) -> None:
        """Steps 2 and 3: discovery, then (``poll``) the provider's due jobs, into ``report``."""
        try:
            if self._breakers[provider].is_open:
                report.skipped = "circuit open"
                count("ProviderSkippedCircuitOpen", provider)
                return
            client = self._clients[provider]
            client.take_over()  # from the workers, if they held the provider
            left = time_left_s()
            share = min(left - self._settings.safety_margin_s / 2, left * self._settings.discovery_share)
            # While the workers hold the provider, they poll at the rest of its rate (poll_jobs); a limit too
            # low to split waits for the hold's end to be listed.
            if poll or _lists_beside_workers(client):
                with _rate_shared(client, 1.0 if poll else DISCOVERY_RATE_SHARE):
                    report.discovered = self._discover(provider, lambda: time_left_s() - (left - share))
            if not poll:
                report.skipped = "due jobs with the poll workers"
                return
            due = [job for job, _ in self._store.due_to_poll(provider, self._now(), self._settings.due_limit)]
            self._poll(provider, due, time_left_s, report)
        except StorageError as exc:
            # The table is unreachable: nothing was lost (jobs stay due); the next cycle tries again.
            logger.error("poll cycle stopped: storage failed", provider=provider, error=exc.message)
            count("PollerStorageFailed", provider)
            report.skipped = "storage failed"

    def poll_jobs(
        self,
        provider: str,
        jobs: Sequence[DueJob],
        time_left_s: Callable[[], float],
        requests_until: datetime | None = None,
    ) -> ProviderReport:
        """Poll given jobs (a fan-out batch) with the same code path as a cycle; with ``requests_until`` (the
        batch's hold), no request goes to the provider after that time and the jobs not polled by then stay
        due.

        Unlike a cycle, a batch waits for its provider's breaker (a cool-down, a Retry-After) when it ends in the
        time the batch has left: while its hold lasts the worker is the provider's only poller, and the jobs it
        leaves due are sent again only when the scheduler next reads the provider's due jobs from the start,
        which can be most of an hour away for a large backlog (a cycle's are due again a minute later)."""
        report = ProviderReport()
        if provider not in self._clients:
            # Fanned out under a providers document that polls the provider, which this container's does not
            # (it was removed, or lost its credentials, or was added and is not loaded here yet).
            logger.warning(
                "poll batch for a provider not polled here; jobs left due", provider=provider, jobs=len(jobs)
            )
            report.skipped = "not configured"
            report.left_due = len(jobs)
            count("JobsLeftDue", provider, len(jobs))
            return report
        requests_left_s = self._requests_left(time_left_s, requests_until)
        breaker = self._breakers[provider]
        if breaker.is_open and not self._wait_fits(breaker, time_left_s, requests_left_s):
            report.skipped = "circuit open"
            report.left_due = len(jobs)
            count("ProviderSkippedCircuitOpen", provider)
            count("JobsLeftDue", provider, len(jobs))
            return report
        client = self._clients[provider]
        client.take_over()  # from the scheduler, or the worker that polled the batch before
        # The scheduler still lists a provider's new jobs while its workers hold it, at the rest of its rate.
        with _rate_shared(client, self.workers_share(provider)):
            self._poll(provider, list(jobs), time_left_s, report, requests_until, wait_for_breaker=True)
        return report

    def _requests_left(
        self, time_left_s: Callable[[], float], requests_until: datetime | None
    ) -> Callable[[], float]:
        def requests_left_s() -> float:
            # Retries stop early enough to leave half the margin for writing the batch's results.
            left = time_left_s() - self._settings.safety_margin_s / 2
            if requests_until is not None:
                left = min(left, (requests_until - self._now()).total_seconds())
            return left

        return requests_left_s

    def _wait_fits(
        self, breaker: CircuitBreaker, time_left_s: Callable[[], float], requests_left_s: Callable[[], float]
    ) -> bool:
        """Whether the breaker lets requests out again while a request still fits in the batch's time: the
        invocation's, less the margin that stops a batch, and its hold's (a client starts no request with
        less than a second left). Never a cool-down after refused credentials: they are the same until the
        invocation ends (a trial already out is waited for: its outcome is what counts)."""
        wait = breaker.wait_s()
        return (
            not (breaker.tripped and wait > 0)
            and wait < requests_left_s() - 1.0
            and time_left_s() - wait >= self._settings.safety_margin_s
        )

    def _take_turn(
        self,
        breaker: CircuitBreaker,
        time_left_s: Callable[[], float],
        requests_left_s: Callable[[], float],
        wait: bool,
        stop: threading.Event,
    ) -> bool:
        """Whether a batch's request may go out: the breaker allows it, or (``wait``, a fan-out batch) allows it
        after a wait that fits in the batch's time, checked again at every pass (a trial may be out for long),
        and unless the batch was stopped meanwhile."""
        while not stop.is_set():
            if breaker.allow():
                return True
            # Open, or half-open with the trial out.
            if not wait or not self._wait_fits(breaker, time_left_s, requests_left_s):
                return False
            pause = breaker.wait_s()
            self._sleep(min(pause, BREAKER_CHECK_S) if pause > 0 else TRIAL_CHECK_S)
        return False

    # -- polling ------------------------------------------------------------------------------------------

    def _poll(
        self,
        provider: str,
        jobs: list[DueJob],
        time_left_s: Callable[[], float],
        report: ProviderReport,
        requests_until: datetime | None = None,
        wait_for_breaker: bool = False,
    ) -> None:
        """Poll jobs as the due-jobs query or a fan-out batch gives them: with their poll count and age, so an
        unfinished one is rescheduled in one write, without reading it first."""
        client = self._clients[provider]
        alone = self._to_poll_alone(provider, jobs)
        rest = [job for job in jobs if job.job_id not in alone]
        batches = [[job] for job in jobs if job.job_id in alone]  # first: they need the most time
        batches += [rest[i : i + client.max_batch] for i in range(0, len(rest), client.max_batch)]
        stop = threading.Event()
        requests_left_s = self._requests_left(time_left_s, requests_until)
        breaker = self._breakers[provider]

        def work(batch: list[DueJob]) -> None:
            if stop.is_set() or time_left_s() < self._settings.safety_margin_s or requests_left_s() <= 0:
                stop.set()
                report.left_due += len(batch)
                return
            if not self._take_turn(breaker, time_left_s, requests_left_s, wait_for_breaker, stop):
                report.left_due += len(batch)
                return
            try:
                with finish_within(requests_left_s()):
                    self._poll_batch(provider, client, batch, report, time_left_s)
            except BaseException:
                # Storage failing (or a defect): the other batches would spend the provider's requests on
                # results that cannot be written.
                stop.set()
                raise

        with ThreadPoolExecutor(
            max_workers=self._concurrency.get(provider, 4), thread_name_prefix=provider
        ) as pool:
            list(pool.map(work, batches))
        if report.left_due:
            count("JobsLeftDue", provider, report.left_due)

    def _poll_batch(
        self,
        provider: str,
        client: ProviderClient,
        batch: list[DueJob],
        report: ProviderReport,
        time_left_s: Callable[[], float],
    ) -> None:
        breaker = self._breakers[provider]
        ample = (seconds_left() or 0.0) >= self._settings.ample_fetch_s
        try:
            result = client.fetch([job.job_id for job in batch])
        except ProviderAuthError as exc:
            breaker.record_failure(trip=True)
            report.failed_requests += 1
            report.left_due += len(batch)
            count("ProviderAuthFailed", provider)
            logger.error(
                "provider refused our credentials; polling paused", provider=provider, error=exc.message
            )
            return
        except ProviderOutOfTimeError:
            # Our time ran out, not the provider's patience: no breaker; if this was the half-open trial, it
            # told nothing, and another batch may try at once.
            breaker.release_trial()
            self._ran_out_of_time(provider, client, batch, ample, report, time_left_s)
            return
        except ProviderResponseError as exc:
            # An answer we cannot read is most likely about one job (an odd field, a job-specific error), not
            # the provider's health: the provider answered, which is all the breaker watches (and it ends a
            # half-open trial). Batch-mates are polled one by one so they are not held back, and the job that
            # fails alone waits out its backoff, so it cannot stay at the head of the due jobs and be retried
            # every cycle.
            breaker.record_success()
            report.failed_requests += 1
            count("ProviderRequestFailed", provider)
            if len(batch) > 1:
                for job in batch:
                    self._poll_batch(provider, client, [job], report, time_left_s)
                return
            logger.warning(
                "provider answer unreadable; job polled again after its backoff",
                provider=provider,
                job_id=batch[0].job_id,
                code=exc.code,
                error=exc.message,
            )
            self._retry_later(provider, batch[0], report, time_left_s)
            return
        except ProviderThrottledError as exc:
            # Our pace, not the jobs: they stay due, and the breaker (and the client's bucket, for a Retry-After)
            # holds the next requests back.
            breaker.record_failure(retry_after_s=_retry_after(exc))
            report.failed_requests += 1
            report.left_due += len(batch)
            count("ProviderRequestFailed", provider)
            logger.warning(
                "provider throttled the request; jobs left due",
                provider=provider,
                code=exc.code,
                error=exc.message,
            )
            return
        except ProviderApiError as exc:
            # A 5xx or a timeout may be the provider's health (the breaker counts it) or one job's own (one it
            # always fails on). Left due, such a job would keep the oldest poll time, head the due jobs, and be
            # the breaker's half-open trial every time: the trial fails, the breaker opens again, and no other job
            # of the provider is polled again. So the jobs of a failed request wait out their backoff, as
            # unfinished ones do. A real outage writes only the jobs of the requests that went out (the few before
            # the breaker opens, then one trial a cool-down), never the jobs held back while it is open.
            breaker.record_failure()
            report.failed_requests += 1
            count("ProviderRequestFailed", provider)
            logger.warning(
                "provider request failed; jobs polled again after their backoff",
                provider=provider,
                code=exc.code,
                error=exc.message,
            )
            for job in batch:
                self._poll_later(provider, job, report, time_left_s)
            return
        breaker.record_success()
        self._forget_alone(provider, batch)
        report.polled += len(batch)
        self._apply(provider, batch, result, report, time_left_s)

    def _ran_out_of_time(
        self,
        provider: str,
        client: ProviderClient,
        batch: list[DueJob],
        ample: bool,
        report: ProviderReport,
        time_left_s: Callable[[], float],
    ) -> None:
        """A fetch that ran out of time (the rule is in the module's docstring)."""
        if not ample:  # the invocation's time ran out: the jobs stay due
            report.left_due += len(batch)
            return
        if len(batch) > 1:
            self._remember_alone(provider, batch)
            report.left_due += len(batch)
            logger.info(
                "a batch ran out of time though it started with ample time; its jobs are polled one per batch",
                provider=provider,
                job_ids=[job.job_id for job in batch],
            )
            return
        count("JobOutOfTime", provider)
        logger.warning(
            "provider answer not fetched in the time a poll has; job polled again after its backoff",
            provider=provider,
            job_id=batch[0].job_id,
        )
        if client.max_batch > 1:
            self._remember_alone(provider, batch)
        self._poll_later(provider, batch[0], report, time_left_s)

    def _to_poll_alone(self, provider: str, jobs: Sequence[DueJob]) -> set[str]:
        with self._polled_alone_lock:
            remembered = self._polled_alone.get(provider, {})
            return {job.job_id for job in jobs if job.job_id in remembered}

    def _remember_alone(self, provider: str, batch: Sequence[DueJob]) -> None:
        with self._polled_alone_lock:
            remembered = self._polled_alone.setdefault(provider, {})
            for job in batch:
                remembered.pop(job.job_id, None)
                remembered[job.job_id] = None
            for job_id in list(remembered)[: max(0, len(remembered) - MAX_POLLED_ALONE)]:
                del remembered[job_id]

    def _forget_alone(self, provider: str, batch: Sequence[DueJob]) -> None:
        """The provider answered: the jobs are batched as usual again."""
        with self._polled_alone_lock:
            remembered = self._polled_alone.get(provider)
            if remembered:
                for job in batch:
                    remembered.pop(job.job_id, None)

    def _apply(
        self,
        provider: str,
        batch: list[DueJob],
        result: FetchResult,
        report: ProviderReport,
        time_left_s: Callable[[], float],
    ) -> None:
        known = {job.job_id: job for job in batch}
        seen = set()
        for fetched in result.jobs:
            # The time of each write, not the batch's: a verdict's publish claim starts when it is written, and
            # publishing the batch's earlier verdicts can take a while.
            now = self._now()
            verdict = fetched.verdict
            seen.add(verdict.job_id)
            if verdict.is_terminal:
                # A job only a replayed notice vouched for, which finished too long ago, is deleted, not stored.
                if self._ingest.retired(verdict, now, held=True):
                    report.retired += 1
                    continue
                try:
                    self._ingest.ingest(verdict, fetched.raw, now, time_left_s=time_left_s)
                except StorageError as exc:
                    # Not stored. Not expired for its age, as _poll_later would: the provider has just answered
                    # for it, finished.
                    self._not_stored(
                        provider, known.get(verdict.job_id) or DueJob(verdict.job_id), exc, now, report
                    )
                    continue
                report.resolved += 1
                continue
            job = known.get(verdict.job_id)
            if self._expire_past_age(provider, verdict.job_id, job, now, report, time_left_s):
                continue
            # Its status (if it changed) and its next poll time, in one write.
            try:
                self._ingest.ingest(verdict, None, now, next_poll=self._next_poll(provider, job, now))
            except StorageError as exc:
                self._not_stored(provider, job or DueJob(verdict.job_id), exc, now, report)
                continue
            report.rescheduled += 1
        for job_id in result.missing:
            seen.add(job_id)
            # A provider that keeps jobs for a limited time (image batches, 30 minutes) has no grace past it.
            if self._expire_past_age(provider, job_id, known.get(job_id), self._now(), report, time_left_s):
                continue
            unknown = self._ingest.unknown_to_provider(provider, job_id, self._now(), time_left_s)
            if unknown == "expired":
                count("JobExpired", provider)
                report.expired += 1
            elif unknown == "waiting":  # created lately: asked again after its backoff, before it is expired
                self._poll_later(provider, known.get(job_id) or DueJob(job_id), report, time_left_s)
        for job in batch:
            if job.job_id not in seen:  # the provider answered without it: try again later
                logger.warning(
                    "provider answered without the job; polled again after its backoff",
                    provider=provider,
                    job_id=job.job_id,
                )
                self._retry_later(provider, job, report, time_left_s)

    def _not_stored(
        self, provider: str, job: DueJob, exc: StorageError, now: datetime, report: ProviderReport
    ) -> None:
        """A job whose answer the store refused for itself: S3 refusing its large payload (an ArchiveError), or
        DynamoDB refusing its item for good (an ItemRefusedError). It alone waits out its backoff, so it does not
        stay at the head of the due jobs and stop every cycle: the others are stored. The table failing as such
        (throttled, out of reach, access denied, missing) is raised, and stops the cycle."""
        if not isinstance(exc, ArchiveError | ItemRefusedError):
            raise exc
        # Rescheduled first: a table that refuses that too (missing, access denied) is the table failing, which
        # stops the cycle, and is counted once, by the cycle's caller.
        self._reschedule(provider, job, now, report)
        logger.error(
            "result not stored; polled again after its backoff",
            provider=provider,
            job_id=job.job_id,
            error=exc.message,
        )
        count("PollerStorageFailed", provider)

    def _retry_later(
        self, provider: str, job: DueJob, report: ProviderReport, time_left_s: Callable[[], float]
    ) -> None:
        """A job the provider gave no readable answer about: polled again after its backoff, unless the provider
        keeps such jobs for a limited time and it is past that (an image batch would be asked about forever).
        Counted as ``JobUnanswered``: a job that keeps coming back here is never resolved, and its alarm says so."""
        count("JobUnanswered", provider)
        self._poll_later(provider, job, report, time_left_s)

    def _poll_later(
        self, provider: str, job: DueJob, report: ProviderReport, time_left_s: Callable[[], float]
    ) -> None:
        """A job polled without an answer: polled again after its backoff (one more attempt), as an unfinished
        job is, so it gives up its place at the head of the due jobs; or expired, if the provider keeps such jobs
        for a limited time and it is past that (an image batch would be asked about forever)."""
        now = self._now()
        if self._expire_past_age(provider, job.job_id, job, now, report, time_left_s):
            return
        self._reschedule(provider, job, now, report)

    def _reschedule(self, provider: str, job: DueJob, now: datetime, report: ProviderReport) -> None:
        """Poll ``job`` again after its backoff (one more attempt)."""
        next_poll = self._next_poll(provider, job, now)
        self._store.reschedule(provider, job.job_id, next_poll.at, next_poll.attempts)
        report.rescheduled += 1

    def _expire(
        self, provider: str, job_id: str, now: datetime, why: str, time_left_s: Callable[[], float]
    ) -> None:
        self._ingest.expire(provider, job_id, now, why, time_left_s)
        count("JobExpired", provider)

    def _expire_past_age(
        self,
        provider: str,
        job_id: str,
        job: DueJob | None,
        now: datetime,
        report: ProviderReport,
        time_left_s: Callable[[], float],
    ) -> bool:
        """Expire a job the provider keeps for a limited time once it is past that; whether it was."""
        if not self._expired_by_age(provider, job, now):
            return False
        self._expire(provider, job_id, now, "the provider keeps these jobs for a limited time", time_left_s)
        report.expired += 1
        return True

    def _expired_by_age(self, provider: str, job: DueJob | None, now: datetime) -> bool:
        limit = self._settings.expire_after.get(provider)
        if limit is None:
            return False
        return job is not None and job.created_at is not None and now - job.created_at > limit

    def _next_poll(self, provider: str, job: DueJob | None, now: datetime) -> NextPoll:
        """When an unfinished job is polled next. One unfinished past ``overdue_after`` is counted here, where
        every poll that leaves a job unfinished passes: still running, or failed on, it would be polled after
        its backoff for ever without a word."""
        if (
            job is not None
            and job.created_at is not None
            and now - job.created_at > self._settings.overdue_after
        ):
            count("JobOverdue", provider)
            logger.warning(
                "a job is still unfinished long after its creation; polled again after its backoff",
                provider=provider,
                job_id=job.job_id,
                created_at=job.created_at,
            )
        attempts = (job.poll_attempts if job else 0) + 1
        return NextPoll(now + timedelta(seconds=self.backoff(attempts, provider)), attempts)

    def backoff(self, attempts: int, provider: str | None = None) -> float:
        """Seconds until the next poll: full jitter over base * 2**attempts, capped (at the provider's own cap
        when it has one), never below the minimum."""
        cap = min(
            self._settings.max_interval_s, self._settings.max_interval_for.get(provider or "", math.inf)
        )
        ceiling = min(cap, self._settings.base_interval_s * 2 ** min(attempts, 20))
        with self._rng_lock:
            delay = self._rng.uniform(0, ceiling)
        return max(self._settings.min_interval_s, delay)

    # -- discovery ----------------------------------------------------------------------------------------

    def _discover(self, provider: str, discovery_left_s: Callable[[], float]) -> int:
        """List the jobs of the provider's next window and make those the store does not hold due, all in
        ``discovery_left_s``: its share of the invocation's time. A window that runs out of it, listing or
        marking, is halved for the next cycle and the watermark stays where it was; the jobs marked so far stay
        due (the next pass finds them stored and only reads them), so a long backlog still moves on."""
        client = self._clients[provider]
        if not client.discovers:
            return 0
        now = self._now()
        since = self._store.watermark(provider) or now - self._settings.discovery_lookback
        horizon = self._settings.discovery_horizon.get(provider)
        if horizon is not None:
            since = max(since, now - horizon)
        window = self._discovery_windows.get(provider, self._settings.discovery_window)
        until = min(now, since + window)
        try:
            with finish_within(discovery_left_s()):
                job_ids = client.discover(since, until)
        except ProviderAuthError as exc:
            # Counted as the job polls count it: with the breaker open they send nothing, so this is where
            # refused credentials of a provider that discovers show (and raise the alarm).
            self._breakers[provider].record_failure(trip=True)
            count("ProviderAuthFailed", provider)
            logger.error(
                "provider refused our credentials; polling paused", provider=provider, error=exc.message
            )
            return 0
        except ProviderApiError as exc:
            # Only a throttle's Retry-After reaches the breaker: the job polls are what it watches. A list API
            # that keeps failing on its own (an odd entry, a 5xx of that API only) would otherwise reopen the
            # breaker every cycle before the half-open trial poll could go out, and stop the provider's
            # polling for good; a provider that is down fails its polls too, and they open the breaker.
            retry_after = _retry_after(exc)
            if retry_after is not None:
                self._breakers[provider].record_failure(retry_after_s=retry_after)
            if isinstance(exc, ProviderOutOfTimeError) and self._halve_discovery_window(provider, window):
                return 0
            if not isinstance(exc, ProviderOutOfTimeError):
                count("ProviderRequestFailed", provider)
            count("DiscoveryFailed", provider)
            logger.warning("discovery failed", provider=provider, code=exc.code, error=exc.message)
            return 0
        found, checked = self._mark_discovered(provider, job_ids, now, discovery_left_s)
        if found:
            count("JobsDiscovered", provider, found)
        if checked < len(job_ids):
            # Listed, but too many to mark due in discovery's time. The watermark stays where it was (the ids come
            # without their times, so none of the window can be said to be done); the next pass finds the jobs
            # marked here stored, and only reads them.
            if not self._halve_discovery_window(provider, window):
                count("DiscoveryFailed", provider)
                logger.warning(
                    "discovery failed: no time left to mark the listed jobs due",
                    provider=provider,
                    listed=len(job_ids),
                    checked=checked,
                )
            return found
        # Alibaba lists by creation time: step back a little so a job created as the window closed is not missed.
        self._store.set_watermark(provider, until - timedelta(minutes=1))
        if until >= now:  # caught up: a halved window has done its work (growing it sooner would fail again)
            self._discovery_windows.pop(provider, None)
        return found

    def _mark_discovered(
        self, provider: str, job_ids: Sequence[str], now: datetime, discovery_left_s: Callable[[], float]
    ) -> tuple[int, int]:
        """Make the listed jobs the store does not hold due, until discovery's time runs out: how many were new,
        and how many of the list were gone through."""
        found = 0
        for checked, job_id in enumerate(job_ids):
            if discovery_left_s() <= 0:
                return found, checked
            if not self._store.exists(provider, job_id):
                self._ingest.mark_due(provider, job_id, now)
                found += 1
        return found, len(job_ids)

    def _halve_discovery_window(self, provider: str, window: timedelta) -> bool:
        """A window too long to list, or to mark its jobs due, in the time discovery has: a shorter one next
        time, so discovery moves on. Not a failure of the provider's, nor yet of discovery's (its alarm is for a
        discovery that stays stuck). False when the window is already the shortest: that one is a failure."""
        if window <= MIN_DISCOVERY_WINDOW:
            return False
        self._discovery_windows[provider] = max(MIN_DISCOVERY_WINDOW, window / 2)
        logger.info("discovery window too long for its time; halved", provider=provider)
        return True


def _retry_after(exc: ProviderApiError) -> float | None:
    """The wait a throttling provider asked for (its Retry-After), if it said."""
    return exc.retry_after if isinstance(exc, ProviderThrottledError) else None


def _rate_shared(client: ProviderClient, fraction: float) -> contextlib.AbstractContextManager[None]:
    """The client's requests at ``fraction`` of its rate meanwhile (a test's stand-in without a bucket: as is)."""
    if fraction >= 1.0 or client.limiter is None:
        return contextlib.nullcontext()
    return client.limiter.shared(fraction)


def _lists_beside_workers(client: ProviderClient) -> bool:
    """Whether the scheduler lists the provider's new jobs while poll workers hold it, at its share of the rate:
    a provider that lists its jobs, unless its limit is under 2 requests a second (a window of one request,
    which two senders cannot split); such a provider is listed once the hold ends."""
    window = client.limiter.window if client.limiter is not None else None
    return client.discovers and (window is None or window >= 2)
