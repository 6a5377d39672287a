"""The HTTP API on 127.0.0.1, as API Gateway would serve it: each request becomes the REST proxy event the
deployed Lambda receives, and the real handler answers it. Routes and status codes behave as deployed, with two
differences: the IAM-authorized ``/jobs`` routes are open here (loopback only), and a method a declared route
does not have gets a JSON 405 naming the allowed ones, where API Gateway answers 403 ``Missing Authentication
Token`` as it does for an undeclared route.
"""

from __future__ import annotations

import base64
import json
import re
import threading
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
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply({"statusCode": 413, "body": '{"message": "Request Too Long"}'})
                return
            body = self.rfile.read(length) if length else b""
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
                        query=dict(parse_qsl(parts.query)),
                        base64_encoded=bool(body) and not _is_text(body),
                        stage=stage,
                    )
                    with invocation:
                        result = handler(event, LambdaContext())
                    self._reply(result)
                    return
            allowed = sorted({m for m, _, pattern in ROUTES if pattern.match(path)})
            if allowed:
                self._reply(
                    {
                        "statusCode": 405,
                        "headers": {"Allow": ", ".join(allowed)},
                        "body": json.dumps(
                            {
                                "error": {
                                    "code": "method_not_allowed",
                                    "message": f"{method} not allowed; use {', '.join(allowed)}",
                                }
                            }
                        ),
                    }
                )
                return
            # API Gateway's own answer for a route it does not have
            self._reply({"statusCode": 403, "body": '{"message": "Missing Authentication Token"}'})

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
