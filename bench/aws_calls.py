"""AWS calls per job: DynamoDB and SNS calls (botocore event hooks) over one job's whole life.

Life: registered (POST /jobs path), polled once while running, polled again when finished, published.
The provider is the simulator; AWS is moto in-process. Lives measured: an Azure block, review and pass job, and
a 2-hour Huawei video block job; and, besides the issue's life, a Huawei video block job finished by its
callback rather than by polling (the callback receiver's path: the job fetched, stored and published). Target: no Scan, at most 3 DynamoDB writes and 1 publish per block/review job,
0 publishes for a pass job.

Capacity units are worked out by DynamoDB's published rules from the items themselves (moto's own figures are
placeholders): a write costs ceil(size / 1 KB) of the larger of the item before and after, and each index entry
it writes or deletes ceil(entry size / 1 KB), an entry being what the index projects (``template.yaml``: the
whole item, or its keys only); a strongly consistent read ceil(size / 4 KB); an index query half of
ceil(total size returned / 4 KB).
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


def table_indexes() -> dict[str, tuple[str, str, bool]]:
    """The table's indexes from ``template.yaml``: hash key, range key, and whether it projects keys only."""
    from verdict_relay.local.resources import load_template, resources_of_type

    (table,) = resources_of_type(load_template(), "AWS::DynamoDB::Table").values()
    indexes = {}
    for index in table["GlobalSecondaryIndexes"]:
        keys = {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
        keys_only = index["Projection"]["ProjectionType"] == "KEYS_ONLY"
        indexes[index["IndexName"]] = (keys["HASH"], keys["RANGE"], keys_only)
    return indexes


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


def _entry_size(item: dict[str, Any] | None, keys: tuple[str, ...] | None) -> int:
    """An index entry's size: the whole item, or only the given key attributes of it."""
    if item is None or keys is None:
        return item_size(item)
    return item_size({k: item[k] for k in keys if k in item})


class Capacity:
    """Read and write units of the counted calls, from the items before and after each write."""

    def __init__(self, raw_client: Any) -> None:
        self._raw = raw_client  # an uncounted client, to look at items around a write
        self._before: dict[str, Any] | None = None
        self._indexes = table_indexes()
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
            for hash_key, range_key, keys_only in self._indexes.values():
                was = bool(before) and hash_key in before and range_key in before
                now = bool(after) and hash_key in after and range_key in after
                moved = (
                    was
                    and now
                    and (before[hash_key], before[range_key]) != (after[hash_key], after[range_key])
                )
                changed = moved or (
                    before != after and not keys_only
                )  # a keys-only entry changes only by moving
                keys = ("pk", "sk", hash_key, range_key) if keys_only else None
                if was and (not now or moved):
                    self.write_units += math.ceil(_entry_size(before, keys) / 1024)
                if now and (not was or changed):
                    self.write_units += math.ceil(_entry_size(after, keys) / 1024)
        elif operation == "GetItem":
            self.read_units += math.ceil(max(item_size(parsed.get("Item")), 1) / 4096)
        elif operation == "Query":
            size = sum(item_size(item) for item in parsed.get("Items", []))
            units = math.ceil(max(size, 1) / 4096)
            self.read_units += units if params.get("ConsistentRead") else units / 2


def life_of_a_job(
    provider: str, running: dict[str, Any] | None, finished: dict[str, Any]
) -> tuple[Counter[str], Capacity]:
    """The calls of one job's life: registered, then polled while ``running`` and polled ``finished``; or, with
    ``running`` None, finished by its callback (the callback receiver's path with ``trust: fetch``, the default
    with API credentials: the job it names fetched, stored and published)."""
    import boto3
    from moto import mock_aws

    from verdict_relay.config import Settings
    from verdict_relay.handlers.dependencies import build
    from verdict_relay.local.resources import create_resources
    from verdict_relay.local.simulator import ProviderSimulator

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

    with mock_aws(), ProviderSimulator() as simulator:
        session = boto3.session.Session()
        resources = create_resources(session, prefix="bench")
        providers = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({provider: simulator.provider_entry(provider)}, providers)
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
        deps.store.register(provider, "job-1", {"content_id": "c-1"}, now, first_poll_at=now)
        if running is None:
            from verdict_relay.logic.callbacks import accept
            from verdict_relay.providers.base import CallbackRequest
            from verdict_relay.providers.registry import get_adapter

            simulator.put_job(provider, "job-1", finished)
            body = json.dumps(finished).encode()
            result = get_adapter(provider).parse_callback(CallbackRequest(body=body, headers={}))
            fetch = deps.callback_fetcher(provider)
            outcome = accept(
                provider, result, body, "fetch", deps.ingest, fetch, datetime.now(UTC), deps.store.status
            )
            if outcome.fetched != 1:
                raise RuntimeError(f"the callback's job was not fetched and stored: {outcome}")
        else:
            simulator.put_job(provider, "job-1", running)
            poller.run_cycle(lambda: 60.0, providers=[provider])
            simulator.put_job(provider, "job-1", finished)
            import time

            time.sleep(0.05)  # past the (tiny) backoff
            poller.run_cycle(lambda: 60.0, providers=[provider])
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
    from normalize import huawei_video_two_hours

    from verdict_relay.observability import logger

    logger.setLevel("WARNING")  # the jobs' INFO lines are not figures: keep the printed table readable

    from verdict_relay.local.simulator import azure_job, huawei_video_job
    from verdict_relay.providers.registry import get_adapter

    video = huawei_video_two_hours()
    video["job_id"] = "job-1"
    lives = {
        ("block", "one block job's life"): (
            "azure-review",
            azure_job("job-1", "InProgress"),
            azure_job("job-1", "Complete", adult_score=0.95),
        ),
        ("review", "one review job's life"): (
            "azure-review",
            azure_job("job-1", "InProgress"),
            azure_job("job-1", "Complete", adult_score=0.65),
        ),
        ("pass", "one pass job's life"): (
            "azure-review",
            azure_job("job-1", "InProgress"),
            azure_job("job-1", "Complete", adult_score=0.01),
        ),
        ("block", "a 2-hour Huawei video block job's life (4,321 findings)"): (
            "huawei-video",
            huawei_video_job("job-1", "running"),
            video,
        ),
        ("block", "a Huawei video block job finished by its callback (registered, fetched, published)"): (
            "huawei-video",
            None,
            huawei_video_job("job-1", "succeeded", "block"),
        ),
    }
    rows = []
    for (suggestion, life), (provider, running, finished) in lives.items():
        [verdict] = get_adapter(provider).parse(finished)
        if verdict.suggestion != suggestion:  # the life must be the one the row names
            raise RuntimeError(f"{life}: the finished job is judged {verdict.suggestion}, not {suggestion}")
        calls, capacity = life_of_a_job(provider, running, finished)
        writes = sum(n for op, n in calls.items() if op.split(":")[1] in WRITES)
        scans = sum(n for op, n in calls.items() if op.endswith(":Scan"))
        publishes = calls["sns:Publish"]
        expected_publishes = 0 if suggestion == "pass" else 1
        detail = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
        rows.append(
            {
                "benchmark": f"AWS calls, {life}",
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
