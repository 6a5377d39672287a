"""The MNS certificate cache over real HTTP on 127.0.0.1, with its clock in the test's hands."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.helpers import http_server
from verdict_relay.dal.certificates import (
    UNREACHABLE_URL_SECONDS,
    CertificateCache,
)
from verdict_relay.errors import CallbackAuthError, ProviderApiError
from verdict_relay.local.callback_signing import MnsSigner


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def certificates() -> Iterator[tuple[MnsSigner, str]]:
    """A server answering every path with the same certificate; yields it and its base URL."""
    signer = MnsSigner.generate()
    stop = signer.serve_certificate()
    yield signer, signer.certificate_url.rsplit("/", 1)[0]
    stop()


@pytest.mark.parametrize(
    ("status", "error", "documented_seconds"),
    [(404, CallbackAuthError, 5 * 60), (503, ProviderApiError, 10)],
    ids=["no-certificate-5-minutes", "host-in-trouble-10-seconds"],
)
def test_a_failed_url_is_refused_for_the_time_the_providers_doc_gives_and_no_longer(
    status: int, error: type[Exception], documented_seconds: int
) -> None:
    """The times are docs/providers.md's, written out: not the module's constants, which a test reading them
    would follow wherever they moved."""
    # Given a certificate URL whose fetch failed
    clock = Clock()
    cache = CertificateCache(clock=clock)
    hits: list[str] = []
    with http_server(status, hits=hits) as host:
        url = f"{host}/missing.pem"
        with pytest.raises(error):
            cache.load(url)

        # When it is named again, up to a second before the documented time is up, then it is refused without
        # a fetch
        for _ in range(4):
            with pytest.raises(error):
                cache.load(url)
        clock.now += documented_seconds - 1
        with pytest.raises(error):
            cache.load(url)
        assert hits == ["/missing.pem"]

        # And two seconds later it is fetched again
        clock.now += 2
        with pytest.raises(error):
            cache.load(url)
    assert hits == ["/missing.pem", "/missing.pem"]


def test_a_certificate_that_verified_a_signature_is_kept_for_the_day_the_providers_doc_gives(
    certificates: tuple[MnsSigner, str],
) -> None:
    # Given a cache of four entries holding one certificate a signature verified with, 23 hours ago
    signer, base = certificates
    clock = Clock()
    cache = CertificateCache(max_entries=4, clock=clock)
    genuine = f"{base}/x509_public_certificate.pem"
    cache.load(genuine)
    cache.certificate_verified(genuine)
    clock.now += 23 * 3600

    # When ten other certificate URLs are loaded, and the genuine one again
    for n in range(10):
        cache.load(f"{base}/other-{n}.pem")
    cache.load(genuine)

    # Then it was still kept: fetched once (docs/providers.md: "never evict a certificate that verified a
    # signature in the last day")
    assert signer.certificate_requests.count("/x509_public_certificate.pem") == 1

    # And a day and a second after it verified, it makes room like any other
    clock.now += 3600 + 1
    for n in range(4):
        cache.load(f"{base}/later-{n}.pem")
    cache.load(genuine)
    assert signer.certificate_requests.count("/x509_public_certificate.pem") == 2


def test_with_every_entry_in_use_a_new_certificate_is_served_but_not_kept(
    certificates: tuple[MnsSigner, str],
) -> None:
    signer, base = certificates
    cache = CertificateCache(max_entries=2, clock=Clock())
    for name in ("a", "b"):
        cache.load(f"{base}/{name}.pem")
        cache.certificate_verified(f"{base}/{name}.pem")

    assert cache.load(f"{base}/c.pem") == signer.certificate_pem
    cache.load(f"{base}/c.pem")
    for name in ("a", "b"):
        cache.load(f"{base}/{name}.pem")

    assert sorted(signer.certificate_requests) == ["/a.pem", "/b.pem", "/c.pem", "/c.pem"]


def test_a_url_with_a_query_is_refused_without_a_fetch(certificates: tuple[MnsSigner, str]) -> None:
    signer, base = certificates

    with pytest.raises(CallbackAuthError, match="query"):
        CertificateCache().load(f"{base}/x509_public_certificate.pem?n=1")

    assert signer.certificate_requests == []


def test_a_certificate_host_out_of_reach_is_a_fault_to_retry_soon_not_a_forgery() -> None:
    # Given a certificate URL on a port where nothing listens (the host out of reach for a moment)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x509_public_certificate.pem"
    clock = Clock()
    cache = CertificateCache(clock=clock)

    # When a notice needs it, and again once the short wait for an unreachable host is over
    with pytest.raises(ProviderApiError):
        cache.load(url)
    clock.now += UNREACHABLE_URL_SECONDS + 1

    # Then each is our fault to retry (502, MNS sends again), not a certificate the URL lacks (401, remembered
    # for FAILED_URL_SECONDS, refusing every genuine notice signed with it meanwhile)
    with pytest.raises(ProviderApiError):
        cache.load(url)


def test_a_certificate_host_that_never_answers_is_given_up_within_the_mns_deadline() -> None:
    # Given a certificate host that takes the connection but never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x509_public_certificate.pem"

        # When a notice needs its certificate
        started = time.monotonic()
        with pytest.raises(ProviderApiError):
            CertificateCache(clock=Clock()).load(url)

    # Then the fetch gives up in time for the callback to be answered within MNS's 5 s (502: MNS sends again)
    assert time.monotonic() - started < 4.0
