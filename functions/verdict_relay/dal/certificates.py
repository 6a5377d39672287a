"""Fetches the certificates providers sign callbacks with (Alibaba MNS), cached per URL for the process.

The adapter has already checked the URL against the allow-list; this loader checks the scheme again, fetches
with a short timeout (the callback must be answered within MNS's 5 s), and caps the size it reads.
"""

from __future__ import annotations

import threading
import urllib.request
from urllib.parse import urlsplit

from verdict_relay.config import is_loopback_host
from verdict_relay.errors import CallbackAuthError, ProviderApiError

MAX_CERTIFICATE_BYTES = 64 * 1024


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
            with urllib.request.urlopen(url, timeout=self._timeout) as response:  # noqa: S310 - scheme checked above
                pem: bytes = response.read(MAX_CERTIFICATE_BYTES + 1)
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
