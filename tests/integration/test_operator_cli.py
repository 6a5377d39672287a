"""Operator subcommands against the configured table and topic: jobs register/show/list, republish."""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from tests.conftest import FakeAws
from tests.helpers import ConfirmationThrottle, aws_response, hooked_sessions, huawei_signature, with_changes
from tests.integration.conftest import HUAWEI_SEEDS, PROVIDERS_DOCUMENT, ApiClient, configure_environment
from verdict_relay.cli import (
    EXIT_FAILED,
    POLL_BESIDE_SCHEDULE,
    POLL_WITHOUT_PROVIDERS,
    POLL_WITHOUT_PUBLISH_SETTING,
    POLL_WITHOUT_QUEUE,
    POLL_WITHOUT_SUGGESTION,
    main,
)
from verdict_relay.handlers.dependencies import dependencies
from verdict_relay.logic import ingest as ingest_module
from verdict_relay.models.verdict import PROVIDER_NAMES, Finding, JobStatus, Suggestion, Verdict


@pytest.fixture
def cli(aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT)
    monkeypatch.setenv("UNMODERATED_SUGGESTION", "review")  # the stack's setting, which jobs expire wants

    def run(*argv: str) -> tuple[int, Any]:
        capsys.readouterr()  # drop what earlier steps printed (the handler's metrics)
        code = main(list(argv))
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else None

    return run


def finish_job(job_id: str) -> None:
    body = with_changes("huawei-video", "succeeded", job_id=job_id)
    ApiClient().callback(
        "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
    )


def claim_runs_out(aws: FakeAws, provider: str, job_id: str) -> None:
    """The writer's publish claim on the job's verdict ends, as it does a minute after the writer failed."""
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": f"{provider}#{job_id}"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET publish_claimed_until = :past",
        ExpressionAttributeValues={":past": {"N": "0"}},
    )


def lose_archived_verdict(aws: FakeAws, provider: str, job_id: str) -> None:
    """The job's verdict is archived in S3 and its object is gone (deleted, or expired with a lower retention)."""
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": f"{provider}#{job_id}"}, "sk": {"S": "STATE"}},
        UpdateExpression="REMOVE verdict_gz SET verdict_s3_key = :key",
        ExpressionAttributeValues={":key": {"S": f"jobs/{provider}/{job_id}/deleted/verdict.json.gz"}},
    )


STORE_SDK_ATTEMPTS = 3
"""The attempts the store's DynamoDB client makes of one call (``dal/store.py``, its retry configuration)."""


def break_verdict(aws: FakeAws, provider: str, job_id: str, how: str) -> None:
    """The job's stored verdict cannot be read: its archived copy gone, bytes that are not gzip, gzip cut short
    or damaged inside (gzip raises EOFError, or zlib.error), or JSON that is not a verdict (an item an older or
    newer version wrote)."""
    if how == "archived copy gone":
        lose_archived_verdict(aws, provider, job_id)
        return
    whole = gzip.compress(b'{"nope": 1}' * 50)
    value = {
        "not gzip": b"not gzip",
        "gzip cut short": whole[:-8],
        "gzip damaged": whole[:10] + b"\xff" * 20 + whole[-8:],
    }.get(how, gzip.compress(b'{"nope": 1}'))
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": f"{provider}#{job_id}"}, "sk": {"S": "STATE"}},
        UpdateExpression="REMOVE verdict_s3_key SET verdict_gz = :gz",
        ExpressionAttributeValues={":gz": {"B": value}},
    )


UNREADABLE_KINDS = ["archived copy gone", "not gzip", "gzip cut short", "gzip damaged", "not a verdict"]


def owe_publishes(
    aws: FakeAws, provider: str, job_ids: list[str], findings: list[Finding] | None = None
) -> None:
    """Block verdicts stored with their publish owed and their writer's claim run out, as after an SNS outage."""
    deps = dependencies()
    now = datetime.now(UTC)
    for job_id in job_ids:
        verdict = Verdict(
            provider=provider,
            job_id=job_id,
            status=JobStatus.SUCCEEDED,
            suggestion=Suggestion.BLOCK,
            findings=findings or [],
            updated_at=now,
            completed_at=now,
        )
        deps.store.record(deps.ingest.policy.finalize(verdict), None, now, publish=True)
        claim_runs_out(aws, provider, job_id)


def test_register_then_show_and_list_a_job(cli) -> None:  # type: ignore[no-untyped-def]
    code, registered = cli(
        "jobs", "register", "--provider", "alibaba-mps", "--job-id", "op-1", "--meta", "content_id=c-1"
    )
    assert code == 0
    assert registered["created"] is True

    code, shown = cli("jobs", "show", "--provider", "alibaba-mps", "--job-id", "op-1")
    assert code == 0
    assert shown["verdict"]["metadata"] == {"content_id": "c-1"}
    assert shown["next_poll_at"] is not None

    code, listed = cli("jobs", "list", "--status", "pending")
    assert [row["job_id"] for row in listed] == ["op-1"]
    code, due = cli("jobs", "list", "--status", "due", "--provider", "alibaba-mps")
    assert [row["job_id"] for row in due] == ["op-1"]


def test_an_unfinished_job_is_shown_and_listed_owing_no_publish(cli) -> None:  # type: ignore[no-untyped-def]
    # Given a registered job its provider has not finished
    assert cli("jobs", "register", "--provider", "alibaba-mps", "--job-id", "op-wait")[0] == 0

    # When the on-call shows it and lists the unfinished and the due jobs
    shown = cli("jobs", "show", "--provider", "alibaba-mps", "--job-id", "op-wait")[1]
    listed = [cli("jobs", "list", "--status", status)[1] for status in ("pending", "due")]

    # Then it owes no publish (nothing is owed before a verdict), so none of it reads as an owed verdict
    assert shown["publish_state"] == "not_required"
    assert [[(row["job_id"], row["publish_state"]) for row in rows] for rows in listed] == [
        [("op-wait", "not_required")]
    ] * 2


def test_show_of_an_unknown_job_exits_2(cli, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["jobs", "show", "--provider", "alibaba-mps", "--job-id", "nope"]) == 2
    assert "no job nope" in capsys.readouterr().err


def test_republish_sends_owed_verdicts_after_an_sns_outage(cli, aws: FakeAws) -> None:  # type: ignore[no-untyped-def]
    sns = aws.session.client("sns")
    endpoint = sns.list_subscriptions_by_topic(TopicArn=aws.resources.topic_arn)["Subscriptions"][0][
        "Endpoint"
    ]
    sns.delete_topic(TopicArn=aws.resources.topic_arn)
    finish_job("op-2")
    claim_runs_out(aws, "huawei-video", "op-2")
    code, owed = cli("jobs", "list", "--status", "unpublished")
    assert [row["job_id"] for row in owed] == ["op-2"]
    sns.create_topic(Name=aws.resources.topic_arn.rsplit(":", 1)[1])
    sns.subscribe(TopicArn=aws.resources.topic_arn, Protocol="sqs", Endpoint=endpoint)

    code, result = cli("republish")

    assert code == 0
    assert result["published_owed"]["huawei-video"] == 1
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["op-2"]
    assert cli("jobs", "list", "--status", "unpublished")[1] == []


def test_republish_of_a_chosen_job_sends_it_again_marked_as_republished(cli, aws: FakeAws) -> None:  # type: ignore[no-untyped-def]
    finish_job("op-3")
    assert [m["attributes"]["republished"] for m in aws.published()] == ["false"]  # the relay's own publish

    code, result = cli("republish", "--job", "huawei-video/op-3")

    # Then it is sent again, marked as the operator's re-send so a subscriber can tell it from the relay's publish
    assert code == 0
    assert result["republished"] == {"huawei-video/op-3": "published"}
    assert [(m["verdict"]["job_id"], m["attributes"]["republished"]) for m in aws.published()] == [
        ("op-3", "true")
    ]


def test_republish_of_a_chosen_owed_verdict_sends_its_first_publish_unmarked(cli, aws: FakeAws) -> None:  # type: ignore[no-untyped-def]
    # Given a verdict whose publish failed (SNS was down) and whose writer's claim has run out
    sns = aws.session.client("sns")
    endpoint = sns.list_subscriptions_by_topic(TopicArn=aws.resources.topic_arn)["Subscriptions"][0][
        "Endpoint"
    ]
    sns.delete_topic(TopicArn=aws.resources.topic_arn)
    finish_job("op-7")
    claim_runs_out(aws, "huawei-video", "op-7")
    sns.create_topic(Name=aws.resources.topic_arn.rsplit(":", 1)[1])
    sns.subscribe(TopicArn=aws.resources.topic_arn, Protocol="sqs", Endpoint=endpoint)

    # When the operator sends it by name
    code, result = cli("republish", "--job", "huawei-video/op-7")

    # Then it is its first publish, as the sweep would have sent it: not marked as a re-send
    assert (code, result["republished"]) == (0, {"huawei-video/op-7": "published"})
    assert [(m["verdict"]["job_id"], m["attributes"]["republished"]) for m in aws.published()] == [
        ("op-7", "false")
    ]


def test_republish_of_an_unfinished_job_fails(cli) -> None:  # type: ignore[no-untyped-def]
    cli("jobs", "register", "--provider", "alibaba-mps", "--job-id", "op-4")

    code, result = cli("republish", "--job", "alibaba-mps/op-4")

    assert code == 1
    assert result["republished"] == {"alibaba-mps/op-4": "unfinished"}


def test_republish_of_an_owed_verdict_another_writer_holds_does_not_send_it_too(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws
) -> None:
    # Given a verdict whose writer holds the publish claim (60 s) and could not publish yet (SNS is down)
    sns = aws.session.client("sns")
    endpoint = sns.list_subscriptions_by_topic(TopicArn=aws.resources.topic_arn)["Subscriptions"][0][
        "Endpoint"
    ]
    sns.delete_topic(TopicArn=aws.resources.topic_arn)
    finish_job("op-5")
    sns.create_topic(Name=aws.resources.topic_arn.rsplit(":", 1)[1])
    sns.subscribe(TopicArn=aws.resources.topic_arn, Protocol="sqs", Endpoint=endpoint)

    code, result = cli("republish", "--job", "huawei-video/op-5")

    # Then the operator is told it is in flight, and it is not sent a second time alongside its writer
    assert code == 1
    assert result["republished"] == {"huawei-video/op-5": "in_flight"}
    assert aws.published() == []


def test_republish_of_a_pass_verdict_needs_force(cli, aws: FakeAws) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from verdict_relay.handlers.dependencies import dependencies
    from verdict_relay.models.verdict import JobStatus, Suggestion, Verdict

    passed = Verdict(
        provider="azure-review",
        job_id="op-6",
        status=JobStatus.SUCCEEDED,
        suggestion=Suggestion.PASS,
        decided_by="provider",
    )  # type: ignore[call-arg]
    dependencies().store.record(passed, b"{}", datetime.now(UTC), publish=False)

    code, refused = cli("republish", "--job", "azure-review/op-6")
    assert (code, refused["republished"]) == (1, {"azure-review/op-6": "not_published_by_policy"})
    assert aws.published() == []

    code, forced = cli("republish", "--job", "azure-review/op-6", "--force")
    assert (code, forced["republished"]) == (0, {"azure-review/op-6": "published"})
    assert [(m["verdict"]["suggestion"], m["attributes"]["republished"]) for m in aws.published()] == [
        ("pass", "true")
    ]


def test_list_by_status_fills_its_limit_after_filtering(cli) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from verdict_relay.handlers.dependencies import dependencies

    # Given running jobs due before a pending one
    for job_id in ("run-1", "run-2", "run-3"):
        body = with_changes("huawei-video", "running", job_id=job_id)
        ApiClient().callback(
            "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
        )
        dependencies().store.reschedule("huawei-video", job_id, datetime.now(UTC) - timedelta(minutes=5), 1)
    cli("jobs", "register", "--provider", "huawei-video", "--job-id", "pend-1")

    code, listed = cli("jobs", "list", "--status", "pending", "--limit", "1")

    assert code == 0
    assert [row["job_id"] for row in listed] == ["pend-1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--job-id", "j-1", "--meta", "content_id"], "--meta takes KEY=VALUE"),
        (["--job-id", "has space"], "job_id"),
        (["--job-id", "a,b"], "verdict-relay: job_id: an alibaba-mps job id has no ','"),
    ],
)
def test_bad_registration_input_is_one_line_and_exit_2(  # type: ignore[no-untyped-def]
    cli, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["jobs", "register", "--provider", "alibaba-mps", *argv])

    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_no_aws_region_is_a_one_line_error(  # type: ignore[no-untyped-def]
    cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from verdict_relay.handlers.dependencies import dependencies

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    dependencies.cache_clear()

    code = main(["jobs", "show", "--provider", "alibaba-mps", "--job-id", "j-1"])

    assert code == 2
    assert "set AWS_REGION to the stack's region" in capsys.readouterr().err


def test_show_lists_every_conflict_of_a_job_however_large_their_payloads(cli) -> None:  # type: ignore[no-untyped-def]
    # Given a finished job and six different later results, each with a raw payload of 280 KB (a Query page
    # ends at 1 MB, so they span several pages)
    store = dependencies().store
    for i in range(7):
        result = Verdict(
            provider="azure-review",
            job_id="disputed",
            status=JobStatus.SUCCEEDED,
            suggestion=Suggestion.BLOCK,
            findings=[Finding(category="adult", label=f"label-{i}", suggestion=Suggestion.BLOCK)],
        )
        store.record(result, os.urandom(280_000), datetime.now(UTC), publish=False)

    code, shown = cli("jobs", "show", "--provider", "azure-review", "--job-id", "disputed")

    assert code == 0
    assert sorted(c["findings"][0]["label"] for c in shown["conflicts"]) == [
        f"label-{i}" for i in range(1, 7)
    ]


def test_republish_of_more_than_100_verdicts_prints_only_its_json(cli, aws: FakeAws) -> None:  # type: ignore[no-untyped-def]
    # Given 105 owed verdicts: publishing them counts VerdictPublished 105 times, past Powertools' 100 values a
    # metric, where it prints the metric set on stdout
    owe_publishes(aws, "azure-review", [f"owed-{i}" for i in range(105)])

    # When the operator publishes them (the fixture parses the whole of stdout as JSON)
    code, result = cli("republish", "--provider", "azure-review")

    # Then stdout is the command's JSON and nothing else
    assert code == 0
    assert result["published_owed"] == {"azure-review": 105}
    assert len(aws.published()) == 105


@pytest.mark.parametrize(
    "argv",
    [
        ["jobs", "show", "--provider", "alibaba-mps", "--job-id", "op-8"],
        ["jobs", "list", "--status", "pending"],
        ["jobs", "register", "--provider", "alibaba-mps", "--job-id", "op-9"],
        ["republish"],
    ],
)
def test_job_and_republish_commands_answer_when_the_providers_document_does_not_load(  # type: ignore[no-untyped-def]
    cli, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    # Given a job in the table, and a providers secret that cannot be read (it does not exist)
    cli("jobs", "register", "--provider", "alibaba-mps", "--job-id", "op-8")
    monkeypatch.setenv("PROVIDERS_SECRET_ID", "verdict-relay/no-such-secret")
    dependencies.cache_clear()

    # When the operator runs a command that does not need it
    code, result = cli(*argv)

    # Then it answers as usual
    assert code == 0
    assert result is not None
    if argv[:2] == ["jobs", "show"]:
        assert result["verdict"]["job_id"] == "op-8"
    if argv[:2] == ["jobs", "list"]:
        assert [row["job_id"] for row in result] == ["op-8"]


def test_poll_still_refuses_to_run_without_its_providers_document(  # type: ignore[no-untyped-def]
    cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROVIDERS_SECRET_ID", "verdict-relay/no-such-secret")
    dependencies.cache_clear()

    code = main(["poll", "--once"])

    assert code == 2
    assert "verdict-relay/no-such-secret" in capsys.readouterr().err


def test_poll_against_a_deployed_stack_runs_the_cycle_and_warns_that_it_runs_beside_the_schedule(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given AWS itself (no local endpoint), the providers document in Secrets Manager, no poll queue configured,
    # no UNMODERATED_SUGGESTION nor PUBLISH_PASS_VERDICTS (both decide for good what a cycle's verdicts get), and a
    # verdict owed since an SNS outage
    aws.session.client("secretsmanager").create_secret(Name="verdict-relay/providers", SecretString="{}")
    monkeypatch.setenv("PROVIDERS_SECRET_ID", "verdict-relay/providers")
    monkeypatch.delenv("PROVIDERS_FILE")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("POLL_QUEUE_URL", raising=False)
    monkeypatch.delenv("UNMODERATED_SUGGESTION")
    monkeypatch.delenv("PUBLISH_PASS_VERDICTS", raising=False)
    dependencies.cache_clear()
    owe_publishes(aws, "huawei-video", ["owed-1"])

    # When an operator runs a cycle
    code = main(["poll", "--once"])

    # Then it runs (the owed verdict is sent), and says on stderr what it costs the providers
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["huawei-video"]["owed_published"] == 1
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["owed-1"]
    assert captured.err == (
        f"verdict-relay: warning: {POLL_BESIDE_SCHEDULE}\nverdict-relay: warning: {POLL_WITHOUT_QUEUE}\n"
        f"verdict-relay: warning: {POLL_WITHOUT_SUGGESTION}\n"
        f"verdict-relay: warning: {POLL_WITHOUT_PUBLISH_SETTING}\n"
    )


@pytest.mark.parametrize("document", [False, True], ids=["no-providers-document", "providers-file"])
def test_poll_against_the_local_stack_warns_only_of_a_missing_providers_document(
    server_aws: FakeAws,
    document: bool,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the embedded AWS endpoint with the stack's poll queue and settings, and a providers document or none
    configure_environment(
        monkeypatch,
        server_aws,
        tmp_path,
        {},
        POLL_QUEUE_URL=server_aws.resources.queue_urls["PollQueue"],
        UNMODERATED_SUGGESTION="review",
        PUBLISH_PASS_VERDICTS="false",
    )
    if not document:
        monkeypatch.delenv("PROVIDERS_FILE")
    dependencies.cache_clear()

    # When an operator runs a cycle
    code = main(["poll", "--once"])

    # Then it runs; only a missing document is worth a warning, naming the settings rather than the credentials
    assert code == 0
    captured = capsys.readouterr()
    assert {
        provider: report["skipped"] for provider, report in json.loads(captured.out).items()
    } == dict.fromkeys(PROVIDER_NAMES, "no API credentials: owed publishes only")
    assert captured.err == ("" if document else f"verdict-relay: warning: {POLL_WITHOUT_PROVIDERS}\n")


def sns_refuses_every_publish(aws: FakeAws) -> Callable[[], None]:
    """The topic is gone (SNS answers NotFound to each publish); the returned function brings it back."""
    sns = aws.session.client("sns")
    endpoint = sns.list_subscriptions_by_topic(TopicArn=aws.resources.topic_arn)["Subscriptions"][0][
        "Endpoint"
    ]
    sns.delete_topic(TopicArn=aws.resources.topic_arn)

    def restore() -> None:
        sns.create_topic(Name=aws.resources.topic_arn.rsplit(":", 1)[1])
        sns.subscribe(TopicArn=aws.resources.topic_arn, Protocol="sqs", Endpoint=endpoint)

    return restore


def test_republish_that_sns_refuses_exits_1_and_says_which_verdicts_are_still_owed(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given three owed verdicts, and SNS refusing every publish
    owe_publishes(aws, "azure-review", ["owed-1", "owed-2", "owed-3"])
    sns_refuses_every_publish(aws)

    # When the operator publishes the owed verdicts
    capsys.readouterr()
    code = main(["republish"])

    # Then the command fails, and its output names what failed and what is still owed
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == 1
    assert result["published_owed"]["azure-review"] == 0
    assert result["publish_failed"] == ["azure-review/owed-1", "azure-review/owed-2", "azure-review/owed-3"]
    assert result["still_owed"]["azure-review"] == 3
    assert result["storage_failed"] == []
    assert "verdict-relay: 3 publishes failed" in captured.err


def test_republish_after_a_failed_one_sends_the_verdicts_at_once_once_sns_is_back(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws
) -> None:
    # Given owed verdicts whose publish the command just tried and SNS refused
    owe_publishes(aws, "azure-review", ["owed-1", "owed-2"])
    restore = sns_refuses_every_publish(aws)
    assert cli("republish")[0] == 1

    # When SNS is back and the operator tries again at once, by name and for all that are owed
    restore()
    code_by_name, by_name = cli("republish", "--job", "azure-review/owed-1")
    code_all, everything = cli("republish")

    # Then the command's own failed attempt does not stand in the way: each goes out once, as its first publish
    assert (code_by_name, by_name["republished"]) == (0, {"azure-review/owed-1": "published"})
    assert (code_all, everything["published_owed"]["azure-review"]) == (0, 1)
    assert sorted((m["verdict"]["job_id"], m["attributes"]["republished"]) for m in aws.published()) == [
        ("owed-1", "false"),
        ("owed-2", "false"),
    ]
    assert everything["still_owed"]["azure-review"] == 0


def test_republish_limit_is_the_whole_commands_and_still_owed_counts_every_verdict_left(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws
) -> None:
    # Given six owed verdicts, three from each of two providers
    owe_publishes(aws, "alibaba-mps", ["mps-1", "mps-2", "mps-3"])
    owe_publishes(aws, "azure-review", ["az-1", "az-2", "az-3"])

    # When the operator sends at most four of them
    code, result = cli("republish", "--limit", "4")

    # Then four go out in all, not four from each provider, and what is still owed counts the other two
    assert code == 0
    assert sum(result["published_owed"].values()) == 4
    assert len(aws.published()) == 4
    assert sum(result["still_owed"].values()) == 2

    # And with --limit 1, one more: what is still owed is not cut at the limit either
    code, result = cli("republish", "--limit", "1")
    assert (code, sum(result["published_owed"].values()), len(aws.published())) == (0, 1, 1)
    assert sum(result["still_owed"].values()) == 1


def test_a_job_command_whose_table_is_missing_exits_1_naming_the_storage_failure(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.session.client("dynamodb").delete_table(TableName=aws.resources.table_name)

    code = main(["jobs", "show", "--provider", "alibaba-mps", "--job-id", "op-10"])

    assert code == 1
    assert "ResourceNotFoundException" in capsys.readouterr().err


def test_poll_once_whose_table_is_missing_exits_1_naming_the_storage_failure(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no provider to poll (no providers document): the cycle only sweeps owed publishes, and each
    # provider's sweep logs its storage failure and goes on
    monkeypatch.delenv("PROVIDERS_FILE")
    aws.session.client("dynamodb").delete_table(TableName=aws.resources.table_name)

    # When the operator runs a cycle
    capsys.readouterr()
    code = main(["poll", "--once", "--budget", "30"])

    # Then it still prints what it did for each provider, and exits 1 naming the failure
    captured = capsys.readouterr()
    assert code == 1
    assert set(json.loads(captured.out)) == set(PROVIDER_NAMES)
    assert "verdict-relay: storage failed: job store:" in captured.err
    assert "ResourceNotFoundException" in captured.err


def test_an_owed_verdict_whose_archived_copy_took_its_claim_to_read_is_not_sent_and_stays_owed(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an owed verdict too large for its item (archived in S3: 1,440 findings of text that compresses
    # poorly), whose read takes as long as a claim lasts
    text = [f"{random.Random(i).getrandbits(2048):0512x}" for i in range(1440)]
    findings = [Finding(category="porn", label="porn", time_offset=i * 5, text=t) for i, t in enumerate(text)]
    owe_publishes(aws, "huawei-video", ["big-1"], findings)
    assert any(
        key.startswith("jobs/huawei-video/big-1/") and key.endswith("/verdict.json.gz")
        for key in aws.bucket_keys()
    )
    clock = [1000.0]
    monkeypatch.setattr(ingest_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    def slow_read(**_: Any) -> None:
        clock[0] += 61  # the claim (60 s) ran out while the verdict was read

    stop_hook = hooked_sessions(monkeypatch, "before-send.s3.GetObject", slow_read)

    # When the operator sends the owed publishes
    code, result = cli("republish", "--provider", "huawei-video")

    # Then it is not sent (the sweep may have claimed it since), and stays owed, its claim given up
    assert aws.published() == []
    assert result["still_owed"]["huawei-video"] == 1
    stop_hook()
    code, result = cli("republish", "--provider", "huawei-video")
    assert (code, result["published_owed"]["huawei-video"]) == (0, 1)
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["big-1"]


@pytest.mark.parametrize("argv", [["republish", "--job", "azure-review/owed-9"], ["republish"]])
def test_republish_whose_confirmation_was_throttled_then_landed_exits_0_without_a_storage_failure(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # Given an owed verdict, and a table that throttles the first confirmation of its publish through every
    # attempt the SDK makes (the shared code waits and tries again, and the next lands)
    owe_publishes(aws, "azure-review", ["owed-9"])
    throttle = ConfirmationThrottle(times=STORE_SDK_ATTEMPTS)
    stop_hook = hooked_sessions(monkeypatch, "before-send.dynamodb", throttle)
    capsys.readouterr()

    # When the on-call sends it
    code = main(argv)

    # Then it is sent once and confirmed, and the command says it succeeded: told the step failed, the on-call
    # would send it again
    printed = capsys.readouterr()
    assert throttle.injected == STORE_SDK_ATTEMPTS
    assert code == 0, printed.err
    assert "storage failed" not in printed.err
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["owed-9"]
    shown = json.loads(printed.out)
    if "republished" in shown:
        assert shown == {"republished": {"azure-review/owed-9": "published"}}
    else:
        assert (shown["published_owed"]["azure-review"], shown["storage_failed"]) == (1, [])
    stop_hook()
    assert (
        cli("jobs", "show", "--provider", "azure-review", "--job-id", "owed-9")[1]["publish_state"]
        == "published"
    )


def test_republish_whose_confirmation_never_lands_exits_1_naming_it(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an owed verdict, and a table that throttles every confirmation of its publish
    owe_publishes(aws, "azure-review", ["owed-9"])
    monkeypatch.setattr(
        ingest_module, "STORE_CALL_MAX_S", 60.0
    )  # no time for another attempt within the claim
    throttle = ConfirmationThrottle(times=1000)
    hooked_sessions(monkeypatch, "before-send.dynamodb", throttle)
    capsys.readouterr()

    # When the on-call sends it
    code = main(["republish", "--job", "azure-review/owed-9"])

    # Then it went out, but the command fails, naming the confirmation: the sweep will send it again
    printed = capsys.readouterr()
    assert code == EXIT_FAILED
    assert "storage failed: job store: mark published failed" in printed.err
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["owed-9"]


def test_republish_of_a_verdict_s3_fails_to_read_for_a_while_can_be_tried_again_at_once(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an owed verdict archived in S3 (1,440 findings of text that compresses poorly), and S3 answering
    # its reads SlowDown for a while, from the command's second read on: the one after it claimed the publish
    text = [f"{random.Random(i).getrandbits(2048):0512x}" for i in range(1440)]
    findings = [Finding(category="porn", label="porn", time_offset=i * 5, text=t) for i, t in enumerate(text)]
    owe_publishes(aws, "huawei-video", ["big-1"], findings)
    slow = [True]
    reads = [0]

    def slow_down(request: Any, **_: Any) -> Any:
        reads[0] += 1
        if slow[0] and reads[0] > 1:
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            return aws_response(request, 503, body, "application/xml")
        return None

    hooked_sessions(monkeypatch, "before-send.s3.GetObject", slow_down)
    capsys.readouterr()

    # When the on-call sends it, and again once S3 answers
    code = main(["republish", "--job", "huawei-video/big-1"])
    printed = capsys.readouterr()
    slow[0] = False
    again_code, again = cli("republish", "--job", "huawei-video/big-1")

    # Then the first says S3 could not read it and to try again (not to delete the job), and the second sends
    # it: the first gave its claim back
    assert code == EXIT_FAILED
    assert json.loads(printed.out) == {"republished": {"huawei-video/big-1": "verdict_unreadable"}}
    assert "S3 may answer again: try again" in printed.err
    assert "jobs register" not in printed.err
    assert (again_code, again) == (0, {"republished": {"huawei-video/big-1": "published"}})
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["big-1"]


def test_an_owed_verdict_whose_archived_copy_is_gone_is_listed_and_shown_without_hiding_the_others(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two owed verdicts, one of which is archived in S3 and its object gone (OwedPublishUnreadableAlarm)
    owe_publishes(aws, "azure-review", ["readable-1"])
    owe_publishes(aws, "azure-review", ["gone-1"])
    lose_archived_verdict(aws, "azure-review", "gone-1")

    # When the on-call lists the owed verdicts, then shows the one that cannot be read
    capsys.readouterr()
    code = main(["jobs", "list", "--status", "unpublished"])
    printed = capsys.readouterr()
    listed, listed_hint = json.loads(printed.out), printed.err
    shown_code, shown = cli("jobs", "show", "--provider", "azure-review", "--job-id", "gone-1")

    # Then both are listed, the unreadable one with why, and shown with what its item says, and the commands
    # exit 1 saying how to recover
    assert code == EXIT_FAILED
    assert {row["job_id"]: row.get("verdict_unreadable") for row in listed} == {
        "readable-1": None,
        "gone-1": "payload archive: get failed (NoSuchKey)",
    }
    assert "'jobs register' it again" in listed_hint
    assert shown_code == EXIT_FAILED
    assert (shown["verdict"]["status"], shown["publish_state"]) == ("succeeded", "pending")
    assert shown["verdict_unreadable"] == "payload archive: get failed (NoSuchKey)"


@pytest.mark.parametrize("how", UNREADABLE_KINDS)
def test_republish_of_chosen_jobs_sends_the_readable_ones_and_names_the_unreadable_one(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    # Given two owed verdicts, one of which cannot be read (OwedPublishUnreadableAlarm)
    owe_publishes(aws, "azure-review", ["readable-1", "broken-1"])
    break_verdict(aws, "azure-review", "broken-1", how)
    capsys.readouterr()

    # When the on-call sends both
    code = main(["republish", "--job", "azure-review/readable-1", "--job", "azure-review/broken-1"])

    # Then the readable one is sent and said to be, the other named with why and how to recover, and it exits 1
    printed = capsys.readouterr()
    assert code == EXIT_FAILED
    assert json.loads(printed.out) == {
        "republished": {"azure-review/readable-1": "published", "azure-review/broken-1": "verdict_unreadable"}
    }
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["readable-1"]
    assert "the verdict of broken-1 cannot be read" in printed.err
    assert "'jobs register' it again" in printed.err
    assert "Traceback" not in printed.err
    assert cli("jobs", "list", "--status", "unpublished")[1][0]["job_id"] == "broken-1"


@pytest.mark.parametrize("how", UNREADABLE_KINDS)
def test_an_unfinished_job_whose_findings_so_far_cannot_be_read_is_listed_and_can_be_expired(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, how: str
) -> None:
    # Given a registered job whose stored findings so far cannot be read
    cli("jobs", "register", "--provider", "azure-review", "--job-id", "stuck-1")
    break_verdict(aws, "azure-review", "stuck-1", how)

    # When the on-call lists the unfinished jobs, then expires it
    listed = [cli("jobs", "list", "--status", status) for status in ("pending", "due")]
    expired_code, expired = cli("jobs", "expire", "--provider", "azure-review", "--job-id", "stuck-1")

    # Then it is listed (an unfinished job's listing needs no verdict), and expired and published once
    assert [(code, [row["job_id"] for row in rows]) for code, rows in listed] == [(0, ["stuck-1"])] * 2
    assert (expired_code, expired["transition"], expired["verdict"]["status"]) == (0, "advanced", "expired")
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["stuck-1"]


def test_show_of_a_job_whose_recorded_conflict_cannot_be_read_still_shows_the_job(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a finished job and a different later result recorded beside it, whose archived copy is gone
    store = dependencies().store
    for label in ("first", "second"):
        result = Verdict(
            provider="azure-review",
            job_id="disputed",
            status=JobStatus.SUCCEEDED,
            suggestion=Suggestion.BLOCK,
            findings=[Finding(category="adult", label=label, suggestion=Suggestion.BLOCK)],
        )
        store.record(result, None, datetime.now(UTC), publish=False)
    table = aws.session.client("dynamodb")
    (conflict,) = table.query(
        TableName=aws.resources.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
        ExpressionAttributeValues={":pk": {"S": "azure-review#disputed"}, ":c": {"S": "CONFLICT#"}},
    )["Items"]
    table.update_item(
        TableName=aws.resources.table_name,
        Key={"pk": conflict["pk"], "sk": conflict["sk"]},
        UpdateExpression="REMOVE verdict_gz SET verdict_s3_key = :key",
        ExpressionAttributeValues={":key": {"S": "jobs/azure-review/disputed/deleted/verdict.json.gz"}},
    )
    capsys.readouterr()

    # When the on-call shows the job
    code = main(["jobs", "show", "--provider", "azure-review", "--job-id", "disputed"])

    # Then the job's own verdict is shown, the conflicts said to be unreadable, and it exits 1
    printed = capsys.readouterr()
    shown = json.loads(printed.out)
    assert code == EXIT_FAILED
    assert shown["verdict"]["findings"][0]["label"] == "first"
    assert (shown["conflicts"], shown["conflicts_unreadable"]) == (
        None,
        "payload archive: get failed (NoSuchKey)",
    )
    assert "the other results recorded for disputed cannot be read" in printed.err


def test_a_published_verdict_whose_archived_copy_is_gone_is_shown_without_the_way_out_for_owed_ones(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job whose verdict was published, and its archived copy gone (RetentionDays lowered)
    finish_job("published-1")
    lose_archived_verdict(aws, "huawei-video", "published-1")
    capsys.readouterr()

    # When the on-call shows it
    code = main(["jobs", "show", "--provider", "huawei-video", "--job-id", "published-1"])

    # Then it says the verdict cannot be read, but not to register the job again: that would publish it twice
    printed = capsys.readouterr()
    assert code == EXIT_FAILED
    assert json.loads(printed.out)["publish_state"] == "published"
    assert "cannot be read (payload archive: get failed (NoSuchKey))" in printed.err
    assert "jobs register" not in printed.err


def test_an_expiry_that_meets_a_finished_job_is_not_logged_as_an_expiry(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a job its callback finished just before an expiry reached it
    finish_job("finished-1")

    # When the expiry comes
    result = dependencies().ingest.expire("huawei-video", "finished-1", datetime.now(UTC), "gave up")

    # Then the job's own verdict stands, and no warning says it went out unmoderated
    assert result.published is False
    assert not [r for r in caplog.records if r.getMessage() == "job expired as unmoderated"]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nope/x", "--job nope/x: unknown provider 'nope'; expected one of huawei-video, "),
        ("huawei-video", "--job takes PROVIDER/JOB_ID, got 'huawei-video'"),
    ],
)
def test_republish_of_a_job_named_wrongly_says_what_is_wrong_and_exits_2(  # type: ignore[no-untyped-def]
    cli, capsys: pytest.CaptureFixture[str], ref: str, message: str
) -> None:
    code = main(["republish", "--job", ref])

    assert code == 2
    assert message in capsys.readouterr().err


def test_a_command_without_the_stacks_settings_says_where_they_come_from(  # type: ignore[no-untyped-def]
    cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TABLE_NAME")

    code = main(["jobs", "show", "--provider", "alibaba-mps", "--job-id", "j-1"])

    err = capsys.readouterr().err
    assert code == 2
    assert "invalid environment: TABLE_NAME: Field required" in err
    assert "JobsTableName" in err
    assert "assignments it prints" in err
    assert len(err.strip().splitlines()) == 1


def test_poll_without_the_stacks_settings_says_so_before_any_warning(  # type: ignore[no-untyped-def]
    cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TOPIC_ARN")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    code = main(["poll", "--once"])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert [line for line in err if "warning" in line] == []
    assert "TOPIC_ARN" in err[0]


def test_no_aws_credentials_is_a_one_line_error_saying_how_to_give_them(  # type: ignore[no-untyped-def]
    cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    dependencies.cache_clear()

    code = main(["jobs", "list", "--status", "pending"])

    err = capsys.readouterr().err
    assert code == 1
    assert "NoCredentialsError" in err
    assert "AWS_PROFILE" in err
    assert len(err.strip().splitlines()) == 1


def test_republish_force_without_a_job_is_refused_and_sends_nothing(
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    owe_publishes(aws, "huawei-video", ["owed-1"])

    code = main(["republish", "--force"])

    assert code == 2
    assert "--force needs --job" in capsys.readouterr().err
    assert aws.published() == []


@pytest.mark.parametrize("argv", [["jobs", "list", "--status", "due"], ["republish"]])
def test_a_limit_below_one_is_refused_by_the_parser(  # type: ignore[no-untyped-def]
    cli, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--limit", "0"])

    assert exited.value.code == 2
    assert "--limit: must be at least 1, got 0" in capsys.readouterr().err


def test_expire_finishes_a_job_nothing_will_finish_and_publishes_it_once(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("jobs", "register", "--provider", "azure-review", "--job-id", "stuck-1")
    monkeypatch.setenv("UNMODERATED_SUGGESTION", "block")  # a stack that blocks what was not moderated

    code, out = cli(
        "jobs", "expire", "--provider", "azure-review", "--job-id", "stuck-1", "--reason", "ticket OPS-7"
    )

    assert code == 0
    assert (out["transition"], out["published"]) == ("advanced", True)
    verdict = out["verdict"]
    assert (verdict["status"], verdict["suggestion"], verdict["decided_by"]) == (
        "expired",
        "block",
        "policy",
    )
    assert verdict["error"]["message"] == "expired by an operator: ticket OPS-7"
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["stuck-1"]
    assert cli("jobs", "list", "--status", "pending") == (0, [])


def test_expire_whose_write_landed_with_its_answer_lost_publishes_its_verdict_and_exits_0(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a job nothing will finish, and a table that applies the expiry's write but whose answer is lost
    # (a read timeout: the SDK tries the write again, and its condition then fails on the write itself)
    cli("jobs", "register", "--provider", "azure-review", "--job-id", "stuck-1")
    first = iter([True])

    def lose_the_expirys_answer(request: Any, **_: Any) -> None:
        if b'"expired"' in (request.body or b"") and next(first, False):
            sent = json.loads(request.body)
            for value in sent["ExpressionAttributeValues"].values():
                if "B" in value:
                    value["B"] = base64.b64decode(value["B"])
            aws.session.client("dynamodb").update_item(**sent)
            raise ReadTimeoutError(endpoint_url="https://dynamodb.example")

    stop_hook = hooked_sessions(monkeypatch, "before-send.dynamodb.UpdateItem", lose_the_expirys_answer)
    capsys.readouterr()

    # When the on-call expires it
    code = main(
        ["jobs", "expire", "--provider", "azure-review", "--job-id", "stuck-1", "--reason", "gave up"]
    )

    # Then its own expiry is stored and published once, now, not said to have met another result
    printed = capsys.readouterr()
    assert next(first, None) is None  # the answer was lost
    assert code == 0, printed.err
    assert (json.loads(printed.out)["transition"], json.loads(printed.out)["published"]) == ("advanced", True)
    assert "finished meanwhile" not in printed.err
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["stuck-1"]
    stop_hook()
    assert (
        cli("jobs", "show", "--provider", "azure-review", "--job-id", "stuck-1")[1]["publish_state"]
        == "published"
    )


@pytest.mark.parametrize(("job_id", "message"), [("done-1", "already finished"), ("nobody", "no job nobody")])
def test_expire_of_a_finished_or_unknown_job_exits_2_and_changes_nothing(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str], job_id: str, message: str
) -> None:
    finish_job("done-1")
    assert len(aws.published()) == 1  # its own publish, read off the queue
    items = aws.table_items()

    code = main(["jobs", "expire", "--provider", "huawei-video", "--job-id", job_id])

    assert code == 2
    assert message in capsys.readouterr().err
    assert aws.table_items() == items
    assert aws.published() == []


def test_expire_without_the_stacks_unmoderated_suggestion_is_refused_and_changes_nothing(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job nothing will finish, and an operator whose shell lacks the stack's UNMODERATED_SUGGESTION
    cli("jobs", "register", "--provider", "azure-review", "--job-id", "stuck-2")
    items = aws.table_items()
    monkeypatch.delenv("UNMODERATED_SUGGESTION")

    # When the operator expires it
    code = main(["jobs", "expire", "--provider", "azure-review", "--job-id", "stuck-2"])

    # Then nothing is decided by the default, which may not be the stack's: the command says what to set
    assert code == 2
    assert "UNMODERATED_SUGGESTION, which is not set" in capsys.readouterr().err
    assert aws.table_items() == items
    assert aws.published() == []


def test_expire_of_a_job_only_a_callbacks_notice_named_deletes_it_and_publishes_nothing(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an id only a notice named (any Alibaba account can have MNS sign one), overdue
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    dependencies().store.mark_due("alibaba-mps", "named-1", two_days_ago, unconfirmed=True)

    code, out = cli("jobs", "expire", "--provider", "alibaba-mps", "--job-id", "named-1")

    # Then it is deleted, as the poller deletes one the provider denies: an id anyone could name never becomes
    # a published verdict
    assert code == 0
    assert out == {"deleted": True, "published": False, "verdict": None}
    assert aws.job_items() == []
    assert aws.published() == []


def test_expire_of_a_job_deleted_after_it_was_read_exits_2_and_creates_nothing(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verdict_relay.dal.store import JobStore

    # Given an unconfirmed job that another writer deletes (the provider denied it) right after the command read it
    dependencies().store.mark_due("alibaba-mps", "named-2", datetime.now(UTC), unconfirmed=True)
    read = JobStore.get

    def read_then_deleted(self: JobStore, provider: str, job_id: str, **options: Any) -> Any:
        job = read(self, provider, job_id, **options)
        self.drop_unconfirmed(provider, job_id)
        return job

    monkeypatch.setattr(JobStore, "get", read_then_deleted)

    code = main(["jobs", "expire", "--provider", "alibaba-mps", "--job-id", "named-2"])

    assert code == 2
    assert aws.job_items() == []
    assert aws.published() == []


def expire_with_a_race(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    job_id: str,
    after: str,
    meanwhile: Callable[[], None],
) -> tuple[int, str]:
    """``jobs expire`` of a Huawei video job, with ``meanwhile`` done right after the command's first call of
    ``JobStore.<after>``: its exit status and what it printed on stderr."""
    from verdict_relay.dal.store import JobStore

    original = getattr(JobStore, after)

    def then(self: JobStore, *args: Any, **options: Any) -> Any:
        result = original(self, *args, **options)
        monkeypatch.setattr(JobStore, after, original)
        meanwhile()
        return result

    monkeypatch.setattr(JobStore, after, then)
    capsys.readouterr()
    code = main(["jobs", "expire", "--provider", "huawei-video", "--job-id", job_id])
    return code, capsys.readouterr().err


def test_expire_of_a_job_deleted_after_it_was_kept_stores_its_verdict_afresh_and_exits_1_saying_so(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a registered job whose item something outside the relay deletes (an operator's delete-item) right
    # after the command found it confirmed
    assert cli("jobs", "register", "--provider", "huawei-video", "--job-id", "gone-1")[0] == 0
    (item,) = aws.job_items()

    def deleted() -> None:
        aws.session.client("dynamodb").delete_item(
            TableName=aws.resources.table_name, Key={"pk": item["pk"], "sk": item["sk"]}
        )

    # When the operator expires it
    code, err = expire_with_a_race(monkeypatch, capsys, "gone-1", "drop_unconfirmed", deleted)

    # Then the expired verdict is stored and published once, and the command fails saying the job was made anew
    assert code == 1
    assert "deleted meanwhile; its expired verdict was stored afresh" in err
    assert [m["verdict"]["status"] for m in aws.published()] == ["expired"]
    assert [i["status"]["S"] for i in aws.job_items()] == ["expired"]


def test_expire_of_a_job_that_finishes_after_it_was_read_exits_1_and_its_own_verdict_stands(  # type: ignore[no-untyped-def]
    cli, aws: FakeAws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a registered job whose provider's callback finishes it right after the command read it
    assert cli("jobs", "register", "--provider", "huawei-video", "--job-id", "race-1")[0] == 0

    # When the operator expires it
    code, err = expire_with_a_race(monkeypatch, capsys, "race-1", "get", lambda: finish_job("race-1"))

    # Then the command fails saying so, and the callback's verdict is the one stored and published, once
    assert code == 1
    assert "finished meanwhile" in err
    assert [m["verdict"]["status"] for m in aws.published()] == ["succeeded"]
