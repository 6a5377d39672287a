"""HTTP plumbing every provider client shares: one ``requests`` session per provider, timeouts, retries, the
rate limiter, and the mapping of failures onto the typed errors of :mod:`verdict_relay.clients.base`.

How a request goes out (:meth:`ProviderHttp.send`):

* The caller passes a *factory* that builds and signs the request. It is called again for every attempt, so a
  retry carries a fresh date and nonce: Alibaba refuses a reused ``x-acs-signature-nonce`` / ``SignatureNonce``
  (``SignatureNonceUsed``), so re-sending the first attempt's bytes, as a pool-level urllib3 retry would, fails
  on the real API. The official tea-openapi SDK re-signs inside its retry loop for the same reason.
* The loop is driven by a urllib3 :class:`~urllib3.util.retry.Retry` policy (:class:`ProviderRetry`):
  idempotent GETs are retried on 429/500/502/503/504 with exponential backoff plus jitter, and on connection
  failures; ``Retry-After`` is honoured, and so is Alibaba's ``x-acs-retry-after`` (milliseconds, as the
  tea-openapi SDK reads it; MPS throttles with HTTP 400 and that header, which is retried like a 429, where
  another 400 with a ``Retry-After`` is not). A wait longer than ``max_retry_wait_s`` is not slept through:
  the answer is returned and becomes :class:`ProviderThrottledError` with the provider's ``retry_after``.
  Either way the wait holds back the client's every request, not only the one told: the bucket is deferred
  until it ends (for a 429 or 503, and for any error answer with ``x-acs-retry-after``, as tea-openapi takes
  each for a throttle), and a request that would wait longer than ``max_retry_wait_s`` for that is refused
  unsent, as :class:`ProviderThrottledError` with the time still to wait; so is one that was already waiting
  for its token when the answer came. Inside
  :func:`~verdict_relay.clients.base.finish_within` (the poller's remaining time), a retry whose wait and
  attempt would end past the deadline is not started either: the last answer or failure is reported. Any
  attempt's timeouts are cut to the time left, and none starts with less than ``MIN_ATTEMPT_S`` left
  (:class:`ProviderOutOfTimeError`: the caller's time, not the provider's health).
* Read timeouts are not retried: a provider that did not answer within the read timeout is reported as
  unavailable at once, so one slow provider cannot hold a poller for several timeouts.
* The answer is streamed (``stream=True``) and its body read in chunks against the clock: ``requests``'
  read timeout bounds each socket read, not the whole answer, so a body trickling a byte a second would never
  be cut off. The body must be whole within the read timeout of its headers arriving (a body of its own
  budget: a provider slow to answer but quick to send is not cut off), cut to the time left inside a
  ``finish_within``: before each socket read the socket's timeout is set to the time still left, so a read
  blocked at the deadline ends then.
  Later is :class:`ProviderUnavailableError` (:class:`ProviderOutOfTimeError` when the caller's deadline was
  the shorter), not retried, like a read timeout. The headers themselves are bounded only by the read timeout
  of each socket read, as before. A body larger than ``max_answer_bytes`` (``MAX_ANSWER_BYTES``, 32 MiB, by
  default; by its ``Content-Length`` before any of it is read, else as it arrives, decompressed) is
  :class:`ProviderResponseError`. A connection broken mid-body is retried like a connection failure. The
  response is closed on every path: read whole, its connection is back in the pool for reuse; cut off, the
  connection is closed and its pool slot freed. The body is read inside the concurrency cap below, as its
  connection is in use until then.
* Every request on the wire, retries included, takes a token from the provider's
  :class:`~verdict_relay.clients.ratelimit.TokenBucket` once its connection is up (connected, TLS handshake
  done), right before its bytes are written (:class:`_TokenOnceConnected`, in the adapter's connection pools),
  and urllib3 itself never retries (``max_retries=0``), so one adapter send is exactly one request on the wire.
  In-flight requests are capped at ``max_concurrency`` (a semaphore around the whole exchange) and the
  connection pool holds that many connections, so a request never waits for a connection either: the moment a
  token is taken is the moment the request leaves, whether its connection was pooled or had to be opened (a
  token taken before a handshake with a distant region would let the provider see requests closer together
  than the bucket spaced them).

This module imports ``requests``; handlers import the clients only when they poll, never at cold start.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import DecodeError, MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from verdict_relay.clients.base import (
    ProviderAuthError,
    ProviderOutOfTimeError,
    ProviderResponseError,
    ProviderThrottledError,
    ProviderUnavailableError,
    seconds_left,
)
from verdict_relay.clients.ratelimit import Deferred, TokenBucket, abandon, mark_sent
from verdict_relay.errors import ProviderApiError, VerdictRelayError
from verdict_relay.models.verdict import Verdict
from verdict_relay.providers.base import ProviderAdapter, without_lone_surrogates

DEFAULT_CONNECT_TIMEOUT_S = 2.0
DEFAULT_READ_TIMEOUT_S = 5.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MIN_ATTEMPT_S = 1.0
"""Inside a deadline, no request is started with less time left than this."""
ALIBABA_RETRY_AFTER_HEADER = "x-acs-retry-after"
MAX_DEFER_S = 900.0
"""The longest a provider's Retry-After holds a client's requests back (as it does the poller's breaker): a
wrong or hostile header cannot stop a warm container's client for longer."""
MAX_ANSWER_BYTES = 32 * 1024 * 1024
"""The largest answer body read from a provider: some 60 times a 2-hour Huawei video's answer (about 0.5 MB),
so only a broken or hostile endpoint meets it; it keeps such an answer from filling a 512 MB Lambda."""
_CHUNK_BYTES = 64 * 1024
_MAX_DETAIL = 200


@dataclass(frozen=True)
class HttpOptions:
    """How a provider client talks HTTP. The defaults suit a poller Lambda; tests shorten the waits."""

    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    retries: int = 3
    """Retries after the first attempt (status and connection failures together)."""
    backoff_factor: float = 0.25
    backoff_jitter: float = 0.25
    backoff_max_s: float = 4.0
    max_retry_wait_s: float = 5.0
    """A Retry-After longer than this is not waited for: the call fails with ProviderThrottledError."""
    rate_headroom: float = 0.05
    """Fraction of the provider's limit left unused, so arrival jitter never tips a sliding window over."""
    burst: float = 1.0
    user_agent: str = "verdict-relay/0.1"
    max_answer_bytes: int = MAX_ANSWER_BYTES
    """An answer body larger than this is refused (ProviderResponseError) instead of being read."""

    def __post_init__(self) -> None:
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.retries < 0 or self.max_retry_wait_s < 0:
            raise ValueError("retries and max_retry_wait_s must not be negative")
        if not 0 <= self.rate_headroom < 1:
            raise ValueError("rate_headroom must be within [0, 1)")
        if self.max_answer_bytes < 1:
            raise ValueError("max_answer_bytes must be positive")

    def retry_policy(self) -> ProviderRetry:
        return ProviderRetry(
            total=self.retries,
            connect=self.retries,
            # Read errors here are dropped keep-alive connections (ProtocolError); read timeouts never retry.
            read=1,
            status=self.retries,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"GET", "HEAD"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=self.backoff_factor,
            backoff_jitter=self.backoff_jitter,
            backoff_max=self.backoff_max_s,
            respect_retry_after_header=True,
            raise_on_status=False,
        )

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a provider asked for: ``x-acs-retry-after`` (milliseconds) or ``Retry-After`` (seconds or an
    HTTP date). None when neither is present or readable; never negative."""
    alibaba = _header(headers, ALIBABA_RETRY_AFTER_HEADER)
    if alibaba is not None:
        try:
            milliseconds = int(alibaba.strip())
        except ValueError:
            milliseconds = 0
        if milliseconds > 0:  # tea-openapi ignores zero, negative and unreadable values alike
            return milliseconds / 1000.0
    value = _header(headers, "Retry-After")
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def asked_to_wait(status: int, headers: Mapping[str, str]) -> float | None:
    """The wait an error answer asks for: a 429 or 503 with ``Retry-After`` or ``x-acs-retry-after``, or any
    other error answer with ``x-acs-retry-after``, which tea-openapi takes for a throttle whatever the status (MPS
    throttles with a 400). None for an answer that asks for no wait, or a success."""
    if status in (429, 503) or (status >= 400 and _header(headers, ALIBABA_RETRY_AFTER_HEADER) is not None):
        return retry_after_seconds(headers)
    return None


class ProviderRetry(Retry):
    """urllib3's Retry, reading Alibaba's ``x-acs-retry-after`` as well as ``Retry-After``, and retrying a 400
    that carries one after its wait: MPS answers ``Throttling`` with HTTP 400 and the header."""

    RETRY_AFTER_STATUS_CODES = frozenset({400, *Retry.RETRY_AFTER_STATUS_CODES})

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        return retry_after_seconds(response.headers)


@dataclass(frozen=True)
class OutgoingRequest:
    """One attempt, built (and signed) by a client's request factory."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


RequestFactory = Callable[[], OutgoingRequest]


@dataclass(frozen=True)
class HttpResponse:
    """A provider's final answer after retries: status, case-insensitive headers, body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None if it is not one (not UTF-8, not JSON, nested past json's limit,
        or another JSON value): what an error body is read through."""
        try:
            payload = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return payload if isinstance(payload, dict) else None


def code_and_message(code: object, message: object) -> tuple[str | None, str | None]:
    """An error body's code and message as text, each None where the body has none."""
    return (str(code) if code is not None else None, str(message) if message is not None else None)


_answer_wait_cut: ContextVar[bool] = ContextVar("answer_wait_cut", default=False)
"""Set when :class:`_AnswerWithinDeadline` cut a request's wait for its answer to the caller's time left."""


class _AnswerWithinDeadline:
    """Mixed into the pool's connections: inside a :func:`~verdict_relay.clients.base.finish_within`, the wait
    for the answer's headers is cut to the time left then. The read timeout was set before the request waited
    for its token (once connected: :class:`_TokenOnceConnected`), and that wait may have used some of it.

    Each request is also counted in its bucket's window from when its first bytes are written
    (:func:`~verdict_relay.clients.ratelimit.mark_sent`), or from when it failed before any were."""

    timeout: float | None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().request(*args, **kwargs)  # type: ignore[misc]
        finally:
            mark_sent()  # a request that failed before writing anything: counted from now

    def send(self, data: Any) -> None:
        mark_sent()  # the request's first bytes (the later ones find it done)
        super().send(data)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        left = seconds_left()
        if left is not None and (self.timeout is None or self.timeout > left):
            self.timeout = max(left, 0.001)  # 0 would make the socket non-blocking
            _answer_wait_cut.set(True)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_AnswerWithinDeadline, HTTPConnection):
    pass


class _HTTPSConnection(_AnswerWithinDeadline, HTTPSConnection):
    pass


class _TokenOnceConnected:
    """Mixed into the adapter's connection pools: each request takes its token from the bucket once its
    connection is up (connected, and for HTTPS its TLS handshake done), right before its bytes are written.
    Taken before connecting, a token would be spent while the connection was made: a request on a new
    connection would leave a handshake later than one on a pooled connection, and the requests the bucket
    spaced out could reach the provider closer together than its limit (a handshake with a distant region
    takes longer than the bucket's margin). ``_validate_conn`` is urllib3's hook "called right before a
    request is made"; a plain HTTP connection would connect only inside the request, so it connects here."""

    take_token: Callable[[], None]

    def _validate_conn(self, conn: Any) -> None:
        super()._validate_conn(conn)  # type: ignore[misc]
        if conn.is_closed:
            conn.connect()
        self.take_token()


class RateLimitedAdapter(HTTPAdapter):
    """An HTTPAdapter that takes a token from the provider's bucket for every request it sends, once the
    request's connection is up (:class:`_TokenOnceConnected`).

    urllib3 retries nothing here (``max_retries=0``), so each ``send`` is one request on the wire. While the
    provider's Retry-After holds the bucket back for longer than ``max_deferral_wait_s``, a request is refused
    unsent (ProviderThrottledError) instead of waiting it out or going out inside it.
    """

    def __init__(self, limiter: TokenBucket, pool_maxsize: int, max_deferral_wait_s: float) -> None:
        self.limiter = limiter
        self.max_deferral_wait_s = max_deferral_wait_s
        # One host: the provider's API (a Huawei IAM user's token requests have a session of their own).
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, pool_block=True, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        take_token = self._take_token
        pools = {
            "http": type(
                "RateLimitedHTTPPool",
                (_TokenOnceConnected, HTTPConnectionPool),
                {"ConnectionCls": _HTTPConnection, "take_token": staticmethod(take_token)},
            ),
            "https": type(
                "RateLimitedHTTPSPool",
                (_TokenOnceConnected, HTTPSConnectionPool),
                {"ConnectionCls": _HTTPSConnection, "take_token": staticmethod(take_token)},
            ),
        }
        self.poolmanager.pool_classes_by_scheme = pools

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        # Inside a finish_within, the timeouts are cut to the time left, so that no request waits past it: the
        # connection's now, the wait for its token (once connected) only while it would still have
        # MIN_ATTEMPT_S left afterwards, and the wait for the answer to the time left once it is sent.
        left = seconds_left()
        self._refuse_unsendable(left)
        cut = False
        if left is not None:
            connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
            if connect is not None and read is not None and connect + read > left:
                connect = min(connect, max(left, 0.0) / 2)
                timeout, cut = (connect, max(left - connect, 0.0)), True
        answer_wait_cut = _answer_wait_cut.set(False)
        try:
            return super().send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
        except requests.Timeout as exc:
            if cut or _answer_wait_cut.get():  # the caller's time ran out, not the provider's patience
                raise ProviderOutOfTimeError("no answer in the time left") from exc
            raise
        finally:
            _answer_wait_cut.reset(answer_wait_cut)

    def _refuse_unsendable(self, left: float | None) -> None:
        """Refuse, before a connection is opened for it, a request :meth:`_take_token` would refuse as things
        stand: a provider that asked to be left alone is not sent a handshake either, and the caller's time is
        not spent on one. Its token is still taken once connected, and a request another one overtook meanwhile
        can still be refused then."""
        deferred = self.limiter.deferred_s()
        if deferred > self.max_deferral_wait_s:
            raise _not_sent(deferred)
        if left is not None and self.limiter.wait_s() > max(left - MIN_ATTEMPT_S, 0.0):
            raise ProviderOutOfTimeError(_NO_TIME_FOR_RATE_LIMIT)

    def _take_token(self) -> None:
        """Take a token, once no Retry-After holds the bucket back (refused unsent while one holds it back
        longer than ``max_deferral_wait_s``). A Retry-After read while this request slept for a token reserved
        before it holds this request back too: it takes a token again, behind the wait."""
        while True:
            left = seconds_left()
            try:
                waited = self.limiter.acquire(
                    max_wait_s=None if left is None else left - MIN_ATTEMPT_S,
                    max_deferral_s=self.max_deferral_wait_s,
                )
            except Deferred as exc:
                abandon()  # a turn taken before this one, not written
                raise _not_sent(exc.remaining_s) from None
            if waited is None:
                abandon()
                raise ProviderOutOfTimeError(_NO_TIME_FOR_RATE_LIMIT)
            if self.limiter.deferred_s() <= 0:
                return


_NO_TIME_FOR_RATE_LIMIT = "no time left to wait for the provider's rate limit"


def _not_sent(remaining_s: float) -> ProviderThrottledError:
    """A request refused unsent while the provider's Retry-After holds the bucket back ``remaining_s`` more."""
    return ProviderThrottledError(
        f"asked to come back in {remaining_s:.0f} s; not sent", retry_after=remaining_s
    )


class ProviderHttp:
    """One provider's HTTP session: pooled connections, rate limit, concurrency cap, retries, timeouts."""

    def __init__(
        self,
        provider: str,
        limiter: TokenBucket,
        options: HttpOptions | None = None,
        max_concurrency: int = 4,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.provider = provider
        self.limiter = limiter
        self.options = options or HttpOptions()
        self._in_flight = threading.BoundedSemaphore(max_concurrency)
        self._session = requests.Session()
        # Proxies, .netrc and REQUESTS_CA_BUNDLE from the environment stay out: the endpoint is configured.
        self._session.trust_env = False
        self._session.headers["User-Agent"] = self.options.user_agent
        adapter = RateLimitedAdapter(
            limiter, pool_maxsize=max_concurrency, max_deferral_wait_s=self.options.max_retry_wait_s
        )
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def send(self, factory: RequestFactory) -> HttpResponse:
        """Send the request ``factory`` builds, retrying per the policy; the final answer, whatever its status.

        Raises ProviderUnavailableError for timeouts and connection failures that outlast the retries.
        """
        retry = self.options.retry_policy()
        while True:
            timeout, capped = self._attempt_timeout()
            outgoing = factory()
            try:
                with self._in_flight:  # held while the body is read: its connection is in use until then
                    raw = self._session.request(
                        outgoing.method,
                        outgoing.url,
                        headers=dict(outgoing.headers),
                        data=outgoing.body or None,
                        timeout=timeout,
                        allow_redirects=False,
                        stream=True,
                    )
                    try:
                        body = self._read_body(raw)
                    finally:
                        raw.close()  # read whole: back to the pool; cut off: closed, and its pool slot freed
            except requests.RequestException as exc:
                if capped and isinstance(exc, requests.Timeout):
                    raise ProviderOutOfTimeError(
                        f"{self.provider}: the time left ran out waiting for an answer"
                    ) from exc
                retry = self._after_failure(retry, outgoing, exc)
                if not self._time_to_retry(retry, None):
                    raise ProviderUnavailableError(
                        f"{self.provider}: {_describe(exc)}; no time left to retry"
                    ) from exc
                retry.sleep()
                continue
            response = HttpResponse(raw.status_code, raw.headers, without_lone_surrogates(body))
            wait = asked_to_wait(raw.status_code, raw.headers)
            if wait is not None:
                # Told to come back later: the client's other requests wait too, those already past the poller's
                # breaker or waiting for a token included; one that would wait longer than a retry would is
                # refused unsent.
                self.limiter.defer(min(wait, MAX_DEFER_S))
            if not retry.is_retry(outgoing.method, raw.status_code, has_retry_after=wait is not None):
                return response
            if wait is not None and wait > self.options.max_retry_wait_s:
                return response  # not worth blocking a poller for: reported as throttled with retry_after
            try:
                retry = retry.increment(outgoing.method, outgoing.url, response=raw.raw)
            except MaxRetryError:
                return response
            if not self._time_to_retry(retry, raw.raw):
                return response  # reported like the last attempt's answer; the jobs stay due
            retry.sleep(raw.raw)

    def _read_body(self, raw: requests.Response) -> bytes:
        """The body of a streamed answer, whole within the read timeout of its headers arriving (cut to the
        deadline of an enclosing :func:`~verdict_relay.clients.base.finish_within`) and at most
        ``max_answer_bytes``. A broken connection is raised as requests raises it, to be retried like one."""
        limit = self.options.max_answer_bytes
        declared = raw.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise ProviderResponseError(
                f"{self.provider}: an answer of {int(declared)} bytes is over the {limit}-byte limit"
            )
        # The body's own read timeout, from its headers: connecting and the provider's time to answer are
        # bounded by the connect and (per socket read) read timeouts, as before.
        own_end = time.monotonic() + self.options.read_timeout_s
        left = seconds_left()
        caller_end = None if left is None else time.monotonic() + left
        end = own_end if caller_end is None else min(own_end, caller_end)
        late: ProviderApiError = (
            ProviderOutOfTimeError(f"{self.provider}: the time left ran out reading the answer")
            if caller_end is not None and caller_end < own_end
            else ProviderUnavailableError(
                f"{self.provider}: the answer was not whole within {self.options.read_timeout_s:g} s"
            )
        )
        stream = raw.raw
        # Each socket read waits at most until the body's deadline (urllib3 sets the socket's timeout afresh for
        # the connection's next request), so a read blocked then ends by itself: no thread watches the clock.
        connection = getattr(stream, "connection", None)
        sock = getattr(connection, "sock", None)
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise late
            if sock is not None:
                with contextlib.suppress(OSError):  # closed meanwhile: the read below reports it
                    sock.settimeout(min(remaining, self.options.read_timeout_s))
            try:
                chunk = stream.read1(_CHUNK_BYTES, decode_content=True)
            except ReadTimeoutError as exc:  # a socket read outlasted what was left
                raise late from exc
            except DecodeError as exc:
                raise requests.exceptions.ContentDecodingError(exc) from exc
            except ProtocolError as exc:
                # Cut short or reset: requests' own error for it, retried as before.
                raise requests.exceptions.ChunkedEncodingError(exc) from exc
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise ProviderResponseError(f"{self.provider}: an answer over the {limit}-byte limit")
            chunks.append(chunk)

    def _attempt_timeout(self) -> tuple[tuple[float, float], bool]:
        """The (connect, read) timeouts of the next attempt, cut to the deadline of an enclosing
        :func:`~verdict_relay.clients.base.finish_within`, and whether they were cut. A new request (the next
        page of a long answer, say) is not started with less than ``MIN_ATTEMPT_S`` left."""
        left = seconds_left()
        connect, read = self.options.timeout
        if left is None or left >= connect + read:
            return (connect, read), False
        if left < MIN_ATTEMPT_S:
            raise ProviderOutOfTimeError(f"{self.provider}: no time left for another request")
        connect = min(connect, left / 2)
        return (connect, min(read, left - connect)), True

    def _time_to_retry(self, retry: ProviderRetry, response: BaseHTTPResponse | None) -> bool:
        """Whether the wait before the next attempt and the attempt itself end before the deadline of an
        enclosing :func:`~verdict_relay.clients.base.finish_within` (always, outside one)."""
        left = seconds_left()
        if left is None:
            return True
        wait = retry.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = retry.get_backoff_time() + self.options.backoff_jitter
        return wait + self.options.connect_timeout_s + self.options.read_timeout_s <= left

    def _after_failure(
        self, retry: ProviderRetry, outgoing: OutgoingRequest, exc: requests.RequestException
    ) -> ProviderRetry:
        cause = _urllib3_cause(exc)
        if isinstance(exc, requests.ReadTimeout) or isinstance(cause, ReadTimeoutError):
            raise ProviderUnavailableError(
                f"{self.provider}: no answer within {self.options.read_timeout_s:g} s"
            ) from exc
        try:
            return retry.increment(outgoing.method, outgoing.url, error=cause)
        except (MaxRetryError, Urllib3Error, requests.RequestException):
            raise ProviderUnavailableError(f"{self.provider}: {_describe(exc)}") from exc

    def close(self) -> None:
        self._session.close()


def read_json(provider: str, response: HttpResponse) -> Any:
    """The body as JSON; ProviderResponseError when it is not (truncated, HTML error page, not UTF-8, or nested
    too deeply for the parser: json.loads raises RecursionError, not ValueError, for that)."""
    try:
        return json.loads(response.body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProviderResponseError(f"{provider}: HTTP {response.status} body is not UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        raise ProviderResponseError(f"{provider}: HTTP {response.status} body is not valid JSON") from exc


def parse_verdicts(provider: str, adapter: ProviderAdapter, payload: Any) -> list[Verdict]:
    """The adapter's verdicts for a payload; a payload it cannot read becomes ProviderResponseError."""
    try:
        return adapter.parse(payload)
    except ProviderApiError:
        raise
    except VerdictRelayError as exc:  # PayloadError, MalformedPayloadError: the provider sent an odd shape
        raise ProviderResponseError(f"{provider}: unexpected response: {exc.message}") from exc


def single_verdict(provider: str, adapter: ProviderAdapter, payload: Any, job_id: str) -> Verdict:
    """The one verdict a single-job query yields, checked to be about the job that was asked for."""
    return the_job(provider, parse_verdicts(provider, adapter, payload), job_id)


def the_job(provider: str, verdicts: list[Verdict], job_id: str) -> Verdict:
    """The one verdict of a single-job answer; ProviderResponseError if it is about another job or several."""
    if len(verdicts) != 1 or verdicts[0].job_id != job_id:
        found = ", ".join(v.job_id for v in verdicts) or "none"
        raise ProviderResponseError(f"{provider}: asked for job {job_id}, the answer is about {found}")
    return verdicts[0]


def error_for_response(
    provider: str,
    response: HttpResponse,
    *,
    code: str | None = None,
    message: str | None = None,
    auth_error: bool = False,
    throttled: bool = False,
) -> ProviderApiError:
    """The typed error for a failed answer. ``code``/``message`` are the provider's own error fields;
    ``auth_error``/``throttled`` say the provider's code means so whatever the HTTP status."""
    detail = f"HTTP {response.status}" + (f" {code}" if code else "")
    if auth_error or response.status in (401, 403):
        # The provider's message is left out: Alibaba echoes its string to sign in SignatureDoesNotMatch.
        return ProviderAuthError(f"{provider}: credentials refused ({detail})")
    if message:
        detail = f"{detail}: {message[:_MAX_DETAIL]}"
    retry_after = retry_after_seconds(response.headers)
    # A 503 that says when to come back is a throttle too: the breaker keeps the provider alone until then.
    if throttled or response.status == 429 or (response.status == 503 and retry_after is not None):
        return ProviderThrottledError(f"{provider}: throttled ({detail})", retry_after=retry_after)
    if response.status >= 500:
        return ProviderUnavailableError(f"{provider}: unavailable ({detail})")
    return ProviderResponseError(f"{provider}: unexpected answer ({detail})")


def require_aware(name: str, value: datetime) -> datetime:
    """``value`` in UTC; ValueError for a naive datetime, which would be compared as if it were UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def require_batch(provider: str, job_ids: list[str], max_batch: int) -> None:
    if len(job_ids) > max_batch:
        raise ValueError(f"{provider}: at most {max_batch} job ids per fetch, got {len(job_ids)}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)  # requests and urllib3 headers are case-insensitive already
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _urllib3_cause(exc: requests.RequestException) -> Exception:
    """The urllib3 error behind a requests exception (requests wraps it, sometimes in a MaxRetryError)."""
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError) and isinstance(cause.reason, Exception):
        return cause.reason
    if isinstance(cause, Exception):
        return cause
    return exc


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return f"request failed ({type(exc).__name__})"
