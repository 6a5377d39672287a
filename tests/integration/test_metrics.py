"""What the functions count, as CloudWatch reads it from the embedded metric format records they print."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import FakeAws
from tests.helpers import (
    emf_counts,
    emf_dimension_values,
    huawei_signature,
    load_payload_bytes,
    mns_push_event,
)
from tests.integration.conftest import (
    ALIBABA_MPS_ENTRY,
    HUAWEI_SEEDS,
    PROVIDERS_DOCUMENT,
    ApiClient,
    LambdaContext,
    configure_environment,
)
from verdict_relay.local.callback_signing import MnsSigner
from verdict_relay.local.simulator import ProviderSimulator, azure_job
from verdict_relay.models.verdict import PROVIDER_NAMES

SERVICE = "verdict-relay"


def test_outcomes_are_counted_for_the_service_and_apart_for_each_provider_a_route_names(
    api: ApiClient, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # Given a signed Huawei callback, an Azure callback with a wrong token, and a callback for no provider
    body = load_payload_bytes("huawei-video", "succeeded")
    signature = huawei_signature(HUAWEI_SEEDS[0], body)
    assert api.callback("huawei-video", body, headers={"X-Auth-Signature": signature}).status == 200
    assert api.callback("azure-review", b"{}", query={"token": "not-a-token"}).status == 401
    assert api.callback("no-such-provider", b"{}").status == 404

    # Then the service's metrics, which the alarms select on, count every outcome
    output = capsys.readouterr().out
    assert emf_counts(output, service=SERVICE) == {
        "CallbackAccepted": 1,
        "VerdictRecorded": 1,
        "VerdictPublished": 1,
        "Rejected401": 1,
        "Rejected404": 1,
    }
    # and each provider's are counted apart, the refused forgery included
    assert emf_counts(output, service=SERVICE, provider="huawei-video") == {
        "CallbackAccepted": 1,
        "VerdictRecorded": 1,
        "VerdictPublished": 1,
    }
    assert emf_counts(output, service=SERVICE, provider="azure-review") == {"Rejected401": 1}
    # but a name from the request that is no provider's never becomes a dimension (each value is a paid metric)
    assert emf_dimension_values(output, "provider") == {"huawei-video", "azure-review"}


def test_a_refused_or_failed_request_is_logged_with_the_provider_and_route_its_path_names(
    api: ApiClient,
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a forged Azure callback, one for no provider, and a signed Huawei callback the table fails
    assert api.callback("azure-review", b"{}", query={"token": "not-a-token"}).status == 401
    assert api.callback("no-such-provider", b"{}").status == 404
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT, TABLE_NAME="no-such-table")
    body = load_payload_bytes("huawei-video", "succeeded")
    failed = ApiClient().callback(
        "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
    )

    # Then each log line says which provider's callback it was (a name from the path that is no provider's
    # is not logged), and the 503 says what to do without the store's internals
    rejected = [vars(r) for r in caplog.records if r.getMessage() == "request rejected"]
    assert [(r["status"], r.get("provider"), r["route"]) for r in rejected] == [
        (401, "azure-review", "/callbacks/{provider}"),
        (404, None, "/callbacks/{provider}"),
    ]
    (error,) = [vars(r) for r in caplog.records if r.getMessage() == "request failed"]
    assert (error["provider"], error["code"]) == ("huawei-video", "storage_unavailable")
    assert "ResourceNotFoundException" in error["reason"]
    assert failed.status == 503
    assert failed.body["error"] == {
        "code": "storage_unavailable",
        "message": "storage is unavailable; try again",
    }


def polling_azure(
    monkeypatch: pytest.MonkeyPatch, aws: FakeAws, tmp_path: Path, simulator: ProviderSimulator, **env: str
) -> None:
    """The functions' environment with Azure's entry (API credentials: polled) from the simulator."""
    configure_environment(
        monkeypatch, aws, tmp_path, {"azure-review": simulator.provider_entry("azure-review")}, **env
    )


def assert_counted_once(output: str, metric: str, provider: str) -> None:
    """``metric`` counted once for the service (which its alarm selects on) and once for ``provider``."""
    assert emf_counts(output, service=SERVICE)[metric] == 1
    assert emf_counts(output, service=SERVICE, provider=provider)[metric] == 1


def test_a_poll_cycle_the_table_fails_is_counted_for_the_service_and_each_provider_not_only_logged(
    aws: FakeAws,
    simulator: ProviderSimulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from verdict_relay.handlers.poller import lambda_handler

    # Given the scheduled poller wired to a table that does not exist: Azure with API credentials (swept and
    # polled), the other providers callbacks only (swept)
    polling_azure(monkeypatch, aws, tmp_path, simulator, TABLE_NAME="no-such-table")
    capsys.readouterr()

    # When a cycle runs
    result = lambda_handler({"source": "aws.scheduler"}, LambdaContext())

    # Then it ends normally (nothing is lost: jobs stay due, verdicts owed), but every step the table stopped is
    # counted, for the service (which its alarm selects on) and for the provider
    assert result["providers"]["azure-review"]["skipped"] == "storage failed"
    output = capsys.readouterr().out
    assert emf_counts(output, service=SERVICE, provider="azure-review") == {"PollerStorageFailed": 2}
    assert emf_counts(output, service=SERVICE, provider="huawei-video") == {"PollerStorageFailed": 1}
    # (Azure's sweep and its poll, every other provider's sweep)
    assert emf_counts(output, service=SERVICE)["PollerStorageFailed"] == 1 + len(PROVIDER_NAMES)


def test_a_poll_batch_the_table_fails_is_counted_and_logged_with_its_jobs_and_delivered_again(
    aws: FakeAws,
    simulator: ProviderSimulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    from verdict_relay.dal.poll_queue import PollBatch, PollQueue
    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.local.stack import sqs_event
    from verdict_relay.models.jobs import DueJob

    # Given a poll worker wired to a table that does not exist, and a batch of two Azure jobs fanned out to it
    polling_azure(monkeypatch, aws, tmp_path, simulator, TABLE_NAME="no-such-table")
    simulator.put_job("azure-review", "az-1", azure_job("az-1", "Complete", adult_score=0.9))
    queue_url = aws.resources.queue_urls["PollQueue"]
    until = datetime.now(UTC) + timedelta(minutes=5)
    PollQueue(queue_url, aws.session.client("sqs")).send(
        [PollBatch(provider="azure-review", jobs=[DueJob("az-1"), DueJob("az-2")], until=until)]
    )
    capsys.readouterr()

    # When the worker polls it: the record fails, so SQS delivers the batch again
    with pytest.raises(BatchProcessingError):
        worker(sqs_event(aws.drain(queue_url)), LambdaContext())

    # Then the failure is counted for the provider (PollerStorageFailedAlarm) and logged with the batch's jobs
    counts = emf_counts(capsys.readouterr().out, service=SERVICE, provider="azure-review")
    assert counts["PollerStorageFailed"] == 1
    (error,) = [r for r in caplog.records if r.getMessage().startswith("poll batch failed")]
    assert (vars(error)["provider"], vars(error)["job_ids"]) == ("azure-review", ["az-1", "az-2"])


def test_a_fan_out_that_fails_is_counted_for_the_service_and_the_provider(
    aws: FakeAws,
    simulator: ProviderSimulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from verdict_relay.handlers.dependencies import dependencies
    from verdict_relay.handlers.poller import lambda_handler

    class ShortContext(LambdaContext):  # too little time to poll the backlog itself
        def get_remaining_time_in_millis(self) -> int:
            return 12_000

    # Given the scheduled poller with a poll queue that does not exist, and a backlog of Azure jobs to fan out
    missing_queue = aws.resources.queue_urls["PollQueue"].rsplit("/", 1)[0] + "/no-such-queue"
    polling_azure(monkeypatch, aws, tmp_path, simulator, POLL_QUEUE_URL=missing_queue)
    now = datetime.now(UTC)
    for i in range(30):
        dependencies().store.register("azure-review", f"az-{i:02}", {}, now, first_poll_at=now)
    capsys.readouterr()

    # When a schedule runs
    result = lambda_handler({"source": "aws.scheduler"}, ShortContext())

    # Then the failed fan-out is counted for the service (which FanOutFailedAlarm selects on) and the provider
    assert result["fan_out_failed"] == ["azure-review"]
    output = capsys.readouterr().out
    assert_counted_once(output, "FanOutFailed", "azure-review")


def test_a_poll_batch_received_after_its_hold_ended_is_counted_for_the_service_and_the_provider(
    aws: FakeAws,
    simulator: ProviderSimulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from verdict_relay.dal.poll_queue import PollBatch, PollQueue
    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.local.stack import sqs_event
    from verdict_relay.models.jobs import DueJob

    # Given a batch of an Azure job whose hold ended a second ago
    polling_azure(monkeypatch, aws, tmp_path, simulator)
    queue_url = aws.resources.queue_urls["PollQueue"]
    until = datetime.now(UTC) - timedelta(seconds=1)
    PollQueue(queue_url, aws.session.client("sqs")).send(
        [PollBatch(provider="azure-review", jobs=[DueJob("az-1")], until=until)]
    )
    capsys.readouterr()

    # When a worker receives it
    assert worker(sqs_event(aws.drain(queue_url)), LambdaContext())["batchItemFailures"] == []

    # Then it is counted stale for the service (which StalePollBatchesAlarm selects on) and the provider
    output = capsys.readouterr().out
    assert_counted_once(output, "StalePollBatches", "azure-review")


def test_an_authenticated_callback_that_cannot_be_read_is_counted_apart_from_a_forged_one(
    api: ApiClient, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # Given a signed Huawei callback whose status is none Huawei has (its payload changed), and a forged one
    body = load_payload_bytes("huawei-video", "succeeded").replace(b'"succeeded"', b'"archived"', 1)
    signature = huawei_signature(HUAWEI_SEEDS[0], body)
    assert api.callback("huawei-video", body, headers={"X-Auth-Signature": signature}).status == 422
    assert api.callback("huawei-video", body, headers={"X-Auth-Signature": "0" * 64}).status == 401

    # Then the one that authenticated is counted as unreadable (its alarm pages), the forgery only as refused
    output = capsys.readouterr().out
    assert emf_counts(output, service=SERVICE) == {
        "CallbackUnreadable": 1,
        "Rejected422": 1,
        "Rejected401": 1,
    }
    assert emf_counts(output, service=SERVICE, provider="huawei-video") == {
        "CallbackUnreadable": 1,
        "Rejected422": 1,
        "Rejected401": 1,
    }


@pytest.mark.parametrize("token", [None, "mns-callback-token-0001"], ids=["signature-only", "with-token"])
def test_an_unreadable_mns_push_counts_as_the_providers_only_when_its_token_proves_the_sender(
    aws: FakeAws,
    mns: MnsSigner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    token: str | None,
) -> None:
    # Given alibaba-mps with or without a callback token: MNS signs every account's pushes with one key, so the
    # signature alone cannot say the push came from this deployment's topic
    callback = {"certificate_hosts": ["127.0.0.1"], **({"tokens": [token]} if token else {})}
    document = {**PROVIDERS_DOCUMENT, "alibaba-mps": {**ALIBABA_MPS_ENTRY, "callback": callback}}
    configure_environment(monkeypatch, aws, tmp_path, document)
    capsys.readouterr()

    # When a signed push names no job (an outsider's topic can send one to any URL it learns)
    body = b'{"Type": "Notification", "Message": "{\\"State\\": \\"Success\\"}"}'
    path = "/v1/callbacks/alibaba-mps" + (f"?token={token}" if token else "")
    query = {"token": token} if token else None
    response = ApiClient().invoke(mns_push_event(body, mns.sign(path, body), query))

    # Then it is refused either way, and counted as unreadable (which pages) only when its token proved it ours
    assert response.status == 422
    counts = emf_counts(capsys.readouterr().out, service=SERVICE)
    assert counts.get("Rejected422") == 1
    assert counts.get("CallbackUnreadable") == (1 if token else None)
