"""``verdict-relay``: the command line for operators and for trying payloads.

* ``verdict-relay normalize --provider NAME [FILE|-]`` prints the canonical verdict of a provider payload
  (a JSON array when the payload holds several jobs, e.g. an Alibaba list response). Exit 2 with a one-line
  error for a payload it cannot read.
* ``verdict-relay openapi`` prints the OpenAPI description of the HTTP API (``docs/openapi.json``).
* ``verdict-relay schema`` prints the JSON Schema of the canonical verdict (``docs/verdict.schema.json``).
* ``verdict-relay poll --once`` runs one poll cycle against the configured table and providers (the same
  environment variables as the Lambda: TABLE_NAME, TOPIC_ARN, RAW_PAYLOAD_BUCKET, PROVIDERS_FILE or
  PROVIDERS_SECRET_ID; AWS_ENDPOINT_URL for a local endpoint) and prints what it did.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from verdict_relay.errors import ConfigurationError, VerdictRelayError
from verdict_relay.models.verdict import PROVIDER_NAMES, Verdict

EXIT_BAD_INPUT = 2


def verdict_schema() -> dict[str, object]:
    schema = Verdict.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/verdict-relay/verdict-relay/docs/verdict.schema.json"
    return schema


def _normalize(args: argparse.Namespace) -> int:
    from verdict_relay.config import ProvidersConfig, _load_file
    from verdict_relay.logic.policy import VerdictPolicy
    from verdict_relay.models.verdict import Suggestion
    from verdict_relay.providers.base import load_json
    from verdict_relay.providers.registry import get_adapter

    config = _load_file(args.providers) if args.providers else ProvidersConfig()
    adapter = get_adapter(args.provider, config)
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    payload = load_json(args.provider, raw)
    policy = VerdictPolicy(unmoderated=Suggestion(args.unmoderated))
    verdicts = [policy.finalize(v) for v in adapter.parse(payload)]
    if adapter.holds_many(payload):
        output: object = [v.model_dump(mode="json") for v in verdicts]
    else:
        output = verdicts[0].model_dump(mode="json")
    json.dump(output, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _poll(args: argparse.Namespace) -> int:
    import time

    from verdict_relay.handlers.dependencies import dependencies

    deadline = time.monotonic() + args.budget
    report = dependencies().poller().run_cycle(lambda: deadline - time.monotonic())
    json.dump({name: vars(r) for name, r in report.providers.items()}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _local(args: argparse.Namespace) -> int:
    from verdict_relay.local.runner import run_local

    return run_local(args)


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
    local.set_defaults(run=_local)

    schema = commands.add_parser("schema", help="print the JSON Schema of the canonical verdict")
    schema.set_defaults(run=_schema)

    openapi = commands.add_parser("openapi", help="print the OpenAPI description of the HTTP API")
    openapi.set_defaults(run=_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (VerdictRelayError, ConfigurationError) as exc:
        print(f"verdict-relay: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"verdict-relay: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code


if __name__ == "__main__":
    sys.exit(main())
