"""Concurrent writers for one job, against moto in server mode (a real HTTP endpoint, as DynamoDB is)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import FakeAws
from tests.helpers import huawei_signature
from tests.integration.conftest import ApiClient, assert_published_once_as_the_provider_says
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.simulator import ProviderSimulator, huawei_video_job
from verdict_relay.logic.poller import ProviderReport
from verdict_relay.models.jobs import DueJob
from verdict_relay.models.verdict import Suggestion
from verdict_relay.providers.registry import get_adapter

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
        statuses: list[int] = []
        reports: list[ProviderReport] = []
        results: dict[str, dict[str, object]] = {}
        for job_id in job_ids:
            # the callback says what the provider's API says: the same finished job, so neither result may be
            # kept aside as a conflict of the other, and whichever write wins stores the same verdict
            finished = results[job_id] = huawei_video_job(job_id, "succeeded", "review")
            simulator.put_job("huawei-video", job_id, finished)
            deps.store.register("huawei-video", job_id, {}, now, first_poll_at=now)
            body = json.dumps(finished).encode()
            headers = {"X-Auth-Signature": huawei_signature(SEED, body)}
            # all 16 start at once; a thread that fails before the barrier breaks it for the others
            start = threading.Barrier(16, timeout=60)

            def callback(
                body: bytes = body, headers: dict[str, str] = headers, start: threading.Barrier = start
            ) -> int:
                start.wait()
                return api.callback("huawei-video", body, headers=headers).status

            def poll(job_id: str = job_id, start: threading.Barrier = start) -> ProviderReport:
                start.wait()
                return poller.poll_jobs("huawei-video", [DueJob(job_id)], lambda: 60.0)

            # result() re-raises a thread's exception (a poll that raised) here, failing the test
            with ThreadPoolExecutor(max_workers=16) as pool:
                callbacks = [pool.submit(callback) for _ in range(8)]
                polls = [pool.submit(poll) for _ in range(8)]
                statuses += [future.result(timeout=120) for future in callbacks]
                reports += [future.result(timeout=120) for future in polls]

        # Then every delivery was made (the 80 docs/reliability.md gives): each callback acknowledged, each poll
        # one request the provider answered and the poller read
        assert len(statuses) + len(reports) == 80
        assert statuses == [200] * 40
        assert [(r.polled, r.failed_requests, r.left_due, r.skipped) for r in reports] == [
            (1, 0, 0, None)
        ] * 40
        assert [r.status for r in simulator.requests("huawei-video")] == [200] * 40
        # and per job one state, terminal, no conflict record, and one publish
        items = server_aws.table_items()
        states = [i for i in items if i["sk"]["S"] == "STATE"]
        assert sorted(i["job_id"]["S"] for i in states) == job_ids
        assert {i["status"]["S"] for i in states} == {"succeeded"}
        assert [i["pk"]["S"] for i in items if i["sk"]["S"].startswith("CONFLICT#")] == []
        messages = server_aws.published()
        assert sorted(m["verdict"]["job_id"] for m in messages) == job_ids
        # and that state is the provider's result (review, with its findings), published once as the relay's own
        adapter = get_adapter("huawei-video")
        assert {
            deps.ingest.policy.finalize(v).suggestion for p in results.values() for v in adapter.parse(p)
        } == {Suggestion.REVIEW}
        assert_published_once_as_the_provider_says(deps, api, messages, "huawei-video", results)
    dependencies_module.dependencies.cache_clear()
