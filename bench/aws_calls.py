"""AWS calls per job: DynamoDB and SNS calls (botocore event hooks) over one job's whole life.

Life: registered (POST /jobs path), polled once while running, polled again when finished, published.
The provider is the simulator; AWS is moto in-process. Target: no Scan, at most 3 DynamoDB writes and 1
publish per block/review job, 0 publishes for a pass job.

Capacity units are worked out by DynamoDB's published rules from the items themselves (moto's own figures are
placeholders): a write costs ceil(size / 1 KB) of the larger of the item before and after, and each index it
enters, leaves or moves within costs the same again per index entry written or deleted; a strongly consistent
read ceil(size / 4 KB); an index query half of ceil(total size returned / 4 KB).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from datetime import UTC, datetime
from typing import Any

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
INDEXES = {
    "outstanding": ("poll_provider", "next_poll_at"),
    "unpublished": ("unpublished_provider", "completed_epoch"),
}


def _value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode("utf-8"))
    if kind == "N":
        return len(data.lstrip("-").replace(".", "")) // 2 + 1 + 1
    if kind == "B":
        return len(data)
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: v}) for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) for k, v in data.items())
    if kind == "L":
        return 3 + sum(_value_size(v) for v in data)
    return 1  # BOOL, NULL


def item_size(item: dict[str, Any] | None) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values."""
    return sum(len(k.encode()) + _value_size(v) for k, v in (item or {}).items())


class Capacity:
    """Read and write units of the counted calls, from the items before and after each write."""

    def __init__(self, raw_client: Any) -> None:
        self._raw = raw_client  # an uncounted client, to look at items around a write
        self._before: dict[str, Any] | None = None
        self.read_units = 0.0
        self.write_units = 0.0

    def _item(self, params: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._raw.get_item(
            TableName=params["TableName"], Key=params["Key"], ConsistentRead=True
        ).get("Item")
        return found

    def before(self, operation: str, params: dict[str, Any]) -> None:
        if operation in ("UpdateItem", "DeleteItem"):
            self._before = self._item(params)
        elif operation == "PutItem":
            self._before = self._item(
                {"TableName": params["TableName"], "Key": {k: params["Item"][k] for k in ("pk", "sk")}}
            )

    def after(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        if operation in ("UpdateItem", "PutItem", "DeleteItem"):
            key = params.get("Key") or {k: params["Item"][k] for k in ("pk", "sk")}
            after = self._item({"TableName": params["TableName"], "Key": key})
            before = self._before
            if "Error" in parsed:  # a lost condition still costs the write
                after = before
            self.write_units += math.ceil(max(item_size(before), item_size(after), 1) / 1024)
            for hash_key, range_key in INDEXES.values():
                was = bool(before) and hash_key in before and range_key in before
                now = bool(after) and hash_key in after and range_key in after
                moved = (
                    was
                    and now
                    and (before[hash_key], before[range_key]) != (after[hash_key], after[range_key])
                )
                if was and (not now or moved):
                    self.write_units += math.ceil(item_size(before) / 1024)
                if now and (not was or moved or before != after):
                    self.write_units += math.ceil(item_size(after) / 1024)
        elif operation == "GetItem":
            self.read_units += math.ceil(max(item_size(parsed.get("Item")), 1) / 4096)
        elif operation == "Query":
            size = sum(item_size(item) for item in parsed.get("Items", []))
            units = math.ceil(max(size, 1) / 4096)
            self.read_units += units if params.get("ConsistentRead") else units / 2


def life_of_a_job(suggestion: str) -> tuple[Counter[str], Capacity]:
    import boto3
    from moto import mock_aws

    from verdict_relay.config import Settings
    from verdict_relay.handlers.dependencies import build
    from verdict_relay.local.resources import create_resources
    from verdict_relay.local.simulator import ProviderSimulator, azure_job

    calls: Counter[str] = Counter()
    capacity: list[Capacity] = []

    def count(event_name: str, context: dict[str, Any], **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        calls[f"{service}:{operation}"] += 1
        if service == "dynamodb" and capacity:
            capacity[0].before(operation, context["bench_params"])

    def measure(event_name: str, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if capacity and calls:
            capacity[0].after(event_name.split(".")[2], context["bench_params"], parsed)

    def keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params

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
        counted.events.register("before-parameter-build.dynamodb.*", keep_params)
        counted.events.register("after-call.dynamodb.*", measure)
        deps = build(settings, counted)
        poller = deps.poller()
        capacity.append(Capacity(session.client("dynamodb")))
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
    return calls, capacity[0]


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
        calls, capacity = life_of_a_job(suggestion)
        writes = sum(n for op, n in calls.items() if op.split(":")[1] in WRITES)
        scans = sum(n for op, n in calls.items() if op.endswith(":Scan"))
        publishes = calls["sns:Publish"]
        expected_publishes = 1 if suggestion == "block" else 0
        detail = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
        rows.append(
            {
                "benchmark": f"AWS calls, one {suggestion} job's life",
                "measured": (
                    f"{writes} writes, {scans} scans, {publishes} publishes ({detail}); "
                    f"{capacity.write_units:g} WCU, {capacity.read_units:g} RCU"
                ),
                "target": f"0 scans, <= 3 writes, {expected_publishes} publish",
                "ok": scans == 0 and writes <= 3 and publishes == expected_publishes,
            }
        )
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
