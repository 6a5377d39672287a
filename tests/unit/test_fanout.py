"""Fan-out planning: poll in one invocation while the backlog fits, split it for the workers when it doesn't."""

from __future__ import annotations

from verdict_relay.logic.fanout import MAX_BATCH_JOBS, capacity, drain_seconds, plan


def test_capacity_is_the_rate_limit_over_the_budget_with_headroom() -> None:
    assert capacity(rate_per_s=10, jobs_per_request=1, time_budget_s=50) == 400
    assert capacity(rate_per_s=50, jobs_per_request=10, time_budget_s=50) == 20_000
    assert capacity(rate_per_s=10, jobs_per_request=1, time_budget_s=-3) == 0


def test_backlog_that_fits_is_polled_here() -> None:
    result = plan("huawei-video", [f"j{i}" for i in range(400)], 10, 1, 50, 800)

    assert not result.fans_out


def test_backlog_beyond_one_invocation_is_split_so_each_batch_fits_a_workers_budget() -> None:
    due = [f"j{i}" for i in range(5000)]

    result = plan(
        "huawei-video",
        due,
        rate_per_s=10,
        jobs_per_request=1,
        time_budget_s=50,
        worker_budget_s=100,
    )

    assert result.fans_out
    # one worker at a time polls the provider, at its 10/s, for 100 s with 20 % headroom: 800 jobs a batch
    assert {len(b) for b in result.batches[:-1]} == {800}
    assert [j for batch in result.batches for j in batch] == due


def test_while_workers_hold_a_provider_even_a_small_backlog_goes_to_them() -> None:
    result = plan("huawei-video", ["j1", "j2"], 10, 1, 50, 100, always=True)

    assert result.batches == [["j1", "j2"]]


def test_nothing_due_sends_nothing() -> None:
    assert not plan("huawei-video", [], 10, 1, 50, 100, always=True).fans_out


def test_a_backlog_beyond_what_one_cycle_reads_fans_out_even_if_the_rate_would_allow_it() -> None:
    due = [f"j{i}" for i in range(3000)]

    result = plan("alibaba-mps", due, 50, 10, 50, 240, read_limit=2000)

    assert result.capacity == 2000
    assert result.fans_out


def test_a_fast_providers_backlog_is_split_into_batches_of_at_most_max_batch_jobs() -> None:
    due = [f"j{i}" for i in range(20_000)]

    # Alibaba's 50 requests/s of 10 jobs: 96,000 jobs in a 240 s budget, by rate alone.
    result = plan("alibaba-mps", due, 50, 10, 50, 240, read_limit=2000)

    assert {len(b) for b in result.batches} == {MAX_BATCH_JOBS}
    assert [j for batch in result.batches for j in batch] == due


def test_the_hold_lasts_as_long_as_the_workers_need_at_the_providers_rate() -> None:
    # 5,000 Huawei jobs at 10 requests/s with 20 % headroom: 625 s of polling (the hold adds a worker budget)
    assert drain_seconds(5000, rate_per_s=10, jobs_per_request=1) == 625
    # Alibaba answers ten jobs a request
    assert drain_seconds(5000, rate_per_s=50, jobs_per_request=10) == 12.5


def test_a_provider_faster_than_one_invocations_cpu_is_planned_at_the_invocations_pace() -> None:
    # Alibaba allows 500 jobs a second by rate; an invocation that polls 40 a second drains far slower.
    assert capacity(50, 10, 50, max_jobs_per_s=40) == 1600
    assert drain_seconds(20_000, 50, 10, max_jobs_per_s=40) == 625
    assert drain_seconds(20_000, 50, 10) == 50
    # A provider slower than the cap keeps its rate.
    assert drain_seconds(5000, 10, 1, max_jobs_per_s=40) == 625

    result = plan("alibaba-mps", [f"j{i}" for i in range(1800)], 50, 10, 50, 240, max_jobs_per_s=40)

    assert result.capacity == 1600
    assert result.fans_out


def test_a_provider_too_slow_for_one_job_in_a_workers_budget_is_still_split_a_request_a_batch() -> None:
    # rate_limit_per_s need only be above 0: at one request in 1,000 s a worker's budget holds none, and the
    # backlog is still handed out, a request's worth of jobs a batch, not refused with a ValueError
    planned = plan(
        "azure-review",
        list(range(5)),
        rate_per_s=0.001,
        jobs_per_request=1,
        time_budget_s=1,
        worker_budget_s=240,
    )

    assert planned.batches == [[0], [1], [2], [3], [4]]
