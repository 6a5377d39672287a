"""The token bucket on a fake clock: waits are exact and reproducible."""

from __future__ import annotations

import contextvars

import pytest

from verdict_relay.clients.ratelimit import Deferred, TokenBucket, mark_sent


class FakeClock:
    """A monotonic clock that only moves when something sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 9))
        self.now += seconds


def bucket(rate: float, burst: float, clock: FakeClock) -> TokenBucket:
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)


def test_a_full_bucket_lets_burst_requests_through_then_spaces_them_at_the_rate() -> None:
    clock = FakeClock()
    limiter = bucket(rate=20, burst=3, clock=clock)

    waits = [limiter.acquire() for _ in range(5)]

    assert waits == [0.0, 0.0, 0.0, pytest.approx(0.05), pytest.approx(0.05)]


def test_callers_arriving_together_queue_one_interval_apart() -> None:
    # Given three callers that reserve at the same instant (no time passes between them)
    clock = FakeClock()
    limiter = TokenBucket(10, 1, clock=clock, sleep=lambda _: None)

    waits = [limiter.acquire() for _ in range(3)]

    # Then each waits one more interval than the one before it
    assert waits == [0.0, pytest.approx(0.1), pytest.approx(0.2)]


def test_idle_time_beyond_a_full_bucket_is_not_credited() -> None:
    clock = FakeClock()
    limiter = bucket(rate=10, burst=1, clock=clock)
    limiter.acquire()

    clock.now += 60  # a long idle period fills the bucket to its burst, no further

    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(0.1)


def test_a_bucket_that_takes_over_gives_up_its_saved_request_but_keeps_its_queue() -> None:
    clock = FakeClock()
    idle = bucket(rate=10, burst=1, clock=clock)

    idle.spend_saved()  # full after idling: the first request now waits one interval, as if it followed another

    assert idle.acquire() == pytest.approx(0.1)
    busy = TokenBucket(10, 1, clock=clock, sleep=lambda _: None)
    busy.acquire(), busy.acquire()  # the second caller is queued 0.1 s ahead
    busy.spend_saved()  # a debt is not forgiven
    assert busy.acquire() == pytest.approx(0.2)


def test_a_deferred_bucket_sends_nothing_until_the_wait_is_over_then_goes_on_at_the_rate() -> None:
    clock = FakeClock()
    limiter = bucket(rate=10, burst=1, clock=clock)

    limiter.defer(2.0)  # the provider said: come back in 2 s

    assert limiter.acquire() == pytest.approx(2.1)
    assert limiter.acquire() == pytest.approx(0.1)
    limiter.defer(0.5)
    limiter.defer(0.1)  # a shorter wait does not shorten the longer one
    assert limiter.acquire() == pytest.approx(0.6)


def test_a_deferred_bucket_says_how_long_the_wait_still_lasts() -> None:
    clock = FakeClock()
    limiter = bucket(rate=10, burst=1, clock=clock)
    assert limiter.deferred_s() == 0.0

    limiter.defer(30.0)
    clock.now += 10
    limiter.defer(5.0)  # a shorter wait does not shorten the longer one

    assert limiter.deferred_s() == pytest.approx(20.0)
    clock.now += 25
    assert limiter.deferred_s() == 0.0


def test_a_caller_that_would_wait_out_a_longer_deferral_than_it_accepts_is_refused_without_a_token() -> None:
    clock = FakeClock()
    limiter = bucket(rate=10, burst=1, clock=clock)
    limiter.defer(30.0)

    # A caller that waits at most 5 s for a Retry-After is refused, with the time still to wait, taking nothing
    with pytest.raises(Deferred) as refused:
        limiter.acquire(max_deferral_s=5.0)
    assert refused.value.remaining_s == pytest.approx(30.0)
    assert clock.slept == []

    # and once the deferral is within what it accepts, it waits it out and takes its token
    clock.now += 27
    assert limiter.acquire(max_deferral_s=5.0) == pytest.approx(3.1)  # the 3 s left, then its turn at 10/s


def test_try_acquire_never_waits() -> None:
    clock = FakeClock()
    limiter = bucket(rate=5, burst=1, clock=clock)

    assert limiter.try_acquire() is True
    assert limiter.try_acquire() is False
    clock.now += 0.2
    assert limiter.try_acquire() is True
    assert clock.slept == []


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (10, 0.5)])
def test_a_bucket_that_could_never_admit_a_request_is_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match=r"rate_per_s|burst"):
        TokenBucket(rate, burst)


def test_a_token_that_would_take_longer_than_the_caller_can_wait_is_not_taken() -> None:
    clock = FakeClock()
    limiter = bucket(2.0, 1, clock)
    assert limiter.acquire(max_wait_s=-0.1) == 0.0  # the saved token, at hand, is taken whatever is left

    assert limiter.acquire(max_wait_s=0.4) is None  # the next accrues in 0.5 s
    assert clock.slept == []
    assert limiter.acquire(max_wait_s=0.5) == 0.5  # nothing was reserved by the refusal


def most_in_one_second(times: list[float]) -> int:
    """The most of ``times`` that any sliding one-second window holds (a provider counting requests a second)."""
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


@pytest.mark.parametrize("window", [None, 5], ids=["bucket-alone", "with-its-window"])
def test_a_request_whose_thread_woke_late_holds_back_the_ones_after_it_only_with_a_window(
    window: int | None,
) -> None:
    # Given a bucket at 5 % under a limit of 5 a second, as the factory makes it, whose second request's thread
    # wakes 100 ms after its token was due (another thread held the interpreter)
    clock = FakeClock()
    late = iter([0.1])

    def sleep(seconds: float) -> None:
        clock.sleep(seconds + next(late, 0.0))

    limiter = TokenBucket(4.75, 1, window=window, window_s=1 / 0.95, clock=clock, sleep=sleep)

    # When requests go out back to back, each when its wait ends
    left = []
    for _ in range(12):
        limiter.acquire()
        left.append(clock.now)

    # Then the bucket alone lets the ones queued behind the late one out on time, six in a second; with its
    # window, none goes out before fewer than 5 left in the 1.05 s before it
    assert most_in_one_second(left) == (6 if window is None else 5)


def test_a_window_holds_a_request_until_the_oldest_of_the_last_ones_is_a_window_old() -> None:
    clock = FakeClock()
    limiter = TokenBucket(100, 5, window=5, window_s=1.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(5):
        assert limiter.acquire() == 0.0
        clock.now += 0.1

    # The sixth is held until the first is a second old, the seventh until the second is
    assert limiter.acquire() == pytest.approx(0.5)
    assert clock.now == pytest.approx(start + 1.0)
    assert limiter.acquire() == pytest.approx(0.1)
    assert clock.now == pytest.approx(start + 1.1)


def test_a_window_wait_past_the_callers_time_gives_the_token_back() -> None:
    clock = FakeClock()
    limiter = TokenBucket(100, 2, window=1, window_s=1.0, clock=clock, sleep=clock.sleep)
    assert limiter.acquire() == 0.0

    # A request with 0.5 s to wait in all is refused without going out; its token is not lost
    assert limiter.acquire(max_wait_s=0.5) is None
    assert clock.now == pytest.approx(100.0)
    assert limiter.try_acquire() is False  # the window is still full
    clock.now += 1.0
    assert limiter.try_acquire() is True


def test_a_request_refused_for_its_window_gives_its_token_back_at_once() -> None:
    # Given a bucket at one request a second with two saved, and a window of one request, already taken
    clock = FakeClock()
    limiter = TokenBucket(1.0, 2, window=1, window_s=1.0, clock=clock, sleep=clock.sleep)
    assert limiter.acquire() == 0.0

    # When a request with a token at hand is refused unsent, its window full for longer than it may wait
    assert limiter.acquire(max_wait_s=0.5) is None

    # Then the token it took is back: the next request waits for the window only, not a second for a token
    assert limiter.wait_s() == 0.0


def test_a_share_of_the_rate_runs_the_bucket_and_its_window_at_that_share_until_it_ends() -> None:
    clock = FakeClock()
    limiter = TokenBucket(9.5, 1, window=10, window_s=10 / 9.5, clock=clock, sleep=clock.sleep)
    limiter.acquire()

    with limiter.shared(0.1):
        # A tenth of the rate: the next token comes ten intervals later, and one request at most in the window
        assert limiter.rate_per_s == pytest.approx(0.95)
        assert limiter.acquire() == pytest.approx(1 / 0.95)
        with limiter.shared(0.9):  # both senders' shares on this one bucket: their sum, the whole
            assert limiter.rate_per_s == pytest.approx(9.5)
        assert limiter.rate_per_s == pytest.approx(0.95)
        assert limiter.acquire() == pytest.approx(1 / 0.95)

    assert limiter.rate_per_s == pytest.approx(9.5)
    assert limiter.acquire() == pytest.approx(1 / 9.5)


def test_two_shares_that_add_up_to_the_whole_let_out_no_more_than_the_window_together() -> None:
    # Given the same provider's limit of 10 a second split between two senders, 90 % and 10 % (poll workers and
    # the scheduler's discovery), each a bucket of its own, and one whose thread wakes late now and then
    clock = FakeClock()
    late = iter([0.0, 0.3, 0.0, 0.2] * 10)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds + next(late, 0.0))

    workers, discovery = (
        TokenBucket(9.5, 1, window=10, window_s=10 / 9.5, clock=clock, sleep=sleep) for _ in range(2)
    )
    left = []
    with workers.shared(0.9), discovery.shared(0.1):
        # When each sends 20 requests back to back, taking turns as their waits end
        for bucket in [workers, discovery] * 20:
            bucket.acquire()
            left.append(clock.now)

    # Then no second holds more than the limit
    assert most_in_one_second(sorted(left)) <= 10


def test_shares_of_a_window_that_does_not_split_evenly_let_out_no_more_than_it_together() -> None:
    # Given two buckets for one provider whose window is 5 requests (a limit of 5 a second), with tokens to
    # spare, taking 90 % and 10 % of it
    clock = FakeClock()
    workers, discovery = (
        TokenBucket(100, 10, window=5, window_s=1.0, clock=clock, sleep=clock.sleep) for _ in range(2)
    )
    with workers.shared(0.9), discovery.shared(0.1):
        # When each tries ten requests at once
        sent = sum(bucket.try_acquire() for bucket in [workers] * 10 + [discovery] * 10)

    # Then the two windows, 4.5 rounded down and 0.5 raised to the one request a sender needs, make the limit
    assert sent == 5


def test_a_share_outside_0_and_1_is_refused() -> None:
    limiter = TokenBucket(10)
    with pytest.raises(ValueError, match="share"), limiter.shared(0):
        pass


def test_a_share_of_the_rate_lets_out_that_share_of_the_windows_requests() -> None:
    # Given a bucket with ten saved requests, at most ten a second, run at half its rate
    clock = FakeClock()
    limiter = TokenBucket(100, 10, window=10, window_s=1.0, clock=clock, sleep=clock.sleep)

    with limiter.shared(0.5):
        waits = [limiter.acquire() for _ in range(6)]

    # Then five go out at once, and the sixth a second after the first, saved requests or not
    assert waits == [0.0] * 5 + [pytest.approx(1.0)]


def test_a_request_whose_bytes_leave_late_is_counted_from_when_they_leave() -> None:
    # Given a bucket at 5 % under a limit of 5 a second, as the factory makes it, whose second request's thread
    # loses the interpreter between its turn and its write: its bytes leave 100 ms after it was let out
    clock = FakeClock()
    limiter = TokenBucket(4.75, 1, window=5, window_s=1 / 0.95, clock=clock, sleep=clock.sleep)
    sent = []

    def request() -> None:
        limiter.acquire()
        mark_sent()  # the HTTP layer, right before the request's bytes
        sent.append(clock.now)

    request()
    late_thread = contextvars.copy_context()
    late_thread.run(limiter.acquire)
    clock.now += 0.1
    late_thread.run(mark_sent)
    sent.append(clock.now)

    # When the requests after it go out back to back, each when its turn comes
    for _ in range(10):
        request()

    # Then no second holds more than the limit, as the requests left
    assert most_in_one_second(sorted(sent)) <= 5


def test_a_request_written_more_than_a_window_after_its_turn_still_counts() -> None:
    # Given the same bucket, and a request whose thread stalls 1.26 s between its turn and its write, while the
    # requests after it go out
    clock = FakeClock()
    limiter = TokenBucket(4.75, 1, window=5, window_s=1 / 0.95, clock=clock, sleep=clock.sleep)
    stalled = contextvars.copy_context()
    stalled.run(limiter.acquire)
    sent = []
    for index in range(12):
        limiter.acquire()
        mark_sent()
        sent.append(clock.now)
        if index == 5:  # 1.26 s after its turn
            stalled.run(mark_sent)  # its bytes leave now
            sent.append(clock.now)

    # Then no second holds more than the limit, as the requests left
    assert sent[6] - 100.0 > 1 / 0.95
    assert most_in_one_second(sorted(sent)) <= 5
