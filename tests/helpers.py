"""Test helpers shared by every tier: loading sample events and provider payloads from ``events/`` (and
recasing a Huawei payload's statuses and suggestions), and a stub HTTP server for the certificate fetches of
Alibaba MNS pushes."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

from verdict_relay.local.apigw import api_event
from verdict_relay.local.callback_signing import huawei_callback_signature

__all__ = [
    "RECASINGS",
    "RECASING_IDS",
    "SUGGESTION_KEYS",
    "Received",
    "answering",
    "api_event",
    "http_server",
    "huawei_signature",
    "load_api_event",
    "load_payload",
    "load_payload_bytes",
    "mns_push_event",
    "recased",
    "recording",
    "with_changes",
]

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def mns_push_event(
    body: bytes, headers: dict[str, str], query: dict[str, str] | None = None
) -> dict[str, Any]:
    """The API Gateway event of an MNS HTTP push to the Alibaba callback route."""
    return api_event(
        "POST",
        "/callbacks/alibaba-mps",
        resource="/callbacks/{provider}",
        path_parameters={"provider": "alibaba-mps"},
        body=body,
        headers=headers,
        query=query,
    )


def payload_path(provider: str, name: str) -> Path:
    return EVENTS_DIR / "providers" / provider / f"{name}.json"


def load_payload(provider: str, name: str) -> Any:
    """A provider's payload from ``events/providers/<provider>/<name>.json``, parsed."""
    return json.loads(payload_path(provider, name).read_text(encoding="utf-8"))


def load_payload_bytes(provider: str, name: str) -> bytes:
    return payload_path(provider, name).read_bytes()


def load_api_event(name: str) -> dict[str, Any]:
    """An API Gateway event from ``events/api/<name>.json`` (the same files ``sam local invoke -e`` takes)."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / "api" / f"{name}.json").read_text(encoding="utf-8"))
    return event


def huawei_signature(seed: str, body: bytes, encoding: str = "hex") -> str:
    """X-Auth-Signature as Huawei computes it for a job created with ``seed`` (hex, or base64 of the digest)."""
    signature = huawei_callback_signature(seed, json.loads(body))
    return signature if encoding == "hex" else base64.b64encode(bytes.fromhex(signature)).decode("ascii")


def with_changes(provider: str, name: str, **changes: Any) -> bytes:
    """A fixture payload with top-level fields replaced, as bytes."""
    payload = load_payload(provider, name)
    payload.update(changes)
    return json.dumps(payload).encode("utf-8")


SUGGESTION_KEYS = ("suggestion", "category_suggestions")
ENUMERATED_KEYS = ("status", *SUGGESTION_KEYS)


def recased(value: Any, change: Callable[[str], str], keys: tuple[str, ...] = ENUMERATED_KEYS) -> Any:
    """``value`` with every ``status`` and ``suggestion`` (and ``category_suggestions`` value), or those of
    ``keys``, passed through ``change``: the enumerated values Huawei documents in lower case."""
    if isinstance(value, list):
        return [recased(v, change, keys) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, inner in value.items():
        if key in keys and key != "category_suggestions" and isinstance(inner, str):
            out[key] = change(inner)
        elif key in keys and key == "category_suggestions" and isinstance(inner, dict):
            out[key] = {category: change(s) for category, s in inner.items()}
        else:
            out[key] = recased(inner, change, keys)
    return out


RECASINGS: list[Callable[[str], str]] = [str.upper, str.capitalize, lambda s: f" {s.upper()}\t"]
"""Ways a provider might case an enumerated value it documents in lower case (``recased``'s ``change``)."""
RECASING_IDS = ["upper", "capitalized", "padded-upper"]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of its access log."""

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on 127.0.0.1, a thread per request; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Received:
    """A request a stand-in server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@contextlib.contextmanager
def recording(
    answer: Callable[[str], tuple[int, bytes, dict[str, str]]], seen: list[Received] | None = None
) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering each GET and POST with ``answer(path)``: a status, a JSON body and
    headers (a provider's answer, odd or not). Each request is appended to ``seen``. Yields its base URL."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if seen is not None:
                seen.append(Received(self.command, self.path, dict(self.headers.items()), body))
            status, raw, headers = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_POST = do_GET

    with serving(Handler) as url:
        yield url


@contextlib.contextmanager
def answering(
    status: int, body: bytes, headers: dict[str, str] | None = None, paths: list[str] | None = None
) -> Iterator[str]:
    """:func:`recording`, answering every request with ``status``, ``headers`` and ``body``; each request's path
    is appended to ``paths``."""

    def answer(path: str) -> tuple[int, bytes, dict[str, str]]:
        if paths is not None:
            paths.append(path)
        return status, body, headers or {}

    with recording(answer) as url:
        yield url


@contextlib.contextmanager
def scripted(steps: list[tuple[int, dict[str, str]] | None], seen: list[str]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering each GET with the next of ``steps``: ``(status, headers)`` with a
    ``{}`` body, or None to close the connection without an answer (a keep-alive connection the other end
    dropped). Each step taken is appended to ``seen`` ("dropped", or the status). Yields its base URL."""

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            step = steps.pop(0)
            if step is None:
                seen.append("dropped")
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status, headers = step
            seen.append(str(status))
            self.send_response(status)
            for name, value in {**headers, "Content-Length": "2"}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(b"{}")

    with serving(Handler) as url:
        yield url


@contextlib.contextmanager
def http_server(status: int, location: str = "", hits: list[str] | None = None) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering every GET with ``status`` (and ``Location``); yields its base URL.
    Each request's path is appended to ``hits``, when given."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if hits is not None:
                hits.append(self.path)
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.end_headers()

    with serving(Handler) as url:
        yield url


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def aws_response(request: Any, status: int, body: bytes, content_type: str) -> Any:
    """An HTTP response as an AWS endpoint would send it, for a botocore ``before-send`` handler to return
    instead of sending ``request``: the SDK parses it (and retries on it) as if it came over the wire.

    botocore runs every ``before-send`` handler and takes the first response, so moto's in-process stub would
    still carry the request out (a write refused here would be stored all the same): the request's URL is
    pointed where no stubbed service answers, and it is never sent."""
    from botocore.awsrequest import AWSResponse

    request.url = "https://injected-fault.invalid/"
    return AWSResponse(request.url, status, {"Content-Type": content_type}, _Body(body))


class DynamoDBThrottle:
    """Answers the next ``times`` DynamoDB writes with ProvisionedThroughputExceededException, as DynamoDB does
    (or with ``code`` and ``status``: ThrottlingException, which an on-demand table past its maximum throughput
    answers, or InternalFailure, a 500 on DynamoDB's side)."""

    def __init__(
        self, times: int, code: str = "ProvisionedThroughputExceededException", status: int = 400
    ) -> None:
        self.remaining = times
        self.injected = 0
        self.code = code
        self.status = status

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        if self.remaining <= 0 or not target.endswith(("UpdateItem", "PutItem")):
            return None
        self.remaining -= 1
        self.injected += 1
        body = json.dumps(
            {
                "__type": f"com.amazonaws.dynamodb.v20120810#{self.code}",
                "message": "Rate of requests exceeds the allowed throughput.",
            }
        ).encode()
        return aws_response(request, self.status, body, "application/x-amz-json-1.0")


class ConfirmationThrottle(DynamoDBThrottle):
    """Throttles only the next ``times`` attempts of the write that confirms a publish SNS has taken."""

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        if b"publish_state = :published" not in (request.body or b""):
            return None
        return super().__call__(request, **kwargs)


def hooked_sessions(monkeypatch: Any, event: str, handler: Callable[..., Any]) -> Callable[[], None]:
    """Register ``handler`` for botocore's ``event`` on every boto3 session made from now on (those the
    commands and functions make for themselves); the function returned stops it for sessions made later."""
    import boto3.session

    original = boto3.session.Session

    def session(*args: Any, **kwargs: Any) -> Any:
        made = original(*args, **kwargs)
        made.events.register(event, handler)
        return made

    monkeypatch.setattr(boto3.session, "Session", session)
    return lambda: monkeypatch.setattr(boto3.session, "Session", original)


def emf_counts(output: str, **dimensions: str) -> dict[str, float]:
    """What a CloudWatch metric query on exactly ``dimensions`` (names and values) reads from the embedded metric
    format records in ``output``: each metric's values summed, over the records that declare that dimension set
    and carry those values."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        for directive in record.get("_aws", {}).get("CloudWatchMetrics", []):
            if set(dimensions) not in [set(declared) for declared in directive["Dimensions"]]:
                continue
            if any(record.get(name) != value for name, value in dimensions.items()):
                continue
            for metric in directive["Metrics"]:
                value = record[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return totals


def emf_dimension_values(output: str, name: str) -> set[str]:
    """Every value the embedded metric format records in ``output`` give the dimension ``name``."""
    values = set()
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            if any(
                name in declared for d in record["_aws"]["CloudWatchMetrics"] for declared in d["Dimensions"]
            ):
                values.add(record[name])
    return values
