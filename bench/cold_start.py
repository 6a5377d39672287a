"""Cold start: a handler's import and first response-ready state against the floor of boto3 + pydantic.

Each measurement is a fresh interpreter (median of RUNS), timed inside the process so interpreter start-up,
the same for both, is left out. Floor: ``import boto3`` + DynamoDB and SNS clients + ``import pydantic``.
Handler: import the handler module and build what its first invocation needs: its dependencies (settings, AWS
clients, the providers document, here with API credentials for all five providers) and, for the poller and the
poll worker, the poller with its provider clients (``requests`` is imported there, and only there): all five
for the poller, the polled provider's for a worker.
Target: handler <= 1.3 x floor.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

RUNS = 11
TARGET = 1.3
PROVIDERS = ("huawei-video", "huawei-audio", "huawei-image-batch", "alibaba-mps", "azure-review")

FLOOR = """
import time
t = time.perf_counter()
import boto3
boto3.client("dynamodb"); boto3.client("sns")
import pydantic
print(time.perf_counter() - t)
"""

STACK_MINIMUM = """
import time
t = time.perf_counter()
import boto3
boto3.client("dynamodb"); boto3.client("sns")
import pydantic
from pydantic import BaseModel
class One(BaseModel):
    value: int
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
APIGatewayRestResolver()
print(time.perf_counter() - t)
"""
"""The least any handler on this stack pays: the floor + one pydantic model + Powertools' resolver. ``import
pydantic`` loads lazily, so the floor leaves out the model machinery every pydantic model needs."""

HANDLER = """
import time
t = time.perf_counter()
import {module}
from verdict_relay.handlers.dependencies import dependencies
dependencies(){first_use}
print(time.perf_counter() - t)
"""
FIRST_USE = {
    "verdict_relay.handlers.callback": "",
    "verdict_relay.handlers.poller": ".poller()",
    # A worker's batch is one provider's: it builds that provider's client when it polls the batch.
    "verdict_relay.handlers.poll_worker": '.poller(build_all=False).batch_size("huawei-video")',
}


def measure(code: str, env: dict[str, str]) -> float:
    samples = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> list[dict[str, object]]:
    from verdict_relay.local.simulator import ProviderSimulator

    with ProviderSimulator() as simulator:  # only for the shape of each provider's entry; nothing is called
        document = {name: simulator.provider_entry(name) for name in PROVIDERS}
    document["azure-review"]["callback"] = {"tokens": ["bench-token-000000000"]}
    providers = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(document, providers)
    providers.close()
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "TABLE_NAME": "jobs",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:verdicts",
        "RAW_PAYLOAD_BUCKET": "raw",
        "PROVIDERS_FILE": providers.name,
    }
    floor = measure(FLOOR, env)
    minimum = measure(STACK_MINIMUM, env)
    rows: list[dict[str, object]] = [
        {
            "benchmark": "cold start reference: floor + 1 pydantic model + Powertools resolver",
            "measured": f"{minimum * 1000:.0f} ms = {minimum / floor:.2f} x floor",
            "target": "reference (no handler can start faster on this stack)",
            "ok": True,
        }
    ]
    for module, first_use in FIRST_USE.items():
        seconds = measure(HANDLER.format(module=module, first_use=first_use), env)
        rows.append(
            {
                "benchmark": f"cold start {module.rsplit('.', 1)[1]}",
                "measured": f"{seconds * 1000:.0f} ms = {seconds / floor:.2f} x floor ({floor * 1000:.0f} ms)",
                "target": f"<= {TARGET} x floor",
                "ok": seconds / floor <= TARGET,
            }
        )
    os.unlink(providers.name)
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
