"""The providers document in Secrets Manager, read by the real callback handler: what callers see when it is
wrong or unreadable, and that a deployment which has read it once keeps working when a re-read fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.helpers import load_payload, load_payload_bytes
from tests.integration.conftest import ApiClient, configure_environment
from verdict_relay.handlers import dependencies as dependencies_module

SECRET_ID = "verdict-relay/providers-in-account-123456789012"
TOKEN, NEW_TOKEN = "azure-token-current-0001", "azure-token-rotated-0002"


@pytest.fixture
def secret_api(aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ApiClient]:
    """The handler reading the providers document from ``SECRET_ID`` on every request (cache age 0)."""
    configure_environment(
        monkeypatch, aws, tmp_path, {}, PROVIDERS_SECRET_ID=SECRET_ID, PROVIDERS_CACHE_SECONDS="0"
    )
    yield ApiClient()
    dependencies_module.dependencies.cache_clear()


def put_document(aws: FakeAws, document: dict[str, Any] | str) -> None:
    secrets = aws.session.client("secretsmanager")
    text = document if isinstance(document, str) else json.dumps(document)
    try:
        secrets.put_secret_value(SecretId=SECRET_ID, SecretString=text)
    except secrets.exceptions.ResourceNotFoundException:
        secrets.create_secret(Name=SECRET_ID, SecretString=text)


def azure_callback(api: ApiClient, token: str, job_id: str = "") -> int:
    payload = load_payload("azure-review", "job-callback")
    body = (
        json.dumps({**payload, "JobId": job_id}).encode()
        if job_id
        else load_payload_bytes("azure-review", "job-callback")
    )
    return api.callback("azure-review", body, query={"token": token}).status


def test_an_invalid_document_answers_a_server_error_that_names_nothing_of_the_deployment(
    secret_api: ApiClient, aws: FakeAws
) -> None:
    # Credentials without a region: the document is refused, and its message names the secret.
    put_document(aws, {"huawei-video": {"credentials": {"ak": "ak", "sk": "sk"}}, "azure-review": {}})

    response = secret_api.callback("azure-review", load_payload_bytes("azure-review", "job-callback"))

    assert response.status == 500
    assert response.body["error"] == {
        "code": "configuration_error",
        "message": "the service is misconfigured; nothing was acknowledged, send again",
    }
    assert aws.table_items() == []


def test_an_unreadable_secret_answers_503_so_the_sender_sends_again(
    secret_api: ApiClient, aws: FakeAws
) -> None:
    response = secret_api.callback("azure-review", load_payload_bytes("azure-review", "job-callback"))

    assert response.status == 503
    assert response.body["error"]["code"] == "configuration_unavailable"
    assert SECRET_ID not in json.dumps(response.body)
    assert aws.table_items() == []


@pytest.mark.parametrize("failure", ["malformed", "deleted"])
def test_a_failed_re_read_keeps_the_last_valid_document_in_use(
    secret_api: ApiClient, aws: FakeAws, failure: str
) -> None:
    put_document(aws, {"azure-review": {"callback": {"tokens": [TOKEN]}}})
    assert azure_callback(secret_api, TOKEN, "job-1") == 200

    if failure == "malformed":
        put_document(aws, "{not json")
    else:
        aws.session.client("secretsmanager").delete_secret(
            SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True
        )

    assert azure_callback(secret_api, TOKEN, "job-2") == 200
    assert azure_callback(secret_api, NEW_TOKEN, "job-3") == 401

    # Once the document reads again, its new version is the one in use.
    put_document(aws, {"azure-review": {"callback": {"tokens": [NEW_TOKEN]}}})
    assert azure_callback(secret_api, NEW_TOKEN, "job-4") == 200
    assert azure_callback(secret_api, TOKEN, "job-5") == 401
    stored = {item["job_id"]["S"] for item in aws.table_items() if "job_id" in item}
    assert stored == {"job-1", "job-2", "job-4"}
