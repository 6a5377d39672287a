"""What ``verdict-relay local`` prints and how it judges the simulation, without starting the stack (at most its
HTTP API)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import shlex
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import FakeAws
from verdict_relay.cli import main
from verdict_relay.local import runner
from verdict_relay.local.http_api import LocalHttpApi
from verdict_relay.local.resources import LocalResources
from verdict_relay.local.runner import completion_line, curl_examples
from verdict_relay.local.scenario import AZURE_EXAMPLE_JOB, EXAMPLE_JOBS, Scenario
from verdict_relay.local.stack import function_environment
from verdict_relay.models.verdict import PROVIDER_NAMES
from verdict_relay.providers.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://127.0.0.1:3000"


def _commands(examples: str) -> list[list[str]]:
    """The examples as a shell reads them: one argument list per command, comments dropped."""
    return [shlex.split(command, comments=True) for command in examples.replace("\\\n", " ").splitlines()]


def test_simulated_curl_examples_quote_urls_and_carry_the_local_token() -> None:
    commands = _commands(curl_examples(BASE, "local-token"))

    urls = [arg for command in commands if command for arg in command if arg.startswith(BASE)]
    assert f"{BASE}/callbacks/azure-review?token=local-token" in urls
    assert f"{BASE}/jobs/azure-review/{AZURE_EXAMPLE_JOB}" in urls
    assert not any("<" in arg or ">" in arg for command in commands for arg in command)


def test_curl_examples_without_the_simulator_keep_the_token_placeholder_inside_a_url_curl_accepts() -> None:
    commands = _commands(curl_examples(BASE, None))

    # Then curl sends it (and gets a 401 naming the token), rather than refusing a malformed URL (exit 3)
    assert [f"{BASE}/callbacks/azure-review?token=YOUR_CALLBACK_TOKEN"] == [
        arg for command in commands for arg in command if "token=" in arg
    ]
    # and the examples say they are templates: their job ids are the simulator's
    assert curl_examples(BASE, None).splitlines()[0].startswith("  # examples: put in your own job ids")


def test_exit_when_done_without_the_simulator_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["local", "--port", "0", "--exit-when-done"]) == 2
    assert capsys.readouterr().err == (
        "verdict-relay: --exit-when-done needs --simulate: only simulated jobs are waited for\n"
    )


def test_the_azure_example_job_is_the_one_of_the_sample_callback() -> None:
    sample = json.loads((ROOT / runner.SAMPLE_CALLBACK).read_text())

    assert sample["JobId"] == AZURE_EXAMPLE_JOB
    assert ("azure-review", AZURE_EXAMPLE_JOB) in EXAMPLE_JOBS


def test_the_printed_operator_command_carries_every_setting_the_local_functions_run_with(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given the local stack's environment, as it sets it for its functions
    resources = LocalResources(
        table_name="verdict-relay-JobsTable",
        topic_arn="arn:aws:sns:us-east-1:000000000000:verdict-relay-VerdictTopic",
        bucket="verdict-relay-rawpayloadbucket",
        queue_urls={"PollQueue": "http://127.0.0.1:5000/000000000000/verdict-relay-PollQueue.fifo"},
    )
    providers_file = tmp_path / "work dir" / "providers.json"  # a space, so the printed value must be quoted
    functions = function_environment(resources, providers_file)
    endpoint = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # and function settings of the shell's, which apply to the stack too
    shell = {"PUBLISH_PASS_VERDICTS": "true", "RETENTION_DAYS": "7"}
    for name, value in {**endpoint, **functions, **shell}.items():
        monkeypatch.setenv(name, value)

    # When the banner prints the operator command
    runner._print_banner(SimpleNamespace(base_url=BASE), None)  # the banner reads only its URL
    lines = capsys.readouterr().out.splitlines()
    command = shlex.split(lines[lines.index("  operator commands against this stack:") + 1])
    assignments = dict(arg.split("=", 1) for arg in command if "=" in arg and not arg.startswith("-"))

    # Then it sets them all (the poll queue among them: without it, "poll --once" would also poll the providers
    # the poll workers hold; the shell's, without which it would store pass verdicts the stack publishes), except
    # the document's cache age, which a one-shot command never reaches
    expected = {**endpoint, **functions, **shell}
    del expected["PROVIDERS_CACHE_SECONDS"]
    assert assignments == expected
    # and the same, as one export for a shell
    export = shlex.split(lines[lines.index("  operator commands against this stack:") + 2])
    assert export[:4] == ["or,", "once", "for", "a"]
    assert dict(arg.split("=", 1) for arg in export[6:]) == expected
    # and what to unset once the stack is gone, so later commands in that shell no longer reach for it
    unset = lines[lines.index("  operator commands against this stack:") + 3]
    assert set(unset.removesuffix(")").split("unset ", 1)[1].split()) == set(expected)


def _block_job_message(provider: str, job_id: str) -> dict[str, Any]:
    return {"verdict": {"provider": provider, "job_id": job_id}, "attributes": {}}


def test_summary_counts_unfinished_jobs_apart_from_wrong_ones_and_ignores_example_publishes() -> None:
    # Given a scenario of one job per provider (all "block, announced by callback")
    scenario = Scenario(jobs_per_provider=1)
    first, second, *rest = scenario.jobs
    stored: dict[str, dict[str, Any]] = {j.job_id: {"status": "running", "suggestion": None} for j in rest}
    stored[first.job_id] = {"status": "succeeded", "suggestion": "block"}
    stored[second.job_id] = {"status": "succeeded", "suggestion": "pass"}
    published = [
        _block_job_message(first.provider, first.job_id),
        _block_job_message(second.provider, second.job_id),
        _block_job_message("alibaba-mps", "job-1"),
    ]

    # When it is judged
    summary = scenario.judge(stored, published)

    # Then only the finished wrong job is a mismatch; the rest are unfinished; the example's publish is not counted
    assert [m["job_id"] for m in summary["mismatches"]] == [second.job_id]
    assert summary["unfinished"] == len(rest)
    assert summary["published"] == 2
    assert summary["ok"] is False


def test_summary_counts_an_operator_resend_apart_from_the_relays_publish() -> None:
    # Given a finished block job the relay published once, which an operator then sent again
    scenario = Scenario(jobs_per_provider=1)
    job, *rest = scenario.jobs
    stored: dict[str, dict[str, Any]] = {j.job_id: {"status": None, "suggestion": None} for j in rest}
    stored[job.job_id] = {"status": "succeeded", "suggestion": "block"}
    resent = _block_job_message(job.provider, job.job_id)
    resent["attributes"]["republished"] = "true"

    # When it is judged
    summary = scenario.judge(stored, [_block_job_message(job.provider, job.job_id), resent])

    # Then the re-send is no duplicate publish: the job is as expected, and the re-send is counted apart
    assert summary["mismatches"] == []
    assert summary["ok"] is True
    assert (summary["published"], summary["republished_by_operator"]) == (1, 1)


def test_summary_of_a_run_stopped_early_with_no_wrong_verdict_is_ok() -> None:
    scenario = Scenario(jobs_per_provider=1)
    stored = {j.job_id: {"status": None, "suggestion": None} for j in scenario.jobs}

    summary = scenario.judge(stored, [])

    assert summary["ok"] is True
    assert summary["unfinished"] == summary["jobs"] == len(PROVIDER_NAMES)


def _as_expected(scenario: Scenario) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Every job of ``scenario`` stored and published as its policy expects."""
    stored: dict[str, dict[str, Any]] = {}
    published: list[dict[str, Any]] = []
    for job in scenario.jobs:
        status, suggestion, publishes = job.expected(scenario.policy)
        stored[job.job_id] = {"status": status, "suggestion": suggestion}
        published += [_block_job_message(job.provider, job.job_id)] * publishes
    return stored, published


def test_the_scenario_delivers_duplicate_callbacks_and_its_summary_catches_one_published_twice() -> None:
    # Given the scenario make run plays: its review-duplicated jobs' callbacks are sent three times at each
    # provider that calls back (Huawei's image batches do not), so the relay's once-only publish is exercised
    scenario = Scenario()
    duplicated = [j for j in scenario.jobs if j.outcome == "review-duplicated"]
    assert {j.provider: j.callbacks for j in duplicated} == {
        p: 0 if p == "huawei-image-batch" else 3 for p in PROVIDER_NAMES
    }
    stored, published = _as_expected(scenario)
    assert scenario.judge(stored, published)["duplicated_jobs_published_once"] is True

    # When one of them is published twice
    twice = next(j for j in duplicated if j.callbacks > 1)
    summary = scenario.judge(stored, [*published, _block_job_message(twice.provider, twice.job_id)])

    # Then the summary says so, in its figure as well as in its mismatches
    assert summary["duplicated_jobs_published_once"] is False
    assert [m["job_id"] for m in summary["mismatches"]] == [twice.job_id]


def test_the_summary_catches_an_expired_job_never_published() -> None:
    # Given the scenario make run plays, every job stored and published as expected
    scenario = Scenario()
    stored, published = _as_expected(scenario)
    assert scenario.judge(stored, published)["expired_published_as_unmoderated"] is True

    # When an expired job, stored as unmoderated, was never published
    expired = next(j for j in scenario.jobs if j.outcome == "expired")
    summary = scenario.judge(stored, [m for m in published if m["verdict"]["job_id"] != expired.job_id])

    # Then the summary's figure says so
    assert summary["expired_published_as_unmoderated"] is False
    assert summary["ok"] is False


SIMULATED_PATHS = {
    "huawei-video": "/v3/project/moderation/video/jobs/job-1",
    "huawei-audio": "/v3/project/moderation/audio/jobs/job-1",
    "huawei-image-batch": "/v1.0/moderation/image/batch",
    "alibaba-mps": "/",
    "azure-review": "/contentmoderator/review/v1.0/teams/team/jobs/job-1",
}


def test_the_scenarios_providers_refuse_and_count_requests_over_their_documented_rate_limit() -> None:
    # Given the scenario make run plays, its simulated providers' clock stopped (every request in one second)
    scenario = Scenario()
    scenario.simulator.clock = lambda: 100.0
    scenario.simulator.start()
    try:
        # When each provider gets one request more than its documented limit (the relay's default) in that second
        for provider, path in SIMULATED_PATHS.items():
            for _ in range(int(PROFILES[provider].rate_limit_per_s) + 1):
                request = urllib.request.Request(scenario.simulator.base_url + path)
                with contextlib.suppress(urllib.error.HTTPError):
                    urllib.request.urlopen(request, timeout=5).close()
        over = {p: scenario.simulator.over_limit(p) for p in PROVIDER_NAMES}
    finally:
        scenario.stop()

    # Then each refuses that one and counts it: the summary's simulator_requests_over_rate_limit can be other than 0
    assert over == dict.fromkeys(PROVIDER_NAMES, 1)


def test_a_judged_summary_keeps_the_errors_it_was_judged_with() -> None:
    # Given a summary judged while no simulator request had failed
    scenario = Scenario(jobs_per_provider=1)
    summary = scenario.judge({j.job_id: {"status": None, "suggestion": None} for j in scenario.jobs}, [])

    # When a request fails afterwards
    scenario.errors.append("POST http://127.0.0.1:3000/callbacks/huawei-video -> Connection refused")

    # Then the summary still says what it was judged on: it cannot say ok and list an error
    assert summary["ok"] is True
    assert summary["errors"] == []


def test_when_the_duration_ends_the_scenario_sends_nothing_more(aws: FakeAws) -> None:
    # Given a simulation whose jobs finish 2 to 2.5 s after they are registered, and an HTTP API noting each
    # request that arrives once the run has ended
    ended = threading.Event()
    after_the_end: list[str] = []

    def note(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        if ended.is_set():
            after_the_end.append(event["path"])
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

    api = LocalHttpApi(note, port=0).start()
    scenario = Scenario(jobs_per_provider=1, finish_within_s=2.5)
    stack = SimpleNamespace(base_url=api.base_url, session=aws.session, resources=aws.resources)
    try:
        # When --duration ends before any job finishes
        args = argparse.Namespace(duration=0, exit_when_done=False)
        summary = runner._serve(args, stack, scenario, runner._Published(), threading.Event())
        ended.set()
        # past the time the last job would have finished, and its callback been sent
        time.sleep(max(j.finish_after_s for j in scenario.jobs) + 0.5)
    finally:
        api.stop()

    # Then the scenario sent nothing after the run ended (to a stack about to stop, it would have failed)
    assert after_the_end == []
    assert summary is not None
    assert summary["errors"] == []


@pytest.mark.parametrize(
    ("summary", "exit_when_done", "line"),
    [
        (
            {"ok": True, "jobs": 25, "mismatches": [], "errors": []},
            False,
            "every simulated job has its verdict: all 25 as expected; serving until Ctrl-C",
        ),
        (
            {"ok": False, "jobs": 25, "mismatches": [{}, {}], "errors": []},
            True,
            "every simulated job has its verdict: 2 of 25 not as expected (details in the summary at exit)",
        ),
    ],
)
def test_completion_line_gives_the_result_and_whether_the_stack_keeps_serving(
    summary: dict[str, Any], exit_when_done: bool, line: str
) -> None:
    args = argparse.Namespace(exit_when_done=exit_when_done, duration=None)

    assert completion_line(summary, args) == line


def test_an_os_error_without_a_file_name_is_printed_without_none(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(_args: argparse.Namespace) -> int:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(runner, "run_local", refused)

    assert main(["local"]) == 2
    assert capsys.readouterr().err == "verdict-relay: Permission denied\n"


def test_a_reader_that_went_away_ends_the_command_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def reader_gone(_args: argparse.Namespace) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")  # as printing into "| head" does

    monkeypatch.setattr(runner, "run_local", reader_gone)

    assert main(["local"]) == 1
    assert capsys.readouterr().err == ""


def test_show_messages_prints_each_message_as_a_subscriber_gets_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = {
        "verdict": {
            "provider": "azure-review",
            "job_id": "j-1",
            "status": "succeeded",
            "suggestion": "block",
        },
        "attributes": {"provider": "azure-review", "suggestion": "block"},
        "typed_attributes": {
            "provider": {"Type": "String", "Value": "azure-review"},
            "suggestion": {"Type": "String", "Value": "block"},
            "categories": {"Type": "String.Array", "Value": '["adult"]'},
        },
    }

    runner._Published(show=True)(message)
    runner._Published()(message)

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["published", "azure-review", "j-1", "succeeded", "block"]
    assert json.loads(lines[1]) == {"attributes": message["typed_attributes"], "body": message["verdict"]}
    assert lines[2].split() == lines[0].split()
    assert len(lines) == 3


def test_a_function_that_raises_gets_api_gateways_502_not_a_dropped_connection() -> None:
    # Given the local API in front of a function that fails with an unhandled exception, as a Lambda can
    def failing(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("the function failed")

    api = LocalHttpApi(failing, port=0).start()
    try:
        # When a request reaches it
        request = urllib.request.Request(f"{api.base_url}/jobs/alibaba-mps/x")
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(request, timeout=10)
    finally:
        api.stop()

    # Then the client gets what API Gateway answers for a failed invocation
    assert answered.value.code == 502
    assert json.loads(answered.value.read()) == {"message": "Internal server error"}
