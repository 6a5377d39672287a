"""Exactly-once publishing under random interleavings: a hypothesis state machine over several jobs of two
providers, their callbacks and polls, the owed-publish sweep, the operator's republish and expire, a clock that
moves, and faults switched on and off around them.

Everything runs the real code (JobStore, IngestService, VerdictPublisher, Poller, the callback logic's
``accept``) on in-process moto with the functions' own client settings (``DYNAMODB_CONFIG``, ``SNS_CONFIG``).
Faults come from outside it, as AWS would produce them, through botocore ``before-send`` handlers: SNS out of
reach (no connection), a publish that times out before SNS took it, one SNS took whose answer was lost, one SNS
refuses (its topic gone); DynamoDB writes throttled, timed out unapplied, or applied with their answer lost, for
any write or for one kind (finishing a job, claiming, releasing or confirming a publish). The clock is one the
test moves: the code's ``time.monotonic``/``time.sleep``/``datetime.now`` and botocore's retry waits read it,
and a request that times out takes its client's read timeout of it. Writers race: a callback, poll cycle, sweep
or republish step may have another container (its own SNS and provider breakers, the same table and topic)
sweep, poll, take the job's callback or republish it while one of its requests is on its way (before a Publish,
or a finishing, claiming, releasing or confirming write), up to a publish's worst case into it.

The invariants (after every step, and after a recovery at the end: faults off, the clock past every claim and
cool-down, poll cycles until nothing is owed):

* a job's verdict, once terminal, never changes, and its status never goes backwards;
* no relay publish (``republished`` false) of a pass verdict (``PUBLISH_PASS_VERDICTS`` unset);
* every message carries the stored verdict's status and suggestion;
* a job's relay publishes are at most one, plus the repeats docs/architecture.md ("Guarantees") allows: one per
  publish whose answer was lost (SNS took it) and one per publish whose confirmation was given up
  (``PublishUnconfirmed``, only after the confirmation's faults);
* after the recovery, every block or review verdict stored went out (exactly once, within those repeats),
  nothing is owed, and every registered job the provider finished is stored as finished.

``HYPOTHESIS_PROFILE=soak`` runs many more examples and longer step sequences (tests/reliability/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import time as real_time
import types
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.endpoint
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from moto.core.models import botocore_stubber

from tests.conftest import FakeAws
from tests.helpers import aws_response
from verdict_relay.clients.base import FetchedJob, FetchResult, ProviderClient
from verdict_relay.dal import publisher as publisher_module
from verdict_relay.dal import store as store_module
from verdict_relay.dal.archive import PayloadArchive
from verdict_relay.dal.publisher import VerdictPublisher
from verdict_relay.dal.store import JobStore
from verdict_relay.errors import StorageError
from verdict_relay.handlers.dependencies import DYNAMODB_CONFIG, SNS_CONFIG
from verdict_relay.logic import ingest as ingest_module
from verdict_relay.logic import poller as poller_module
from verdict_relay.logic.breaker import CircuitBreaker
from verdict_relay.logic.callbacks import accept
from verdict_relay.logic.ingest import PUBLISH_TIME_S, IngestService
from verdict_relay.logic.policy import VerdictPolicy
from verdict_relay.logic.poller import Poller, PollSettings
from verdict_relay.models.verdict import JobStatus, Suggestion, Verdict
from verdict_relay.providers.base import CallbackResult

SOAK = os.environ.get("HYPOTHESIS_PROFILE", "fast") == "soak"
PROVIDERS = ("huawei-video", "alibaba-mps")
JOB_IDS = ("j0", "j1", "j2")
START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RANK = {JobStatus.PENDING: 0, JobStatus.RUNNING: 1}
TIME_LEFT = st.sampled_from([600.0, PUBLISH_TIME_S + 9.0, PUBLISH_TIME_S + 1.0, PUBLISH_TIME_S - 1.0, 5.0])
"""An invocation's time left: plenty, a little more than a publish needs, too little."""

FINISH = b"claim_token = :claim_token"
CLAIM = b"SET publish_claimed_until = :until"
RELEASE = b"SET publish_claimed_until = :now"
CONFIRM = b"publish_state = :published"
WRITE_KINDS = {"any": b"", "finish": FINISH, "claim": CLAIM, "release": RELEASE, "confirm": CONFIRM}
MEANWHILE = st.none() | st.tuples(
    st.sampled_from(["publish", "finish", "claim", "release", "confirm"]),
    st.sampled_from([0.0, 4.0, 11.0]),
    st.sampled_from(["sweep", "poll", "callback", "republish"]),
)
"""Another container's work while a request of a step is on its way: before a Publish or a write of that kind
(its first of the step), that many seconds into it (up to a publish's worst case)."""


class Clock:
    """The one clock of the run: wall time, monotonic time and sleeps (which move it on) for the code."""

    def __init__(self) -> None:
        self.now = START

    def datetime_now(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)

    def time_module(self) -> Any:
        """A stand-in for the ``time`` module of the code under test."""
        fake = types.SimpleNamespace(
            **{n: getattr(real_time, n) for n in dir(real_time) if not n.startswith("_")}
        )
        fake.monotonic = self.monotonic
        fake.time = self.monotonic
        fake.sleep = self.sleep
        return fake

    def datetime_class(self) -> type[datetime]:
        clock = self

        class ClockDatetime(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
                return clock.now if tz is not None else clock.now.replace(tzinfo=None)

        return ClockDatetime

    def draining(self, seconds: float) -> Callable[[], float]:
        """An invocation's time left, from ``seconds`` now, running down with the clock."""
        started = self.now

        def left() -> float:
            return seconds - (self.now - started).total_seconds()

        return left


def _job_of(request: Any) -> str | None:
    """The job a DynamoDB write or an SNS Publish is about (``provider#job``), None if it names none."""
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    if b"TopicArn" in body:  # SNS's query protocol: the message is form-encoded JSON
        from urllib.parse import parse_qs

        message = json.loads(parse_qs(body.decode())["Message"][0])
        return f"{message['provider']}#{message['job_id']}"
    try:
        return str(json.loads(body)["Key"]["pk"]["S"])
    except (ValueError, KeyError, TypeError):
        return None


SNS_READ_S = SNS_CONFIG.read_timeout
SNS_CONNECT_S = SNS_CONFIG.connect_timeout
DYNAMODB_READ_S = DYNAMODB_CONFIG.read_timeout


@dataclass
class Meanwhile:
    """Another container's work, done while a request of this one is on its way (``at``: ``publish``, before SNS
    takes a message, or a DynamoDB write holding those bytes), ``delay`` seconds into it."""

    at: str | bytes
    delay: float
    action: Callable[[str], None]
    """Given the job (``provider#job_id``) the request is about."""


@dataclass
class Faults:
    """The faults switched on, and what they did. Each applies to the next ``n`` requests it matches; a request
    that times out, or whose answer is lost, takes its client's read timeout of the clock, and one that cannot
    connect its connect timeout."""

    clock: Clock
    sns_down: bool = False
    """SNS out of reach: no connection made (EndpointConnectionError), nothing sent."""
    sns_next: list[str] = field(default_factory=list)
    """What the next Publish attempts meet, one each: ``timeout`` (unsent), ``lost`` (SNS took it, the answer
    lost), ``refused`` (a 404 NotFound: the topic gone)."""
    db_kind: bytes = b""
    db_next: list[str] = field(default_factory=list)
    """What the next DynamoDB UpdateItem attempts holding ``db_kind`` meet: ``throttle``, ``timeout`` (not
    applied), ``lost`` (applied, its answer lost)."""
    meanwhile: Meanwhile | None = None
    lost_publishes: Counter[str] = field(default_factory=Counter)
    """Publishes SNS took whose answer was lost, by job: each may be sent once more (docs: Guarantees)."""
    faulted_confirmations: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.sns_down = False
        self.sns_next.clear()
        self.db_next.clear()
        self.db_kind = b""
        self.meanwhile = None

    def _meanwhile(self, at: str, body: bytes, job: str | None) -> None:
        hook = self.meanwhile
        if (
            hook is None
            or job is None
            or not (hook.at == at or (isinstance(hook.at, bytes) and hook.at in body))
        ):
            return
        self.meanwhile = None  # once
        self.clock.advance(hook.delay)
        hook.action(job)

    def on_sns(self, request: Any, event_name: str = "", **_: Any) -> Any:
        self._meanwhile("publish", b"", _job_of(request))
        if self.sns_down:
            self.clock.advance(SNS_CONNECT_S)
            raise EndpointConnectionError(endpoint_url=request.url)
        if not self.sns_next:
            return None
        what = self.sns_next.pop(0)
        if what == "timeout":
            self.clock.advance(SNS_READ_S)
            raise ReadTimeoutError(endpoint_url=request.url)
        if what == "lost":
            botocore_stubber(event_name, request)  # SNS takes it...
            job = _job_of(request)
            assert job is not None
            self.lost_publishes[job] += 1
            self.clock.advance(SNS_READ_S)
            raise ReadTimeoutError(endpoint_url=request.url)  # ...and its answer never comes
        body = (
            b"<ErrorResponse><Error><Type>Sender</Type><Code>NotFound</Code>"
            b"<Message>Topic does not exist</Message></Error></ErrorResponse>"
        )
        return aws_response(request, 404, body, "text/xml")

    def on_dynamodb(self, request: Any, event_name: str = "", **_: Any) -> Any:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        job = _job_of(request)
        self._meanwhile("", body, job)
        if not self.db_next or self.db_kind not in body:
            return None
        what = self.db_next.pop(0)
        if CONFIRM in body:
            self.faulted_confirmations[job or "?"] += 1
        if what == "throttle":
            payload = json.dumps(
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "message": "Rate of requests exceeds the allowed throughput.",
                }
            ).encode()
            return aws_response(request, 400, payload, "application/x-amz-json-1.0")
        self.clock.advance(DYNAMODB_READ_S)
        if what == "lost":
            botocore_stubber(event_name, request)  # applied...
        raise ReadTimeoutError(endpoint_url=request.url)  # ...its answer lost, or never applied


class Provider(ProviderClient):
    """A provider's API as the test sets it: each job unknown, running, or finished with a verdict."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.max_batch = 3
        self.jobs: dict[str, Verdict] = {}

    def fetch(self, job_ids: Sequence[str]) -> FetchResult:
        found = [FetchedJob(self.jobs[j], b'{"raw": true}') for j in job_ids if j in self.jobs]
        return FetchResult(jobs=found, missing=[j for j in job_ids if j not in self.jobs])


def verdict(
    provider: str, job_id: str, status: JobStatus, suggestion: Suggestion | None, at: datetime
) -> Verdict:
    terminal = status not in RANK
    return Verdict(
        provider=provider,  # type: ignore[arg-type]
        job_id=job_id,
        status=status,
        suggestion=suggestion if terminal else None,
        decided_by="provider" if terminal else None,
        updated_at=at,
        completed_at=at if terminal else None,
    )


@pytest.fixture
def world(aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeAws, Clock, Faults, Any, Any]:
    """The fake account with the fault handlers on its session (before any client is made), the clock in the
    code's modules and botocore's retry waits."""
    clock = Clock()
    faults = Faults(clock)
    aws.session.events.register("before-send.sns.Publish", faults.on_sns)
    aws.session.events.register("before-send.dynamodb.UpdateItem", faults.on_dynamodb)
    fake_time = clock.time_module()
    for module in (ingest_module, store_module, poller_module, publisher_module, botocore.endpoint):
        monkeypatch.setattr(module, "time", fake_time)
    monkeypatch.setattr(ingest_module, "datetime", clock.datetime_class())
    dynamodb = aws.session.client("dynamodb", config=DYNAMODB_CONFIG)
    sns = aws.session.client("sns", config=SNS_CONFIG)
    return aws, clock, faults, dynamodb, sns


def test_no_interleaving_of_faults_clock_and_writers_loses_or_duplicates_a_verdict(
    world: tuple[FakeAws, Clock, Faults, Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    aws, clock, faults, dynamodb, sns = world
    admin = aws.session.client("dynamodb")
    sqs = aws.session.client("sqs")

    def items() -> list[dict[str, Any]]:
        return admin.scan(TableName=aws.resources.table_name, ConsistentRead=True)["Items"]

    def published() -> list[dict[str, Any]]:
        """The messages SNS delivered to the subscribed queue since the last call (FakeAws.published's reading,
        with one client for the whole run: a client each call cost more than the steps themselves)."""
        messages = []
        while batch := sqs.receive_message(QueueUrl=aws.published_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                sqs.delete_message(QueueUrl=aws.published_queue_url, ReceiptHandle=message["ReceiptHandle"])
                envelope = json.loads(message["Body"])
                attributes = envelope.get("MessageAttributes", {})
                messages.append(
                    {
                        "verdict": json.loads(envelope["Message"]),
                        "attributes": {k: v["Value"] for k, v in attributes.items()},
                    }
                )
        return messages

    class Publishing(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            # A fresh start: no items, no messages, faults off, the clock at START, new containers' state.
            for item in items():
                admin.delete_item(
                    TableName=aws.resources.table_name, Key={"pk": item["pk"], "sk": item["sk"]}
                )
            published()
            faults.reset()
            faults.lost_publishes.clear()
            faults.faulted_confirmations.clear()
            clock.now = START
            self.store = JobStore(
                aws.resources.table_name,
                dynamodb,
                PayloadArchive(aws.resources.bucket, lambda: aws.session.client("s3")),
            )
            self.providers = {p: Provider(p) for p in PROVIDERS}
            self.ingest, self.poller = self._container()
            # Another container (a poll worker's, another callback's): the same table and topic, its own SNS
            # breaker and provider breakers.
            self.other_ingest, self.other_poller = self._container()
            self.registered: set[tuple[str, str]] = set()
            self.messages: list[dict[str, Any]] = []
            self.seen: dict[str, tuple[int, str | None, str | None]] = {}
            """Each job's highest rank seen, and its terminal status and suggestion once terminal."""
            caplog.clear()  # this example's records only (and a soak's memory bounded)

        def _container(self) -> tuple[IngestService, Poller]:
            """A Lambda container's ingest and poller: its own SNS and provider breakers, the shared store."""
            ingest = IngestService(
                self.store,
                VerdictPublisher(aws.resources.topic_arn, lambda: sns),
                VerdictPolicy(),
                CircuitBreaker(threshold=1, cooldown_s=ingest_module.SNS_COOLDOWN_S, clock=clock.monotonic),
                unknown_grace=timedelta(hours=1),
            )
            poller = Poller(
                self.store,
                ingest,
                self.providers,
                {p: CircuitBreaker(threshold=3, cooldown_s=60, clock=clock.monotonic) for p in PROVIDERS},
                PollSettings(),
                now=clock.datetime_now,
                concurrency={p: 1 for p in PROVIDERS},
                sleep=clock.sleep,
            )
            return ingest, poller

        # -- the world ------------------------------------------------------------------------------------

        @rule(provider=st.sampled_from(PROVIDERS), job_id=st.sampled_from(JOB_IDS))
        def register(self, provider: str, job_id: str) -> None:
            try:
                self.store.register(provider, job_id, {}, clock.now, first_poll_at=clock.now)
            except StorageError:
                return  # a 503 to POST /jobs: the caller registers it again (or not)
            self.registered.add((provider, job_id))

        @rule(
            provider=st.sampled_from(PROVIDERS),
            job_id=st.sampled_from(JOB_IDS),
            outcome=st.sampled_from(["running", "block", "review", "pass", "failed"]),
        )
        def provider_moves(self, provider: str, job_id: str, outcome: str) -> None:
            """The provider's job starts, or finishes (once: a finished job stays as it finished)."""
            jobs = self.providers[provider].jobs
            if job_id in jobs and jobs[job_id].is_terminal:
                return
            jobs[job_id] = self._verdict(provider, job_id, outcome)

        @rule(
            provider=st.sampled_from(PROVIDERS),
            job_id=st.sampled_from(JOB_IDS),
            outcome=st.sampled_from([None, "running", "block", "review", "pass", "failed"]),
            time_left=TIME_LEFT,
            meanwhile=MEANWHILE,
        )
        def callback(
            self, provider: str, job_id: str, outcome: str | None, time_left: float, meanwhile: Any
        ) -> None:
            """A signed callback (trust: body), saying what the provider's job is (None), or a late or forged
            different result (any other outcome) that arrives anyway."""
            if outcome is None:
                known = self.providers[provider].jobs.get(job_id)
                if known is None:
                    return
                said = known
            else:
                said = self._verdict(provider, job_id, outcome)
            # A 503 (StorageError): the provider sends it again, or polling finds the job.
            with self._meanwhile(meanwhile), contextlib.suppress(StorageError):
                accept(
                    provider,
                    CallbackResult(verdicts=[said]),
                    b'{"raw": true}',
                    "body",
                    self.ingest,
                    None,
                    clock.now,
                    self.store.status,
                    time_left_s=clock.draining(time_left),
                )

        @rule(provider=st.sampled_from(PROVIDERS), time_left=TIME_LEFT, meanwhile=MEANWHILE)
        def poll_cycle(self, provider: str, time_left: float, meanwhile: Any) -> None:
            # A failed invocation (StorageError): the next minute's runs.
            with self._meanwhile(meanwhile), contextlib.suppress(StorageError):
                self.poller.run_cycle(clock.draining(time_left), providers=[provider])

        @rule(provider=st.sampled_from(PROVIDERS), time_left=TIME_LEFT, meanwhile=MEANWHILE)
        def sweep(self, provider: str, time_left: float, meanwhile: Any) -> None:
            """A sweep on its own (a callback-only provider's, in a full cycle)."""
            left = clock.draining(time_left)
            with self._meanwhile(meanwhile), contextlib.suppress(StorageError):
                self.ingest.publish_owed(
                    provider,
                    clock.datetime_now,
                    time_left_s=lambda: left() - PUBLISH_TIME_S,
                    invocation_left_s=left,
                )

        @rule(provider=st.sampled_from(PROVIDERS), job_id=st.sampled_from(JOB_IDS), meanwhile=MEANWHILE)
        def operator_republishes(self, provider: str, job_id: str, meanwhile: Any) -> None:
            """``verdict-relay republish --job``: an owed verdict's first publish, or a marked re-send."""
            with self._meanwhile(meanwhile), contextlib.suppress(StorageError):
                self.ingest.republish(provider, job_id, clock.now)

        @rule(provider=st.sampled_from(PROVIDERS), job_id=st.sampled_from(JOB_IDS))
        def operator_expires(self, provider: str, job_id: str) -> None:
            """``verdict-relay jobs expire``: an unfinished job given up on."""
            status = self.store.status(provider, job_id)
            if status is None or status.is_terminal:
                return
            with contextlib.suppress(StorageError):
                self.ingest.expire(provider, job_id, clock.now, "operator gave up", clock.draining(600.0))

        @contextlib.contextmanager
        def _meanwhile(self, meanwhile: tuple[str, float, str] | None) -> Iterator[None]:
            """Arms another container's work (``MEANWHILE``) for this step only."""
            if meanwhile is not None:
                at, delay, what = meanwhile
                point = at if at == "publish" else WRITE_KINDS[at]
                faults.meanwhile = Meanwhile(point, delay, lambda job: self._elsewhere(what, job))
            try:
                yield
            finally:
                faults.meanwhile = None

        def _elsewhere(self, what: str, job: str) -> None:
            provider, job_id = job.split("#", 1)
            if provider not in PROVIDERS or job_id == "-":
                return
            with contextlib.suppress(StorageError):
                if what == "sweep":
                    left = clock.draining(600.0)
                    self.other_ingest.publish_owed(
                        provider,
                        clock.datetime_now,
                        time_left_s=lambda: left() - PUBLISH_TIME_S,
                        invocation_left_s=left,
                    )
                elif what == "poll":
                    self.other_poller.run_cycle(clock.draining(600.0), providers=[provider])
                elif what == "republish":
                    self.other_ingest.republish(provider, job_id, clock.now)
                elif (known := self.providers[provider].jobs.get(job_id)) is not None:
                    accept(
                        provider,
                        CallbackResult(verdicts=[known]),
                        b'{"raw": true}',
                        "body",
                        self.other_ingest,
                        None,
                        clock.now,
                        self.store.status,
                        time_left_s=clock.draining(40.0),
                    )

        @rule(seconds=st.sampled_from([1, 10, 31, 61, 120, 901, 3601]))
        def time_passes(self, seconds: int) -> None:
            clock.advance(seconds)

        # -- faults ---------------------------------------------------------------------------------------

        @rule(down=st.booleans())
        def sns_reach(self, down: bool) -> None:
            faults.sns_down = down

        @rule(what=st.lists(st.sampled_from(["timeout", "lost", "refused"]), min_size=1, max_size=3))
        def sns_next_publishes(self, what: list[str]) -> None:
            faults.sns_next[:] = what

        @rule(
            kind=st.sampled_from(sorted(WRITE_KINDS)),
            what=st.lists(st.sampled_from(["throttle", "timeout", "lost"]), min_size=1, max_size=4),
        )
        def dynamodb_next_writes(self, kind: str, what: list[str]) -> None:
            faults.db_kind = WRITE_KINDS[kind]
            faults.db_next[:] = what

        @rule()
        def faults_off(self) -> None:
            faults.reset()

        # -- invariants -----------------------------------------------------------------------------------

        @invariant()
        def never_twice_never_backwards(self) -> None:
            self.messages.extend(published())
            jobs = {f"{i['provider']['S']}#{i['job_id']['S']}": i for i in items() if i["sk"]["S"] == "STATE"}
            for pk, item in jobs.items():
                rank = int(item["status_rank"]["N"])
                status = item["status"]["S"]
                suggestion = item.get("suggestion", {}).get("S")
                before = self.seen.get(pk)
                if before is not None:
                    assert rank >= before[0], f"{pk} went back from rank {before[0]} to {rank}"
                    if before[1] is not None:
                        assert (status, suggestion) == before[1:], (
                            f"{pk}'s verdict changed: {before} -> {item}"
                        )
                self.seen[pk] = (rank, status if rank == 2 else None, suggestion if rank == 2 else None)
            relay: Counter[str] = Counter()
            for message in self.messages:
                v = message["verdict"]
                pk = f"{v['provider']}#{v['job_id']}"
                if message["attributes"]["republished"] == "true":
                    continue
                relay[pk] += 1
                assert v["suggestion"] != "pass", f"a pass verdict published: {v}"
                stored = self.seen.get(pk)
                assert stored is not None, f"{pk} published but not stored"
                assert stored[1] is not None, f"{pk} published but not stored finished"
                assert (v["status"], v["suggestion"]) == stored[1:], f"{pk} published {v}, stored {stored}"
            for pk, sent in relay.items():
                allowed = 1 + faults.lost_publishes[pk] + self._unconfirmed(pk)
                assert sent <= allowed, (
                    f"{pk} published {sent} times; allowed {allowed} (lost answers "
                    f"{faults.lost_publishes[pk]}, unconfirmed {self._unconfirmed(pk)})"
                )

        def _unconfirmed(self, pk: str) -> int:
            """Publishes whose confirmation was given up after the confirmation itself met faults."""
            return min(faults.faulted_confirmations[pk], self.unconfirmed_logged(pk))

        def unconfirmed_logged(self, pk: str) -> int:
            return sum(
                1
                for r in caplog.records
                if r.getMessage().startswith("publish not confirmed")
                and f"{getattr(r, 'provider', '')}#{getattr(r, 'job_id', '')}" == pk
            )

        def teardown(self) -> None:
            try:
                self._recover_and_check()
            finally:
                faults.reset()

        def _recover_and_check(self) -> None:
            """SNS and the table healthy again, the clock past every claim, cool-down and backoff, cycles until
            nothing is owed and every registered job the provider finished is stored finished (a few at most)."""
            faults.reset()
            for _ in range(4):
                clock.advance(16 * 60)
                for provider in PROVIDERS:
                    self.poller.run_cycle(lambda: 600.0, providers=[provider])
                if not self._owed() and not self._unresolved():
                    break
            self.never_twice_never_backwards()
            assert self._owed() == [], "verdicts still owed after the recovery"
            assert self._unresolved() == [], "registered jobs the provider finished, not stored finished"
            relay = Counter(
                f"{m['verdict']['provider']}#{m['verdict']['job_id']}"
                for m in self.messages
                if m["attributes"]["republished"] == "false"
            )
            for pk, (rank, _status, suggestion) in self.seen.items():
                if rank == 2 and suggestion in ("block", "review"):
                    assert relay[pk] >= 1, f"{pk}'s {suggestion} verdict was never published"

        def _owed(self) -> list[str]:
            return [key.job_id for provider in PROVIDERS for key in self.store.unpublished(provider)]

        def _unresolved(self) -> list[tuple[str, str]]:
            unresolved = []
            for provider, job_id in sorted(self.registered):
                known = self.providers[provider].jobs.get(job_id)
                if known is not None and known.is_terminal:
                    status = self.store.status(provider, job_id)
                    if status is None or not status.is_terminal:
                        unresolved.append((provider, job_id))
            return unresolved

        def _verdict(self, provider: str, job_id: str, outcome: str) -> Verdict:
            if outcome == "running":
                return verdict(provider, job_id, JobStatus.RUNNING, None, clock.now)
            if outcome == "failed":
                return verdict(provider, job_id, JobStatus.FAILED, None, clock.now)
            return verdict(provider, job_id, JobStatus.SUCCEEDED, Suggestion(outcome), clock.now)

    run_state_machine_as_test(
        Publishing,
        settings=settings(
            # In soak, 300 examples of 60 steps (about 5 minutes here), not the profile's 2,000 (over an hour).
            **({"max_examples": 300} if SOAK else {}),
            derandomize=not SOAK,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
