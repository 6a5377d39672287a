"""``verdict-relay``: the command line for operators and for trying payloads.

* ``verdict-relay normalize --provider NAME [FILE|-]`` prints the canonical verdict of a provider payload
  (a JSON array when the payload holds several jobs, e.g. an Alibaba list response). Exit 2 with a one-line
  error for a payload it cannot read.
* ``verdict-relay jobs register|show|list`` and ``verdict-relay republish`` operate on the configured table
  and topic (the same environment variables as ``poll``). They never read the providers document, so they
  work while it does not load: they are how an operator looks into such a deployment.
* ``verdict-relay openapi`` prints the OpenAPI description of the HTTP API (``docs/openapi.json``).
* ``verdict-relay schema`` prints the JSON Schema of the canonical verdict (``docs/verdict.schema.json``).
* ``verdict-relay poll --once`` runs one poll cycle against the configured table and providers (the same
  environment variables as the Lambda: TABLE_NAME, TOPIC_ARN, RAW_PAYLOAD_BUCKET, PROVIDERS_FILE or
  PROVIDERS_SECRET_ID, POLL_QUEUE_URL; AWS_ENDPOINT_URL for a local endpoint) and prints what it did. It is the
  schedule's cycle: with POLL_QUEUE_URL set it fans a backlog out, and leaves providers the workers hold to them.
  Against a deployed stack it runs beside the scheduled poller, so it warns (on stderr) that each provider's
  request rate doubles unless the schedule is disabled first, and that without POLL_QUEUE_URL it polls the
  providers the workers hold as well.

A command's stdout is its output and nothing else: nothing is counted while it runs (``counts_discarded``), so
no metric record slips in, however many verdicts it handles.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError

from verdict_relay.errors import ClientError, ConfigurationError, NotFoundError, VerdictRelayError
from verdict_relay.models.verdict import PROVIDER_NAMES, Verdict

if TYPE_CHECKING:
    from verdict_relay.handlers.dependencies import Dependencies
    from verdict_relay.models.jobs import StoredJob

EXIT_BAD_INPUT = 2
MAX_INDEX_READ = 1_000_000
"""Index entries ``jobs list`` reads at most while filtering (DynamoDB's Limit is a 32-bit integer)."""


def verdict_schema() -> dict[str, object]:
    schema = Verdict.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/verdict-relay/verdict-relay/docs/verdict.schema.json"
    return schema


def _normalize(args: argparse.Namespace) -> int:
    from verdict_relay.config import ProvidersConfig, load_providers_file
    from verdict_relay.logic.policy import VerdictPolicy
    from verdict_relay.models.verdict import Suggestion
    from verdict_relay.providers.base import load_json
    from verdict_relay.providers.registry import get_adapter

    config = load_providers_file(args.providers) if args.providers else ProvidersConfig()
    adapter = get_adapter(args.provider, config)
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    payload = load_json(args.provider, raw)
    policy = VerdictPolicy(unmoderated=Suggestion(args.unmoderated))
    # A job list's entries (Huawei image batches) are summaries, a status and times without a result: the policy
    # would make a finished one a review verdict nobody gave, so they are printed as listed.
    verdicts = [
        v if v.metadata.get("source") == "job-list" else policy.finalize(v) for v in adapter.parse(payload)
    ]
    if adapter.holds_many(payload):
        output: object = [v.model_dump(mode="json") for v in verdicts]
    else:
        output = verdicts[0].model_dump(mode="json")
    json.dump(output, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


POLL_BESIDE_SCHEDULE = (
    "against a deployed stack this cycle runs beside the scheduled poller and doubles each provider's request "
    "rate, unless the poller's schedule is disabled first (README, 'Running it locally')"
)
POLL_WITHOUT_QUEUE = (
    "POLL_QUEUE_URL is not set: this cycle also polls the providers whose jobs the poll workers hold"
)
POLL_WITHOUT_PROVIDERS = (
    "neither PROVIDERS_SECRET_ID nor PROVIDERS_FILE is set: no providers document, so no provider is polled"
    " (only owed publishes are sent)"
)


def _poll(args: argparse.Namespace) -> int:
    """Run one poll cycle, the scheduled poller's, and print what it did for each provider. Against a deployed
    stack, disable the poller's schedule first: a cycle beside it doubles each provider's request rate."""
    import time

    from verdict_relay.handlers.dependencies import dependencies
    from verdict_relay.handlers.poller import scheduled_cycle

    # Warnings, not checks: reading the schedule's state would take its name and scheduler permissions.
    if not os.environ.get("AWS_ENDPOINT_URL"):
        print(f"verdict-relay: warning: {POLL_BESIDE_SCHEDULE}", file=sys.stderr)
    if not os.environ.get("POLL_QUEUE_URL"):
        print(f"verdict-relay: warning: {POLL_WITHOUT_QUEUE}", file=sys.stderr)
    if not os.environ.get("PROVIDERS_SECRET_ID") and not os.environ.get("PROVIDERS_FILE"):
        # Each provider would only say "no API credentials", which points at the credentials, not the setting.
        print(f"verdict-relay: warning: {POLL_WITHOUT_PROVIDERS}", file=sys.stderr)
    deadline = time.monotonic() + args.budget
    result = scheduled_cycle(dependencies(), lambda: deadline - time.monotonic())
    json.dump(result["providers"], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _local(args: argparse.Namespace) -> int:
    from verdict_relay.local.runner import run_local

    return run_local(args)


def _deps() -> Dependencies:
    """The store and publisher for the job and republish commands, without the providers document: they read
    and publish stored verdicts (callback tokens are kept out of them when stored), and an operator diagnosing a
    document that does not load needs them to work."""
    from verdict_relay.config import Settings
    from verdict_relay.handlers.dependencies import build

    return build(Settings.from_env(), load_providers=False)


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _jobs_register(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from verdict_relay.models.jobs import RegisterJobRequest

    malformed = [item for item in args.meta if "=" not in item]
    if malformed:
        raise ClientError(f"--meta takes KEY=VALUE, got {malformed[0]!r}")
    metadata = dict(item.split("=", 1) for item in args.meta)
    try:
        request = RegisterJobRequest(provider=args.provider, job_id=args.job_id, metadata=metadata)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ClientError(problems) from exc
    now = datetime.now(UTC)
    created, job = _deps().store.register(request.provider, request.job_id, request.metadata, now, now)
    _print_json({"created": created, "verdict": job.public_verdict().model_dump(mode="json")})
    return 0


def _jobs_show(args: argparse.Namespace) -> int:
    deps = _deps()
    job = deps.store.get(args.provider, args.job_id)
    if job is None:
        raise NotFoundError(f"no job {args.job_id} for provider {args.provider}")
    _print_json(
        {
            "verdict": job.public_verdict().model_dump(mode="json"),
            "publish_state": job.publish_state,
            "next_poll_at": job.next_poll_at,
            "poll_attempts": job.poll_attempts,
            "conflicts": [
                c.model_dump(mode="json") for c in deps.store.conflicts(args.provider, args.job_id)
            ],
        }
    )
    return 0


def _jobs_list(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from itertools import islice

    store = _deps().store
    providers = [args.provider] if args.provider else list(PROVIDER_NAMES)
    rows = []
    for provider in providers:
        jobs: Iterable[StoredJob]
        if args.status == "unpublished":  # the index holds keys only: read each job
            jobs = (
                j for key in store.unpublished(provider, args.limit) if (j := store.get(*key)) is not None
            )
        elif args.status == "due":
            jobs = store.due_jobs(provider, datetime.now(UTC), args.limit)
        else:
            # The index holds pending and running jobs alike: read on, page by page (each Query at most 1 MB),
            # until the limit is reached after filtering.
            outstanding = store.due_jobs(provider, datetime.max.replace(tzinfo=UTC), limit=MAX_INDEX_READ)
            jobs = islice((j for j in outstanding if j.status.value == args.status), args.limit)
        for job in jobs:
            rows.append(
                {
                    "provider": job.provider,
                    "job_id": job.job_id,
                    "status": job.status.value,
                    "suggestion": job.verdict.suggestion.value
                    if job.verdict and job.verdict.suggestion
                    else None,
                    "next_poll_at": job.next_poll_at,
                    "publish_state": job.publish_state,
                }
            )
    _print_json(rows[: args.limit])
    return 0


def _republish(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    ingest = _deps().ingest
    now = datetime.now(UTC)
    if args.job:
        results = {}
        for ref in args.job:
            provider, _, job_id = ref.partition("/")
            if provider not in PROVIDER_NAMES or not job_id:
                raise NotFoundError(f"--job takes PROVIDER/JOB_ID, got '{ref}'")
            results[ref] = ingest.republish(provider, job_id, now, force=args.force)
        _print_json({"republished": results})
        return 0 if all(outcome == "published" for outcome in results.values()) else 1
    providers = [args.provider] if args.provider else list(PROVIDER_NAMES)
    _print_json(
        {
            "published_owed": {
                p: ingest.publish_owed(p, lambda: datetime.now(UTC), limit=args.limit) for p in providers
            }
        }
    )
    return 0


def _openapi(_: argparse.Namespace) -> int:
    from verdict_relay.handlers.callback import openapi_document

    sys.stdout.write(openapi_document() + "\n")
    return 0


def _schema(_: argparse.Namespace) -> int:
    json.dump(verdict_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verdict-relay", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    normalize = commands.add_parser(
        "normalize", help="print the canonical verdict of a provider payload", description=_normalize.__doc__
    )
    normalize.add_argument("--provider", required=True, choices=PROVIDER_NAMES)
    normalize.add_argument(
        "file", nargs="?", default="-", help="payload file, or - for standard input (default)"
    )
    normalize.add_argument("--providers", metavar="FILE", help="providers document (for the Azure policy)")
    normalize.add_argument(
        "--unmoderated", choices=("review", "block"), default="review", help="verdict for failed jobs"
    )
    normalize.set_defaults(run=_normalize)

    poll = commands.add_parser(
        "poll", help="poll the providers for outstanding jobs", description=_poll.__doc__ or "one poll cycle"
    )
    poll.add_argument("--once", action="store_true", required=True, help="run one cycle and exit")
    poll.add_argument("--budget", type=float, default=60.0, help="seconds the cycle may take (default 60)")
    poll.set_defaults(run=_poll)

    local = commands.add_parser(
        "local",
        help="run the whole system locally: embedded AWS endpoint, HTTP API, poller",
        description="Run Verdict Relay in one process with no Docker and no AWS account.",
    )
    local.add_argument(
        "--port", type=int, default=3000, help="HTTP API port on 127.0.0.1 (default 3000; 0 = any)"
    )
    local.add_argument("--poll-interval", type=float, default=5.0, metavar="SECONDS", help="poller schedule")
    local.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
    )
    source = local.add_mutually_exclusive_group()
    source.add_argument("--simulate", action="store_true", help="simulated providers creating jobs over time")
    source.add_argument(
        "--providers", metavar="FILE", help="providers document with real endpoints and credentials"
    )
    local.add_argument("--jobs", type=int, default=5, help="with --simulate: jobs per provider (default 5)")
    local.add_argument(
        "--exit-when-done",
        action="store_true",
        help="with --simulate: exit once every simulated job has its verdict (default: keep serving)",
    )
    local.set_defaults(run=_local)

    schema = commands.add_parser("schema", help="print the JSON Schema of the canonical verdict")
    schema.set_defaults(run=_schema)

    openapi = commands.add_parser("openapi", help="print the OpenAPI description of the HTTP API")
    openapi.set_defaults(run=_openapi)

    jobs = commands.add_parser(
        "jobs",
        help="register, show and list jobs in the table",
        description="Operate on the jobs table named by TABLE_NAME (AWS, or the local stack via AWS_ENDPOINT_URL).",
    )
    job_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    register = job_commands.add_parser("register", help="start following a job (as POST /jobs)")
    register.add_argument("--provider", required=True, choices=PROVIDER_NAMES)
    register.add_argument("--job-id", required=True)
    register.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="caller metadata")
    register.set_defaults(run=_jobs_register)
    show = job_commands.add_parser("show", help="a job's verdict, publish state, poll schedule and conflicts")
    show.add_argument("--provider", required=True, choices=PROVIDER_NAMES)
    show.add_argument("--job-id", required=True)
    show.set_defaults(run=_jobs_show)
    listing = job_commands.add_parser(
        "list",
        help="jobs by state, from the sparse indexes (no table scan)",
        description=(
            "pending / running: unfinished jobs; due: unfinished jobs whose next poll is due now; "
            "unpublished: finished verdicts whose publish is owed. Finished jobs are not indexed: read one "
            "with 'jobs show'."
        ),
    )
    listing.add_argument("--status", required=True, choices=("pending", "running", "due", "unpublished"))
    listing.add_argument("--provider", choices=PROVIDER_NAMES)
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(run=_jobs_list)

    republish = commands.add_parser(
        "republish",
        help="publish owed verdicts now, or send chosen ones again",
        description="Without --job: publish every verdict whose publish is owed (what the poller's sweep does). "
        "With --job PROVIDER/JOB_ID: send that finished job's verdict to the topic again; one whose publish is owed "
        "is sent only if no other writer is sending it right now ('in_flight' otherwise), and a verdict the "
        "policy does not publish only with --force.",
    )
    republish.add_argument("--provider", choices=PROVIDER_NAMES, help="only this provider's owed verdicts")
    republish.add_argument(
        "--job", action="append", metavar="PROVIDER/JOB_ID", help="a verdict to send again"
    )
    republish.add_argument(
        "--force",
        action="store_true",
        help="with --job: also send verdicts the policy does not publish (pass)",
    )
    republish.add_argument("--limit", type=int, default=1000)
    republish.set_defaults(run=_republish)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from verdict_relay.observability import counts_discarded

    args = build_parser().parse_args(argv)
    try:
        with counts_discarded():  # stdout is the command's output: no EMF record may slip into it
            code: int = args.run(args)
    except (VerdictRelayError, ConfigurationError) as exc:
        print(f"verdict-relay: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BotoCoreError as exc:  # no region, no credentials: before any request could be made
        print(f"verdict-relay: AWS: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader went away (| head): say nothing more, and keep the exit flush from failing too.
        with contextlib.suppress(OSError):  # stdout without a file descriptor (captured) needs nothing
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"verdict-relay: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code


if __name__ == "__main__":
    sys.exit(main())
