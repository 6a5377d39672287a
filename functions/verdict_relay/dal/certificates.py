"""Fetches the certificates providers sign callbacks with (Alibaba MNS), cached per URL for the process.

The adapter has already checked the URL against the allow-list and its shape (no query, no fragment, a path
naming a ``.pem`` file) and made it canonical; this loader checks the scheme and the query again, fetches with a
short timeout (the callback must be answered within MNS's 5 s), caps the size it reads, and follows no redirect:
a redirect on an allow-listed host must not lead to a certificate from anywhere else.

The certificate is needed before the signature can be checked, so the URL comes from a request nobody has
authenticated yet. The cache is built so such requests cannot make it fetch again and again, nor push out the
certificate real notices are signed with:

* a URL that failed (not there, not a certificate, the host in trouble) is remembered for a while and refused
  without a fetch;
* a certificate a signature verified with recently is never evicted by new URLs; when every entry is such a
  certificate, a new one is used but not kept.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from verdict_relay.config import is_loopback_host
from verdict_relay.errors import CallbackAuthError, ProviderApiError, VerdictRelayError

MAX_CERTIFICATE_BYTES = 64 * 1024
FAILED_URL_SECONDS = 300.0
"""How long a URL that named no certificate (4xx, not PEM) is refused without fetching it again."""
UNREACHABLE_URL_SECONDS = 10.0
"""How long a URL whose host was in trouble (5xx, 408, 429, no connection) is refused without a fetch: short,
as MNS re-sends the notice and the next try should reach the host."""
VERIFIED_SECONDS = 24 * 3600.0
"""How long a certificate that verified a signature is kept whatever new URLs arrive."""
MAX_FAILED_URLS = 256


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 30x response then raises HTTPError, refused below


@cache
def _opener() -> urllib.request.OpenerDirector:
    """Built at the first fetch: building it creates an SSL context and loads the CA certificates (~30 ms on
    CPython 3.13), which only an MNS push with a certificate not yet cached needs, not every cold start."""
    return urllib.request.build_opener(_NoRedirects)


@dataclass
class _Cached:
    pem: bytes
    verified_at: float | None = None


@dataclass(frozen=True)
class _Failure:
    until: float
    error: type[VerdictRelayError]
    message: str


class CertificateCache:
    def __init__(
        self,
        timeout_seconds: float = 2.0,
        max_entries: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._failed: OrderedDict[str, _Failure] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, url: str) -> bytes:
        """The PEM at ``url``: from the cache, or fetched once. Raises CallbackAuthError when the URL names no
        certificate (401) and ProviderApiError when its host could not be reached (502), for a fresh failure
        and a remembered one alike."""
        with self._lock:
            cached = self._cache.get(url)
            failure = self._failed.get(url)
            if failure is not None and failure.until <= self._clock():
                del self._failed[url]
                failure = None
        if cached is not None:
            return cached.pem
        if failure is not None:
            raise failure.error(failure.message)
        parts = urlsplit(url)
        if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))):
            raise CallbackAuthError("certificate URL must use https")
        if parts.query or parts.fragment or "?" in url or "#" in url:
            raise CallbackAuthError("certificate URL with a query or fragment not allowed")
        try:
            pem = self._fetch(url)
        except (CallbackAuthError, ProviderApiError) as exc:
            self._remember_failure(url, exc)
            raise
        with self._lock:
            self._keep(url, pem)
        return pem

    def certificate_verified(self, url: str) -> None:
        """A signature has just verified with the certificate at ``url``: keep it (see the module docstring)."""
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None:
                cached.verified_at = self._clock()
                self._cache.move_to_end(url)

    def _fetch(self, url: str) -> bytes:
        try:
            with _opener().open(url, timeout=self._timeout) as response:
                pem: bytes = response.read(MAX_CERTIFICATE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code in (408, 429):  # the host's trouble, not the request's
                raise ProviderApiError(f"signing certificate could not be fetched (HTTP {exc.code})") from exc
            # A redirect, or a certificate the allow-listed host does not have: the request names no
            # certificate we can check its signature with.
            raise CallbackAuthError(
                f"signing certificate not available at its URL (HTTP {exc.code})"
            ) from None
        except OSError as exc:
            # Our side could not reach the certificate: a fault to retry (MNS re-sends), not a forged request.
            raise ProviderApiError("signing certificate could not be fetched") from exc
        if len(pem) > MAX_CERTIFICATE_BYTES or b"-----BEGIN CERTIFICATE-----" not in pem:
            raise CallbackAuthError("signing certificate is not a PEM certificate")
        return pem

    def _remember_failure(self, url: str, exc: CallbackAuthError | ProviderApiError) -> None:
        seconds = UNREACHABLE_URL_SECONDS if isinstance(exc, ProviderApiError) else FAILED_URL_SECONDS
        with self._lock:
            self._failed.pop(url, None)
            while len(self._failed) >= MAX_FAILED_URLS:
                self._failed.popitem(last=False)
            self._failed[url] = _Failure(self._clock() + seconds, type(exc), exc.message)

    def _keep(self, url: str, pem: bytes) -> None:
        """Cache a fetched certificate, making room by evicting the oldest entry that has not verified a
        signature recently; when there is none, the certificate is not kept."""
        if url in self._cache:
            return
        if len(self._cache) >= self._max_entries:
            now = self._clock()
            evictable = next(
                (
                    key
                    for key, entry in self._cache.items()
                    if entry.verified_at is None or now - entry.verified_at > VERIFIED_SECONDS
                ),
                None,
            )
            if evictable is None:
                return
            del self._cache[evictable]
        self._cache[url] = _Cached(pem)
