"""Alibaba MNS push notices end to end: the certificate is fetched over real HTTP from 127.0.0.1."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import FakeAws
from tests.helpers import http_server, mns_push_event
from tests.integration.conftest import ALIBABA_MPS_ENTRY, PROVIDERS_DOCUMENT, ApiClient, configure_environment
from verdict_relay import config
from verdict_relay.local.callback_signing import MnsSigner, mns_notification

PATH = "/v1/callbacks/alibaba-mps"
TOKEN = "mns-callback-token-0001"


WITH_DEFAULT_HOSTS = {k: v for k, v in ALIBABA_MPS_ENTRY.items() if k != "callback"}
"""The alibaba-mps entry with the default certificate hosts (no callback settings)."""


def push(api: ApiClient, body: bytes, headers: dict[str, str], query: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return api.invoke(mns_push_event(body, headers, query))


def test_signed_mns_notice_is_acknowledged_204_and_makes_the_job_due(
    api: ApiClient, aws: FakeAws, mns: MnsSigner
) -> None:
    body = mns_notification("mps-job-1")

    response = push(api, body, mns.sign(PATH, body))

    # MNS counts only 204 as delivered; the notice carries no result, so the job is now due for polling
    assert response.status == 204
    (item,) = aws.table_items()
    assert item["job_id"]["S"] == "mps-job-1"
    assert item["status"]["S"] == "pending"
    assert int(item["next_poll_at"]["N"]) <= int(datetime.now(UTC).timestamp())
    assert aws.published() == []


@pytest.mark.parametrize("form", ["raw message", "JSON envelope"])
def test_a_signed_notice_whose_text_is_cut_inside_a_character_is_acknowledged(
    api: ApiClient, aws: FakeAws, mns: MnsSigner, form: str
) -> None:
    # Given a signed notice whose UserData was cut inside an emoji (a lone surrogate escape), as MNS pushes the
    # message itself or wraps it, a JSON string, in its envelope
    message = '{"Type":"MediaCensor","JobId":"mps-job-7","State":"Success","UserData":"clip \\ud83d"}'
    body = (
        message.encode()
        if form == "raw message"
        else json.dumps({"TopicOwner": "1", "TopicName": "t", "Message": message}).encode()
    )
    assert b"\\ud83d" in body

    # When it is pushed, Then it is acknowledged and its job made due (a 400 would be refused at every re-send)
    assert push(api, body, mns.sign(PATH, body)).status == 204
    (item,) = aws.table_items()
    assert (item["job_id"]["S"], item["status"]["S"]) == ("mps-job-7", "pending")


@pytest.mark.parametrize("token", [None, "mns-callback-token-9999"], ids=["without a token", "wrong token"])
def test_a_push_mns_signed_without_the_configured_token_is_refused_and_stores_nothing(
    aws: FakeAws, mns: MnsSigner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, token: str | None
) -> None:
    # Given alibaba-mps with a callback token: MNS signs every account's pushes alike, so only the token proves
    # the push came from this deployment's topic
    entry = {**ALIBABA_MPS_ENTRY, "callback": {"certificate_hosts": ["127.0.0.1"], "tokens": [TOKEN]}}
    configure_environment(monkeypatch, aws, tmp_path, {**PROVIDERS_DOCUMENT, "alibaba-mps": entry})
    body = mns_notification("foreign-job")
    query = None if token is None else {"token": token}
    target = PATH if token is None else f"{PATH}?token={token}"

    # When a push MNS really signed arrives (another account's topic) without the token, or with another one
    response = push(ApiClient(), body, mns.sign(target, body), query)

    # Then it is refused and nothing is stored; the same push with the token is taken
    assert response.status == 401
    assert aws.table_items() == []
    with_token = push(ApiClient(), body, mns.sign(f"{PATH}?token={TOKEN}", body), {"token": TOKEN})
    assert with_token.status == 204


def test_replayed_mns_notice_with_an_old_date_is_refused(
    api: ApiClient, aws: FakeAws, mns: MnsSigner
) -> None:
    body = mns_notification("mps-job-1")
    headers = mns.sign(PATH, body, date=datetime.now(UTC) - timedelta(minutes=16))

    response = push(api, body, headers)

    assert response.status == 401
    assert "date" in response.body["error"]["message"].lower()
    assert aws.table_items() == []


def test_mns_notice_with_a_tampered_body_is_refused(api: ApiClient, aws: FakeAws, mns: MnsSigner) -> None:
    headers = mns.sign(PATH, mns_notification("mps-job-1"))

    response = push(api, mns_notification("mps-job-2"), headers)

    assert response.status == 401
    assert aws.table_items() == []


@pytest.mark.parametrize(
    "cut",
    [4, 1],
    ids=["short-of-its-last-byte", "short-of-its-padding"],
)
def test_mns_notice_with_its_authorization_truncated_is_refused(
    api: ApiClient, aws: FakeAws, mns: MnsSigner, cut: int
) -> None:
    # Given a genuinely signed MNS push whose Authorization (Base64 of a 256-byte RSA signature, ending "==") lost
    # its last characters: its last Base64 group, which leaves the signature a byte short, or only a "=" of its
    # padding, which leaves no Base64 at all
    body = mns_notification("mps-job-1")
    headers = mns.sign(PATH, body)
    assert headers["Authorization"].endswith("==")

    # When it is pushed
    response = push(api, body, {**headers, "Authorization": headers["Authorization"][:-cut]})

    # Then it is refused and nothing is stored or published
    assert response.status == 401, response.body
    assert response.body["error"]["code"] == "unauthorized"
    assert "invalid signature" in response.body["error"]["message"]
    assert aws.table_items() == []
    assert aws.published() == []

    # And the same push with its Authorization whole is accepted: the cut is what was refused
    assert push(api, body, headers).status == 204


def test_certificate_on_a_host_not_allowed_is_refused(
    aws: FakeAws, mns: MnsSigner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure_environment(
        monkeypatch, aws, tmp_path, {**PROVIDERS_DOCUMENT, "alibaba-mps": WITH_DEFAULT_HOSTS}
    )
    body = mns_notification("mps-job-1")

    response = push(ApiClient(), body, mns.sign(PATH, body))

    assert response.status == 401
    assert "host" in response.body["error"]["message"].lower()
    assert aws.table_items() == []


def test_signed_target_includes_the_token_query_when_the_url_carries_one(
    aws: FakeAws, mns: MnsSigner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = "mns-callback-token-0001"
    document = {
        **PROVIDERS_DOCUMENT,
        "alibaba-mps": {
            **ALIBABA_MPS_ENTRY,
            "callback": {"certificate_hosts": ["127.0.0.1"], "tokens": [token]},
        },
    }
    configure_environment(monkeypatch, aws, tmp_path, document)
    body = mns_notification("mps-job-9")

    response = push(ApiClient(), body, mns.sign(f"{PATH}?token={token}", body), query={"token": token})

    assert response.status == 204


def test_a_redirect_on_an_allowed_host_does_not_lead_to_a_certificate_elsewhere(
    api: ApiClient, aws: FakeAws
) -> None:
    # An attacker's certificate on a host not allowed ("localhost" is not "127.0.0.1"), and a redirect to it
    # from the allowed host
    attacker = MnsSigner.generate()
    stop = attacker.serve_certificate()
    elsewhere = attacker.certificate_url.replace("127.0.0.1", "localhost")
    with http_server(302, location=elsewhere) as allowed:
        attacker.certificate_url = f"{allowed}/x509_public_certificate.pem"
        body = mns_notification("forged-job")

        response = push(api, body, attacker.sign(PATH, body))
    stop()

    assert response.status == 401
    assert "certificate" in response.body["error"]["message"].lower()
    assert aws.table_items() == []


@pytest.mark.parametrize(("status", "expected"), [(404, 401), (403, 401), (503, 502), (429, 502)])
def test_a_certificate_the_allowed_host_does_not_serve_is_refused_and_its_outage_is_a_fault(
    api: ApiClient, aws: FakeAws, status: int, expected: int
) -> None:
    signer = MnsSigner.generate()
    with http_server(status) as allowed:
        signer.certificate_url = f"{allowed}/no-such-certificate.pem"
        body = mns_notification("mps-job-1")

        response = push(api, body, signer.sign(PATH, body))

    # A certificate that is not there names nothing to check the signature with (401); a host in trouble is
    # a fault on the way to it, which MNS retries (5xx)
    assert response.status == expected, response.body
    assert aws.table_items() == []


@pytest.mark.parametrize(
    ("header", "value", "mentions"),
    [
        ("Date", "Mon, 01 Jan 99999999999999999999 00:00:00 GMT", "date"),
        ("x-mns-signing-cert-url", base64.b64encode(b"https://[127.0.0.1]/cert.pem").decode(), "url"),
        ("x-mns-signing-cert-url", base64.b64encode(b"https://[::1/cert.pem").decode(), "url"),
    ],
)
def test_headers_no_parser_can_read_are_a_401_not_a_server_error(
    api: ApiClient, aws: FakeAws, mns: MnsSigner, header: str, value: str, mentions: str
) -> None:
    body = mns_notification("mps-job-1")
    headers = {**mns.sign(PATH, body), header: value}

    response = push(api, body, headers)

    assert response.status == 401, response.body
    assert mentions in response.body["error"]["message"].lower()
    assert aws.table_items() == []


# --- forged pushes and what they may cost ------------------------------------------------------------------------


def test_mns_push_for_a_provider_absent_from_the_providers_document_is_refused(
    aws: FakeAws, mns: MnsSigner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given MNS's certificate host is the default allow-listed one (the local signer stands in for MNS), and
    # a providers document with no alibaba-mps entry at all
    monkeypatch.setattr(config, "DEFAULT_MNS_CERTIFICATE_HOSTS", ("127.0.0.1",))
    document = {name: entry for name, entry in PROVIDERS_DOCUMENT.items() if name != "alibaba-mps"}
    configure_environment(monkeypatch, aws, tmp_path, document)
    body = mns_notification("mps-job-1")

    # When a push MNS really signed arrives (any Alibaba account's topic can send one)
    response = push(ApiClient(), body, mns.sign(PATH, body))

    # Then the disabled provider refuses it, and nothing is stored or published
    assert response.status == 401, response.body
    assert response.body["error"]["code"] == "unauthorized"
    assert "not enabled" in response.body["error"]["message"]
    assert aws.table_items() == []
    assert aws.published() == []
    assert mns.certificate_requests == []

    # And with an entry, even one that takes the default certificate hosts, the same push is accepted
    with_entry = tmp_path / "with-entry"  # another file: a providers file is cached by its path
    with_entry.mkdir()
    configure_environment(monkeypatch, aws, with_entry, {**document, "alibaba-mps": WITH_DEFAULT_HOSTS})
    assert push(ApiClient(), body, mns.sign(PATH, body)).status == 204


def test_certificate_url_variants_with_a_query_are_refused_without_a_fetch(
    api: ApiClient, aws: FakeAws, mns: MnsSigner
) -> None:
    # Given a genuine push has been verified with MNS's certificate
    genuine = mns.certificate_url
    body = mns_notification("mps-job-1")
    assert push(api, body, mns.sign(PATH, body)).status == 204

    # When 20 pushes name the same certificate under query and fragment variants of its URL
    statuses = set()
    for n in range(20):
        mns.certificate_url = f"{genuine}?n={n}" if n % 2 else f"{genuine}#{n}"
        forged = mns_notification(f"forged-{n}")
        response = push(api, forged, mns.sign(PATH, forged))
        statuses.add(response.status)
        assert "query or fragment" in response.body["error"]["message"]
    mns.certificate_url = genuine

    # Then each is refused without a fetch, and a genuine push still verifies with the cached certificate
    assert statuses == {401}
    assert push(api, body, mns.sign(PATH, body)).status == 204
    assert len(mns.certificate_requests) == 1


def test_unauthenticated_pushes_naming_new_certificate_files_do_not_evict_the_one_in_use(
    api: ApiClient, aws: FakeAws, mns: MnsSigner
) -> None:
    # Given a genuine push has been verified with MNS's certificate
    genuine = mns.certificate_url
    body = mns_notification("mps-job-1")
    assert push(api, body, mns.sign(PATH, body)).status == 204

    # When 20 pushes signed with another key each name another certificate file on the allowed host
    forger = MnsSigner.generate()
    base = genuine.rsplit("/", 1)[0]
    for n in range(20):
        forger.certificate_url = f"{base}/certificate-{n}.pem"
        forged = mns_notification(f"forged-{n}")
        assert push(api, forged, forger.sign(PATH, forged)).status == 401

    # Then the certificate that verified the genuine push is still cached: the next genuine push fetches nothing
    assert push(api, body, mns.sign(PATH, body)).status == 204
    assert mns.certificate_requests.count("/x509_public_certificate.pem") == 1
    assert {item["job_id"]["S"] for item in aws.table_items()} == {"mps-job-1"}


@pytest.mark.parametrize(("status", "expected"), [(404, 401), (503, 502)])
def test_a_certificate_url_that_failed_is_not_fetched_again_for_a_while(
    api: ApiClient, aws: FakeAws, status: int, expected: int
) -> None:
    # Given an allowed host that does not serve the certificate a push names (or is in trouble)
    hits: list[str] = []
    signer = MnsSigner.generate()
    with http_server(status, hits=hits) as allowed:
        signer.certificate_url = f"{allowed}/no-such-certificate.pem"

        # When ten pushes name it
        responses = []
        for n in range(10):
            body = mns_notification(f"mps-job-{n}")
            responses.append(push(api, body, signer.sign(PATH, body)))

    # Then each gets the same answer, from one fetch
    assert {r.status for r in responses} == {expected}
    assert hits == ["/no-such-certificate.pem"]
    assert aws.table_items() == []
