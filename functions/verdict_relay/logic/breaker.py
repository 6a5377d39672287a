"""A circuit breaker: stop calling a service that keeps failing, and let one trial call find out when it is back.

Used per provider by the poller, and for SNS by the ingest pipeline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    """Closed until ``threshold`` consecutive failures (or one failure that trips it at once, like
    refused credentials); then open for ``cooldown_s``, when no request goes out; then half-open: one request
    goes out as a trial and the others are held back until it reports. A success closes the breaker, a failure
    opens it again. A trial that never reports (its invocation ended) is given up after another ``cooldown_s``,
    so the breaker cannot stay half-open."""

    def __init__(
        self, threshold: int = 3, cooldown_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self._threshold = threshold
        self._cooldown = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._open_for = cooldown_s
        """How long the current opening lasts: the cool-down, or longer when the service said when to return."""
        self._trial_at: float | None = None
        self._lock = threading.Lock()

    @property
    def is_closed(self) -> bool:
        """No failure run is being cooled down or tried: calls go out freely."""
        with self._lock:
            return self._opened_at is None

    @property
    def is_open(self) -> bool:
        """Open and cooling down: nothing may go out."""
        with self._lock:
            return self._opened_at is not None and self._clock() - self._opened_at < self._open_for

    def allow(self) -> bool:
        """Whether a request may go out now. In the half-open state the first caller takes the trial."""
        with self._lock:
            if self._opened_at is None:
                return True
            now = self._clock()
            if now - self._opened_at < self._open_for:
                return False
            if self._trial_at is not None and now - self._trial_at < self._cooldown:
                return False  # a trial is out
            self._trial_at = now
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_at = None

    def record_failure(self, trip: bool = False, retry_after_s: float | None = None) -> None:
        """A failure. ``retry_after_s``: the service said when to come back (a throttle's Retry-After); longer
        than the cool-down, it opens the breaker at once for that long, so no caller asks again before then."""
        with self._lock:
            self._failures += 1
            longer = retry_after_s is not None and retry_after_s > self._cooldown
            if trip or longer or self._failures >= self._threshold:
                self._opened_at = self._clock()
                self._open_for = max(self._cooldown, retry_after_s or 0.0)
                self._trial_at = None
