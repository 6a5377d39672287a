"""Runs the local stack from the command line: prints where it is and how to call it, then what it publishes.

With ``--simulate`` the provider simulator plays all five providers (``local.scenario``); on exit a summary,
and exit status 1 if any simulated job ended without the verdict the simulator expected.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from verdict_relay.local.stack import LocalStack

CURL_EXAMPLES = """\
  curl -s {base}/jobs -H 'Content-Type: application/json' \\
       -d '{{"provider": "alibaba-mps", "job_id": "job-1", "metadata": {{"content_id": "c-1"}}}}'
  curl -s {base}/jobs/alibaba-mps/job-1
  curl -s {base}/callbacks/azure-review?token=<a callback token> -H 'Content-Type: application/json' \\
       -d @events/providers/azure-review/job-callback.json
"""


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_local(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="verdict-relay-local-"))
    scenario: Any = None
    if args.simulate:
        from verdict_relay.local.scenario import Scenario

        scenario = Scenario(jobs_per_provider=args.jobs).start()
        providers_file = scenario.write_providers_document(workdir / "providers.json")
    elif args.providers:
        providers_file = Path(args.providers)
    else:
        providers_file = workdir / "providers.json"
        providers_file.write_text("{}", encoding="utf-8")

    published: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_published(message: dict[str, Any]) -> None:
        verdict = message["verdict"]
        with lock:
            published.append(message)
        _print(
            f"published  {verdict['provider']:<18} {verdict['job_id']:<28} {verdict['status']:<9} "
            f"{verdict.get('suggestion')}"
        )

    stack = LocalStack(
        providers_file, port=args.port, poll_interval_s=args.poll_interval, on_published=on_published
    )
    stack.start()
    _print(f"Verdict Relay local stack: {stack.base_url}")
    _print(
        f"  POST {stack.base_url}/callbacks/{{provider}}   POST {stack.base_url}/jobs   GET {stack.base_url}/jobs/{{provider}}/{{job_id}}"
    )
    _print(CURL_EXAMPLES.format(base=stack.base_url))
    assert stack.resources is not None
    env = " ".join(
        f"{k}={os.environ[k]}"
        for k in (
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "TABLE_NAME",
            "TOPIC_ARN",
            "RAW_PAYLOAD_BUCKET",
            "PROVIDERS_FILE",
        )
    )
    _print(f"  operator commands against this stack:\n  {env} verdict-relay jobs list --status pending\n")

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    if scenario is not None:
        scenario.run_against(stack.base_url, stop)
    last_view = 0.0
    while not stop.is_set():
        if args.duration is not None and time.monotonic() - started >= args.duration:
            break
        if scenario is not None and scenario.finished(stack):
            _print("every simulated job has its verdict")
            break
        if scenario is not None and time.monotonic() - last_view >= 5:
            last_view = time.monotonic()
            _print(scenario.live_view(stack, published))
        stop.wait(0.5)

    summary = scenario.summary(stack, published) if scenario is not None else None
    stack.stop()  # the poller stops before the simulated providers do
    if scenario is not None:
        scenario.stop()
    for error in stack.poll_errors:
        _print(f"poller error: {error}")
    if summary is None:
        return 0
    _print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1
