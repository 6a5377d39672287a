"""The scheduled poller (EventBridge Scheduler, every minute): one poll cycle, fanning out when it must.

For each provider, if more jobs are due than this invocation can poll within its time and the provider's rate
limit, the due jobs go to the poll queue in batches (and are held back from the next schedules while the
workers have them); otherwise this invocation polls them itself, as it does when a fan-out fails with nothing of
the provider's on the queue. Either way the same ``Poller`` does the work, and every provider gets the cycle's
owed-publish sweep and discovery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from verdict_relay.config import rate_limit
from verdict_relay.dal.poll_queue import PollBatch, PollQueue, PollQueueError
from verdict_relay.errors import ConfigurationError, StorageError
from verdict_relay.handlers.dependencies import Dependencies, dependencies
from verdict_relay.logic import fanout
from verdict_relay.models.jobs import FanoutHold
from verdict_relay.observability import count, log_metrics, logger

if TYPE_CHECKING:
    from verdict_relay.logic.poller import Poller

FANOUT_SCAN_LIMIT = 20_000
FANOUT_HORIZON_S = 3600
"""How much of a provider's polling the poll queue holds ahead at most: while the workers have more than this
queued (:func:`_queued`), a schedule sends them nothing, and the provider's due jobs wait in the index, oldest
first, where a job polled and still running goes to the back of them. Without it, a backlog of days (a million
due jobs at 5 requests a second) went to the queue 20,000 jobs a schedule, its later batches outlived the
queue's one-day retention unpolled, and the jobs of those were left to rescans that sent them again behind the
rest: half of them were never polled in days. So the queue holds at most about this plus a read or two (20,000
Huawei video jobs are planned at 83 minutes)."""
STAMP_LAG_S = 5
"""How long before its write lands a job's due time may have been taken: a callback marks a job whose fetch
failed due as of the request's start, after the fetch (within the providers' 3 to 5 s acknowledgement deadlines).
A hold stops that much short of its read, so such a job is read again by the next schedule, not left to nobody
until the hold's rescan; the jobs of those seconds already sent go out twice."""


@dataclass
class FanOut:
    """What a schedule's fan-out did."""

    held: dict[str, int] = field(default_factory=dict)
    """The providers whose due jobs are with the poll workers this cycle (the cycle does not poll them), with the
    jobs this schedule sent them (0: none newly)."""
    failed: list[str] = field(default_factory=list)
    """The providers whose fan-out failed: held, or polled by this cycle if the workers have nothing of theirs."""


def fan_out(deps: Dependencies, time_budget_s: float) -> FanOut:
    """Send the backlog of providers that one invocation cannot poll to the workers; which providers they hold.

    The jobs sent are held with one write per provider, not per job: the provider's hold says the workers have
    its jobs due by ``through`` until ``until``. ``through`` is :data:`STAMP_LAG_S` before the last whole second
    that had passed before the read (or before the second it stopped in at its limit): a job made due as of a
    moment after the read, or stamped up to that long before its write landed, is due later than that, never by
    it. Meanwhile every schedule sends the workers only the jobs that came due later (those of the read's last
    seconds again, so some go out twice: polled twice, harmlessly), and does not
    poll the provider itself: that would add this invocation's rate to theirs and break the provider's limit. A
    job the workers could not poll is due again once the hold ends.

    One worker at a time polls a provider's batches, at the provider's rate: the queue is FIFO, with the provider
    as message group, and there is a worker for every provider. So a hold lasts until the provider's own batches
    can have been polled: where its hold expects them polled (or now), plus the newly sent jobs at its pace, plus
    one worker budget of slack (added once, not once per schedule, so a trickle of newly due jobs does not push
    holds ever later). Each batch carries its hold's end; a worker that receives it later leaves the jobs to the
    scheduler, which may have sent them again.

    Newly due jobs renew a hold for as long as they keep coming, so a job the workers left due (a provider
    failure, an open circuit, time running out, a batch received too late) is not left to the hold's end: once
    the first batches of a hold should all have been polled (its ``rescan_at``), the next schedule reads the
    provider's due jobs from the start again and sends them all, and a new round of the hold begins. Nothing is
    sent while the workers have more than ``FANOUT_HORIZON_S`` of a provider's polling queued (by the hold's
    estimate, or by the batches a worker marked done): its due jobs wait in the index, in due order, until they
    have caught up.

    A provider whose fan-out fails (the queue or the table unreachable) stays held if the workers may have
    jobs of it: some of its batches went out (or SQS's answer was lost), or an earlier hold of it is still
    active. Otherwise the workers have nothing of it, and this cycle polls it itself as far as its time allows,
    as it would without a queue: holding it would leave its due jobs polled by nobody for as long as the queue
    keeps failing. Either way the other providers go on. A provider whose circuit breaker is open here
    (failing, or told us when to come back) is sent nothing: a worker in another container would not know.
    """
    queue = deps.poll_queue()
    if queue is None:
        return FanOut()
    poller = deps.poller()
    result = FanOut()
    try:
        holds = {provider: deps.store.fanout_hold(provider) for provider in poller.providers}
    except StorageError as exc:
        # Whether workers hold a provider is unknown: polling here could add this invocation's rate to theirs.
        logger.error("fan-out holds unreadable; no provider polled here this cycle", error=exc.message)
        count("FanOutFailed")
        return FanOut(held=dict.fromkeys(poller.providers, 0), failed=list(poller.providers))
    now = datetime.now(UTC)
    for provider in poller.providers:
        hold = holds[provider]
        held_before = hold is not None and hold.until > now
        if poller.is_paused(provider):
            # A fresh worker's breaker would not know the provider asked to be left alone: send it nothing now.
            # A provider the workers hold stays theirs; any other is skipped by this cycle's poll as well.
            if held_before:
                result.held[provider] = 0
            continue
        try:
            _fan_out_provider(deps, poller, queue, provider, hold, time_budget_s, result.held)
        except StorageError as exc:
            count("FanOutFailed", provider)
            result.failed.append(provider)
            # Only a send can put batches on the queue: any other failure came before one, or after one of
            # which nothing went out. ``sent`` None: SQS's answer was lost, so the batches may be queued.
            queued = isinstance(exc, PollQueueError) and exc.sent != 0
            if queued or held_before:
                logger.error(
                    "fan-out failed; the provider's due jobs stay with the poll workers",
                    provider=provider,
                    error=exc.message,
                )
                result.held[provider] = 0
            else:
                logger.error(
                    "fan-out failed; the workers have none of the provider's jobs, so this cycle polls it",
                    provider=provider,
                    error=exc.message,
                )
    return result


def _fan_out_provider(
    deps: Dependencies,
    poller: Poller,
    queue: PollQueue,
    provider: str,
    hold: FanoutHold | None,
    time_budget_s: float,
    sent: dict[str, int],
) -> None:
    """Fan one provider's backlog out (see fan_out); records what was sent in ``sent``."""
    now = datetime.now(UTC)
    slack = timedelta(seconds=deps.settings.poll_worker_budget_seconds)  # for the batch picked up last
    workers_active = hold is not None and hold.until > now
    if (
        hold is not None
        and workers_active
        and _queued(hold, slack, now) >= timedelta(seconds=FANOUT_HORIZON_S)
    ):
        # The hold, its ``through`` and its ``rescan_at`` stay: a later schedule reads on from there.
        sent[provider] = 0
        logger.info(
            "nothing more sent: the workers have at least an hour of the provider's polling queued, by estimate",
            provider=provider,
            held_until=hold.until,
            drained_until=hold.drained_until,
        )
        return
    rescan = hold is None or not workers_active or hold.rescan_at is None or now >= hold.rescan_at
    due = list(
        deps.store.due_to_poll(
            provider, now, FANOUT_SCAN_LIMIT, after=None if rescan or hold is None else hold.through
        )
    )
    # The workers' pace: the provider's rate, less what the scheduler's discovery takes while they hold it.
    rate = rate_limit(provider, deps.providers().get(provider)) * poller.workers_share(provider)
    plan = fanout.plan(
        provider,
        [job for job, _ in due],
        rate_per_s=rate,
        jobs_per_request=poller.batch_size(provider),
        time_budget_s=time_budget_s,
        worker_budget_s=deps.settings.poll_worker_budget_seconds,
        always=workers_active,
        read_limit=poller.due_limit,
        max_jobs_per_s=deps.settings.poll_jobs_per_second,
    )
    if not plan.fans_out:
        if workers_active:
            sent[provider] = 0  # nothing newly due, but the workers own this provider for now
        return
    # The provider's batches already queued are expected polled at its hold's end, less the slack. Planned from
    # there, not from the batches the workers marked done (_queued): a send's batches all carry its hold's end,
    # so a mark can read the queue empty with most of a send still on it, and new batches planned from now would
    # run out of their hold before a worker reached them.
    polled = max(hold.until - slack, now) if hold is not None and workers_active else now
    drain = fanout.drain_seconds(
        len(due), rate, poller.batch_size(provider), deps.settings.poll_jobs_per_second
    )
    until = polled + timedelta(seconds=drain) + slack
    # Held through the last whole second the read saw complete, never the second it ended in: that one can
    # still get jobs after the read (a registration, a callback's notice, discovery's mark right after this
    # fan-out), which a hold through it would leave to nobody until its next round. So the next schedule reads
    # that second again: the second the read ran in, or the one it stopped in at its limit (a job sent twice is
    # polled twice, once as unfinished or finished; none is left unsent). Nor the seconds before it in which a
    # writer's due time, taken before its write, may fall (STAMP_LAG_S).
    end = due[-1].next_poll_at if len(due) == FANOUT_SCAN_LIMIT else int(now.timestamp())
    through = end - 1 - STAMP_LAG_S
    # A new round (no hold, or a rescan) is rescanned when its own batches should all have been polled.
    rescan_at = until if rescan or hold is None or hold.rescan_at is None else hold.rescan_at
    # The hold first: a send that fails part way leaves batches with the workers, and without the hold the
    # next schedule would poll the provider itself (or send them again) on top of them. Jobs the failed part
    # held back are due again at the hold's end. A send of which nothing went out takes the hold back: nobody
    # would poll those jobs until it ended. One whose answer was lost keeps it: the batches may be queued.
    deps.store.set_fanout_hold(provider, until, through, rescan_at)
    try:
        queue.send([PollBatch(provider=provider, jobs=batch, until=until) for batch in plan.batches])
    except PollQueueError as exc:
        if exc.sent == 0:
            deps.store.withdraw_fanout_hold(provider, until, hold, now)
        raise
    sent[provider] = len(due)
    count("JobsFannedOut", provider, len(due))
    logger.info(
        "backlog fanned out",
        provider=provider,
        jobs=len(due),
        batches=len(plan.batches),
        held_until=until,
        rescan=rescan and workers_active,
    )


def _queued(hold: FanoutHold, slack: timedelta, now: datetime) -> timedelta:
    """How much of a provider's polling its workers still have queued: by the hold's estimate (its end, less the
    slack it adds once), or less when a worker has finished a batch carrying a later end than that estimate
    leaves (the provider answered faster than planned, or its rate was raised). Batches of one send share their
    hold's end, so the second reading can fall short by the rest of that send: at most one read's worth."""
    queued = hold.until - slack - now
    if hold.drained_until is not None:
        queued = min(queued, hold.until - hold.drained_until)
    return queued


def scheduled_cycle(deps: Dependencies, time_left_s: Callable[[], float]) -> dict[str, Any]:
    """What one schedule does: fan the backlog out, then the poll cycle, leaving the held providers' due jobs to
    the workers. The command line's ``poll --once`` runs this too: a cycle that polled held providers itself
    would add its rate to the workers'.

    A providers document that does not load stops the polling, not the owed-publish sweep: verdicts already
    stored are sent, then the error fails the invocation (``PollerErrorsAlarm``)."""
    try:
        deps.providers()
    except ConfigurationError:
        deps.sweeper().run_cycle(time_left_s)
        raise
    fanned = fan_out(deps, time_left_s() - 10)
    # Providers whose due jobs are with the workers still get this cycle's owed-publish sweep and discovery.
    report = deps.poller().run_cycle(time_left_s, held=set(fanned.held))
    summary = {name: dict(vars(r)) for name, r in report.providers.items()}
    for name in fanned.failed:
        if name in summary:
            summary[name]["fan_out_failed"] = True
    logger.info(
        "poll cycle done",
        resolved=report.resolved,
        fanned_out=fanned.held,
        fan_out_failed=fanned.failed,
        providers=summary,
    )
    return {
        "resolved": report.resolved,
        "fanned_out": fanned.held,
        "fan_out_failed": fanned.failed,
        "providers": summary,
    }


@logger.inject_lambda_context(clear_state=True)
@log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return scheduled_cycle(dependencies(), lambda: context.get_remaining_time_in_millis() / 1000)
