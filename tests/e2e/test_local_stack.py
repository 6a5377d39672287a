"""The local stack as a user runs it: ``verdict-relay local`` in its own process, driven over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from verdict_relay.models.verdict import PROVIDER_NAMES

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-callback-token-0001"


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_simulated_run_ends_with_every_job_verdict_as_expected() -> None:
    # When a script runs the simulation to its end (make run ARGS="--duration 60 --exit-when-done")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "verdict_relay.cli",
            "local",
            "--simulate",
            "--duration",
            "60",
            "--port",
            "0",
            "--poll-interval",
            "1",
            "--exit-when-done",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=_environment(),
        check=False,
    )

    # Then it exits 0 once done, with a summary: every job as expected, duplicates published once, expired as review
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = 5 * len(PROVIDER_NAMES)  # the scenario's default: 5 jobs a provider
    assert f"every simulated job has its verdict: all {jobs} as expected\n" in result.stdout
    summary = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert summary["ok"] is True
    assert summary["resolved"] == summary["jobs"] == jobs
    assert summary["duplicated_jobs_published_once"] is True
    assert summary["expired_published_as_review"] is True
    assert summary["simulator_requests_over_rate_limit"] == 0


class Stack:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    providers = tmp_path_factory.mktemp("stack") / "providers.json"
    providers.write_text(json.dumps({"azure-review": {"callback": {"tokens": [TOKEN]}}}))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "verdict_relay.cli",
            "local",
            "--providers",
            str(providers),
            "--port",
            "0",
            "--duration",
            "90",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=_environment(),
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("Verdict Relay local stack: "), first
    yield Stack(first.split(": ", 1)[1].strip())
    process.terminate()
    process.wait(timeout=30)


def test_register_then_read_a_job_over_http(stack: Stack) -> None:
    status, body = stack.call(
        "POST", "/jobs", {"provider": "alibaba-mps", "job_id": "e2e-1", "metadata": {"content_id": "c-1"}}
    )
    assert status == 201
    assert body["status"] == "pending"

    status, body = stack.call("GET", "/jobs/alibaba-mps/e2e-1")
    assert status == 200
    assert body["metadata"] == {"content_id": "c-1"}


def test_callback_with_the_token_is_stored_and_readable(stack: Stack) -> None:
    payload = json.loads((ROOT / "events" / "providers" / "azure-review" / "job-callback.json").read_text())

    status, _ = stack.call("POST", f"/callbacks/azure-review?token={TOKEN}", payload)

    assert status == 200
    status, body = stack.call("GET", f"/jobs/azure-review/{payload['JobId']}")
    assert status == 200
    assert body["status"] == "succeeded"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/callbacks/azure-review", {"JobId": "x"}, 401, "unauthorized"),
        ("POST", f"/callbacks/azure-review?token={TOKEN}", b"{broken", 400, "malformed_payload"),
        ("POST", "/callbacks/acme", {}, 404, "unknown_provider"),
        ("POST", "/jobs", {"provider": "acme", "job_id": "x"}, 422, "invalid_request"),
        ("GET", "/jobs/alibaba-mps/unknown", None, 404, "not_found"),
    ],
)
def test_bad_requests_get_the_deployed_status_and_a_json_error(
    stack: Stack, method: str, path: str, body: Any, status: int, code: str
) -> None:
    got_status, got_body = stack.call(method, path, body)

    assert got_status == status
    assert got_body["error"]["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "allowed"), [("PUT", "/jobs", "POST"), ("DELETE", "/jobs/alibaba-mps/x", "GET")]
)
def test_undeclared_methods_are_refused_with_405_and_the_allowed_ones(
    stack: Stack, method: str, path: str, allowed: str
) -> None:
    request = urllib.request.Request(stack.base_url + path, method=method)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=15)

    assert refused.value.code == 405
    assert refused.value.headers["Allow"] == allowed
    assert json.loads(refused.value.read())["error"]["code"] == "method_not_allowed"
