"""The providers document in Secrets Manager, read by the real callback handler: what callers see when it is
wrong or unreadable, and that a deployment which has read it once keeps working when a re-read fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.helpers import emf_counts, load_payload, load_payload_bytes
from tests.integration.conftest import ApiClient, LambdaContext, configure_environment
from verdict_relay.errors import ConfigurationError
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.models.verdict import PROVIDER_NAMES, JobStatus, Suggestion, Verdict
from verdict_relay.providers.registry import get_adapter

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


def serving_a_cached_document(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[ApiClient, list[float]]:
    """The receiver reading a valid document from Secrets Manager (cached 5 minutes, by a clock the test moves
    through the list returned), one callback in: the document is read and cached."""
    configure_environment(monkeypatch, aws, tmp_path, {}, PROVIDERS_SECRET_ID=SECRET_ID)
    clock = [1000.0]
    monkeypatch.setattr(dependencies_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    api = ApiClient()
    put_document(aws, {"azure-review": {"callback": {"tokens": [TOKEN]}}})
    assert azure_callback(api, TOKEN, "job-1") == 200
    return api, clock


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


def test_a_corrected_document_is_used_at_the_first_retry_after_an_invalid_one(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a deployment caching the document for 5 minutes, whose clock the test moves
    api, clock = serving_a_cached_document(aws, monkeypatch, tmp_path)

    # When a version that is JSON but not a valid document (a token too short) is read at the reload
    put_document(aws, {"azure-review": {"callback": {"tokens": ["short"]}}})
    clock[0] += 301
    assert azure_callback(api, TOKEN, "job-2") == 200  # the last valid document stays in use
    # and the operator corrects it before the retry
    put_document(aws, {"azure-review": {"callback": {"tokens": [NEW_TOKEN]}}})
    clock[0] += dependencies_module.RELOAD_RETRY_SECONDS

    # Then the retry reads the corrected version, not a cached copy of the invalid one
    assert azure_callback(api, NEW_TOKEN, "job-3") == 200
    assert azure_callback(api, TOKEN, "job-4") == 401
    dependencies_module.dependencies.cache_clear()


def test_a_failed_re_read_is_counted_for_its_alarm_and_not_tried_again_before_the_retry_wait(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployment caching the document for 5 minutes, whose clock the test moves, and a valid document
    api, clock = serving_a_cached_document(aws, monkeypatch, tmp_path)
    capsys.readouterr()

    # When the re-read finds a malformed version, and callbacks keep coming before the retry wait is over
    put_document(aws, "{not json")
    clock[0] += 301
    assert azure_callback(api, TOKEN, "job-2") == 200
    clock[0] += dependencies_module.RELOAD_RETRY_SECONDS / 2
    assert azure_callback(api, TOKEN, "job-3") == 200

    # Then the failure is counted once, as ProvidersReloadFailedAlarm reads it: the secret was not asked again
    # by the second callback (a throttled Secrets Manager is not asked on every request)
    assert emf_counts(capsys.readouterr().out, service="verdict-relay").get("ProvidersReloadFailed") == 1
    dependencies_module.dependencies.cache_clear()


def test_a_document_that_does_not_load_refuses_callbacks_but_not_the_job_routes(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a new container whose providers document is invalid (a threshold on the wrong scale)
    configure_environment(monkeypatch, aws, tmp_path, {}, PROVIDERS_SECRET_ID=SECRET_ID)
    put_document(aws, {"azure-review": {"policy": {"review_threshold": {"adult": 50}}}})
    api = ApiClient()

    # When jobs are registered and read, and callbacks come
    registered = api.register({"provider": "huawei-video", "job_id": "job-1"})
    read = api.get_job("huawei-video", "job-1")
    unknown = api.callback("no-such-provider", b"{}")
    callback = azure_callback(api, TOKEN, "job-2")

    # Then the job routes work, a provider that does not exist is a client's mistake, and the callback is
    # refused with a server error (its sender sends it again once the document is corrected)
    assert (registered.status, read.status, read.body["job_id"]) == (201, 200, "job-1")
    assert unknown.status == 404
    assert callback == 500
    assert {item["job_id"]["S"] for item in aws.table_items() if "job_id" in item} == {"job-1"}
    dependencies_module.dependencies.cache_clear()


def test_a_poller_whose_document_does_not_load_still_sends_the_owed_publishes(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from verdict_relay.handlers.poller import lambda_handler

    # Given a verdict whose publish is owed, and a new poller container whose document is invalid
    configure_environment(monkeypatch, aws, tmp_path, {}, PROVIDERS_SECRET_ID=SECRET_ID)
    put_document(aws, {"azure-review": {"policy": {"review_threshold": {"adult": 50}}}})
    owed = Verdict(
        provider="huawei-video",
        job_id="owed-1",
        status=JobStatus.SUCCEEDED,
        suggestion=Suggestion.BLOCK,
        decided_by="provider",
    )  # type: ignore[call-arg]
    store = dependencies_module.dependencies().store
    store.record(owed, b"{}", datetime.now(UTC) - timedelta(minutes=5), publish=True)

    # When the schedule runs
    with pytest.raises(ConfigurationError):
        lambda_handler({"source": "aws.scheduler"}, LambdaContext())

    # Then the invocation fails (nothing can be polled), but the owed verdict was published first
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["owed-1"]
    dependencies_module.dependencies.cache_clear()


def test_a_poller_whose_document_does_not_load_counts_no_job_overdue_for_want_of_credentials(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from verdict_relay.handlers.poller import lambda_handler
    from verdict_relay.observability import metrics

    # Given a job stored two days ago and unfinished, and a poller container whose document is invalid
    configure_environment(monkeypatch, aws, tmp_path, {}, PROVIDERS_SECRET_ID=SECRET_ID)
    put_document(aws, {"azure-review": {"policy": {"review_threshold": {"adult": 50}}}})
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    dependencies_module.dependencies().store.register("azure-review", "az-1", {}, two_days_ago, two_days_ago)
    metrics.clear_metrics()

    # When the schedule runs (its sweeper has no provider client: not for want of credentials)
    with pytest.raises(ConfigurationError):
        lambda_handler({"source": "aws.scheduler"}, LambdaContext())

    # Then the job is not called one nothing polls: the document is what is wrong (PollerErrorsAlarm)
    assert "JobOverdue" not in metrics.metric_set
    assert not [r for r in caplog.records if "no callback for long" in r.getMessage()]
    dependencies_module.dependencies.cache_clear()


@pytest.mark.parametrize("provider", [p for p in PROVIDER_NAMES if not get_adapter(p).takes_callbacks])
def test_a_provider_that_never_calls_back_has_every_callback_refused_even_one_with_a_configured_token(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, provider: str
) -> None:
    # Given an entry for the provider, and a token configured for another (an entry listing callback secrets for
    # a provider that never calls back fails the start: tests/unit/test_config.py)
    configure_environment(
        monkeypatch, aws, tmp_path, {provider: {}, "azure-review": {"callback": {"tokens": [TOKEN]}}}
    )

    # When a callback presents the token
    response = ApiClient().callback(provider, b"{}", query={"token": TOKEN})
    dependencies_module.dependencies.cache_clear()

    # Then it is refused as unauthenticated, and nothing is stored: nothing legitimate calls back for it
    assert response.status == 401
    assert "sends no callbacks" in response.body["error"]["message"]
    assert aws.table_items() == []


def test_a_providers_file_edited_is_used_at_the_next_reload_and_a_broken_edit_keeps_the_last_valid_one(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a deployment reading its providers document from a file (the local stack's), on every request
    configure_environment(
        monkeypatch,
        aws,
        tmp_path,
        {"azure-review": {"callback": {"tokens": [TOKEN]}}},
        PROVIDERS_CACHE_SECONDS="0",
    )
    api = ApiClient()
    assert azure_callback(api, TOKEN, "job-1") == 200

    # When the file is edited to rotate the token, then the new token is taken and the old one refused
    document = tmp_path / "providers.json"
    document.write_text(json.dumps({"azure-review": {"callback": {"tokens": [NEW_TOKEN]}}}), encoding="utf-8")
    assert azure_callback(api, NEW_TOKEN, "job-2") == 200
    assert azure_callback(api, TOKEN, "job-3") == 401

    # and an edit that breaks it leaves the last valid document in use
    document.write_text("{broken", encoding="utf-8")
    assert azure_callback(api, NEW_TOKEN, "job-4") == 200
    dependencies_module.dependencies.cache_clear()
