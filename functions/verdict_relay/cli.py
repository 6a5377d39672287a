"""``verdict-relay``: the command line for operators and for trying payloads.

* ``verdict-relay normalize --provider NAME [FILE|-]`` prints the canonical verdict of a provider payload
  (a JSON array when the payload holds several jobs, e.g. an Alibaba list response). Exit 2 with a one-line
  error for a payload it cannot read.
* ``verdict-relay jobs register|show|list|expire`` and ``verdict-relay republish`` operate on the configured table
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

Exit status: 0 when nothing failed; 1 (``EXIT_FAILED``) when a storage step (DynamoDB, S3) or a publish (SNS)
failed, whether the command stopped there or, like the poll cycle and the owed-publish sweep it shares with the
functions, logged it and went on (``_Watch`` notes each one; stderr names them); 2 (``EXIT_BAD_INPUT``) when
nothing was done: bad input, an unknown job, a configuration that does not load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from botocore.exceptions import BotoCoreError, NoCredentialsError, NoRegionError

from verdict_relay.errors import (
    ArchiveError,
    ClientError,
    ConfigurationError,
    NotFoundError,
    PayloadError,
    PublishError,
    StorageError,
    VerdictRelayError,
)
from verdict_relay.models.verdict import PROVIDER_NAMES, Verdict

if TYPE_CHECKING:
    from verdict_relay.dal.store import JobStore
    from verdict_relay.handlers.dependencies import Dependencies
    from verdict_relay.logic.ingest import PublisherPort
    from verdict_relay.models.jobs import RecordResult, StoredJob
    from verdict_relay.providers.base import ProviderAdapter

EXIT_FAILED = 1
"""A storage step (DynamoDB, S3) or a publish (SNS) failed, whether the command stopped there or went on; or
``republish --job`` could not send every verdict it was given. What failed is on stderr (and in the JSON of
``republish``)."""
EXIT_BAD_INPUT = 2
"""Nothing was done: bad arguments or input, an unknown job, or a configuration that does not load (settings,
the providers document for ``poll``, AWS region or endpoint). One line on stderr says what."""
MAX_INDEX_READ = 1_000_000
"""Index entries ``jobs list`` reads at most while filtering, and ``republish`` while counting what is still owed
(DynamoDB's Limit is a 32-bit integer)."""


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
    try:
        parsed = adapter.parse(payload)
    except PayloadError as exc:
        # A payload of another provider's given to this one reads as a broken one of this provider's: say whose
        # it reads as, where another adapter reads a verdict from it and the field named is missing from it (a
        # field there with a bad value makes it this provider's payload, broken).
        readers = [
            name for name in PROVIDER_NAMES if name != args.provider and _reads(get_adapter(name), payload)
        ]
        if readers and not _present(payload, exc.field):
            raise PayloadError(
                exc.provider, exc.field, f"{exc.problem} (it reads as a payload of {' or '.join(readers)})"
            ) from exc
        raise
    # A job list's entries (Huawei image batches) are summaries, a status and times without a result: the policy
    # would make a finished one a review verdict nobody gave, so they are printed as listed.
    verdicts = [v if v.metadata.get("source") == "job-list" else policy.finalize(v) for v in parsed]
    if adapter.holds_many(payload):
        output: object = [v.model_dump(mode="json") for v in verdicts]
    else:
        output = verdicts[0].model_dump(mode="json")
    json.dump(output, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _reads(adapter: ProviderAdapter, payload: object) -> bool:
    try:
        return bool(adapter.parse(payload))
    except VerdictRelayError:
        return False


def _present(payload: object, field: str) -> bool:
    """The field an error names is in the payload (its value is wrong): the payload is this provider's, broken."""
    if field == "(root)":
        return False
    node = payload
    for part in field.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


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

    from verdict_relay.handlers.poller import scheduled_cycle

    deps = _deps(args, load_providers=True)  # settings and document refused before anything is warned of
    # Warnings, not checks: reading the schedule's state would take its name and scheduler permissions.
    if not os.environ.get("AWS_ENDPOINT_URL"):
        print(f"verdict-relay: warning: {POLL_BESIDE_SCHEDULE}", file=sys.stderr)
    if not os.environ.get("POLL_QUEUE_URL"):
        print(f"verdict-relay: warning: {POLL_WITHOUT_QUEUE}", file=sys.stderr)
    if not os.environ.get("PROVIDERS_SECRET_ID") and not os.environ.get("PROVIDERS_FILE"):
        # Each provider would only say "no API credentials", which points at the credentials, not the setting.
        print(f"verdict-relay: warning: {POLL_WITHOUT_PROVIDERS}", file=sys.stderr)
    if "UNMODERATED_SUGGESTION" not in os.environ:
        print(f"verdict-relay: warning: {POLL_WITHOUT_SUGGESTION}", file=sys.stderr)
    if "PUBLISH_PASS_VERDICTS" not in os.environ:
        print(f"verdict-relay: warning: {POLL_WITHOUT_PUBLISH_SETTING}", file=sys.stderr)
    deadline = time.monotonic() + args.budget
    # A storage step or publish that failed during the cycle is logged and got past, as in the function; the
    # command's watch makes it exit 1 all the same (main), naming it on stderr.
    result = scheduled_cycle(deps, lambda: deadline - time.monotonic())
    json.dump(result["providers"], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _local(args: argparse.Namespace) -> int:
    from verdict_relay.local.runner import run_local

    return run_local(args)


T = TypeVar("T")


class _Watch:
    """What failed while a command ran, and the publish claims it took.

    The code the commands share with the functions logs a failed storage step or publish and goes on (the poll
    cycle, the owed-publish sweep): in a function the failure is counted and alarmed on; in a command, its exit
    status and output have to say it. The publish claims the command took (a verdict it finished, an owed one
    it claimed) on verdicts it did not send (SNS refused them, or was out of reach) are given back when it ends
    (``give_back_claims``): a function keeps its claim until it runs out, but an operator may try again at once,
    and ``republish --job`` would then answer ``in_flight`` over the command's own failed attempt.
    """

    def __init__(self) -> None:
        self._storage_failed: list[str] = []
        self._unconfirmed: dict[str, str] = {}
        self.publish_failed: dict[str, str] = {}
        self.sent: set[str] = set()
        self._claims: dict[str, str] = {}
        self._store: JobStore | None = None
        self._lock = threading.Lock()  # the poll cycle runs the providers side by side

    @property
    def storage_failed(self) -> list[str]:
        """Each storage step that failed, once: a publish confirmation only when its last attempt failed too."""
        with self._lock:
            unconfirmed = [
                m for m in dict.fromkeys(self._unconfirmed.values()) if m not in self._storage_failed
            ]
            return self._storage_failed + unconfirmed

    @property
    def failed(self) -> bool:
        return bool(self.storage_failed or self.publish_failed)

    def store(self, store: JobStore) -> JobStore:
        self._store = store
        return cast("JobStore", _WatchedStore(store, self))

    def publisher(self, publisher: PublisherPort) -> PublisherPort:
        return _WatchedPublisher(publisher, self)

    def storage_failure(self, message: str) -> None:
        with self._lock:
            if message not in self._storage_failed:
                self._storage_failed.append(message)

    def confirmation(self, provider: str, job_id: str, failure: str | None) -> None:
        """A publish confirmation's attempt: failed (``failure``) or landed. The shared code tries a throttled one
        again (``IngestService._confirm``): only one whose last attempt failed is a failure of the command, which
        leaves that verdict to be sent again by the sweep."""
        with self._lock:
            if failure is None:
                self._unconfirmed.pop(f"{provider}/{job_id}", None)
            else:
                self._unconfirmed[f"{provider}/{job_id}"] = failure

    def claimed(self, job: StoredJob) -> None:
        if job.publish_claimed_until is not None:
            with self._lock:
                self._claims[f"{job.provider}/{job.job_id}"] = job.publish_claimed_until

    def published(self, verdict: Verdict) -> None:
        ref = f"{verdict.provider}/{verdict.job_id}"
        with self._lock:
            self.sent.add(ref)
            self.publish_failed.pop(ref, None)

    def publish_failure(self, verdict: Verdict, exc: PublishError) -> None:
        with self._lock:
            self.publish_failed[f"{verdict.provider}/{verdict.job_id}"] = exc.message

    def give_back_claims(self) -> None:
        """Release the publish claims this command took on verdicts it did not send; each release only lands
        while the claim is still this command's (``JobStore.release_publish``)."""
        if self._store is None:
            return
        now = datetime.now(UTC)
        for ref, claim in list(self._claims.items()):
            if ref in self.sent:
                continue
            provider, _, job_id = ref.partition("/")  # provider names hold no '/'
            try:
                self._store.release_publish(provider, job_id, claim, now)
            except StorageError as exc:  # the claim runs out by itself all the same
                self.storage_failure(exc.message)
        self._claims.clear()

    def summary(self) -> list[str]:
        """What failed, for stderr: each storage failure once, the failed publishes in one line."""
        lines = [f"storage failed: {message}" for message in self.storage_failed]
        if self.publish_failed:
            count = len(self.publish_failed)
            first = next(iter(self.publish_failed.values()))
            lines.append(
                f"{count} {'publish' if count == 1 else 'publishes'} failed: {first}"
                + (" (and more)" if count > 1 else "")
            )
        return lines


class _WatchedStore:
    """A ``JobStore`` that tells its watch of every storage step that failed and of each publish claim taken."""

    def __init__(self, store: JobStore, watch: _Watch) -> None:
        self._store = store
        self._watch = watch

    def record(self, *args: Any, **kwargs: Any) -> RecordResult:
        result: RecordResult = self._watched(self._store.record)(*args, **kwargs)
        if result.publish and result.job is not None:  # the write that finished the job claims its publish
            self._watch.claimed(result.job)
        return result

    def mark_published(self, provider: str, job_id: str, now: datetime) -> bool:
        try:
            confirmed: bool = self._store.mark_published(provider, job_id, now)
        except Exception as exc:  # an answer the SDK could not read too: the shared code gets past any
            failure = (
                exc.message
                if isinstance(exc, StorageError)
                else f"job store: mark published failed ({exc!r})"
            )
            self._watch.confirmation(provider, job_id, failure)
            raise
        self._watch.confirmation(provider, job_id, None)
        return confirmed

    def claim_publish(self, provider: str, job_id: str, now: datetime, **options: bool) -> StoredJob | None:
        job: StoredJob | None = self._watched(self._store.claim_publish)(provider, job_id, now, **options)
        if job is not None:
            self._watch.claimed(job)
        return job

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        return self._watched(attribute) if callable(attribute) else attribute

    def _watched(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._failures_noted():
                result = method(*args, **kwargs)
            # The index reads are generators: they fail while read, after the call has returned.
            return self._read(result) if isinstance(result, Iterator) else result

        return call

    def _read(self, items: Iterator[T]) -> Iterator[T]:
        with self._failures_noted():
            yield from items

    @contextlib.contextmanager
    def _failures_noted(self) -> Iterator[None]:
        try:
            yield
        except StorageError as exc:
            self._watch.storage_failure(exc.message)
            raise
        except ValueError as exc:  # an item the code cannot load (the owed-publish sweep gets past it)
            self._watch.storage_failure(f"job store: an item could not be read ({type(exc).__name__})")
            raise


class _WatchedPublisher:
    """A publisher that tells its watch of each verdict sent and each publish that failed."""

    def __init__(self, publisher: PublisherPort, watch: _Watch) -> None:
        self._publisher = publisher
        self._watch = watch

    def publish(self, verdict: Verdict, *, republished: bool = False) -> str:
        try:
            message_id = self._publisher.publish(verdict, republished=republished)
        except PublishError as exc:
            self._watch.publish_failure(verdict, exc)
            raise
        self._watch.published(verdict)
        return message_id


POLL_WITHOUT_SUGGESTION = (
    "UNMODERATED_SUGGESTION is not set: a job this cycle expires is published with the default, review, for good;"
    " set the stack's (its UnmoderatedSuggestion parameter) if it is block"
)
POLL_WITHOUT_PUBLISH_SETTING = (
    "PUBLISH_PASS_VERDICTS is not set: a pass verdict this cycle stores is not published, for good; set the"
    " stack's (its PublishPassVerdicts parameter) if it is true"
)
SETTINGS_HINT = (
    "the operator commands read the functions' settings from the environment: against a deployed stack, its "
    "outputs JobsTableName, VerdictTopicArn and RawPayloadBucketName are TABLE_NAME, TOPIC_ARN and "
    "RAW_PAYLOAD_BUCKET; against the local stack, put the assignments it prints in front of the command"
)
REGION_HINT = "set AWS_REGION to the stack's region"
CREDENTIALS_HINT = (
    "no AWS credentials found: configure them as for the AWS CLI (AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY)"
)


def _aws_hint(exc: BaseException | None) -> str:
    """What to do about an AWS client error that is the operator's environment, or nothing."""
    if isinstance(exc, NoRegionError):
        return f" ({REGION_HINT})"
    if isinstance(exc, NoCredentialsError):
        return f" ({CREDENTIALS_HINT})"
    return ""


def _deps(args: argparse.Namespace, *, load_providers: bool = False) -> Dependencies:
    """The store and publisher of the configured table and topic, watched by the command's ``_Watch``.

    Without the providers document unless asked for (``poll``): the job and republish commands read and publish
    stored verdicts (callback tokens are kept out of them when stored), and an operator diagnosing a document
    that does not load needs them to work."""
    import boto3

    from verdict_relay.config import Settings
    from verdict_relay.handlers import dependencies as wiring

    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc.message} ({SETTINGS_HINT})") from exc
    session = boto3.session.Session()
    watch: _Watch = args.watch
    return wiring.build(
        settings,
        session,
        load_providers=load_providers,
        store=watch.store(wiring.new_store(settings, session)),
        publisher=watch.publisher(wiring.new_publisher(settings, session)),
    )


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _jobs_register(args: argparse.Namespace) -> int:
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
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        )
        raise ClientError(problems) from exc
    now = datetime.now(UTC)
    created, job = _deps(args).store.register(request.provider, request.job_id, request.metadata, now, now)
    _print_json({"created": created, "verdict": job.public_verdict().model_dump(mode="json")})
    return 0


UNREADABLE_HINT = (
    "if its archived verdict is gone for good, the verdict was never published (its publish is owed): delete the"
    " job's item from the table and 'jobs register' it again, and the poller fetches its result afresh while the"
    " provider still keeps the job"
)


def _jobs_show(args: argparse.Namespace) -> int:
    from verdict_relay.dal.store import UNREADABLE

    deps = _deps(args)
    unreadable: Exception | None = None
    try:
        job = deps.store.get(args.provider, args.job_id)
    except UNREADABLE as exc:
        # What the item says of the job still reads: its status and publish state are what the on-call needs.
        unreadable = exc
        job = deps.store.get(args.provider, args.job_id, with_verdict=False)
    if job is None:
        raise NotFoundError(f"no job {args.job_id} for provider {args.provider}")
    shown: dict[str, Any] = {
        "verdict": job.public_verdict().model_dump(mode="json"),
        "publish_state": job.publish_state,
        "next_poll_at": job.next_poll_at,
        "poll_attempts": job.poll_attempts,
    }
    try:
        shown["conflicts"] = [
            c.model_dump(mode="json") for c in deps.store.conflicts(args.provider, args.job_id)
        ]
    except UNREADABLE as exc:  # a conflict record's archived copy gone: the job itself is still shown
        shown["conflicts"], shown["conflicts_unreadable"] = None, str(exc)
    if unreadable is not None:
        shown["verdict_unreadable"] = str(unreadable)
    _print_json(shown)
    if unreadable is not None:
        _say_unreadable(job, unreadable)
    if "conflicts_unreadable" in shown:
        print(
            f"verdict-relay: the other results recorded for {args.job_id} cannot be read"
            f" ({shown['conflicts_unreadable']})",
            file=sys.stderr,
        )
    return 0 if unreadable is None and "conflicts_unreadable" not in shown else EXIT_FAILED


def _say_unreadable(job: StoredJob, problem: Exception) -> None:
    # The way out holds only for a verdict whose publish is owed (one already published would be sent again),
    # and only for one that is gone: S3 failing otherwise (throttled, out of reach) may answer a moment later.
    if isinstance(problem, ArchiveError) and problem.may_answer_again:
        hint = "; S3 may answer again: try again"
    else:
        hint = f"; {UNREADABLE_HINT}" if job.publish_state == "pending" else ""
    print(f"verdict-relay: the verdict of {job.job_id} cannot be read ({problem}){hint}", file=sys.stderr)


def _jobs_expire(args: argparse.Namespace) -> int:
    """Finish an unfinished job as ``expired`` (published with ``UNMODERATED_SUGGESTION``): the way out for a job
    nothing will finish, counted ``JobOverdue`` at every poll or cycle (a provider that keeps it running for good,
    a callback that never came where nothing can poll)."""
    from verdict_relay.models.jobs import Transition

    if "UNMODERATED_SUGGESTION" not in os.environ:
        # The default would publish 'review' for good where the stack publishes 'block'.
        raise ClientError(
            "jobs expire publishes the expired verdict with UNMODERATED_SUGGESTION, which is not set: set it to"
            " the stack's (its UnmoderatedSuggestion parameter, review or block), as its functions have it"
        )
    deps = _deps(args)
    # Its status is what decides, read even when its verdict cannot be (an unfinished job's findings so far).
    job = deps.store.get(args.provider, args.job_id, with_verdict=False)
    if job is None:
        raise NotFoundError(f"no job {args.job_id} for provider {args.provider}")
    if job.status.is_terminal:
        raise ClientError(f"job {args.job_id} is already finished ({job.status.value}): nothing to expire")
    # A job only a callback's notice named (any Alibaba account can have MNS sign one naming any id) is deleted,
    # never made a published verdict, as the poller does when the provider denies it (JobStore.drop_unconfirmed).
    # Any other is confirmed for good: nothing deletes it between this and the expiry.
    dropped, _ = deps.store.drop_unconfirmed(args.provider, args.job_id)
    if dropped == "absent":
        raise NotFoundError(f"no job {args.job_id} for provider {args.provider} (deleted meanwhile)")
    if dropped == "deleted":
        _print_json({"deleted": True, "published": False, "verdict": None})
        print(
            f"verdict-relay: job {args.job_id} was only named by a callback's notice, never confirmed: deleted,"
            " nothing published",
            file=sys.stderr,
        )
        return 0
    result = deps.ingest.expire(
        args.provider, args.job_id, datetime.now(UTC), f"expired by an operator: {args.reason}"
    )
    stored = deps.store.get(args.provider, args.job_id)
    _print_json(
        {
            "transition": result.transition.value,
            "published": result.published,
            "verdict": stored.public_verdict().model_dump(mode="json") if stored else None,
        }
    )
    if (
        result.transition is Transition.CREATED
    ):  # deleted after it was read (not by anything this version does)
        print(
            f"verdict-relay: job {args.job_id} was deleted meanwhile; its expired verdict was stored afresh",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if result.transition is not Transition.ADVANCED:
        # It finished meanwhile (a callback, a poll): that verdict stands, and this one is a conflict record.
        print(f"verdict-relay: job {args.job_id} finished meanwhile: its own verdict stands", file=sys.stderr)
        return EXIT_FAILED
    if result.publish_failed:
        print(
            f"verdict-relay: the expired verdict of {args.job_id} is stored but its publish failed: it is owed, and"
            " the poller's sweep (or 'republish') sends it",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def _jobs_list(args: argparse.Namespace) -> int:
    from itertools import islice

    store = _deps(args).store
    providers = [args.provider] if args.provider else list(PROVIDER_NAMES)
    rows: list[dict[str, Any]] = []
    for provider in providers:
        jobs: Iterable[tuple[StoredJob, str | None]]
        if args.status == "unpublished":  # the index holds keys only: read each job
            jobs = _owed_jobs(store, provider, args.limit)
        elif args.status == "due":
            due = store.due_jobs(provider, datetime.now(UTC), args.limit, with_verdict=False)
            jobs = ((job, None) for job in due)
        else:
            # Unfinished jobs, whose verdicts (their findings so far, without a suggestion) are left unread.
            # The index holds pending and running jobs alike: read on, page by page (each Query at most 1 MB),
            # until the limit is reached after filtering.
            outstanding = store.due_jobs(
                provider, datetime.max.replace(tzinfo=UTC), limit=MAX_INDEX_READ, with_verdict=False
            )
            jobs = islice(((j, None) for j in outstanding if j.status.value == args.status), args.limit)
        for job, unreadable in jobs:
            row = {
                "provider": job.provider,
                "job_id": job.job_id,
                "status": job.status.value,
                "suggestion": job.verdict.suggestion.value
                if job.verdict and job.verdict.suggestion
                else None,
                "next_poll_at": job.next_poll_at,
                "publish_state": job.publish_state,
            }
            rows.append(row if unreadable is None else {**row, "verdict_unreadable": unreadable})
    _print_json(rows[: args.limit])
    if any("verdict_unreadable" in row for row in rows[: args.limit]):
        print(
            f"verdict-relay: some verdicts cannot be read (verdict_unreadable); {UNREADABLE_HINT}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def _owed_jobs(store: JobStore, provider: str, limit: int) -> Iterator[tuple[StoredJob, str | None]]:
    """The jobs whose publish is owed, each with why its verdict cannot be read (None when it can): one that
    cannot (``OwedPublishUnreadableAlarm``) is listed with what its item says, and does not hide the others."""
    from verdict_relay.dal.store import UNREADABLE

    for key in store.unpublished(provider, limit):
        try:
            job, problem = store.get(*key), None
        except UNREADABLE as exc:
            job, problem = store.get(*key, with_verdict=False), str(exc)
        if job is not None:
            yield job, problem


def _republish(args: argparse.Namespace) -> int:
    from verdict_relay.dal.store import UNREADABLE

    watch: _Watch = args.watch
    if args.force and not args.job:
        raise ClientError(
            "--force needs --job: it sends a chosen verdict the policy does not publish (pass); owed verdicts"
            " are sent without it"
        )
    refs = []
    for ref in args.job or ():
        provider, _, job_id = ref.partition("/")
        if not job_id:
            raise NotFoundError(f"--job takes PROVIDER/JOB_ID, got '{ref}'")
        if provider not in PROVIDER_NAMES:
            raise NotFoundError(
                f"--job {ref}: unknown provider '{provider}'; expected one of {', '.join(PROVIDER_NAMES)}"
            )
        refs.append((ref, provider, job_id))
    deps = _deps(args)
    if refs:
        results = {}
        unreadable: list[tuple[str, str, Exception]] = []
        for ref, provider, job_id in refs:
            try:
                # Each job at its own time: a claim dated from the command's start could have run out (and let
                # the sweep send the verdict too) by the time it is written.
                results[ref] = deps.ingest.republish(provider, job_id, datetime.now(UTC), force=args.force)
            except UNREADABLE as exc:  # a claim taken is given back (claim_publish); the others are tried
                results[ref] = "verdict_unreadable"
                unreadable.append((provider, job_id, exc))
            except StorageError:  # the table failing, noted by the watch; the others are still tried
                results[ref] = "storage_failed"
        # A storage step that failed around a send that went out (its confirmation) is named on stderr (main).
        _print_json({"republished": results})
        for provider, job_id, problem in unreadable:
            job = deps.store.get(provider, job_id, with_verdict=False)
            if job is not None:
                _say_unreadable(job, problem)
        sent = all(outcome == "published" for outcome in results.values())
        return 0 if sent and not watch.failed else EXIT_FAILED
    providers = [args.provider] if args.provider else list(PROVIDER_NAMES)
    published: dict[str, int] = {}
    for provider in providers:
        # --limit is the whole command's: each provider's sweep sends at most what the ones before it left
        remaining = args.limit - sum(published.values())
        if remaining <= 0:
            published[provider] = 0
            continue
        try:
            published[provider] = deps.ingest.publish_owed(
                provider, lambda: datetime.now(UTC), limit=remaining
            )
        except StorageError:  # noted by the watch; the other providers are still swept
            published[provider] = sum(1 for ref in watch.sent if ref.startswith(f"{provider}/"))
    still_owed: dict[str, int] = {}
    for provider in providers:
        with contextlib.suppress(StorageError):  # noted by the watch
            # All that are owed, not only the first --limit: what is left to send (the index's keys, which read
            # cheaply). Read from the index, which may list a verdict this command sent moments ago for a moment
            # longer.
            owed = deps.store.unpublished(provider, MAX_INDEX_READ)
            still_owed[provider] = sum(1 for key in owed if f"{key.provider}/{key.job_id}" not in watch.sent)
    _print_json(
        {
            "published_owed": published,
            "still_owed": still_owed,
            "publish_failed": sorted(watch.publish_failed),
            "storage_failed": watch.storage_failed,
        }
    )
    return EXIT_FAILED if watch.failed else 0


def _openapi(_: argparse.Namespace) -> int:
    from verdict_relay.handlers.callback import openapi_document

    sys.stdout.write(openapi_document() + "\n")
    return 0


def _schema(_: argparse.Namespace) -> int:
    json.dump(verdict_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _number_type(
    convert: Callable[[str], T], accept: Callable[[T], bool], kind: str, wanted: str
) -> Callable[[str], T]:
    """An argparse type: ``convert`` of the argument (else "not {kind}"), which ``accept`` must take (else "must
    be {wanted}")."""

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text.strip()}")
        return value

    return parse


_positive_int = _number_type(int, lambda value: value >= 1, "an integer", "at least 1")
_port = _number_type(int, lambda value: 0 <= value <= 65535, "an integer", "a port from 0 to 65535")
_positive_seconds = _number_type(
    float,
    lambda value: 0 < value < math.inf,  # not nan or infinity, before which every deadline would pass for met
    "a number",
    "a number of seconds above 0",
)


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
    poll.add_argument(
        "--budget", type=_positive_seconds, default=60.0, help="seconds the cycle may take (default 60)"
    )
    poll.set_defaults(run=_poll)

    local = commands.add_parser(
        "local",
        help="run the whole system locally: embedded AWS endpoint, HTTP API, poller",
        description="Run Verdict Relay in one process with no Docker and no AWS account.",
    )
    local.add_argument(
        "--port", type=_port, default=3000, help="HTTP API port on 127.0.0.1 (default 3000; 0 = any)"
    )
    local.add_argument(
        "--poll-interval",
        type=_positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="poller schedule (default: 5)",
    )
    local.add_argument(
        "--duration", type=_positive_seconds, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
    )
    source = local.add_mutually_exclusive_group()
    source.add_argument("--simulate", action="store_true", help="simulated providers creating jobs over time")
    source.add_argument(
        "--providers", metavar="FILE", help="providers document with real endpoints and credentials"
    )
    local.add_argument(
        "--jobs", type=_positive_int, default=5, help="with --simulate: jobs per provider (default 5)"
    )
    local.add_argument(
        "--exit-when-done",
        action="store_true",
        help="with --simulate: exit once every simulated job has its verdict (default: keep serving)",
    )
    local.add_argument(
        "--show-messages",
        action="store_true",
        help="print each message published as a subscriber gets it: its body and message attributes (one JSON line)",
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
    expire = job_commands.add_parser(
        "expire",
        help="finish an unfinished job as expired, published with UNMODERATED_SUGGESTION",
        description="For a job nothing will finish (JobOverdue: a provider that keeps it running, a callback that "
        "never came where nothing polls): stores it as expired with the reason given, published by policy as any "
        "expired job. Exit 2 for a job not stored or already finished; 1 when it finished meanwhile (its verdict "
        "stands) or its publish failed (it stays owed, for the sweep or 'republish').",
    )
    expire.add_argument("--provider", required=True, choices=PROVIDER_NAMES)
    expire.add_argument("--job-id", required=True)
    expire.add_argument("--reason", default="gave up waiting", help="kept in the verdict's error message")
    expire.set_defaults(run=_jobs_expire)
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
    listing.add_argument("--limit", type=_positive_int, default=100)
    listing.set_defaults(run=_jobs_list)

    republish = commands.add_parser(
        "republish",
        help="publish owed verdicts now, or send chosen ones again",
        description="Without --job: publish every verdict whose publish is owed (what the poller's sweep does), "
        "and print how many went out, how many are still owed and which failed. "
        "With --job PROVIDER/JOB_ID: send that finished job's verdict to the topic again; one whose publish is owed "
        "is sent only if no other writer holds its publish claim ('in_flight' otherwise: it is sending it, or "
        "its send failed and the claim runs out within PUBLISH_CLAIM_SECONDS, 60 s by default), and a "
        "verdict the policy does not publish only with --force. This command gives back its own claims on the "
        "sends that failed, so it can be run again at once. Exit 1 when a publish or a storage step failed.",
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
    republish.add_argument(
        "--limit",
        type=_positive_int,
        default=1000,
        help="without --job: send at most this many owed verdicts in all, every provider's together (1,000)",
    )
    republish.set_defaults(run=_republish)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from verdict_relay.observability import counts_discarded

    args = build_parser().parse_args(argv)
    watch = args.watch = _Watch()
    try:
        with counts_discarded():  # stdout is the command's output: no EMF record may slip into it
            try:
                code: int = args.run(args)
            finally:
                watch.give_back_claims()
    except StorageError as exc:  # a step the command could not do without
        print(f"verdict-relay: {exc.message}{_aws_hint(exc.__cause__)}", file=sys.stderr)
        for line in watch.summary():  # what failed before it, if anything
            if exc.message not in line:
                print(f"verdict-relay: {line}", file=sys.stderr)
        return EXIT_FAILED
    except (VerdictRelayError, ConfigurationError) as exc:
        print(f"verdict-relay: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BotoCoreError as exc:  # no region, no credentials: before any request could be made
        print(f"verdict-relay: AWS: {exc}{_aws_hint(exc)}", file=sys.stderr)
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
    # A failure the shared code logged and got past (the poll cycle, the owed-publish sweep) fails the command.
    for line in watch.summary():
        print(f"verdict-relay: {line}", file=sys.stderr)
    return EXIT_FAILED if watch.failed and code == 0 else code


if __name__ == "__main__":
    sys.exit(main())
