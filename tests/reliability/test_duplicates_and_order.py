"""Duplicates and order: 1,000 deliveries of one job — callbacks in every state and polls, shuffled, from
several threads — against the embedded endpoint (atomic DynamoDB writes, as on AWS)."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import FakeAws
from tests.helpers import huawei_signature
from tests.integration.conftest import ApiClient, assert_published_once_as_the_provider_says
from tests.reliability.conftest import DELIVERIES, JOBS, SOAK
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.simulator import ProviderSimulator, huawei_video_job
from verdict_relay.logic.poller import ProviderReport
from verdict_relay.models.jobs import DueJob
from verdict_relay.models.verdict import Suggestion
from verdict_relay.providers.registry import get_adapter

SEED = "duplicates_seed_0001"
THREADS = 8
POLLS_PER_S = 1000


def test_a_thousand_shuffled_deliveries_give_one_verdict_and_one_publish(
    server_aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with ProviderSimulator() as simulator:
        # The polls' rate is not what is tested: at Huawei's 5/s the 333 polls alone would take 67 s.
        entry = {
            **simulator.provider_entry("huawei-video"),
            "trust": "body",
            "callback": {"seeds": [SEED]},
            "rate_limit_per_s": POLLS_PER_S,
        }
        providers = tmp_path / "providers.json"
        providers.write_text(json.dumps({"huawei-video": entry}))
        for key, value in {
            "TABLE_NAME": server_aws.resources.table_name,
            "TOPIC_ARN": server_aws.resources.topic_arn,
            "RAW_PAYLOAD_BUCKET": server_aws.resources.bucket,
            "PROVIDERS_FILE": str(providers),
        }.items():
            monkeypatch.setenv(key, value)
        dependencies_module.dependencies.cache_clear()
        deps = dependencies_module.dependencies()
        poller = deps.poller()
        api = ApiClient()
        rng = random.Random(2026)
        statuses: Counter[int] = Counter()
        reports: list[ProviderReport] = []
        planned: Counter[str] = Counter()
        lock = threading.Lock()
        job_ids = [f"dup-{n}" for n in range(JOBS)]
        results: dict[str, dict[str, object]] = {}

        for job_id in job_ids:
            finished = results[job_id] = huawei_video_job(job_id, "succeeded", "review")
            simulator.put_job("huawei-video", job_id, finished)
            now = datetime.now(UTC)
            deps.store.register("huawei-video", job_id, {"content_id": job_id}, now, first_poll_at=now)
            # the callbacks say what the provider's API says: running, then the same finished job
            bodies = [json.dumps(huawei_video_job(job_id, "running")).encode(), json.dumps(finished).encode()]
            deliveries: list[tuple[str, bytes | None]] = [
                ("callback", bodies[0]),
                ("callback", bodies[1]),
                ("poll", None),
            ] * (DELIVERIES // 3 + 1)
            deliveries = deliveries[:DELIVERIES]
            rng.shuffle(deliveries)
            planned.update(kind for kind, _ in deliveries)
            chunks = [deliveries[i::THREADS] for i in range(THREADS)]

            def deliver(chunk: list[tuple[str, bytes | None]], job_id: str = job_id) -> None:
                for kind, body in chunk:
                    if kind == "poll":
                        reports.append(poller.poll_jobs("huawei-video", [DueJob(job_id)], lambda: 60.0))
                        continue
                    assert body is not None
                    status = api.callback(
                        "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(SEED, body)}
                    ).status
                    with lock:
                        statuses[status] += 1

            # a thread's exception (an assertion, or a poll that raised) is re-raised here by result()
            with ThreadPoolExecutor(max_workers=THREADS) as pool:
                for future in [pool.submit(deliver, chunk) for chunk in chunks]:
                    future.result(timeout=600)

        # Every delivery made (the figure docs/reliability.md gives), each poll one request the provider
        # answered and the poller read
        made = Counter({"callback": sum(statuses.values()), "poll": len(reports)})
        assert made == planned
        assert made.total() == DELIVERIES * JOBS == (10_000 if SOAK else 1_000)
        assert [(r.polled, r.failed_requests, r.left_due, r.skipped) for r in reports] == [
            (1, 0, 0, None)
        ] * len(reports)
        assert [r.status for r in simulator.requests("huawei-video")] == [200] * len(reports)
        # Every callback acknowledged; per job one state, terminal, one publish; no conflict records
        assert set(statuses) == {200}
        items = server_aws.table_items()
        states = [i for i in items if i["sk"]["S"] == "STATE"]
        assert sorted(i["job_id"]["S"] for i in states) == sorted(job_ids)
        assert {i["status"]["S"] for i in states} == {"succeeded"}
        assert not [i for i in items if i["sk"]["S"].startswith("CONFLICT#")]
        messages = server_aws.published()
        published = Counter(m["verdict"]["job_id"] for m in messages)
        assert published == Counter(dict.fromkeys(job_ids, 1))
        # and that state is the provider's result (review, with its findings), published once as the relay's own
        adapter = get_adapter("huawei-video")
        assert {
            deps.ingest.policy.finalize(v).suggestion for p in results.values() for v in adapter.parse(p)
        } == {Suggestion.REVIEW}
        assert_published_once_as_the_provider_says(deps, api, messages, "huawei-video", results)
        assert {api.get_job("huawei-video", j).body["metadata"]["content_id"] for j in job_ids} == set(
            job_ids
        )
    dependencies_module.dependencies.cache_clear()
