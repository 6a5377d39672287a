"""A circuit breaker: stop calling a service that keeps failing, and let one trial call find out when it is back.

Used per provider by the poller, and for SNS by the ingest pipeline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_RETRY_AFTER_S = 900.0
"""The longest a service's own "come back later" keeps the breaker open: a wrong or hostile header cannot stop
polling for longer than 15 minutes."""


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
        self._open_until: float | None = None
        """When the current opening ends (then a trial); None while closed."""
        self._not_before: float | None = None
        """Until when the service asked not to be called (a Retry-After). A success of a call that was already
        out when it said so does not end it, as it ends an opening."""
        self._trial_at: float | None = None
        self._trial_thread: int | None = None
        """The thread that took the half-open trial: only it may give the trial back (``release_trial``)."""
        self._tripped = False
        """The current opening came from a failure that trips it at once (refused credentials): waiting out its
        cool-down within one invocation, with the same credentials, would only be refused again."""
        self._lock = threading.Lock()

    @property
    def is_closed(self) -> bool:
        """No failure run is being cooled down or tried: calls go out freely."""
        with self._lock:
            return self._open_until is None and not self._asked_to_wait()

    @property
    def is_open(self) -> bool:
        """Open and cooling down, or asked to wait: nothing may go out."""
        with self._lock:
            return (
                self._open_until is not None and self._clock() < self._open_until
            ) or self._asked_to_wait()

    def _asked_to_wait(self) -> bool:
        return self._not_before is not None and self._clock() < self._not_before

    @property
    def tripped(self) -> bool:
        """Open since a failure that trips it at once (refused credentials), not yet closed by a success."""
        with self._lock:
            return self._tripped and self._open_until is not None

    def release_trial(self) -> None:
        """The calling thread's half-open trial ended without an outcome (its time ran out first, or it was not
        sent): another caller may take the trial at once, rather than after a whole cool-down. Nothing for a
        thread that does not hold the trial, so one trial at a time still goes out."""
        with self._lock:
            if self._trial_at is not None and self._trial_thread == threading.get_ident():
                self._trial_at = None
                self._trial_thread = None

    def wait_s(self) -> float:
        """Seconds until :meth:`allow` may say yes: 0 when it may now, and while a trial is out (its outcome
        may come at any moment)."""
        with self._lock:
            now = self._clock()
            return max([0.0, *(end - now for end in (self._open_until, self._not_before) if end is not None)])

    def allow(self) -> bool:
        """Whether a request may go out now. In the half-open state the first caller takes the trial."""
        with self._lock:
            if self._asked_to_wait():
                return False
            if self._open_until is None:
                return True
            now = self._clock()
            if now < self._open_until:
                return False
            if self._trial_at is not None and now - self._trial_at < self._cooldown:
                return False  # a trial is out
            self._trial_at = now
            self._trial_thread = threading.get_ident()
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._open_until = None
            self._trial_at = None
            self._tripped = False

    def record_failure(self, trip: bool = False, retry_after_s: float | None = None) -> None:
        """A failure. ``retry_after_s``: the service said when to come back (a throttle's Retry-After): the
        breaker opens at once until then (at most ``MAX_RETRY_AFTER_S``), so no caller asks before. An opening
        is never shortened by a later one, nor that wait by a success of a call already out."""
        with self._lock:
            self._failures += 1
            if retry_after_s is not None and retry_after_s > 0:
                open_for = min(retry_after_s, MAX_RETRY_AFTER_S)
                not_before = self._clock() + open_for
                self._not_before = max(not_before, self._not_before or not_before)
            elif trip or self._failures >= self._threshold:
                open_for = self._cooldown
            else:
                return
            self._tripped = self._tripped or trip
            until = self._clock() + open_for
            self._open_until = max(until, self._open_until or until)
            self._trial_at = None
