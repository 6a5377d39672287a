"""The scheduled poller (EventBridge Scheduler, every minute): one poll cycle, fanning out when it must.

For each provider, if more jobs are due than this invocation can poll within its time and the provider's rate
limit, the due jobs go to the poll queue in batches (and are held back from the next schedules while the
workers have them); otherwise this invocation polls them itself. Either way the same ``Poller`` does the work.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from verdict_relay.config import rate_limit
from verdict_relay.dal.poll_queue import PollBatch
from verdict_relay.handlers.dependencies import Dependencies, dependencies
from verdict_relay.logic import fanout
from verdict_relay.observability import count, logger, metrics

FANOUT_SCAN_LIMIT = 20_000


def fan_out(deps: Dependencies, time_budget_s: float) -> dict[str, int]:
    """Send the backlog of providers that one invocation cannot poll to the workers; jobs sent per provider.

    While a provider's workers may still hold batches, all its due jobs go to them too: polling it here as well
    would add this invocation's rate to theirs and break the provider's limit.
    """
    queue = deps.poll_queue()
    if queue is None:
        return {}
    providers = deps.providers()
    poller = deps.poller()
    now = datetime.now(UTC)
    sent: dict[str, int] = {}
    for provider in poller.providers:
        due = [job.due() for job in deps.store.due_jobs(provider, now, FANOUT_SCAN_LIMIT)]
        workers_active = (deps.store.fanout_until(provider) or now) > now
        plan = fanout.plan(
            provider,
            due,
            rate_per_s=rate_limit(provider, providers.get(provider)),
            jobs_per_request=poller.batch_size(provider),
            time_budget_s=time_budget_s,
            worker_budget_s=deps.settings.poll_worker_budget_seconds,
            workers=deps.settings.poll_workers,
            always=workers_active,
            read_limit=poller.due_limit,
        )
        if not plan.fans_out:
            if workers_active:
                sent[provider] = 0  # nothing due, but the workers own this provider for now
            continue
        queue.send([PollBatch(provider=provider, jobs=batch) for batch in plan.batches])
        # Held back from the next schedules while the workers have them; if a worker fails they come due again.
        # Their poll counts stay, so the backoff goes on where it was.
        hold = now + timedelta(seconds=deps.settings.poll_worker_budget_seconds * 2)
        deps.store.set_fanout_until(provider, hold)
        for job in due:
            deps.store.reschedule(provider, job.job_id, hold, attempts=job.poll_attempts)
        sent[provider] = len(due)
        count("JobsFannedOut", provider, len(due))
        logger.info("backlog fanned out", provider=provider, jobs=len(due), batches=len(plan.batches))
    return sent


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = dependencies()

    def time_left_s() -> float:
        return context.get_remaining_time_in_millis() / 1000

    fanned = fan_out(deps, time_left_s() - 10)
    poller = deps.poller()
    report = poller.run_cycle(time_left_s, providers=[p for p in poller.providers if p not in fanned])
    summary = {name: vars(r) for name, r in report.providers.items()}
    logger.info("poll cycle done", resolved=report.resolved, fanned_out=fanned, providers=summary)
    return {"resolved": report.resolved, "fanned_out": fanned, "providers": summary}
