"""The embedded AWS endpoint: moto in server mode on 127.0.0.1, faithful where correctness depends on it.

DynamoDB applies each write atomically: a conditional write is checked and applied as one step, so of two
concurrent writers to one item only one can win. moto's threaded server handles requests concurrently without
that guarantee, which would let two conditional writes both pass. This endpoint serves DynamoDB requests one
at a time (other services, such as SQS long polls, stay concurrent), so races behave as they do on AWS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _AtomicDynamoDB:
    """WSGI middleware: DynamoDB requests (``X-Amz-Target: DynamoDB_...``) run one at a time."""

    def __init__(self, app: WSGIApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with self._lock:
                return list(self._app(environ, start_response))
        return self._app(environ, start_response)


class EmbeddedAws:
    """moto on ``http://127.0.0.1:<port>`` from a background thread."""

    def __init__(self, port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        app = _AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="embedded-aws", daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> EmbeddedAws:
        self._thread.start()
        self.reset()
        return self

    def stop(self) -> None:
        self.reset()
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """Empty every service: moto's state is per process, shared by every endpoint it serves."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our loopback endpoint
            response.read()
