"""``verdict-relay local --simulate`` as a user runs it: what it prints works, it serves until stopped, and it
leaves nothing behind.

The tests of the shared run go in file order: the last one stops it. Each sets up what it asserts on (the
examples pasted, the operator's re-send: module fixtures, done once whichever test asks first), so any of them
also passes alone.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from verdict_relay.models.verdict import PROVIDER_NAMES

ROOT = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"


def _environment(tmpdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["TMPDIR"] = str(tmpdir)  # where the run makes its work directory
    return {**env, **(extra or {})}


class LocalRun:
    """A ``verdict-relay local`` process, its output collected line by line."""

    def __init__(self, args: list[str], tmpdir: Path, env: dict[str, str] | None = None) -> None:
        self.tmpdir = tmpdir
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "verdict_relay.cli", "local", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=_environment(tmpdir, env),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> int:
        """Index of the first output line containing ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, line in enumerate(list(self.lines)):
                if text in line:
                    return index
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.lines[-40:]))

    def banner(self) -> list[str]:
        """The lines printed before the first live view line."""
        return self.lines[: self.wait_for("operator commands against this stack", 60) + 2]

    @property
    def base_url(self) -> str:
        return self.lines[self.wait_for("Verdict Relay local stack: ", 60)].split(": ", 1)[1]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait()

    def wait(self) -> int:
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code

    def summary(self) -> dict[str, Any]:
        output = "\n".join(self.lines)
        return dict(json.loads(output[output.rindex("\n{\n") :]))

    def work_dirs(self) -> list[Path]:
        return list(self.tmpdir.glob("verdict-relay-local-*"))


def _bash(command: str, cwd: Path) -> str:
    """Run a pasted command as a user's shell would, without the venv on PATH."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd)}
    result = subprocess.run(
        [BASH, "-c", command], capture_output=True, text=True, cwd=cwd, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    # One job per provider keeps the scenario short; --duration only bounds a run the tests fail to stop. The
    # shell is one set up for the operator commands against a deployed stack: its secret is not the local one.
    run = LocalRun(
        ["--simulate", "--jobs", "1", "--port", "0", "--poll-interval", "1", "--duration", "120"],
        tmp_path_factory.mktemp("tmpdir"),
        env={"PROVIDERS_SECRET_ID": "verdict-relay-providers"},
    )
    yield run
    run.stop()


@pytest.fixture(scope="module")
def pasted_examples(simulated: LocalRun, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The examples the simulated stack prints, pasted into bash once, from a directory of their own (they
    register a job and send a callback, whose verdicts the run then publishes)."""
    examples = _examples(simulated)
    pasted = _bash("\n".join(examples), tmp_path_factory.mktemp("pasted"))
    assert '{"accepted":1}' in pasted, pasted  # the sample callback was taken
    return examples


@pytest.fixture(scope="module")
def operator_republish(simulated: LocalRun) -> subprocess.CompletedProcess[str]:
    """The documented operator command, run once under the printed environment, re-sending a simulated job's
    verdict once the relay has published every simulated job's."""
    simulated.wait_for("every simulated job has its verdict", 90)
    banner = simulated.banner()
    command = shlex.split(banner[banner.index("  operator commands against this stack:") + 1])
    stack_environment = dict(arg.split("=", 1) for arg in command if "=" in arg and not arg.startswith("-"))
    return subprocess.run(
        [sys.executable, "-m", "verdict_relay.cli", "republish", "--job", "alibaba-mps/alibaba-mps-job-0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**_environment(simulated.tmpdir), **stack_environment},
        timeout=60,
        check=False,
    )


def _examples(run: LocalRun) -> list[str]:
    banner = run.banner()
    start = next(i for i, line in enumerate(banner) if line.startswith("  # examples:"))
    end = next(i for i in range(start, len(banner)) if not banner[i].strip())
    return banner[start:end]


def _verdict_once_finished(command: str, cwd: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        verdict = dict(json.loads(_bash(command, cwd)))
        assert "status" in verdict, verdict
        if verdict["status"] != "pending" or time.monotonic() > deadline:
            return verdict
        time.sleep(0.5)


def test_printed_curl_examples_work_pasted_into_a_shell_and_lead_to_verdicts(
    pasted_examples: list[str], tmp_path: Path
) -> None:
    # Given the examples the simulated stack prints, pasted into bash by a user, from any directory
    # (the fixture: the sample callback was taken)
    examples = pasted_examples

    # Then the registered Alibaba job and the Azure job of the sample callback get the verdicts announced
    reads = [
        line.split("  #")[0]
        for line in examples
        if "curl -s" in line and " -d" not in line and "-H" not in line
    ]
    alibaba = _verdict_once_finished(next(r for r in reads if "/jobs/alibaba-mps/" in r), tmp_path)
    azure = _verdict_once_finished(next(r for r in reads if "/jobs/azure-review/" in r), tmp_path)
    assert (alibaba["status"], alibaba["suggestion"]) == ("succeeded", "block")
    assert (azure["status"], azure["suggestion"]) == ("succeeded", "review")


def test_printed_operator_command_runs_without_the_venv_on_path(simulated: LocalRun, tmp_path: Path) -> None:
    banner = simulated.banner()
    command = banner[banner.index("  operator commands against this stack:") + 1].strip()

    assert str(Path(sys.executable).parent / "verdict-relay") in command
    assert isinstance(json.loads(_bash(command, tmp_path)), list)


def test_simulated_stack_keeps_serving_once_every_job_has_its_verdict(simulated: LocalRun) -> None:
    at = simulated.wait_for("every simulated job has its verdict", 90)
    done = simulated.lines[at]

    # The live line as the scenario ends comes first (the last periodic one may be seconds old; the functions'
    # logs share the output)
    live = [line for line in simulated.lines[:at] if line.startswith("jobs ")]
    assert live[-1].startswith(f"jobs 0 pending / {len(PROVIDER_NAMES)} resolved | ")

    assert (
        done
        == (
            f"every simulated job has its verdict: all {len(PROVIDER_NAMES)} as expected;"  # --jobs 1: one a provider
            " serving until Ctrl-C or --duration"
        )
    )
    time.sleep(1)
    assert simulated.process.poll() is None
    with urllib.request.urlopen(
        f"{simulated.base_url}/jobs/alibaba-mps/alibaba-mps-job-0", timeout=15
    ) as response:
        assert json.loads(response.read())["suggestion"] == "block"


def test_an_operator_republish_during_the_run_is_printed_as_a_resend(
    simulated: LocalRun, operator_republish: subprocess.CompletedProcess[str]
) -> None:
    # Given a simulated job whose verdict the relay has published, when an operator sends it again with the
    # documented command under the printed environment (the fixture)
    result = operator_republish

    # Then it is sent, and the run shows it as the operator's re-send (the summary counts it apart: below)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {"republished": {"alibaba-mps/alibaba-mps-job-0": "published"}}
    resent = simulated.lines[simulated.wait_for("republished alibaba-mps ", 30)]
    assert resent.split() == ["republished", "alibaba-mps", "alibaba-mps-job-0", "succeeded", "block"]


def test_stopped_simulated_stack_sums_up_its_own_jobs_prints_no_metrics_and_leaves_nothing_behind(
    simulated: LocalRun,
    pasted_examples: list[str],
    operator_republish: subprocess.CompletedProcess[str],
) -> None:
    # Given a run whose simulated jobs all have their verdicts, one re-sent by an operator, and whose pasted
    # examples' Alibaba job has been published too
    assert operator_republish.returncode == 0, operator_republish.stdout + operator_republish.stderr
    simulated.wait_for("republished alibaba-mps ", 30)
    simulated.wait_for("published  alibaba-mps        job-1 ", 60)

    # When the user stops it (SIGTERM, as Ctrl-C)
    code = simulated.stop()

    # Then it exits 0, the summary counts the scenario's publishes but not the examples' (published too), and
    # the operator's re-send apart from them: it is no duplicate publish
    assert code == 0, "\n".join(simulated.lines[-40:])
    summary = simulated.summary()
    assert summary["ok"] is True
    assert summary["published"] == summary["jobs"] == len(PROVIDER_NAMES)
    assert summary["republished_by_operator"] == 1
    assert any(line.startswith("published  alibaba-mps        job-1 ") for line in simulated.lines)
    # no Powertools metrics lines in the output, no INFO log records (the local stack logs warnings and up
    # unless POWERTOOLS_LOG_LEVEL says otherwise), and no work directory (with its credentials) left
    assert not [line for line in simulated.lines if line.startswith('{"_aws"')]
    assert not [line for line in simulated.lines if line.startswith('{"level":"INFO"')]
    assert simulated.work_dirs() == []


def test_ctrl_c_before_the_scenario_finishes_reports_unfinished_jobs_not_failure(tmp_path: Path) -> None:
    run = LocalRun(["--simulate", "--port", "0", "--poll-interval", "1"], tmp_path)
    run.banner()

    code = run.stop(signal.SIGINT)

    assert code == 0, "\n".join(run.lines[-40:])
    summary = run.summary()
    assert summary["unfinished"] > 0
    assert summary["mismatches"] == []
    assert run.work_dirs() == []


def test_a_taken_port_is_named_with_the_option_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = LocalRun(["--port", str(port), "--duration", "30"], tmp_path)
        code = run.wait()

    assert code == 2
    assert run.lines == [
        f"verdict-relay: port {port} on 127.0.0.1 is already in use: choose another with --port (0 picks a free one)"
    ]
    assert run.work_dirs() == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (None, "No such file or directory"),
        (
            {"huawei-video": {"callback": {"seeds": ["short"]}}},
            "'huawei-video.callback.seeds.0': String should have at least 16 characters",
        ),
    ],
    ids=["missing", "invalid"],
)
def test_a_providers_file_that_does_not_load_stops_the_run_before_it_starts_naming_why(
    tmp_path: Path, document: dict[str, Any] | None, message: str
) -> None:
    # Given a providers file that is missing, or whose entry the functions would refuse
    providers = tmp_path / "providers.json"
    if document is not None:
        providers.write_text(json.dumps(document), encoding="utf-8")

    # When the stack is started with it, named relative to the directory it runs in
    relative = os.path.relpath(providers, ROOT)
    run = LocalRun(["--providers", relative, "--port", "0", "--duration", "30"], tmp_path)
    code = run.wait()

    # Then it exits 2 with the loader's message naming the file (as an absolute path, as the printed operator
    # environment gives it to commands run from anywhere) and the problem, and serves nothing
    assert code == 2
    assert run.lines == [f"verdict-relay: providers file {providers}: {message}"]
    assert run.work_dirs() == []


def test_settings_the_functions_refuse_stop_the_run_before_it_starts_naming_them(tmp_path: Path) -> None:
    # Given a setting the functions refuse in the environment the stack hands them
    run = LocalRun(["--port", "0", "--duration", "30"], tmp_path, env={"RETENTION_DAYS": "0"})

    # When the stack is started, then it exits 2 naming the setting, and serves nothing
    code = run.wait()

    assert code == 2
    assert run.lines == [
        "verdict-relay: invalid environment: RETENTION_DAYS: Input should be greater than or equal to 1"
    ]
    assert run.work_dirs() == []


def test_a_first_poll_wait_runs_locally_with_the_grace_set_above_it_and_is_refused_at_start_without(
    tmp_path: Path,
) -> None:
    # Given a providers document whose Azure entry waits 300 s for callbacks before polling a registered job
    providers = tmp_path / "providers.json"
    providers.write_text(
        json.dumps({"azure-review": {"callback": {"tokens": ["t" * 24], "first_poll_after_seconds": 300}}}),
        encoding="utf-8",
    )
    args = ["--providers", str(providers), "--port", "0", "--duration", "2"]

    # When the stack is started with the local grace (0), then it exits 2 naming both settings, as the
    # functions would refuse the document at every callback and poll
    refused = LocalRun(args, tmp_path)
    assert refused.wait() == 2
    (line,) = refused.lines
    assert "'azure-review.callback.first_poll_after_seconds': 300" in line
    assert "UNKNOWN_JOB_GRACE_SECONDS (0)" in line

    # and with the grace set above the wait, as deployed, it serves, and hands the grace to operator commands
    served = LocalRun(args, tmp_path, env={"UNKNOWN_JOB_GRACE_SECONDS": "3600"})
    banner = served.banner()
    assert served.wait() == 0
    assert "UNKNOWN_JOB_GRACE_SECONDS=3600" in banner[-1]


def test_a_failing_poll_worker_is_reported_as_it_fails_and_makes_the_exit_status_3(tmp_path: Path) -> None:
    # Given a running stack whose poll queue receives a batch no worker can read
    run = LocalRun(["--port", "0", "--poll-interval", "1", "--duration", "60"], tmp_path)
    try:
        environment = dict(
            part.split("=", 1)
            for line in run.banner()
            for part in shlex.split(line)
            if part.startswith(("AWS_", "POLL_QUEUE_URL="))
        )
        sqs = boto3.client(
            "sqs",
            endpoint_url=environment["AWS_ENDPOINT_URL"],
            region_name=environment["AWS_DEFAULT_REGION"],
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        )
        sqs.send_message(
            QueueUrl=environment["POLL_QUEUE_URL"],
            MessageBody="not a poll batch",
            MessageGroupId="huawei-video",
            MessageDeduplicationId="unreadable",
        )

        # Then the failed invocation is printed while the stack still runs
        error = run.lines[run.wait_for("poller error: ", 30)]
        assert error.startswith("poller error: poll worker: BatchProcessingError: "), error
        assert run.process.poll() is None
    finally:
        code = run.stop()

    # And once stopped, the run says so and exits 3
    assert code == 3, "\n".join(run.lines[-20:])
    assert run.lines[-1].startswith("verdict-relay: the poller failed ")
    assert run.work_dirs() == []


def test_without_providers_the_banner_says_so_and_prints_no_example_that_cannot_work(tmp_path: Path) -> None:
    # Given a stack started with neither the simulator nor a providers document
    run = LocalRun(["--port", "0", "--poll-interval", "1", "--duration", "60"], tmp_path)
    try:
        banner = run.banner()
    finally:
        code = run.stop()

    # Then its banner says what that means and what to use instead, and offers no curl command
    assert (
        "  no providers configured: callbacks are refused and registered jobs are not polled; "
        "use --simulate or --providers FILE"
    ) in banner
    assert not [line for line in banner if "curl" in line or "<" in line]
    assert code == 0
