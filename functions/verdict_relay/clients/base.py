"""The port the poller talks to: fetch jobs from a provider's API, and discover finished jobs nobody registered.

Clients translate HTTP into canonical verdicts (through the provider's adapter) and into the typed errors below;
the poller never sees a status code or a provider's error body.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from verdict_relay.errors import ProviderApiError
from verdict_relay.models.verdict import Verdict

if TYPE_CHECKING:
    from verdict_relay.clients.ratelimit import TokenBucket

_deadline: ContextVar[float | None] = ContextVar("provider_request_deadline", default=None)


@contextmanager
def finish_within(seconds: float) -> Iterator[None]:
    """Requests made in this block (in this thread) do not start a retry they could not finish in ``seconds``.

    The poller sets it around each batch from the invocation's remaining time: a client then gives up on a
    5xx, 429 or connection failure rather than sleep and retry past the time it has, and the jobs stay due
    for the next run instead of the invocation being cut off in the middle of a batch.
    """
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def seconds_left() -> float | None:
    """Seconds until the deadline of the enclosing :func:`finish_within`; None outside one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


@dataclass(frozen=True)
class FetchedJob:
    verdict: Verdict
    raw: bytes
    """The provider's response body the verdict came from (kept for audit with terminal verdicts)."""


@dataclass(frozen=True)
class FetchResult:
    jobs: list[FetchedJob] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Job ids the provider says it does not know (AIS.0030, ResourceNotFound, NonExistIds): expired."""


class ProviderAuthError(ProviderApiError):
    """The provider refused our credentials: reported as such, not retried hot."""

    code = "provider_auth_failed"


class ProviderThrottledError(ProviderApiError):
    """The provider said slow down (429, Throttling) even after the client's own retries."""

    code = "provider_throttled"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailableError(ProviderApiError):
    """5xx, timeouts, connection failures: counts towards the provider's circuit breaker."""

    code = "provider_unavailable"


class ProviderOutOfTimeError(ProviderApiError):
    """The caller's time (:func:`finish_within`) ran out before the provider answered: says nothing of the
    provider's health, so it does not count towards its circuit breaker."""

    code = "provider_out_of_time"


class ProviderResponseError(ProviderApiError):
    """The provider answered with something we cannot read (malformed JSON, unexpected shape)."""

    code = "provider_bad_response"


class ProviderClient(ABC):
    """One provider's API as the poller needs it."""

    name: str
    max_batch: int = 1
    """How many job ids one fetch() call takes (Alibaba: JobIds per QueryMediaCensorJobList)."""
    discovers: bool = False
    """Whether discover() can list jobs; the poller keeps a discovery watermark only for those that can."""
    limiter: TokenBucket | None = None
    """The token bucket every request of the client takes its turn from. ``build_client`` (``clients/factory.py``)
    sets it to the bucket of the ``ProviderHttp`` it hands the client, whatever the provider: no client sets it
    itself. None only for a client built some other way (a test's stand-in); its :meth:`take_over` does nothing."""

    def take_over(self) -> None:
        """This client starts sending the provider's requests after another sender did: a poll worker after the
        scheduled poller or after a worker in another container, the poller after the workers' hold. The
        request its bucket saved up while idle is given up, so the provider sees the rate go on as from one
        bucket instead of that request on top of the other sender's last second."""
        if self.limiter is not None:
            self.limiter.spend_saved()

    @abstractmethod
    def fetch(self, job_ids: Sequence[str]) -> FetchResult:
        """The current state of up to ``max_batch`` jobs. Raises a ProviderApiError subclass on failure."""

    def discover(self, since: datetime, until: datetime) -> list[str]:
        """Ids of jobs that finished (or were created) in [since, until), for providers that can list them."""
        return []

    def close(self) -> None:  # noqa: B027 - an optional hook: clients without connections need nothing
        """Release connections."""
