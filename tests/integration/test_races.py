"""Concurrent writers for one job, against moto in server mode (a real HTTP endpoint, as DynamoDB is)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import FakeAws
from tests.helpers import huawei_signature, with_changes
from tests.integration.conftest import ApiClient
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.simulator import ProviderSimulator, huawei_video_job
from verdict_relay.models.jobs import DueJob

SEED = "race_seed_00000001"


def test_callbacks_and_polls_racing_for_one_job_store_one_verdict_and_publish_once(
    server_aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with ProviderSimulator() as simulator:
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
        poller = deps.poller()
        api = ApiClient()
        job_ids = [f"race-{i}" for i in range(5)]
        for job_id in job_ids:
            simulator.put_job("huawei-video", job_id, huawei_video_job(job_id, "succeeded", "block"))
            deps.store.register("huawei-video", job_id, {}, now, first_poll_at=now)
            body = with_changes("huawei-video", "succeeded", job_id=job_id)
            headers = {"X-Auth-Signature": huawei_signature(SEED, body)}
            start = threading.Barrier(16)
            statuses: list[int] = []

            def callback(
                body: bytes = body,
                headers: dict[str, str] = headers,
                start: threading.Barrier = start,
                statuses: list[int] = statuses,
            ) -> None:
                start.wait()
                statuses.append(api.callback("huawei-video", body, headers=headers).status)

            def poll(job_id: str = job_id, start: threading.Barrier = start) -> None:
                start.wait()
                poller.poll_jobs("huawei-video", [DueJob(job_id)], lambda: 60.0)

            threads = [threading.Thread(target=callback) for _ in range(8)]
            threads += [threading.Thread(target=poll) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert statuses == [200] * 8

        states = [i for i in server_aws.table_items() if i["sk"]["S"] == "STATE"]
        assert sorted(i["job_id"]["S"] for i in states) == job_ids
        assert {i["status"]["S"] for i in states} == {"succeeded"}
        assert sorted(m["verdict"]["job_id"] for m in server_aws.published()) == job_ids
    dependencies_module.dependencies.cache_clear()
