"""Creates the stateful resources declared in ``template.yaml`` (table, topic, bucket, queues) on an AWS endpoint.

One source of truth: the table's keys and indexes are read from the template, so a change there shows up in the
tests and the local stack without a second definition. Used by the tests (moto in-process) and the local stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Reads CloudFormation short-form tags (!Ref, !Sub, !GetAtt ...) as plain values. Parsed by libyaml when
    PyYAML has it (its wheels do): ten times faster than the pure-Python parser, which took 0.18 s of every
    test's AWS fixture to read the template."""


def _tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    raise yaml.YAMLError(f"unexpected node for a CloudFormation tag: {node!r}")


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
    return document


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource.get("Properties", {})
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


@dataclass(frozen=True)
class LocalResources:
    table_name: str
    topic_arn: str
    bucket: str
    queue_urls: dict[str, str]


def create_resources(session: Any, prefix: str = "verdict-relay") -> LocalResources:
    """Create every table, topic, bucket and queue of the template, named ``<prefix>-<logical id>``."""
    template = load_template()
    dynamodb = session.client("dynamodb")
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    table_names = []
    for logical_id, props in tables.items():
        name = f"{prefix}-{logical_id}"
        dynamodb.create_table(
            TableName=name,
            BillingMode=props["BillingMode"],
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=[
                {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
                for g in props.get("GlobalSecondaryIndexes", [])
            ],
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        table_names.append(name)
    sns = session.client("sns")
    topics = {
        logical_id: sns.create_topic(Name=f"{prefix}-{logical_id}")["TopicArn"]
        for logical_id in resources_of_type(template, "AWS::SNS::Topic")
    }
    s3 = session.client("s3")
    buckets = []
    for logical_id in resources_of_type(template, "AWS::S3::Bucket"):
        bucket = f"{prefix}-{logical_id}".lower()
        s3.create_bucket(Bucket=bucket)
        buckets.append(bucket)
    sqs = session.client("sqs")
    queue_props = resources_of_type(template, "AWS::SQS::Queue")
    queues = {}
    for logical_id, props in queue_props.items():
        attributes = {"VisibilityTimeout": str(props.get("VisibilityTimeout", 30))}
        suffix = ""
        if props.get("FifoQueue"):  # CloudFormation adds the suffix a FIFO queue's name needs
            attributes["FifoQueue"] = "true"
            suffix = ".fifo"
        queues[logical_id] = sqs.create_queue(
            QueueName=f"{prefix}-{logical_id}{suffix}", Attributes=attributes
        )["QueueUrl"]
    # Redrive policies once every queue exists: a batch that keeps failing moves aside, as deployed (in a FIFO
    # queue it would otherwise hold its provider's later batches back for good).
    for logical_id, props in queue_props.items():
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = str(redrive["deadLetterTargetArn"]).removesuffix(".Arn")  # !GetAtt <logical id>.Arn
            target_arn = sqs.get_queue_attributes(QueueUrl=queues[target], AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            policy = {"deadLetterTargetArn": target_arn, "maxReceiveCount": redrive["maxReceiveCount"]}
            sqs.set_queue_attributes(
                QueueUrl=queues[logical_id], Attributes={"RedrivePolicy": json.dumps(policy)}
            )
    return LocalResources(
        table_name=f"{prefix}-JobsTable",
        topic_arn=topics["VerdictTopic"],
        bucket=f"{prefix}-RawPayloadBucket".lower(),
        queue_urls=queues,
    )
