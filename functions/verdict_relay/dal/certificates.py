"""Fetches the certificates providers sign callbacks with (Alibaba MNS), cached per URL for the process.

The adapter has already checked the URL against the allow-list; this loader checks the scheme again, fetches
with a short timeout (the callback must be answered within MNS's 5 s), caps the size it reads, and follows no
redirect: a redirect on an allow-listed host must not lead to a certificate from anywhere else.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from verdict_relay.config import is_loopback_host
from verdict_relay.errors import CallbackAuthError, ProviderApiError

MAX_CERTIFICATE_BYTES = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 30x response then raises HTTPError, refused below


_opener = urllib.request.build_opener(_NoRedirects)


class CertificateCache:
    def __init__(self, timeout_seconds: float = 2.0, max_entries: int = 16) -> None:
        self._timeout = timeout_seconds
        self._max_entries = max_entries
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load(self, url: str) -> bytes:
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            return cached
        parts = urlsplit(url)
        if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname))):
            raise CallbackAuthError("certificate URL must use https")
        try:
            with _opener.open(url, timeout=self._timeout) as response:
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
        with self._lock:
            if len(self._cache) >= self._max_entries:
                self._cache.pop(next(iter(self._cache)))
            self._cache[url] = pem
        return pem
