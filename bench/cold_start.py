"""Cold start: a handler's import and first response-ready state against the floor of boto3 + pydantic.

Measured on the artifact as it is deployed: ``functions/Makefile`` (what ``sam build`` runs) builds it here for
the running Python, bytecode included, and every process runs with it first on its path, read-only as
``/var/task`` is (no bytecode written), and boto3 from the environment, as the Lambda runtime provides it.
Each measurement is a fresh interpreter, timed inside the process so interpreter start-up, the same for all,
is left out. The kinds are measured in turn, round after round (RUNS rounds, the median of each), so a
machine that slows down mid-run slows all of them alike.
Floor: ``import boto3`` + DynamoDB and SNS clients + ``import pydantic``.
Handler: import the handler module and build what its first invocation needs: its dependencies (settings, AWS
clients, the providers document, here with API credentials for all five providers) and, for the poller and the
poll worker, the poller with its provider clients (``requests`` is imported there, and only there): all five
for the poller, the polled provider's for a worker.
Target: handler <= 1.3 x floor. Also reported: the callback receiver on the same artifact without its
bytecode, which is what SAM's own python builder ships (it leaves ``.pyc`` files out).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RUNS = 15
RUNTIME_VERSION = (3, 13)
"""The Lambda runtime's Python (template.yaml): measured too when a python3.13 works here (make bench sets up
pyenv's)."""
FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"
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


def measure(python: str, codes: dict[str, tuple[str, dict[str, str]]]) -> dict[str, float]:
    """The median seconds of each named (code, environment), over RUNS rounds that run each once in turn."""
    samples: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(RUNS):
        for name, (code, env) in codes.items():
            out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, check=True)
            samples[name].append(float(out.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(values) for name, values in samples.items()}


def run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stdout}{done.stderr}")


def build_artifact(python: str, target: str) -> None:
    """The deploy artifact for ``python``: functions/Makefile's recipe, native wheels."""
    make = shutil.which("make")
    if make is None:
        raise SystemExit("make is not on PATH: the artifact is built by functions/Makefile")
    run(
        [
            make,
            "--silent",
            "-C",
            str(FUNCTIONS),
            "build-ApiFunction",
            f"ARTIFACTS_DIR={target}",
            f"PYTHON_RUNTIME={python}",
            "PLATFORM_FLAGS=",
        ],
        "functions/Makefile",
    )


def runtime_python() -> str | None:
    """A CPython of the Lambda runtime's version (3.13) other than the running one, if one works here."""
    if sys.version_info[:2] == RUNTIME_VERSION:
        return None
    python = shutil.which("python{}.{}".format(*RUNTIME_VERSION))
    if python is None:
        return None
    probe = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    return python if probe.returncode == 0 and probe.stdout.strip() == str(RUNTIME_VERSION) else None


def measure_on(python: str, document: dict[str, Any]) -> list[dict[str, object]]:
    """Every kind on the artifact built for ``python``; boto3 as its runtime provides it (this environment's
    for the running Python, the same release installed beside the artifact for another)."""
    label = "" if python == sys.executable else " (CPython {}.{})".format(*RUNTIME_VERSION)
    artifact = tempfile.mkdtemp(prefix="verdict-relay-artifact-")
    bare = f"{artifact}-without-bytecode"
    runtime = f"{artifact}-runtime"
    providers = Path(artifact) / "providers.json"
    providers.write_text(json.dumps(document))
    try:
        build_artifact(python, artifact)
        path = artifact
        if python != sys.executable:
            boto3 = f"boto3=={importlib.metadata.version('boto3')}"
            run(
                [python, "-m", "pip", "install", "--quiet", "--target", runtime, boto3],
                f"pip install {boto3}",
            )
            path = os.pathsep.join([artifact, runtime])
        env = {
            **os.environ,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "TABLE_NAME": "jobs",
            "TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:verdicts",
            "RAW_PAYLOAD_BUCKET": "raw",
            "PROVIDERS_FILE": str(providers),
            "PYTHONPATH": path,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        # The same artifact without its bytecode; the standard library and boto3 keep theirs, as on Lambda.
        shutil.copytree(artifact, bare, ignore=shutil.ignore_patterns("__pycache__"))
        without_bytecode = {**env, "PYTHONPATH": path.replace(artifact, bare, 1)}
        codes = {"floor": (FLOOR, env), "reference": (STACK_MINIMUM, env)}
        for module, first_use in FIRST_USE.items():
            codes[module] = (HANDLER.format(module=module, first_use=first_use), env)
        callback = HANDLER.format(module="verdict_relay.handlers.callback", first_use="")
        codes["callback without bytecode"] = (callback, without_bytecode)
        seconds = measure(python, codes)
    finally:
        for folder in (artifact, bare, runtime):
            shutil.rmtree(folder, ignore_errors=True)
    floor = seconds["floor"]
    rows: list[dict[str, object]] = [
        {
            "benchmark": f"cold start reference{label}: floor + 1 pydantic model + Powertools resolver",
            "measured": f"{seconds['reference'] * 1000:.0f} ms = {seconds['reference'] / floor:.2f} x floor",
            "target": "reference (no handler can start faster on this stack)",
            "ok": True,
        }
    ]
    for module in FIRST_USE:
        rows.append(
            {
                "benchmark": f"cold start {module.rsplit('.', 1)[1]}{label}",
                "measured": f"{seconds[module] * 1000:.0f} ms = {seconds[module] / floor:.2f} x floor"
                f" ({floor * 1000:.0f} ms)",
                "target": f"<= {TARGET} x floor",
                "ok": seconds[module] / floor <= TARGET,
            }
        )
    compiled = seconds["verdict_relay.handlers.callback"]
    rows.append(
        {
            "benchmark": f"cold start callback{label}, the artifact without bytecode (as SAM's python builder"
            " ships it)",
            "measured": f"{seconds['callback without bytecode'] * 1000:.0f} ms"
            f" = {seconds['callback without bytecode'] / compiled:.2f} x the artifact with it",
            "target": "reported (why functions/Makefile builds the artifact)",
            "ok": True,
        }
    )
    return rows


def main() -> list[dict[str, object]]:
    from verdict_relay.local.simulator import ProviderSimulator

    with ProviderSimulator() as simulator:  # only for the shape of each provider's entry; nothing is called
        document: dict[str, Any] = {name: simulator.provider_entry(name) for name in PROVIDERS}
    document["azure-review"]["callback"] = {"tokens": ["bench-token-000000000"]}
    rows = measure_on(sys.executable, document)
    runtime = runtime_python()
    if runtime is not None:
        rows += measure_on(runtime, document)
    else:
        rows.append(
            {
                "benchmark": "cold start on CPython {}.{}, the Lambda runtime's version".format(
                    *RUNTIME_VERSION
                ),
                "measured": "not measured: no working python{}.{} on PATH".format(*RUNTIME_VERSION),
                "target": "reported",
                "ok": True,
            }
        )
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
