"""The HTTP API on 127.0.0.1, as API Gateway would serve it: each request becomes the REST proxy event the
deployed Lambda receives, and the real handler answers it. Routes and status codes behave as deployed, with two
differences: the IAM-authorized ``/jobs`` routes are open here (loopback only), and a method a declared route
does not have gets a JSON 405 naming the allowed ones, where API Gateway answers 403 ``Missing Authentication
Token`` as it does for an undeclared route.

The event carries the request as API Gateway's REST proxy integration does: a query parameter given more than once
has every value in ``multiValueQueryStringParameters`` and its last in ``queryStringParameters`` (both null
without a query; an empty value kept, as in ``?token=&token=...``), and a body comes whole whether sent with
``Content-Length`` or ``Transfer-Encoding: chunked``. Two more differences: a header sent more than once reaches
the handler with its last value only, in ``multiValueHeaders`` too; and a request whose body cannot be framed (a
``Content-Length`` that is not a byte count, a malformed chunked body) is answered here with a JSON 400, and one
in a transfer coding other than ``chunked`` with a JSON 501, before any route, where API Gateway answers with an
error of its own shape. A body sent with ``Content-Encoding: gzip`` or ``deflate`` is decompressed, as API Gateway
does before the function sees it; another coding, or a body not compressed as it says, gets API Gateway's own 415.
A handler that raises gets API Gateway's answer for a failed invocation, 502 ``Internal server error`` (its
traceback on stderr).
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from verdict_relay.local.apigw import api_event

ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    ("POST", "/callbacks/{provider}", re.compile(r"^/callbacks/(?P<provider>[^/]+)$")),
    ("POST", "/jobs", re.compile(r"^/jobs$")),
    ("GET", "/jobs/{provider}/{job_id}", re.compile(r"^/jobs/(?P<provider>[^/]+)/(?P<job_id>[^/]+)$")),
]
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
MAX_CHUNK_LINE = 4096  # a chunk-size line or a trailer field, as the stdlib's own reader bounds a header line
TOO_LONG = {"statusCode": 413, "body": '{"message": "Request Too Long"}'}  # API Gateway's own answer


class _Refused(Exception):
    """A request answered before any route, with ``response`` (an API Gateway proxy result)."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(response.get("body"))
        self.response = response


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An error as the product answers one: ``{"error": {"code": ..., "message": ...}}``."""
    return {
        "statusCode": status,
        "headers": headers or {},
        "body": json.dumps({"error": {"code": code, "message": message}}),
    }


@dataclass
class LambdaContext:
    function_name: str = "verdict-relay-api-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:verdict-relay-api-local"
    aws_request_id: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 50_000  # the callback function's Timeout in template.yaml


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _make_request_handler(handler: Handler, stage: str) -> type[BaseHTTPRequestHandler]:
    # One invocation at a time, as in one Lambda container: the handler keeps each request's state in module
    # globals (Powertools' resolver holds the current event), so two requests handled at once in threads would
    # read each other's query, path and body.
    invocation = threading.Lock()

    class ApiRequestHandler(BaseHTTPRequestHandler):
        server_version = "verdict-relay-local"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def __getattr__(self, name: str) -> Any:
            # Any other method (PUT, TRACE, even QUERY) gets the API's answer, not the stdlib's 501.
            if name.startswith("do_"):
                return lambda: self._dispatch(self.command)
            raise AttributeError(name)

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            if path.startswith(f"/{stage}/"):
                path = path[len(stage) + 1 :]
            try:
                body = _decoded(self._read_body(), self.headers.get_all("Content-Encoding") or [])
            except _Refused as refused:
                self.close_connection = True  # what is left of the body cannot be told from a next request
                self._reply(refused.response)
                return
            for route_method, resource, pattern in ROUTES:
                match = pattern.match(path)
                if match and route_method == method:
                    event = api_event(
                        method,
                        path,
                        resource=resource,
                        path_parameters=match.groupdict() or None,
                        body=body if body else None,
                        headers=dict(self.headers.items()),
                        query=parse_qsl(parts.query, keep_blank_values=True),  # ?a= is {"a": ""}, as deployed
                        base64_encoded=bool(body) and not _is_text(body),
                        stage=stage,
                    )
                    try:
                        with invocation:
                            result = handler(event, LambdaContext())
                    except Exception:  # a failed invocation: API Gateway's own answer
                        traceback.print_exc()
                        result = {"statusCode": 502, "body": '{"message": "Internal server error"}'}
                    self._reply(result)
                    return
            allowed = sorted({m for m, _, pattern in ROUTES if pattern.match(path)})
            if allowed:
                self._reply(
                    _error(
                        405,
                        "method_not_allowed",
                        f"{method} not allowed; use {', '.join(allowed)}",
                        headers={"Allow": ", ".join(allowed)},
                    )
                )
                return
            # API Gateway's own answer for a route it does not have
            self._reply({"statusCode": 403, "body": '{"message": "Missing Authentication Token"}'})

        def _read_body(self) -> bytes:
            """The request's body as API Gateway would pass it on, framed by Transfer-Encoding (chunked) or
            Content-Length; a request that cannot be framed is :class:`_Refused`."""
            codings = [
                coding.strip().lower()
                for value in self.headers.get_all("Transfer-Encoding") or []
                for coding in value.split(",")
                if coding.strip()
            ]
            if codings:
                # Transfer-Encoding overrides any Content-Length (RFC 9112, 6.3)
                if codings != ["chunked"]:
                    raise _Refused(
                        _error(
                            501,
                            "not_implemented",
                            f"Transfer-Encoding '{', '.join(codings)}' is not supported; send the body with "
                            "Content-Length or Transfer-Encoding: chunked",
                        )
                    )
                return _read_chunked(self.rfile)
            lengths = self.headers.get_all("Content-Length") or []
            if not lengths:
                return b""
            if len(set(lengths)) > 1 or not re.fullmatch(r"[0-9]+", lengths[0]):
                shown = ", ".join(lengths)
                raise _Refused(
                    _error(
                        400,
                        "bad_request",
                        f"Content-Length '{shown}' is not valid; send the body's size in bytes, once",
                    )
                )
            length = int(lengths[0])
            if length > MAX_BODY:
                raise _Refused(TOO_LONG)
            return self.rfile.read(length) if length else b""

        def _reply(self, result: dict[str, Any]) -> None:
            raw = result.get("body") or ""
            data = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
            self.send_response(int(result.get("statusCode", 502)))
            headers = dict(result.get("headers") or {})
            for name, values in (result.get("multiValueHeaders") or {}).items():
                headers.setdefault(name, ", ".join(values))
            headers.setdefault("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the handler logs each request itself, without bodies or secrets

    return ApiRequestHandler


def _read_chunked(rfile: io.BufferedIOBase) -> bytes:
    """A ``Transfer-Encoding: chunked`` body, decoded: each chunk's size line (hexadecimal, extensions ignored) and
    data, up to the last, empty chunk and the trailer fields after it (read and dropped)."""

    def malformed(reason: str) -> _Refused:
        return _Refused(_error(400, "bad_request", f"chunked request body is not valid: {reason}"))

    body = bytearray()
    while True:
        line = rfile.readline(MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            raise malformed("a chunk-size line is missing or too long")
        size_text = line.split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]+", size_text):
            raise malformed(f"chunk size {size_text[:32].decode('latin-1')!r} is not hexadecimal")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > MAX_BODY:
            raise _Refused(TOO_LONG)
        chunk = rfile.read(size)
        if len(chunk) < size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise malformed("a chunk is not the size its line gives")
        body += chunk
    while True:  # the trailer section, ended by an empty line
        line = rfile.readline(MAX_CHUNK_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line.endswith(b"\n"):
            raise malformed("the body ends before its trailer section does")


UNSUPPORTED = {"statusCode": 415, "body": '{"message": "Unsupported Media Type"}'}  # API Gateway's own answer


def _decoded(body: bytes, encodings: list[str]) -> bytes:
    """The body as API Gateway passes a compressed one on: decompressed (``gzip``, ``deflate``; ``identity`` as it
    is), with its own 415 for another coding or a body not compressed as its ``Content-Encoding`` says."""
    codings = [c.strip().lower() for value in encodings for c in value.split(",") if c.strip()]
    for coding in reversed(codings):  # listed in the order they were applied
        if coding in WBITS:
            body = _inflate(body, WBITS[coding])
        elif coding != "identity":
            raise _Refused(UNSUPPORTED)
    return body


WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
"""zlib's window bits for each content coding: a gzip member, a zlib stream (HTTP's ``deflate``)."""


def _inflate(data: bytes, wbits: int) -> bytes:
    """Decompressed, never past ``MAX_BODY`` (a few kilobytes can stand for gigabytes)."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, MAX_BODY + 1)
    except zlib.error as exc:
        raise _Refused(UNSUPPORTED) from exc
    if len(out) > MAX_BODY or inflater.unconsumed_tail:
        raise _Refused(TOO_LONG)
    if not inflater.eof:
        raise _Refused(UNSUPPORTED)  # cut short
    return out


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class LocalHttpApi:
    """The API on ``http://127.0.0.1:<port>``, served from a background thread."""

    def __init__(self, handler: Handler, port: int = 3000, stage: str = "v1") -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_request_handler(handler, stage))
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-api", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalHttpApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
