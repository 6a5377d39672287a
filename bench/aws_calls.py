"""AWS calls per job: DynamoDB and SNS calls (botocore event hooks) over one job's whole life.

Life: registered (POST /jobs path), polled once while running, polled again when finished, published.
The provider is the simulator; AWS is moto in-process. Target: no Scan, at most 3 DynamoDB writes and 1
publish per block/review job, 0 publishes for a pass job.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from datetime import UTC, datetime
from typing import Any

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def life_of_a_job(suggestion: str) -> Counter[str]:
    import boto3
    from moto import mock_aws

    from verdict_relay.config import Settings
    from verdict_relay.handlers.dependencies import build
    from verdict_relay.local.resources import create_resources
    from verdict_relay.local.simulator import ProviderSimulator, azure_job

    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        calls[f"{service}:{operation}"] += 1

    scores = {"block": 0.95, "pass": 0.01}
    with mock_aws(), ProviderSimulator() as simulator:
        session = boto3.session.Session()
        resources = create_resources(session, prefix="bench")
        providers = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"azure-review": simulator.provider_entry("azure-review")}, providers)
        providers.close()
        settings = Settings.from_env(
            {
                "TABLE_NAME": resources.table_name,
                "TOPIC_ARN": resources.topic_arn,
                "RAW_PAYLOAD_BUCKET": resources.bucket,
                "PROVIDERS_FILE": providers.name,
                "POLL_MIN_INTERVAL_SECONDS": "0",
                "POLL_BASE_INTERVAL_SECONDS": "0.001",
            }
        )
        counted = boto3.session.Session()
        counted.events.register("before-call.dynamodb.*", count)
        counted.events.register("before-call.sns.*", count)
        deps = build(settings, counted)
        poller = deps.poller()
        calls.clear()
        now = datetime.now(UTC)
        deps.store.register("azure-review", "job-1", {"content_id": "c-1"}, now, first_poll_at=now)
        simulator.put_job("azure-review", "job-1", azure_job("job-1", "InProgress"))
        poller.run_cycle(lambda: 60.0, providers=["azure-review"])
        simulator.put_job(
            "azure-review", "job-1", azure_job("job-1", "Complete", adult_score=scores[suggestion])
        )
        import time

        time.sleep(0.05)  # past the (tiny) backoff
        poller.run_cycle(lambda: 60.0, providers=["azure-review"])
        os.unlink(providers.name)
    return calls


def main() -> list[dict[str, object]]:
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    rows = []
    for suggestion in ("block", "pass"):
        calls = life_of_a_job(suggestion)
        writes = sum(n for op, n in calls.items() if op.split(":")[1] in WRITES)
        scans = sum(n for op, n in calls.items() if op.endswith(":Scan"))
        publishes = calls["sns:Publish"]
        expected_publishes = 1 if suggestion == "block" else 0
        detail = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
        rows.append(
            {
                "benchmark": f"AWS calls, one {suggestion} job's life",
                "measured": f"{writes} writes, {scans} scans, {publishes} publishes ({detail})",
                "target": f"0 scans, <= 3 writes, {expected_publishes} publish",
                "ok": scans == 0 and writes <= 3 and publishes == expected_publishes,
            }
        )
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
