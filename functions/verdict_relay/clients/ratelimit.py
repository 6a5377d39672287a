"""A thread-safe token bucket: how a provider client stays under the provider's request-rate limit.

Tokens accrue at ``rate_per_s`` up to ``burst``; every request on the wire takes one. ``acquire`` reserves the
next token under a lock and sleeps outside it, so threads are served in arrival order and one slow waiter
never blocks the others' bookkeeping. Time is the monotonic clock: a wall-clock step (NTP) cannot release a
burst.

In any window of T seconds a bucket lets through at most ``burst + rate_per_s * T`` tokens. A provider that
counts a sliding one-second window therefore sees at most ``rate_per_s + 1`` with ``burst=1`` if request
arrival times jitter; :mod:`verdict_relay.clients.factory` runs buckets a little under the documented limit
for that reason. That holds for the times tokens are due, not for the times requests leave: a thread whose
token is due wakes when the interpreter lets it (another thread parsing a large answer holds it for a while),
and the requests queued behind it leave on time, close behind it. So a bucket made with ``window`` (at most
that many requests in any ``window_s``) also lets a request out only once the window since the sends before
it allows one, checked again after its wait: a late one holds back those after it. Each request is counted
from when its bytes leave (the HTTP layer calls :func:`mark_sent` right before it writes them): one whose
thread lost the interpreter between that check and its write counts from its write, and until then as
leaving now, so none after it can slip in ahead of its real time; one its caller gave up (:func:`abandon`)
counts from its check.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar


class Deferred(Exception):
    """A Retry-After holds the bucket back longer than the caller would wait (:meth:`TokenBucket.acquire`)."""

    def __init__(self, remaining_s: float) -> None:
        super().__init__(f"deferred for {remaining_s:.1f} s more")
        self.remaining_s = remaining_s


class _Slot:
    """One request in a bucket's window: when it was let out (its check), and when its bytes left (``sent``)."""

    __slots__ = ("at", "sent")

    def __init__(self, at: float) -> None:
        self.at = at
        self.sent = False


_unsent: ContextVar[tuple[TokenBucket, _Slot] | None] = ContextVar("unsent", default=None)
"""The slot of the request this thread was last let out for, until its bytes leave (:func:`mark_sent`)."""


def mark_sent() -> None:
    """The request this thread was last let out for is leaving now (or failed before it could): its place in
    its bucket's window is timed from now. Does nothing the second time, nor without a window."""
    pending = _unsent.get()
    if pending is not None:
        _unsent.set(None)
        bucket, slot = pending
        bucket._stamp(slot)


UNWRITTEN_FOR_S = 60.0
"""How long a request let out and not yet written counts as leaving now: well past any stall of its thread
between its turn and its write (every request let out is written, or fails, within its timeouts); past it, a
request that was never written (a slot left by a path that neither wrote nor abandoned it) stops holding the
window back."""


def abandon() -> None:
    """A request this thread was let out for and did not write (its caller took another turn instead, or gave
    up): it counts from when it was let out, as if it had left then."""
    pending = _unsent.get()
    if pending is not None:
        _unsent.set(None)
        pending[1].sent = True


class TokenBucket:
    """``rate_per_s`` tokens per second, at most ``burst`` saved up; ``acquire`` blocks until one is free."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float = 1.0,
        *,
        window: int | None = None,
        window_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        if not burst >= 1:
            raise ValueError(f"burst must be at least 1 (one request), got {burst}")
        if window is not None and (window < 1 or not window_s > 0):
            raise ValueError(
                f"window must allow at least 1 request in a positive time, got {window} in {window_s}"
            )
        self.rate_per_s = float(rate_per_s)
        self._full_rate_per_s = self.rate_per_s
        self._shares: list[float] = []
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Start full: the first `burst` requests go out at once, as they would after an idle period.
        self._tokens = self.burst
        self._updated = clock()
        self._deferred_until = self._updated
        self.window = window
        self.window_s = window_s
        # The requests let out within the last window (:meth:`_leave`), and how many a window takes now.
        self._left: list[_Slot] | None = [] if window is not None else None
        self._window_now = window or 0

    def acquire(self, max_wait_s: float | None = None, max_deferral_s: float | None = None) -> float | None:
        """Take one token, sleeping until it has accrued (and, with a ``window``, until the window allows the
        request). Returns the seconds waited; None, without taking a token, when the wait would be longer than
        ``max_wait_s`` (found before waiting for the token, or after it, for the window: then the token is given
        back). Raises :class:`Deferred`, without taking one either, while a :meth:`defer` holds the bucket back
        longer than ``max_deferral_s`` (checked under the lock, so a defer cannot slip in between that check and
        the token's reservation)."""
        with self._lock:
            self._refill()
            if max_deferral_s is not None and self._deferred_until - self._updated > max_deferral_s:
                raise Deferred(self._deferred_until - self._updated)
            # Reserve the token now, even if it has not accrued yet: the balance goes negative and the debt is
            # this caller's wait. Later callers queue behind it, each a 1/rate further on.
            wait = (1.0 - self._tokens) / self.rate_per_s if self._tokens < 1.0 else 0.0
            if max_wait_s is not None and wait > max(max_wait_s, 0.0):  # a token at hand is always taken
                return None
            self._tokens -= 1.0
        if wait > 0:
            self._sleep(wait)
        return wait if self._left is None else self._leave(wait, max_wait_s)

    def _leave(self, waited: float, max_wait_s: float | None) -> float | None:
        """Let the request that holds a token out once fewer than ``window`` requests left in the last
        ``window_s``, as timed now (however late its thread woke), each counted from when its bytes left: the
        seconds waited in all, or None, its token given back, if that would be past ``max_wait_s``. Its own
        slot is timed when it leaves (:func:`mark_sent`)."""
        abandon()  # one this thread was let out for before and never wrote (no request left for it)
        while True:
            with self._lock:
                now = self._clock()
                hold = self._hold(now)
                if hold <= 0:
                    left = self._left
                    assert left is not None
                    slot = _Slot(now)
                    left.append(slot)
                    _unsent.set((self, slot))
                    return waited
                if max_wait_s is not None and waited + hold > max(max_wait_s, 0.0):
                    self._refill()
                    self._tokens = min(self.burst, self._tokens + 1.0)
                    return None
            self._sleep(hold)
            waited += hold

    def _hold(self, now: float) -> float:
        """How much longer the window is full: 0 once fewer than its requests left in the last ``window_s``,
        each counted from when its bytes left; one not yet written as leaving now (it leaves no earlier, however
        long its thread stalls), unless ``UNWRITTEN_FOR_S`` has passed since it was let out (no request takes
        that long to its write: one that never came). The requests that left longer ago are forgotten."""
        left = self._left
        assert left is not None
        times = [slot.at if slot.sent or now - slot.at >= UNWRITTEN_FOR_S else now for slot in left]
        recent = [(at, slot) for at, slot in zip(times, left, strict=True) if now - at < self.window_s]
        left[:] = [slot for _, slot in recent]
        if len(recent) < self._window_now:
            return 0.0
        # The window's worth of latest ones: the earliest of them must be a window old
        latest = sorted(at for at, _ in recent)[-self._window_now]
        return self.window_s - (now - latest)

    def _stamp(self, slot: _Slot) -> None:
        with self._lock:
            slot.at = self._clock()
            slot.sent = True

    @contextlib.contextmanager
    def shared(self, fraction: float) -> Iterator[None]:
        """Within it, run at ``fraction`` of the bucket's rate, and of its window's requests (rounded down, at
        least one): another sender has the rest of the provider's limit meanwhile (``DISCOVERY_RATE_SHARE``),
        and two shares that add up to the whole, in two buckets, let out no more than the window's requests
        together (a window of one cannot be split: the caller does not share it). Several shares in force on
        one bucket are those senders' together, as where they share one process (the local stack): the bucket
        runs at their sum, at most the whole."""
        if not 0 < fraction <= 1:
            raise ValueError(f"a share of the rate is within (0, 1], got {fraction}")
        with self._lock:
            self._shares.append(fraction)
            self._apply_share()
        try:
            yield
        finally:
            with self._lock:
                self._shares.remove(fraction)
                self._apply_share()

    def _apply_share(self) -> None:
        self._refill()
        share = min(1.0, sum(self._shares)) if self._shares else 1.0
        self.rate_per_s = self._full_rate_per_s * share
        if self.window is not None:
            self._window_now = max(1, math.floor(self.window * share))

    def try_acquire(self) -> bool:
        """Take a token only if one is available now (and the window allows a request); never waits."""
        with self._lock:
            self._refill()
            now = self._updated
            if self._tokens < 1.0 or (self._left is not None and self._hold(now) > 0):
                return False
            self._tokens -= 1.0
            if self._left is not None:
                slot = _Slot(now)
                slot.sent = True  # no HTTP layer to say when: counted from now
                self._left.append(slot)
            return True

    def defer(self, wait_s: float) -> None:
        """Send nothing for ``wait_s`` seconds (a provider's Retry-After): every caller's next token comes after
        it, not only the one that was told."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, -wait_s * self.rate_per_s)
            self._deferred_until = max(self._deferred_until, self._updated + wait_s)

    def wait_s(self) -> float:
        """How long a token taken now would be waited for (a Retry-After's hold included); nothing is taken."""
        with self._lock:
            self._refill()
            return (1.0 - self._tokens) / self.rate_per_s if self._tokens < 1.0 else 0.0

    def deferred_s(self) -> float:
        """How much longer a :meth:`defer` holds every request back (0 when none does)."""
        with self._lock:
            return max(0.0, self._deferred_until - self._clock())

    def spend_saved(self) -> None:
        """Give up the tokens saved while idle (a debt of reserved ones stays): from now on, requests go out at
        the rate, as if this bucket had sent the previous one."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 0.0)

    def _refill(self) -> None:
        now = self._clock()
        # Capped at `burst`: time spent idle (or oversleeping) beyond a full bucket is not credited.
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now

    def __repr__(self) -> str:
        window = f", window={self.window}, window_s={self.window_s}" if self.window is not None else ""
        return f"TokenBucket(rate_per_s={self.rate_per_s}, burst={self.burst}{window})"
