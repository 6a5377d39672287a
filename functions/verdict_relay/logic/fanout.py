"""When one poll invocation is not enough: how many jobs it can poll, and how the rest is split for workers.

A provider's ceiling is its rate limit: ``rate_per_s * jobs_per_request`` jobs per second (Alibaba answers ten
jobs per request, the others one). One invocation has ``time_budget_s`` seconds. When more jobs are due than the
invocation can poll in that time, they go out as per-provider batches on the poll queue. The queue is FIFO with
the provider as message group, so one worker at a time polls a provider, at the provider's whole rate limit
(several workers with a share each could together go over it: each share's bucket may spend its saved-up
request in the same second), less the share the scheduler's discovery keeps meanwhile for a provider that lists
its jobs (the caller passes the workers' ``rate_per_s``: ``Poller.workers_share``). A batch holds at most
``MAX_BATCH_JOBS`` jobs, so a fast provider's backlog becomes several messages rather than one too large for
SQS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

MAX_BATCH_JOBS = 1000
"""Jobs per batch at most, whatever the pace: one SQS message holds 256 KiB, and Alibaba's 50 requests/s of ten
jobs each over a 240 s budget would make a batch of tens of thousands of jobs."""

T = TypeVar("T")


@dataclass(frozen=True)
class FanoutPlan(Generic[T]):
    provider: str
    capacity: int
    """Jobs one invocation can poll in its time budget."""
    batches: list[list[T]]
    """Batches for the workers; empty when the invocation polls everything itself."""

    @property
    def fans_out(self) -> bool:
        return bool(self.batches)


def jobs_per_second(rate_per_s: float, jobs_per_request: int, max_jobs_per_s: float | None = None) -> float:
    """How fast one invocation polls a provider: its rate limit, or the invocation's own CPU when that is less
    (``max_jobs_per_s``: the poller spends a few milliseconds of CPU on each job, and a Lambda function has a
    share of a vCPU; Alibaba's 500 jobs a second by rate are beyond it)."""
    by_rate = rate_per_s * jobs_per_request
    return by_rate if max_jobs_per_s is None else min(by_rate, max_jobs_per_s)


def capacity(
    rate_per_s: float,
    jobs_per_request: int,
    time_budget_s: float,
    efficiency: float = 0.8,
    *,
    max_jobs_per_s: float | None = None,
) -> int:
    """Jobs one invocation can poll: its pace over the budget, with headroom for retries and latency."""
    pace = jobs_per_second(rate_per_s, jobs_per_request, max_jobs_per_s)
    return max(0, int(pace * max(0.0, time_budget_s) * efficiency))


def plan(
    provider: str,
    due: Sequence[T],
    rate_per_s: float,
    jobs_per_request: int,
    time_budget_s: float,
    worker_budget_s: float,
    always: bool = False,
    read_limit: int | None = None,
    max_jobs_per_s: float | None = None,
) -> FanoutPlan[T]:
    """Poll here if the backlog fits this invocation; otherwise (or ``always``) split it for the workers.

    One worker at a time polls a provider, at ``rate_per_s`` (or ``max_jobs_per_s``, see
    :func:`jobs_per_second`); a batch is what it polls in its budget at that pace, up to ``MAX_BATCH_JOBS``.
    """
    here = capacity(rate_per_s, jobs_per_request, time_budget_s, max_jobs_per_s=max_jobs_per_s)
    if read_limit is not None:
        here = min(here, read_limit)  # a cycle polls no more than it reads from the index
    if not due or (len(due) <= here and not always):
        return FanoutPlan(provider, here, [])
    per_worker = capacity(rate_per_s, jobs_per_request, worker_budget_s, max_jobs_per_s=max_jobs_per_s)
    per_worker = max(jobs_per_request, per_worker)
    per_worker = min(per_worker, MAX_BATCH_JOBS)
    batches = [list(due[i : i + per_worker]) for i in range(0, len(due), per_worker)]
    return FanoutPlan(provider, here, batches)


def drain_seconds(
    jobs: int, rate_per_s: float, jobs_per_request: int, max_jobs_per_s: float | None = None
) -> float:
    """How long a worker needs for ``jobs`` at the provider's pace, with the same headroom as
    :func:`capacity`. A hold adds one worker budget on top, once, for the batch that is picked up last."""
    per_second = max(jobs_per_second(rate_per_s, jobs_per_request, max_jobs_per_s) * 0.8, 1e-6)
    return jobs / per_second
