"""Every AWS call each function makes is one its role in template.yaml allows.

moto does not check IAM, so a permission missing from the template would only show after a real deploy. These
tests run each function's real handler through its paths (callbacks, the job API, the schedule with fan-out,
the poll worker), record every AWS operation the handler's SDK clients send, and check each against the
statements of that function's ``Policies``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import FakeAws
from tests.helpers import huawei_signature, with_changes
from tests.integration.conftest import HUAWEI_SEEDS, ApiClient, LambdaContext, configure_environment
from tests.integration.test_callbacks import two_hour_video
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.resources import load_template, resources_of_type
from verdict_relay.local.simulator import ProviderSimulator, azure_job
from verdict_relay.local.stack import sqs_event

# IAM checks some operations under another action's name.
_ACTION_OF = {"s3:HeadObject": "s3:GetObject", "sqs:SendMessageBatch": "sqs:SendMessage"}


class Calls:
    """The AWS operations sent by the sessions the functions create, labelled by the function running."""

    def __init__(self) -> None:
        self.function: str | None = None
        self.seen: dict[str, set[tuple[str, str | None]]] = {}

    def record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.function is None:
            return  # the test's own setup
        action = f"{model.service_model.signing_name}:{model.name}"
        seen = self.seen.setdefault(self.function, set())
        seen.add((_ACTION_OF.get(action, action), params.get("IndexName")))
        if action == "s3:PutObject" and "Tagging" in params:  # IAM checks an upload's tags as tagging
            seen.add(("s3:PutObjectTagging", None))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorded = Calls()
    original = boto3.session.Session

    def recording_session(*args: Any, **kwargs: Any) -> Any:
        session = original(*args, **kwargs)
        session.events.register("before-parameter-build", recorded.record)
        return session

    monkeypatch.setattr(boto3.session, "Session", recording_session)
    return recorded


def allowed(function: str) -> dict[str, bool]:
    """The actions the function's role allows, each with whether its resources include the table's indexes."""
    template = load_template()
    properties = resources_of_type(template, "AWS::Serverless::Function")[function]
    if "Role" in properties:  # its own role (!GetAtt <Role>.Arn): the statements of the role's policies
        role = resources_of_type(template, "AWS::IAM::Role")[properties["Role"].removesuffix(".Arn")]
        policies = [policy["PolicyDocument"] for policy in role["Policies"]]
    else:
        policies = properties["Policies"]
    actions: dict[str, bool] = {}
    for policy in policies:
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            on_indexes = any("/index/" in str(resource) for resource in resources)
            names = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for name in names:
                actions[name] = actions.get(name, False) or on_indexes
    return actions


def not_allowed(function: str, seen: set[tuple[str, str | None]]) -> list[str]:
    role = allowed(function)
    return sorted(
        f"{action}{f' on index {index}' if index else ''}"
        for action, index in seen
        if action not in role or (index is not None and not role[action])
    )


@pytest.fixture
def stack(
    aws: FakeAws, simulator: ProviderSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ProviderSimulator]:
    document = {
        "huawei-video": {"callback": {"seeds": HUAWEI_SEEDS}},
        "azure-review": simulator.provider_entry("azure-review"),
    }
    configure_environment(
        monkeypatch,
        aws,
        tmp_path,
        document,
        POLL_QUEUE_URL=aws.resources.queue_urls["PollQueue"],
        POLL_WORKER_BUDGET_SECONDS="3",
    )
    yield simulator
    dependencies_module.dependencies.cache_clear()


def signed(body: bytes) -> dict[str, str]:
    return {"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}


def test_the_callback_function_makes_only_calls_its_role_allows(
    calls: Calls, stack: ProviderSimulator
) -> None:
    api = ApiClient()
    calls.function = "ApiFunction"
    finished = with_changes("huawei-video", "succeeded", job_id="hv-1")
    failed = with_changes("huawei-video", "failed", job_id="hv-1")
    large = json.dumps(two_hour_video("hv-2")).encode()
    outcomes = [
        api.callback("huawei-video", finished, headers=signed(finished)).status,  # stored and published
        api.callback("huawei-video", finished, headers=signed(finished)).status,  # a replay
        api.callback(
            "huawei-video", failed, headers=signed(failed)
        ).status,  # another result: changes nothing
        api.callback("huawei-video", large, headers=signed(large)).status,  # archived in S3
        api.register(
            {"provider": "azure-review", "job_id": "az-1", "metadata": {"content_id": "c-1"}}
        ).status,
        api.get_job("huawei-video", "hv-1").status,
        api.get_job("huawei-video", "hv-2").status,  # read back from S3
    ]

    calls.function = None

    assert outcomes == [200, 200, 200, 200, 201, 200, 200]
    seen = calls.seen["ApiFunction"]
    assert {action for action, _ in seen} >= {
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "sns:Publish",
        "s3:PutObject",
        "s3:GetObject",
    }
    assert not_allowed("ApiFunction", seen) == []


def test_the_poller_and_the_poll_worker_make_only_calls_their_roles_allow(
    calls: Calls, stack: ProviderSimulator, aws: FakeAws
) -> None:
    from tests.integration.test_polling import ShortContext
    from verdict_relay.handlers.poll_worker import lambda_handler as worker
    from verdict_relay.handlers.poller import lambda_handler as scheduler

    job_ids = [f"az-{i:02}" for i in range(30)]
    for job_id in job_ids:
        stack.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.9))
    for job_id in job_ids:
        assert ApiClient().register({"provider": "azure-review", "job_id": job_id}).status == 201
    # and one only a callback named, while Azure could not be asked: Azure does not know it, so it is deleted
    dependencies_module.dependencies().store.mark_due(
        "azure-review", "az-unknown", datetime.now(UTC), unconfirmed=True
    )

    calls.function = "PollerFunction"
    fanned = scheduler({"source": "aws.scheduler"}, ShortContext())  # fans the backlog out
    calls.function = None
    batches = aws.drain(aws.resources.queue_urls["PollQueue"])
    calls.function = "PollWorkerFunction"
    failures = worker(sqs_event(batches), LambdaContext())
    calls.function = "PollerFunction"
    scheduler({"source": "aws.scheduler"}, LambdaContext())  # sweeps, discovers, polls what is due
    calls.function = None

    assert fanned["fanned_out"] == {"azure-review": 31}
    assert failures["batchItemFailures"] == []
    assert len(aws.published()) == 30
    assert dependencies_module.dependencies().store.get("azure-review", "az-unknown") is None
    poller, poll_worker = calls.seen["PollerFunction"], calls.seen["PollWorkerFunction"]
    assert ("dynamodb:Query", "outstanding") in poller
    assert {"sqs:SendMessage", "sns:Publish", "dynamodb:DeleteItem"} <= {
        action for action, _ in poller | poll_worker
    }
    assert not_allowed("PollerFunction", poller) == []
    assert not_allowed("PollWorkerFunction", poll_worker) == []


def test_no_function_with_an_sqs_event_has_a_role_sam_generates() -> None:
    # SAM gives such a role the managed policy AWSLambdaSQSQueueExecutionRole: sqs:ReceiveMessage and
    # sqs:DeleteMessage on every queue in the account, whatever the function's own statements say.
    functions = resources_of_type(load_template(), "AWS::Serverless::Function")
    consuming = [
        name
        for name, properties in functions.items()
        if any(event["Type"] == "SQS" for event in (properties.get("Events") or {}).values())
    ]

    assert consuming
    assert [name for name in consuming if "Role" not in functions[name]] == []


def test_the_poll_worker_can_poll_every_provider_at_once_and_each_by_one_worker() -> None:
    from verdict_relay.models.verdict import PROVIDER_NAMES

    template = load_template()
    queues = resources_of_type(template, "AWS::SQS::Queue")
    worker = resources_of_type(template, "AWS::Serverless::Function")["PollWorkerFunction"]
    source = worker["Events"]["Batches"]["Properties"]

    # A provider's batches are one message group of a FIFO queue: polled one at a time, at the provider's rate.
    assert queues["PollQueue"]["FifoQueue"] is True
    assert queues["PollDeadLetterQueue"]["FifoQueue"] is True
    # Fanned-out holds assume a worker per provider: a provider added without one would wait behind the others.
    assert source["ScalingConfig"]["MaximumConcurrency"] == len(PROVIDER_NAMES)
    assert worker["ReservedConcurrentExecutions"] == len(PROVIDER_NAMES)
    assert source["BatchSize"] == 1


def test_the_apis_access_log_names_what_api_gateway_answered_itself_and_never_a_query_string() -> None:
    template = load_template()
    (stage,) = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Api"
    ]
    log_format = stage["AccessLogSetting"]["Format"]
    fields = json.loads(log_format)

    # Why API Gateway answered a request itself (no function log says), and which provider was called
    assert {"error", "integrationError", "integrationStatus", "path"} <= set(fields)
    # but nothing that carries the query string, where callback tokens travel
    assert not re.search(
        r"querystring|requestOverride|\$context\.(?:requestUri|rawQueryString)", log_format, re.I
    )


def test_the_tests_table_and_queues_have_the_shape_template_yaml_deploys(aws: FakeAws) -> None:
    # Given the template's table and queues, as CloudFormation creates them
    template = load_template()
    table = resources_of_type(template, "AWS::DynamoDB::Table")["JobsTable"]
    queues = resources_of_type(template, "AWS::SQS::Queue")

    # When the resources every test runs against (and the local stack) are described
    dynamodb = aws.session.client("dynamodb")
    described = dynamodb.describe_table(TableName=aws.resources.table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=aws.resources.table_name)["TimeToLiveDescription"]
    sqs = aws.session.client("sqs")
    attributes = {
        name: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for name, url in aws.resources.queue_urls.items()
    }

    # Then each index projects what the deployed one does (a KEYS_ONLY index read for more than its keys would
    # pass here and fail deployed), expired jobs are removed by the same attribute, and each queue hides a
    # received batch for as long as the deployed one
    assert {g["IndexName"]: g["Projection"] for g in described["GlobalSecondaryIndexes"]} == {
        g["IndexName"]: g["Projection"] for g in table["GlobalSecondaryIndexes"]
    }
    assert (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")) == (
        "ENABLED",
        table["TimeToLiveSpecification"]["AttributeName"],
    )
    assert {name: attributes[name]["VisibilityTimeout"] for name in queues} == {
        name: str(props.get("VisibilityTimeout", 30)) for name, props in queues.items()
    }
    assert {name: attributes[name].get("FifoQueue") == "true" for name in queues} == {
        name: bool(props.get("FifoQueue")) for name, props in queues.items()
    }
