"""``verdict-relay normalize``, ``schema`` and what ``poll`` warns of, run through the console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import payload_path
from verdict_relay.cli import main

SHAPES = [
    ("huawei-video", "succeeded", "block"),
    ("huawei-video", "running", None),
    ("huawei-audio", "succeeded", None),
    ("huawei-image-batch", "finish", "pass"),
    ("huawei-image-batch", "finish-with-failed-item", "block"),
    ("alibaba-mps", "job-detail", None),
    ("azure-review", "job-get", "pass"),
    ("azure-review", "job-callback", None),
    ("azure-review", "review-callback", None),
]


@pytest.mark.parametrize(("provider", "name", "suggestion"), SHAPES)
def test_normalize_prints_one_canonical_verdict_for_a_single_job_payload(
    provider: str, name: str, suggestion: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["normalize", "--provider", provider, str(payload_path(provider, name))])

    assert code == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["provider"] == provider
    assert verdict["schema_version"] == "1.0"
    if suggestion is not None:
        assert verdict["suggestion"] == suggestion


@pytest.mark.parametrize(
    ("provider", "name"), [("alibaba-mps", "job-list"), ("huawei-image-batch", "job-list")]
)
def test_normalize_prints_an_array_for_a_payload_holding_several_jobs(
    provider: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["normalize", "--provider", provider, str(payload_path(provider, name))]) == 0

    verdicts = json.loads(capsys.readouterr().out)
    assert isinstance(verdicts, list)
    assert all(v["provider"] == provider for v in verdicts)


def test_normalize_prints_a_job_lists_summaries_without_a_verdict_nobody_gave(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A Huawei image-batch job list names finished jobs without their results: no suggestion is made up for them
    assert (
        main(
            [
                "normalize",
                "--provider",
                "huawei-image-batch",
                str(payload_path("huawei-image-batch", "job-list")),
            ]
        )
        == 0
    )

    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["status"], listed["suggestion"], listed["decided_by"]) == ("succeeded", None, None)
    assert listed["metadata"] == {"source": "job-list"}


def test_normalize_reads_standard_input() -> None:
    payload = payload_path("huawei-video", "succeeded").read_bytes()

    result = subprocess.run(
        [sys.executable, "-m", "verdict_relay.cli", "normalize", "--provider", "huawei-video", "-"],
        input=payload,
        capture_output=True,
        check=False,
    )

    assert result.returncode == 0
    assert json.loads(result.stdout)["job_id"] == "xxx"


LOGGING_COMMAND = """
import sys
from verdict_relay.cli import main
from verdict_relay.observability import logger

logger.warning("logged while the command runs")  # as the poller logs while ``poll`` runs (an expired job)
sys.exit(main(["normalize", "--provider", "huawei-video", sys.argv[1]]))
"""


def test_what_a_command_logs_goes_to_stderr_leaving_its_json_on_stdout() -> None:
    # Given a command whose code logs (the functions' logger: in Lambda either stream reaches CloudWatch)
    payload = payload_path("huawei-video", "succeeded")

    # When it runs
    result = subprocess.run(
        [sys.executable, "-c", LOGGING_COMMAND, str(payload)], capture_output=True, text=True, check=False
    )

    # Then its stdout is its JSON alone, for a script to read, and the log line is on stderr
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["job_id"] == "xxx"
    assert "logged while the command runs" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "not valid JSON"), (b'{"job_id": 1}', "field"), (b"\xff\xfe", "UTF-8")],
)
def test_unreadable_payload_exits_2_with_a_one_line_error(
    content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "payload.json"
    path.write_bytes(content)

    code = main(["normalize", "--provider", "huawei-video", str(path)])

    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert captured.err.count("\n") == 1


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["normalize", "--provider", "huawei-video", "/nonexistent/payload.json"]) == 2
    assert "No such file" in capsys.readouterr().err


def test_normalize_of_another_providers_payload_says_whose_it_reads_as(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["normalize", "--provider", "huawei-video", str(payload_path("azure-review", "job-get"))])

    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "verdict-relay: huawei-video payload: field 'job_id': Field required"
        " (it reads as a payload of azure-review)"
    )


def test_normalize_of_a_payload_no_adapter_reads_gives_the_providers_own_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"job_id": "j-1", "status": "nonsense"}')

    assert main(["normalize", "--provider", "huawei-video", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "field 'status'" in err
    assert "reads as" not in err


def test_normalize_of_a_providers_own_payload_with_a_bad_value_names_no_other_provider(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A bad value deep in a video result: huawei-audio reads the payload only because it ignores image_detail
    payload = json.loads(payload_path("huawei-video", "succeeded").read_text())
    payload["result"]["image_detail"][0]["time"] = "not-a-time"
    path = tmp_path / "hv.json"
    path.write_text(json.dumps(payload))

    assert main(["normalize", "--provider", "huawei-video", str(path)]) == 2
    err = capsys.readouterr().err
    assert "field 'result.image_detail.0.time'" in err
    assert "reads as" not in err


def test_normalize_of_an_empty_list_names_no_other_provider(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]")

    assert main(["normalize", "--provider", "huawei-video", str(path)]) == 2
    assert "reads as" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["poll", "--once", "--budget", "nan"], "--budget: must be a number of seconds above 0, got nan"),
        (["poll", "--once", "--budget", "-3"], "--budget: must be a number of seconds above 0, got -3"),
        (["poll", "--once", "--budget", "0"], "--budget: must be a number of seconds above 0, got 0"),
        (["poll", "--once", "--budget", "soon"], "--budget: not a number: 'soon'"),
        (["local", "--poll-interval", "0"], "--poll-interval: must be a number of seconds above 0, got 0"),
        (["local", "--duration", "inf"], "--duration: must be a number of seconds above 0, got inf"),
        (["local", "--simulate", "--jobs", "-1"], "--jobs: must be at least 1, got -1"),
        (["local", "--port", "70000"], "--port: must be a port from 0 to 65535, got 70000"),
    ],
)
def test_numbers_a_command_cannot_use_are_refused_before_it_does_anything(
    capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    # A budget of nan made every deadline check pass, so a cycle ran with no deadline at all; a negative number
    # of jobs made a simulation of nothing report success
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert problem in capsys.readouterr().err
