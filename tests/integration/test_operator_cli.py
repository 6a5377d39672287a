"""Operator subcommands against the configured table and topic: jobs register/show/list, republish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.helpers import huawei_signature, with_changes
from tests.integration.conftest import HUAWEI_SEEDS, PROVIDERS_DOCUMENT, ApiClient, configure_environment
from verdict_relay.cli import main


@pytest.fixture
def cli(aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    # No publish claim: the sweep may take an owed verdict at once (the tests cannot wait out the default).
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT, PUBLISH_CLAIM_SECONDS="0")

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
    code, owed = cli("jobs", "list", "--status", "unpublished")
    assert [row["job_id"] for row in owed] == ["op-2"]
    sns.create_topic(Name=aws.resources.topic_arn.rsplit(":", 1)[1])
    sns.subscribe(TopicArn=aws.resources.topic_arn, Protocol="sqs", Endpoint=endpoint)

    code, result = cli("republish")

    assert code == 0
    assert result["published_owed"]["huawei-video"] == 1
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["op-2"]
    assert cli("jobs", "list", "--status", "unpublished")[1] == []


def test_republish_of_a_chosen_job_sends_it_again(cli, aws: FakeAws) -> None:  # type: ignore[no-untyped-def]
    finish_job("op-3")
    assert len(aws.published()) == 1

    code, result = cli("republish", "--job", "huawei-video/op-3")

    assert code == 0
    assert result["republished"] == {"huawei-video/op-3": True}
    assert [m["verdict"]["job_id"] for m in aws.published()] == ["op-3"]


def test_republish_of_an_unfinished_job_fails(cli) -> None:  # type: ignore[no-untyped-def]
    cli("jobs", "register", "--provider", "alibaba-mps", "--job-id", "op-4")

    code, result = cli("republish", "--job", "alibaba-mps/op-4")

    assert code == 1
    assert result["republished"] == {"alibaba-mps/op-4": False}
