"""Fixtures shared by every test tier: a fake AWS account (moto, in-process) with the template's resources."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from moto import mock_aws

os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_SERVICE_NAME": "verdict-relay",
        "POWERTOOLS_METRICS_NAMESPACE": "VerdictRelay",
        "POWERTOOLS_DEV": "false",
    }
)
os.environ.pop("AWS_PROFILE", None)

from verdict_relay.local.aws import EmbeddedAws
from verdict_relay.local.resources import LocalResources, create_resources

_DATA_LOADERS: dict[str, botocore.loaders.Loader] = {}


def _shared_data_loader(self: botocore.session.Session) -> None:
    """Every botocore session of the test process reads the SDK's service models through one loader (per data
    path). A session's loader parses each model's JSON at its first client, and every test makes new sessions
    (its fake account's, the functions'): a new loader each time cost 0.2 s of a test's setup. One session's
    clients share their loader's models the same way: this only makes later sessions reuse them."""

    def loader() -> botocore.loaders.Loader:
        path = self.get_config_variable("data_path")
        shared = _DATA_LOADERS.setdefault(path, botocore.loaders.create_loader(path))
        # boto3 appends its own models' directory to each new session's loader: once is enough
        shared.search_paths[:] = dict.fromkeys(shared.search_paths)
        return shared

    self._components.lazy_register_component("data_loader", loader)


botocore.session.Session._register_data_loader = _shared_data_loader  # type: ignore[method-assign]

LONGEST_FIRST = (
    "tests/reliability/test_duplicates_and_order.py",
    "tests/e2e/",
    "tests/integration/test_operator_cli.py::test_republish_of_more_than_100_verdicts",
    "tests/integration/test_polling.py::test_backlog_beyond_the_rate_limit",
)
"""Tests that take 10 to 25 s each, run first: ``make test``'s workers take tests in collection order, and one
of these left to the end would keep one worker busy after the other has run out of tests."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, the rest in their order (the sort is stable)."""

    def rank(item: pytest.Item) -> int:
        return next(
            (i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
            len(LONGEST_FIRST),
        )

    items.sort(key=rank)


@dataclass
class FakeAws:
    """The template's resources in moto, and a queue subscribed to the verdict topic to see what was published."""

    session: Any
    resources: LocalResources
    published_queue_url: str

    def published(self) -> list[dict[str, Any]]:
        """Every SNS message published so far: {'verdict': ..., 'attributes': {...}}, draining the queue."""
        messages = []
        for message in self.drain(self.published_queue_url):
            envelope = json.loads(message["Body"])
            messages.append(
                {
                    "verdict": json.loads(envelope["Message"]),
                    "attributes": {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()},
                }
            )
        return messages

    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message waiting on a queue, received and deleted."""
        sqs = self.session.client("sqs")
        messages: list[dict[str, Any]] = []
        while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch)
        return messages

    def table_items(self) -> list[dict[str, Any]]:
        """Every item in the jobs table (tests may Scan; the code never does)."""
        client = self.session.client("dynamodb")
        return client.scan(TableName=self.resources.table_name, ConsistentRead=True)["Items"]

    def job_items(self) -> list[dict[str, Any]]:
        """The jobs' own items (``sk = STATE``): not conflict records, markers or signed-text bindings."""
        return [item for item in self.table_items() if item["sk"]["S"] == "STATE"]

    def bucket_keys(self) -> list[str]:
        listing = self.session.client("s3").list_objects_v2(Bucket=self.resources.bucket)
        return [o["Key"] for o in listing.get("Contents", [])]


_CAPTURED_OUTPUT = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Keep what the test printed to stdout and stderr (its setup's and its call's), for the search below."""
    report = yield
    if call.when == "call":
        item.stash[_CAPTURED_OUTPUT] = report.capstdout + report.capstderr
    return report


@pytest.fixture(autouse=True)
def _no_secret_in_the_logs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Fail the test whose logs hold a secret or a signature (``tests/log_search.py``: the secrets the suites
    configure, the private key of the MNS signer it uses, the signatures it presented to the receiver and the
    credentials the relay's clients sent the provider simulator): every field of every log record of its setup,
    call and teardown so far, the service's debug ones included, and whatever it printed to stdout and stderr (what a test reads
    through ``capsys`` or ``capfd`` is that test's to search)."""
    from tests import log_search
    from verdict_relay.observability import SERVICE

    caplog.set_level(logging.DEBUG, logger=SERVICE)
    log_search.presented.clear()
    secrets = set(log_search.suite_secrets())
    if "mns" in request.fixturenames:
        secrets |= log_search.signing_key_material(request.getfixturevalue("mns"))
    yield
    secrets |= log_search.searched(
        log_search.presented | log_search.received_credentials(request.node.funcargs)
    )
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.get_records("teardown")]
    text = "\n".join(json.dumps(record.__dict__, default=str) for record in records)
    text += request.node.stash.get(_CAPTURED_OUTPUT, "")
    leaked = sorted(secret[:12] + "..." for secret in secrets if secret in text)
    if leaked:
        pytest.fail(f"secrets in the logs of {request.node.nodeid}: {', '.join(leaked)}", pytrace=False)


@pytest.fixture(autouse=True)
def _fresh_parameter_caches() -> Iterator[None]:
    """Powertools caches secrets per process: a document another test stored under the same name must not
    be served to this one (it made a test poll with a document without credentials)."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    yield
    parameters.clear_caches()


@pytest.fixture(autouse=True)
def _no_counts_from_earlier_tests() -> None:
    """Powertools keeps counts per process until a handler writes them out: a test that reads a handler's
    metrics must not read what earlier tests counted without a handler."""
    from verdict_relay.observability import clear_metrics

    clear_metrics()


@pytest.fixture
def aws() -> Iterator[FakeAws]:
    with mock_aws():
        session = boto3.session.Session()
        resources = create_resources(session)
        sqs = session.client("sqs")
        queue_url = sqs.create_queue(QueueName="published-verdicts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        session.client("sns").subscribe(TopicArn=resources.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        yield FakeAws(session=session, resources=resources, published_queue_url=queue_url)


@pytest.fixture
def server_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    """The embedded AWS endpoint (moto server, atomic DynamoDB writes) with the template's resources."""
    server = EmbeddedAws().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    session = boto3.session.Session()
    resources = create_resources(session, prefix="server")
    sqs = session.client("sqs")
    queue_url = sqs.create_queue(QueueName="server-published")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    session.client("sns").subscribe(TopicArn=resources.topic_arn, Protocol="sqs", Endpoint=arn)
    yield FakeAws(session=session, resources=resources, published_queue_url=queue_url)
    server.stop()
