"""Runs the local stack from the command line: prints where it is and how to call it, then what it publishes.

With neither ``--simulate`` nor ``--providers`` no provider is configured: the banner says so (callbacks are
refused, registered jobs are not polled) instead of printing examples that could not work.

With ``--simulate`` the provider simulator plays all five providers (``local.scenario``). When every simulated
job has its verdict, one line says whether all are as expected, and the stack keeps serving until Ctrl-C,
SIGTERM or ``--duration`` (``--exit-when-done`` stops there; without ``--simulate`` it is refused, exit status
2). On exit a summary, and exit status 1 if a finished job ended without the verdict the simulator expected;
jobs stopped before they finished count as unfinished, not as wrong. The work directory (the providers
document, with its credentials) is removed on every exit.

The providers document (``--providers FILE``, or the simulator's) and the functions' settings from the
environment (``RETENTION_DAYS`` and the like; ``PROVIDERS_SECRET_ID`` is ignored: the document is the stack's
file) are read and validated before anything starts: a document or a setting the functions could not load ends
the command with exit status 2 and the loader's message, as a taken port does. A poller or poll worker
invocation that fails is printed (stderr) as it happens, and makes the exit status 3 unless a wrong verdict
already made it 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verdict_relay.cli import EXIT_BAD_INPUT
from verdict_relay.config import load_providers_file
from verdict_relay.local.stack import LOCAL_LOG_LEVEL, LocalStack, PortInUseError, is_republished
from verdict_relay.observability import logger

if TYPE_CHECKING:
    from verdict_relay.local.scenario import Scenario

EXIT_WRONG_VERDICT = 1
EXIT_POLLER_FAILED = 3
"""Exit statuses besides 0 and ``EXIT_BAD_INPUT`` (2: a taken port, a providers document that does not load)."""
PUBLISH_SETTLE_S = 3.0
"""How long a summary waits for publishes in flight: a verdict stored a moment ago is published a moment later."""
SAMPLE_CALLBACK = Path("events/providers/azure-review/job-callback.json")
OPERATOR_ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "TABLE_NAME",
    "TOPIC_ARN",
    "RAW_PAYLOAD_BUCKET",
    "POLL_QUEUE_URL",
    "PROVIDERS_FILE",
    "POLL_BASE_INTERVAL_SECONDS",
    "POLL_MAX_INTERVAL_SECONDS",
    "POLL_MIN_INTERVAL_SECONDS",
    "UNKNOWN_JOB_GRACE_SECONDS",
    "UNMODERATED_SUGGESTION",
    "PUBLISH_PASS_VERDICTS",
)
"""The environment printed for the operator commands: the stack's endpoint and the functions' settings
(``stack.function_environment``), so a command acts as the functions do, and any other function setting the
shell set (``RETENTION_DAYS``...: :func:`_operator_environment`). Without
``POLL_QUEUE_URL``, ``poll --once`` would also poll the providers whose due jobs the poll workers hold, on top of
their rate. Not the providers document's cache age: a one-shot command reads the document once."""


def _operator_environment() -> list[str]:
    """``OPERATOR_ENVIRONMENT``, and every other function setting set in the stack's environment: without
    ``RETENTION_DAYS``, say, ``poll --once`` would keep the verdicts it stores for another time than the stack's
    functions do."""
    from verdict_relay.config import Settings

    names = list(OPERATOR_ENVIRONMENT)
    for field in Settings.model_fields.values():
        name = field.alias
        if name and name in os.environ and name not in names and name != "PROVIDERS_CACHE_SECONDS":
            names.append(name)
    return names


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _print_poll_error(error: str) -> None:
    """Called from the poller's and the workers' threads: a failure is shown when it happens, not at exit."""
    sys.stderr.write(f"poller error: {error}\n")
    sys.stderr.flush()


class _Published:
    """The verdict topic's messages, printed as they arrive (from the stack's watcher thread): a line each, and
    with ``show`` (``--show-messages``) the message itself, its body and message attributes (each with its
    ``Type``: ``String.Array`` is what lets a filter policy match one of the ``categories``) as a subscriber
    gets them, as one JSON line."""

    def __init__(self, show: bool = False) -> None:
        self._messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._show = show

    def __call__(self, message: dict[str, Any]) -> None:
        verdict = message["verdict"]
        with self._lock:
            self._messages.append(message)
        kind = "republished" if is_republished(message) else "published "  # an operator's re-send, or ours
        _print(
            f"{kind} {verdict['provider']:<18} {verdict['job_id']:<28} {verdict['status']:<9} "
            f"{verdict.get('suggestion')}"
        )
        if self._show:
            attributes = message["typed_attributes"]
            _print(json.dumps({"attributes": attributes, "body": verdict}, separators=(",", ":")))

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)


def _sample_callback() -> str:
    """The sample callback's path for ``curl -d @``: absolute in a checkout, so the command works from anywhere."""
    checkout = Path(__file__).resolve().parents[3] / SAMPLE_CALLBACK
    return shlex.quote(str(checkout)) if checkout.is_file() else str(SAMPLE_CALLBACK)


def curl_examples(base: str, azure_token: str | None) -> str:
    """``curl`` commands to paste into a shell.

    With the simulator (``azure_token`` given) they concern jobs it knows as finished
    (``scenario.EXAMPLE_JOBS``), so each leads to a verdict; otherwise the callback token is a placeholder.
    """
    from verdict_relay.local.scenario import ALIBABA_EXAMPLE_JOB, AZURE_EXAMPLE_JOB, EXAMPLE_JOBS

    register = json.dumps(
        {"provider": "alibaba-mps", "job_id": ALIBABA_EXAMPLE_JOB, "metadata": {"content_id": "c-1"}}
    )
    # A placeholder a URL can hold: one with spaces or angle brackets is refused by curl before it is sent. The
    # token of a document the user gave is never printed: it is a secret.
    token = azure_token or "YOUR_CALLBACK_TOKEN"
    lines = [
        f"  curl -s '{base}/jobs' -H 'Content-Type: application/json' \\",
        f"       -d '{register}'",
        f"  curl -s '{base}/jobs/alibaba-mps/{ALIBABA_EXAMPLE_JOB}'",
        f"  curl -s '{base}/callbacks/azure-review?token={token}' -H 'Content-Type: application/json' \\",
        f"       -d @{_sample_callback()}",
        f"  curl -s '{base}/jobs/azure-review/{AZURE_EXAMPLE_JOB}'",
    ]
    if azure_token is None:
        header = "  # examples: put in your own job ids and callback token (for providers your document configures)"
        return "\n".join([header, *lines]) + "\n"
    alibaba = EXAMPLE_JOBS[("alibaba-mps", ALIBABA_EXAMPLE_JOB)]
    azure = EXAMPLE_JOBS[("azure-review", AZURE_EXAMPLE_JOB)]
    lines[2] += f"  # {alibaba} once the poller has fetched it (a few seconds)"
    lines[5] += f"  # {azure}"
    header = "  # examples: jobs the simulator knows as finished, outside the scenario"
    return "\n".join([header, *lines]) + "\n"


def _console_script() -> str:
    """The venv's ``verdict-relay``, which is on PATH only when the venv is activated."""
    script = Path(sys.executable).parent / "verdict-relay"
    return shlex.quote(str(script)) if script.exists() else "verdict-relay"


def _callback_token(providers_file: Path) -> str:
    document = json.loads(providers_file.read_text(encoding="utf-8"))
    return str(document["azure-review"]["callback"]["tokens"][0])


NO_PROVIDERS = (
    "  no providers configured: callbacks are refused and registered jobs are not polled; "
    "use --simulate or --providers FILE\n"
)


def _print_banner(stack: LocalStack, azure_token: str | None, *, no_providers: bool = False) -> None:
    """Where the stack is and how to call it. ``no_providers``: the run has neither the simulator nor a providers
    document, so every callback is refused and a registered job stays pending: examples of either would fail
    or mislead, so the banner says why instead."""
    base = stack.base_url
    _print(f"Verdict Relay local stack: {base}")
    _print(
        f"  POST {base}/callbacks/{{provider}}   POST {base}/jobs   GET {base}/jobs/{{provider}}/{{job_id}}"
    )
    _print(NO_PROVIDERS if no_providers else curl_examples(base, azure_token))
    names = _operator_environment()
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in names)
    _print(
        f"  operator commands against this stack:\n  {env} {_console_script()} jobs list --status pending\n"
        f"  or, once for a shell: export {env}\n"
        f"  (and when the stack is gone: unset {' '.join(names)})\n"
    )


def _settled_summary(scenario: Scenario, stack: LocalStack, published: _Published) -> dict[str, Any]:
    deadline = time.monotonic() + PUBLISH_SETTLE_S
    summary = scenario.summary(stack, published.snapshot())
    while not summary["ok"] and time.monotonic() < deadline:
        time.sleep(0.25)
        summary = scenario.summary(stack, published.snapshot())
    return summary


def completion_line(summary: dict[str, Any], args: argparse.Namespace) -> str:
    """What the runner says when every simulated job has its verdict."""
    if summary["ok"]:
        result = f"all {summary['jobs']} as expected"
    else:
        problems = []
        if summary["mismatches"]:
            problems.append(f"{len(summary['mismatches'])} of {summary['jobs']} not as expected")
        if summary["errors"]:
            problems.append(f"{len(summary['errors'])} simulator requests failed")
        result = ", ".join(problems) + " (details in the summary at exit)"
    if args.exit_when_done:
        return f"every simulated job has its verdict: {result}"
    until = "Ctrl-C or --duration" if args.duration is not None else "Ctrl-C"
    return f"every simulated job has its verdict: {result}; serving until {until}"


def _serve(
    args: argparse.Namespace,
    stack: LocalStack,
    scenario: Scenario | None,
    published: _Published,
    stop: threading.Event,
) -> dict[str, Any] | None:
    """Serve until stopped; the scenario's summary (None without one)."""
    started = time.monotonic()
    if scenario is not None:
        scenario.run_against(stack.base_url, stop)
    scenario_done = scenario is None
    last_view = 0.0
    while not stop.is_set():
        if args.duration is not None and time.monotonic() - started >= args.duration:
            break
        if scenario is not None and not scenario_done:
            if scenario.finished(stack):
                scenario_done = True
                summary = _settled_summary(scenario, stack, published)
                # The live line as it ends: the last one printed may be up to 5 s old.
                _print(scenario.live_view(stack, published.snapshot()))
                _print(completion_line(summary, args))
                if args.exit_when_done:
                    break
            elif time.monotonic() - last_view >= 5:
                last_view = time.monotonic()
                _print(scenario.live_view(stack, published.snapshot()))
        stop.wait(0.5)
    # However the run ends (a signal, --duration, --exit-when-done), the scenario stops driving before it is
    # judged and the stack stops: a callback it sent to a stopped stack would be a failed simulator request.
    stop.set()
    if scenario is None:
        return None
    scenario.join_driver()
    return _settled_summary(scenario, stack, published)


def _run(args: argparse.Namespace, workdir: Path, stop: threading.Event) -> int:
    scenario: Scenario | None = None
    stack: LocalStack | None = None
    azure_token = None
    try:
        if args.simulate:
            from verdict_relay.local.scenario import Scenario

            scenario = Scenario(jobs_per_provider=args.jobs).start()
            providers_file = scenario.write_providers_document(workdir / "providers.json")
            azure_token = _callback_token(providers_file)
        elif args.providers:
            # Absolute: the printed operator environment names it, and works from any directory
            providers_file = Path(os.path.abspath(args.providers))
        else:
            providers_file = workdir / "providers.json"
            providers_file.write_text("{}", encoding="utf-8")
        # The functions load the document on their first request or poll, and one they cannot load fails every
        # request (500 configuration_error) and every poll: load it now, with their loader, so the run ends
        # before it starts with the message naming the file or the key (ConfigurationError, exit 2).
        load_providers_file(str(providers_file))
        published = _Published(show=args.show_messages)
        stack = LocalStack(
            providers_file,
            port=args.port,
            poll_interval_s=args.poll_interval,
            on_published=published,
            on_poll_error=_print_poll_error,
            # The simulation's jobs the provider does not know are expected expired at their first poll
            extra_env={"UNKNOWN_JOB_GRACE_SECONDS": "0"} if args.simulate else None,
        )
        stack.start()
        if scenario is not None and stack.settings is not None:
            from verdict_relay.handlers.dependencies import verdict_policy

            scenario.policy = verdict_policy(stack.settings)
        _print_banner(stack, azure_token, no_providers=not (args.simulate or args.providers))
        summary = _serve(args, stack, scenario, published, stop)
    finally:
        stop.set()  # the scenario's driver too, when the run ends with an exception
        if scenario is not None:
            scenario.join_driver()
        if stack is not None:
            stack.stop()  # the poller stops before the simulated providers do
        if scenario is not None:
            scenario.stop()
    assert stack is not None
    poll_failures = len(stack.poll_errors)
    if poll_failures:
        # Before the summary, which stays the output's last lines (scripts read it from there).
        print(
            f"verdict-relay: the poller failed {poll_failures} time(s) during the run (the errors above)",
            file=sys.stderr,
        )
    if summary is not None:
        _print(json.dumps(summary, indent=2))
        if not summary["ok"]:
            return EXIT_WRONG_VERDICT
    return EXIT_POLLER_FAILED if poll_failures else 0


def run_local(args: argparse.Namespace) -> int:
    if args.exit_when_done and not args.simulate:
        print(
            "verdict-relay: --exit-when-done needs --simulate: only simulated jobs are waited for",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    # The functions' logger was built at import, before the stack sets its default level (warnings and up, so
    # the console's live line and published verdicts are not buried in a record per request and per cycle): it
    # takes that level now. This process is the command's: nothing else logs through it.
    logger.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", LOCAL_LOG_LEVEL))
    workdir = Path(tempfile.mkdtemp(prefix="verdict-relay-local-"))
    stop = threading.Event()
    # Set from the start, so a Ctrl-C during startup also ends in the summary and the cleanup below.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(args, workdir, stop)
    except PortInUseError as exc:
        print(f"verdict-relay: {exc}: choose another with --port (0 picks a free one)", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(workdir, ignore_errors=True)
