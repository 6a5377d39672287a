"""Concurrent writers for one job, against moto in server mode (a real HTTP endpoint, as DynamoDB is)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from tests.conftest import FakeAws
from tests.helpers import huawei_signature, with_changes
from tests.integration.conftest import ApiClient
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.resources import create_resources
from verdict_relay.local.simulator import ProviderSimulator, huawei_video_job
from verdict_relay.local.stack import free_port

SEED = "race_seed"


@pytest.fixture
def server_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    """moto as a server on 127.0.0.1, with the template's resources and a queue on the topic."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    session = boto3.session.Session()
    resources = create_resources(session, prefix="race")
    sqs = session.client("sqs")
    queue_url = sqs.create_queue(QueueName="race-published")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    session.client("sns").subscribe(TopicArn=resources.topic_arn, Protocol="sqs", Endpoint=arn)
    yield FakeAws(session=session, resources=resources, published_queue_url=queue_url)
    server.stop()


def test_callbacks_and_polls_racing_for_one_job_store_one_verdict_and_publish_once(
    server_aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with ProviderSimulator() as simulator:
        simulator.put_job("huawei-video", "race-1", huawei_video_job("race-1", "succeeded", "block"))
        document = {
            "huawei-video": {
                **simulator.provider_entry("huawei-video"),
                "trust": "body",
                "callback": {"seeds": [SEED]},
            }
        }
        providers = tmp_path / "providers.json"
        providers.write_text(json.dumps(document))
        for key, value in {
            "TABLE_NAME": server_aws.resources.table_name,
            "TOPIC_ARN": server_aws.resources.topic_arn,
            "RAW_PAYLOAD_BUCKET": server_aws.resources.bucket,
            "PROVIDERS_FILE": str(providers),
        }.items():
            monkeypatch.setenv(key, value)
        dependencies_module.dependencies.cache_clear()
        deps = dependencies_module.dependencies()
        now = datetime.now(UTC)
        deps.store.register("huawei-video", "race-1", {}, now, first_poll_at=now)
        poller = deps.poller()
        body = with_changes("huawei-video", "succeeded", job_id="race-1")
        headers = {"X-Auth-Signature": huawei_signature(SEED, body)}
        api = ApiClient()
        start = threading.Barrier(16)
        statuses: list[int] = []

        def callback() -> None:
            start.wait()
            statuses.append(api.callback("huawei-video", body, headers=headers).status)

        def poll() -> None:
            start.wait()
            poller.poll_jobs("huawei-video", ["race-1"], lambda: 60.0)

        threads = [threading.Thread(target=callback) for _ in range(8)] + [
            threading.Thread(target=poll) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert statuses == [200] * 8
        states = [i for i in server_aws.table_items() if i["sk"]["S"] == "STATE"]
        assert len(states) == 1
        assert states[0]["status"]["S"] == "succeeded"
        assert len(server_aws.published()) == 1
    dependencies_module.dependencies.cache_clear()
