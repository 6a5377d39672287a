"""Cold start: a handler's import and first response-ready state against the floor of boto3 + pydantic.

Measured on the artifact as it is deployed: ``functions/Makefile`` (what ``sam build`` runs) builds it here for
the running Python, bytecode included, and every process runs with it first on its path, read-only as
``/var/task`` is (no bytecode written), and boto3 from the environment, as the Lambda runtime provides it.
Each measurement is a fresh interpreter, timed inside the process so interpreter start-up, the same for all,
is left out. The kinds are measured in turn, round after round (RUNS rounds, the median of each), so a
machine that slows down mid-run slows all of them alike.
Floor: ``import boto3`` + DynamoDB and SNS clients + ``import pydantic``.
References: what a handler on this stack cannot start without, so none can start faster than its own: the
floor + one pydantic model (``import pydantic`` loads lazily: the floor leaves out the model machinery every
model needs) + Powertools' Logger and Metrics (every handler logs and counts through them, and the alarms read
the counts); for the callback receiver, also Powertools' ``APIGatewayRestResolver`` (its HTTP API). The poller
and the poll worker use no resolver: their reference is the same, without it. The worker's Powertools batch
utility is not in it: it is a convenience (the SQS partial-batch response is a few lines of our own), so it
shows among what the worker loads beyond its reference.
Handler: import the handler module and build what its first invocation needs: its dependencies (settings, AWS
clients, the providers document, here with API credentials for all five providers, read from a file) and, for
the callback receiver, what a Huawei video callback needs besides (its adapter, and, as the document gives API
credentials, the client that fetches the job it names: ``requests`` with it); for the poller, the poller with
the five provider clients and the fan-out's SQS client (``POLL_QUEUE_URL`` is set, as deployed); for a poll
worker, the poller with the polled provider's client.
Target: handler <= 1.3 x floor. Also reported: each handler against its reference; what each handler imports
beyond its reference (``-X importtime`` with the garbage collector off, IMPORTTIME_RUNS runs, the median of each
module's own time; our modules one by one, each with the pydantic models it builds, and each third-party
package our code imports with everything it pulls in); the callback receiver on the same artifact without its
bytecode, which is what SAM's own python builder ships (it leaves ``.pyc`` files out).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
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

REFERENCE = """
import time
t = time.perf_counter()
import boto3
boto3.client("dynamodb"); boto3.client("sns")
import pydantic
from pydantic import BaseModel
class One(BaseModel):
    value: int
from aws_lambda_powertools import Logger, Metrics
Logger(service="reference"); Metrics(namespace="Reference", service="reference")
{more}print(time.perf_counter() - t)
"""
REFERENCES = {
    "callback": (
        "floor + 1 pydantic model + Powertools Logger, Metrics and APIGatewayRestResolver",
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver\nAPIGatewayRestResolver()\n",
    ),
    "poller, poll worker": ("floor + 1 pydantic model + Powertools Logger and Metrics", ""),
}
"""Each reference: what it holds, and the code it adds to the floor + one model + Logger and Metrics."""

HANDLER = """
import time
t = time.perf_counter()
import {module}
from verdict_relay.handlers.dependencies import dependencies
dependencies(){first_use}
print(time.perf_counter() - t)
"""
FIRST_USE = {
    # The first callback reads the providers document and builds its route's adapter and (trust: fetch, the
    # default with API credentials) the client that fetches its job.
    "verdict_relay.handlers.callback": (
        '.callback_fetcher("huawei-video")\n'
        "from verdict_relay.providers.registry import get_adapter\n"
        'get_adapter("huawei-video", dependencies().providers())'
    ),
    "verdict_relay.handlers.poller": ".poller()\ndependencies().poll_queue()",
    # A worker's batch is one provider's: it builds that provider's client when it polls the batch.
    "verdict_relay.handlers.poll_worker": '.poller(build_all=False).batch_size("huawei-video")',
}
REFERENCE_OF = {
    "verdict_relay.handlers.callback": "callback",
    "verdict_relay.handlers.poller": "poller, poll worker",
    "verdict_relay.handlers.poll_worker": "poller, poll worker",
}
IMPORTTIME_RUNS = 5
BIGGEST = 5
NO_COLLECTOR = "import gc; gc.disable()\n"
"""For ``-X importtime`` only: a collection's pause would be charged to whichever module was importing when it
came (20 ms to one of ours in a run), not to what caused it."""
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)")


def measure(python: str, codes: dict[str, tuple[str, dict[str, str]]]) -> dict[str, float]:
    """The median seconds of each named (code, environment), over RUNS rounds that run each once in turn."""
    samples: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(RUNS):
        for name, (code, env) in codes.items():
            out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, check=True)
            samples[name].append(float(out.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(values) for name, values in samples.items()}


def imports(python: str, code: str, env: dict[str, str]) -> list[tuple[str, int, int]]:
    """Each module one run of ``code`` imports, as ``-X importtime`` lists it: (name, its own microseconds,
    nesting depth), a module after the modules it imports."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, check=True
    )
    lines = map(_IMPORT_LINE.match, done.stderr.splitlines())
    return [(line[3], int(line[1]), len(line[2])) for line in lines if line is not None]


def importers(run: list[tuple[str, int, int]]) -> dict[str, str]:
    """Each module's importer in one run: the next module listed one level up."""
    importer: dict[str, str] = {}
    waiting: list[tuple[str, int]] = []
    for name, _, depth in run:
        while waiting and waiting[-1][1] > depth:
            importer[waiting.pop()[0]] = name
        waiting.append((name, depth))
    return importer


def group(module: str, importer: dict[str, str], reference: set[str]) -> str:
    """What a module beyond the reference is loaded for: itself if it is ours, or the third-party package (a
    Powertools utility) our code imported, with everything that pulled in."""
    while not module.startswith("verdict_relay"):
        parent = importer.get(module)
        if parent is None or parent in reference or parent.startswith("verdict_relay"):
            break
        module = parent
    parts = module.split(".")
    if parts[0] == "verdict_relay":
        return module
    return ".".join(parts[:3]) if parts[0] == "aws_lambda_powertools" else parts[0]


def beyond_reference(
    runs: list[list[tuple[str, int, int]]], reference_runs: list[list[tuple[str, int, int]]]
) -> tuple[int, float, list[tuple[str, float]]]:
    """What a handler imports beyond its reference: modules, seconds, and seconds by group, biggest first (the
    median over the runs of each module's own time)."""
    reference = {name for run in reference_runs for name, _, _ in run}
    own: dict[str, list[int]] = defaultdict(list)
    for run in runs:
        for name, microseconds, _ in run:
            own[name].append(microseconds)
    importer = importers(runs[0])
    by_group: dict[str, float] = defaultdict(float)
    for name, times in own.items():
        if name not in reference:
            by_group[group(name, importer, reference)] += statistics.median(times) / 1e6
    modules = sum(name not in reference for name in own)
    return modules, sum(by_group.values()), sorted(by_group.items(), key=lambda item: -item[1])


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
            "POLL_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/poll.fifo",
            "PYTHONPATH": path,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        # The same artifact without its bytecode; the standard library and boto3 keep theirs, as on Lambda.
        shutil.copytree(artifact, bare, ignore=shutil.ignore_patterns("__pycache__"))
        without_bytecode = {**env, "PYTHONPATH": path.replace(artifact, bare, 1)}
        codes = {"floor": (FLOOR, env)}
        for name, (_, more) in REFERENCES.items():
            codes[f"reference: {name}"] = (REFERENCE.format(more=more), env)
        for module, first_use in FIRST_USE.items():
            codes[module] = (HANDLER.format(module=module, first_use=first_use), env)
        callback = HANDLER.format(
            module="verdict_relay.handlers.callback", first_use=FIRST_USE["verdict_relay.handlers.callback"]
        )
        codes["callback without bytecode"] = (callback, without_bytecode)
        seconds = measure(python, codes)
        traced = [*REFERENCES, *FIRST_USE]
        import_runs: dict[str, list[list[tuple[str, int, int]]]] = {name: [] for name in traced}
        for _ in range(IMPORTTIME_RUNS):
            for name in import_runs:
                code = codes[name if name in FIRST_USE else f"reference: {name}"][0]
                import_runs[name].append(imports(python, NO_COLLECTOR + code, env))
    finally:
        for folder in (artifact, bare, runtime):
            shutil.rmtree(folder, ignore_errors=True)
    floor = seconds["floor"]
    rows: list[dict[str, object]] = [
        {
            "benchmark": f"cold start reference{label}, {name}: {holds}",
            "measured": f"{seconds[f'reference: {name}'] * 1000:.0f} ms"
            f" = {seconds[f'reference: {name}'] / floor:.2f} x floor",
            "target": "reference (no such handler can start faster on this stack)",
            "ok": True,
        }
        for name, (holds, _) in REFERENCES.items()
    ]
    for module in FIRST_USE:
        reference = seconds[f"reference: {REFERENCE_OF[module]}"]
        rows.append(
            {
                "benchmark": f"cold start {module.rsplit('.', 1)[1]}{label}",
                "measured": f"{seconds[module] * 1000:.0f} ms = {seconds[module] / floor:.2f} x floor"
                f" ({floor * 1000:.0f} ms), {seconds[module] / reference:.2f} x its reference",
                "target": f"<= {TARGET} x floor",
                "ok": seconds[module] / floor <= TARGET,
            }
        )
    for module in FIRST_USE:
        modules, total, groups = beyond_reference(import_runs[module], import_runs[REFERENCE_OF[module]])
        ours = [(name, part) for name, part in groups if name.startswith("verdict_relay")]
        theirs = [
            (name, part) for name, part in groups if not name.startswith("verdict_relay") and part >= 0.001
        ]
        own_parts = ", ".join(
            f"{name.partition('.')[2] or name} {part * 1000:.0f} ms" for name, part in ours[:BIGGEST]
        )
        biggest = [f"our modules {sum(part for _, part in ours) * 1000:.0f} ms ({own_parts}, ...)"]
        biggest += [f"{name} {part * 1000:.0f} ms" for name, part in theirs[:BIGGEST]]
        rows.append(
            {
                "benchmark": f"cold start {module.rsplit('.', 1)[1]}{label}: imports beyond its reference"
                " (-X importtime, collector off)",
                "measured": f"{modules} modules, {total * 1000:.0f} ms: {'; '.join(biggest)}",
                "target": "reported",
                "ok": True,
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
