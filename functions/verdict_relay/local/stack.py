"""``verdict-relay local``: the whole system in one process, no Docker, no AWS account.

* an embedded AWS endpoint (``local.aws``: moto in server mode on 127.0.0.1) with the stateful resources of
  ``template.yaml``;
* the HTTP API on 127.0.0.1 (``local.http_api``) invoking the real callback handler;
* the real poller handler, invoked every ``poll_interval`` seconds with a Lambda's 60 s budget, and the real
  poll worker handler consuming the fan-out queue, one thread per provider as deployed;
* an SQS queue subscribed to the verdict topic, whose messages are handed to ``on_published`` as
  ``{"verdict": ..., "attributes": {...}}`` (:func:`is_republished` tells an operator's re-send).

An invocation of the poller or a poll worker that raises is kept in ``poll_errors`` and handed to
``on_poll_error`` as it happens.

Metrics are not printed: nothing here reads them, and their JSON lines would break up the runner's output.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verdict_relay.config import Settings, load_providers_config
from verdict_relay.local.http_api import LocalHttpApi
from verdict_relay.local.resources import LocalResources, create_resources
from verdict_relay.models.verdict import PROVIDER_NAMES

LOCAL_LOG_LEVEL = "WARNING"
"""The functions' log level in the local stack unless POWERTOOLS_LOG_LEVEL says otherwise."""

POLLER_TIMEOUT_S = 60.0
WORKER_TIMEOUT_S = 300.0
"""The deployed functions' timeouts (template.yaml): the local invocations get the same budgets."""


def sqs_event(messages: list[dict[str, Any]], queue: str = "PollQueue") -> dict[str, Any]:
    """The event the SQS event source mapping hands a function, for messages as ReceiveMessage returns them."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:000000000000:{queue}",
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


def is_republished(message: dict[str, Any]) -> bool:
    """Whether a published message is an operator's re-send (``verdict-relay republish --job``), not one the
    relay published on its own."""
    return bool(message["attributes"].get("republished") == "true")


class PortInUseError(Exception):
    """The HTTP API's port is taken by another process."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} on 127.0.0.1 is already in use")
        self.port = port


def silence_metrics() -> None:
    """Keep Powertools metrics off stdout in this process.

    POWERTOOLS_METRICS_DISABLED only skips the flush after each invocation: Powertools 3.x still prints the
    ColdStart metric, and prints the metrics it keeps (and no longer clears) once 100 have accumulated.
    """
    from aws_lambda_powertools.metrics import EphemeralMetrics
    from aws_lambda_powertools.metrics.provider import cold_start

    cold_start.is_cold_start = False
    # The class behind both the service's metrics and the per-provider sets (observability.count).
    EphemeralMetrics.add_metric = lambda *_args, **_kwargs: None  # type: ignore[method-assign]
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PollerContext:
    """The Lambda context the poller handler reads: its remaining time is the local poll budget."""

    budget_s: float
    function_name: str = "verdict-relay-poller-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:verdict-relay-poller-local"
    aws_request_id: str = "local"

    def __post_init__(self) -> None:
        import time

        self._deadline = time.monotonic() + self.budget_s

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_environment(resources: LocalResources, providers_file: Path) -> dict[str, str]:
    """The functions' settings in the local stack, beside the AWS endpoint and credentials: where the resources
    are, as ``template.yaml`` sets them, and the poll backoff in seconds, not minutes, as the local schedule runs
    every few seconds (and so, unless the shell sets one, no grace before a job the provider does not know is
    expired); and what unmoderated content gets, the shell's ``UNMODERATED_SUGGESTION`` or the default, and whether
    pass verdicts are published, ``PUBLISH_PASS_VERDICTS`` likewise, spelt out so that the operator commands the
    banner prints decide as the functions do (``jobs expire`` wants the one set, ``poll --once`` warns without
    either).
    The shell's ``UNKNOWN_JOB_GRACE_SECONDS`` and ``PROVIDERS_CACHE_SECONDS`` apply, as every other function
    setting it holds: a document whose ``callback.first_poll_after_seconds`` needs a grace, and practising a
    secret's rotation, need them."""
    return {
        "UNMODERATED_SUGGESTION": os.environ.get("UNMODERATED_SUGGESTION", "review"),
        "PUBLISH_PASS_VERDICTS": os.environ.get("PUBLISH_PASS_VERDICTS", "false"),
        "TABLE_NAME": resources.table_name,
        "TOPIC_ARN": resources.topic_arn,
        "RAW_PAYLOAD_BUCKET": resources.bucket,
        "POLL_QUEUE_URL": resources.queue_urls["PollQueue"],
        "PROVIDERS_FILE": str(providers_file),
        "POLL_BASE_INTERVAL_SECONDS": "1",
        "POLL_MAX_INTERVAL_SECONDS": "8",
        "POLL_MIN_INTERVAL_SECONDS": "1",
        "UNKNOWN_JOB_GRACE_SECONDS": os.environ.get("UNKNOWN_JOB_GRACE_SECONDS", "0"),
        "PROVIDERS_CACHE_SECONDS": os.environ.get("PROVIDERS_CACHE_SECONDS", "3600"),
    }


class LocalStack:
    def __init__(
        self,
        providers_file: Path,
        port: int = 3000,
        poll_interval_s: float = 5.0,
        on_published: Callable[[dict[str, Any]], None] | None = None,
        extra_env: dict[str, str] | None = None,
        on_poll_error: Callable[[str], None] | None = None,
    ) -> None:
        self._providers_file = providers_file
        self._port = port
        self._poll_interval = poll_interval_s
        self._on_published = on_published or (lambda _message: None)
        self._extra_env = extra_env or {}
        self._on_poll_error = on_poll_error or (lambda _error: None)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._moto: Any = None
        self.api: LocalHttpApi | None = None
        self.resources: LocalResources | None = None
        self.session: Any = None
        self.settings: Settings | None = None
        """The functions' settings, read from the environment at start."""
        self.poll_errors: list[str] = []

    @property
    def base_url(self) -> str:
        assert self.api is not None
        return self.api.base_url

    def start(self) -> LocalStack:
        from verdict_relay.local.aws import EmbeddedAws

        self._moto = EmbeddedAws().start()
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self._moto.endpoint_url,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "POWERTOOLS_SERVICE_NAME": "verdict-relay",
                "POWERTOOLS_METRICS_NAMESPACE": "VerdictRelay",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", LOCAL_LOG_LEVEL),
            }
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        # The providers document is the stack's file: a deployed stack's secret, named in a shell set up for the
        # operator commands, is not in the embedded AWS, and would fail every callback and poll.
        os.environ.pop("PROVIDERS_SECRET_ID", None)
        import boto3

        self.session = boto3.session.Session()
        self.resources = create_resources(self.session)
        os.environ.update({**function_environment(self.resources, self._providers_file), **self._extra_env})
        # The functions read their settings on their first request or poll, and settings they refuse (say
        # RETENTION_DAYS=0 in the shell) fail every one of them: read them now, so the run ends before it starts
        # with the setting named (ConfigurationError).
        self.settings = Settings.from_env()
        # And the providers document against them, as the functions check it (a first-poll wait must be shorter
        # than UNKNOWN_JOB_GRACE_SECONDS): a document they refuse would fail every callback and every poll.
        load_providers_config(self.settings)
        from verdict_relay.handlers.callback import lambda_handler
        from verdict_relay.handlers.dependencies import dependencies

        dependencies.cache_clear()
        silence_metrics()
        try:
            self.api = LocalHttpApi(lambda_handler, port=self._port).start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(self._port) from exc
            raise
        self._spawn(self._watch_topic, "published")
        self._spawn(self._poll_forever, "poller")
        # A worker per provider, as deployed (the poll worker's reserved concurrency): fan-out holds count on it.
        for i in range(len(PROVIDER_NAMES)):
            self._spawn(self._work_poll_queue, f"poll-worker-{i}")
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.api:
            self.api.stop()
        if self._moto:
            self._moto.stop()

    def poll_once(self, budget_s: float = 30.0) -> dict[str, Any]:
        """One invocation of the real poller handler."""
        from verdict_relay.handlers.poller import lambda_handler

        result: dict[str, Any] = lambda_handler({"source": "local.schedule"}, PollerContext(budget_s))
        return result

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_forever(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                self.poll_once(budget_s=POLLER_TIMEOUT_S)
            except Exception as exc:
                self._poll_failed(f"{type(exc).__name__}: {exc}")

    def _poll_failed(self, error: str) -> None:
        self.poll_errors.append(error)
        self._on_poll_error(error)

    def _work_poll_queue(self) -> None:
        """Feed fanned-out batches to the real poll worker handler, as the SQS event source mapping does."""
        from verdict_relay.handlers.poll_worker import lambda_handler

        assert self.resources is not None
        sqs = self.session.client("sqs")
        queue_url = self.resources.queue_urls["PollQueue"]
        while not self._stop.is_set():
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get(
                "Messages", []
            )
            for message in messages:
                try:
                    result = lambda_handler(sqs_event([message]), PollerContext(WORKER_TIMEOUT_S))
                except Exception as exc:
                    self._poll_failed(f"poll worker: {type(exc).__name__}: {exc}")
                    continue
                if not result.get("batchItemFailures"):
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _watch_topic(self) -> None:
        assert self.resources is not None
        sqs = self.session.client("sqs")
        queue_url = sqs.create_queue(QueueName="local-published-verdicts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.session.client("sns").subscribe(
            TopicArn=self.resources.topic_arn, Protocol="sqs", Endpoint=queue_arn
        )
        while not self._stop.is_set():
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            for message in messages:
                envelope = json.loads(message["Body"])
                typed = envelope.get("MessageAttributes", {})
                attributes = {k: v["Value"] for k, v in typed.items()}
                self._on_published(
                    {
                        "verdict": json.loads(envelope["Message"]),
                        "attributes": attributes,
                        "typed_attributes": typed,
                    }
                )
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
