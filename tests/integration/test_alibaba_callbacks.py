"""Alibaba MNS push notices end to end: the certificate is fetched over real HTTP from 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import FakeAws
from tests.helpers import api_event
from tests.integration.conftest import PROVIDERS_DOCUMENT, ApiClient, configure_environment
from verdict_relay.local.callback_signing import MnsSigner, mns_notification

PATH = "/v1/callbacks/alibaba-mps"


def push(api: ApiClient, body: bytes, headers: dict[str, str], query: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return api.invoke(
        api_event(
            "POST",
            "/callbacks/alibaba-mps",
            resource="/callbacks/{provider}",
            path_parameters={"provider": "alibaba-mps"},
            body=body,
            headers=headers,
            query=query,
        )
    )


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


def test_certificate_on_a_host_not_allowed_is_refused(
    aws: FakeAws, mns: MnsSigner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure_environment(monkeypatch, aws, tmp_path, {**PROVIDERS_DOCUMENT, "alibaba-mps": {}})
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
        "alibaba-mps": {"callback": {"certificate_hosts": ["127.0.0.1"], "tokens": [token]}},
    }
    configure_environment(monkeypatch, aws, tmp_path, document)
    body = mns_notification("mps-job-9")

    response = push(ApiClient(), body, mns.sign(f"{PATH}?token={token}", body), query={"token": token})

    assert response.status == 204
