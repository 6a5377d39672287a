"""A stand-in for the providers' HTTP APIs on 127.0.0.1, for the tests, the local stack and the benchmarks.

Standard library only (plus the project's own request signers): no SDK, ``requests`` or moto. One
:class:`ProviderSimulator` serves every provider on one port, as the providers' API references describe them (the
payloads in ``events/providers/``, the mappings in ``docs/providers.md``):

=====================  ===================================================================================
huawei-video / -audio  ``GET /v3/{project_id}/moderation/{video|audio}/jobs/{job_id}``
huawei-image-batch     ``GET /v1.0/moderation/image/batch?job_id=``, ``GET /v1.0/moderation/image/batch/jobs?status=``
huawei-iam             ``POST /v3/auth/tokens`` (password method) -> 201, ``X-Subject-Token``, ``token.expires_at``
alibaba-mps            ``GET|POST /?Action=QueryMediaCensorJobList|QueryMediaCensorJobDetail`` (RPC, 2014-06-18)
azure-review           ``GET /contentmoderator/review/v1.0/teams/{team}/jobs/{job_id}``
=====================  ===================================================================================

Authentication is checked the way each provider does it:

* Huawei: ``X-Auth-Token`` (the configured static token, or one IAM issued and not revoked or expired), or
  ``SDK-HMAC-SHA256``: the canonical request is rebuilt from what came over the wire (method, raw path and
  query, the headers named in ``SignedHeaders``, the body's hash) and the signature compared; ``X-Sdk-Date``
  must be within 15 minutes. Failures: 401 ``APIG.0301`` (``APIG.0307`` for a bad token).
* Alibaba: ``ACS3-HMAC-SHA256`` (``Authorization`` and ``x-acs-*`` headers; the action from
  ``x-acs-action`` or ``Action``) or RPC v1 ``HMAC-SHA1`` (``Signature`` in the query, key ``secret&``), on the
  query string, plus a form body on POST. Dates within 15 minutes; a nonce is accepted once
  (``SignatureNonceUsed``), as MPS does, among the requests it serves: a fault it was told to inject is
  answered before the signature is read, so the nonce of a request answered that way is not recorded. The
  signatures are rebuilt with ``verdict_relay.signing`` itself: only the tests that re-sign a request with the
  providers' SDKs show a provider would accept it.
* Azure: ``Ocp-Apim-Subscription-Key``; otherwise 401 ``{"error": {"code": "Unauthorized", ...}}``.

State: :meth:`ProviderSimulator.put_job` stores the exact JSON the API returns for a job (Huawei: the v3 query
body, or ``{"result": {...}}`` for a batch job; Alibaba: the ``MediaCensorJob`` object; Azure: the ``Job``
object). The ``*_job`` builders below make realistic bodies. Alibaba timelines longer than
``timeline_page_size`` are paged: the list call returns the first page and ``VensorCensorResult.NextPageToken``,
``QueryMediaCensorJobDetail`` the following ones, ``MaximumPageSize`` entries each (default 30, 1..300, as MPS
documents). Job lists, by time range or by ``JobIds``, are paged by
``MaximumPageSize`` (default 30, capped at ``list_page_limit``) with ``NextPageToken``.

Faults (:meth:`ProviderSimulator.inject`) apply to the next N requests of one provider, after the rate limit:
``slow:<s>`` (answer normally after s seconds), ``error:<5xx>``, ``throttle:<s>`` (429 with ``Retry-After``
rounded up to whole seconds; Alibaba a 400 ``Throttling`` with ``x-acs-retry-after`` in milliseconds, as the
tea-openapi SDK reads it), ``malformed`` (200 with the answer's JSON cut in half), ``auth`` (the provider's
authentication error) and ``not-found`` (the provider's unknown-job error).

Rate limits: requests per second per provider over a sliding one-second window of *admitted* requests; a
request over the limit is answered 429 (Alibaba ``Throttling``) and counted in :meth:`over_limit`.
:meth:`requests` lists every request a provider received with its monotonic arrival time and status.
``latency_s`` delays every answer (benchmarks use 0.05).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import json
import math
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal, NamedTuple, Self
from urllib.parse import unquote

from verdict_relay.signing import (
    ACS3_ALGORITHM,
    HUAWEI_ALGORITHM,
    acs3_canonical_request,
    acs3_string_to_sign,
    huawei_canonical_request,
    huawei_string_to_sign,
    rpc_v1_string_to_sign,
)

PROVIDERS = ("huawei-video", "huawei-audio", "huawei-image-batch", "alibaba-mps", "azure-review")
"""The providers the simulator plays (``tests/unit/test_repository_files.py``: exactly the registered ones). Every
method that answers as one provider or another names the providers it knows and raises ValueError for any other:
a provider added here without its own answers must not be answered as Huawei."""
HUAWEI_APIS = ("huawei-video", "huawei-audio", "huawei-image-batch")
"""The Huawei moderation APIs: their errors have Huawei's shape (``error_code``, ``error_msg``)."""
IAM = "huawei-iam"
"""The simulated Huawei IAM endpoint: a service of its own for requests(), faults and rate limits."""
SERVICES = (*PROVIDERS, IAM)
UNROUTED = "unrouted"
"""Where requests to no known path are recorded."""

MPS_VERSION = "2014-06-18"
MAX_CLOCK_SKEW = timedelta(minutes=15)
HUAWEI_JOB_NOT_FOUND = "AIS.0030"
ALIBABA_NOT_FOUND = "InvalidParameter.ResourceNotFound"

_HUAWEI_V3 = re.compile(r"^/v3/(?P<project>[^/]+)/moderation/(?P<media>video|audio)/jobs/(?P<job>[^/]+)/?$")
_IMAGE_RESULT = re.compile(r"^/v1\.0/moderation/image/batch/?$")
_IMAGE_LIST = re.compile(r"^/v1\.0/moderation/image/batch/jobs/?$")
_IAM_TOKENS = re.compile(r"^/v3/auth/tokens/?$")
_AZURE_JOB = re.compile(r"^/contentmoderator/review/v1\.0/teams/(?P<team>[^/]+)/jobs/(?P<job>[^/]+)/?$")
_HUAWEI_DATE = "%Y%m%dT%H%M%SZ"
_ISO_Z = "%Y-%m-%dT%H:%M:%SZ"
_IMAGE_STATUSES = ("created", "running", "finish", "failed")
_MPS_STATES = ("Queuing", "Analysing", "Success", "Fail")
_VIDEO_PARTS = ("VensorCensorResult", "VideoCensorResult")
_NONCE_TTL_S = 15 * 60.0


# --- public records ---------------------------------------------------------------------------------------------


_CREDENTIAL_HEADERS: Final = ("authorization", "x-auth-token", "ocp-apim-subscription-key")


class RecordedRequest(NamedTuple):
    """One request a provider received: monotonic arrival time, method, raw target (path?query), status, and
    the header that carried its credentials (``Authorization``, ``X-Auth-Token`` or ``Ocp-Apim-Subscription-Key``;
    empty when none did)."""

    at: float
    method: str
    path: str
    status: int
    credential: str = ""


@dataclass(frozen=True)
class SimulatorCredentials:
    """The credentials the simulator accepts. Fake values, for loopback use only."""

    huawei_ak: str = "SIMULATEDHUAWEIAK0001"
    huawei_sk: str = "simulated-huawei-secret-key-0001"
    huawei_token: str = "simulated-huawei-static-token-0001"  # noqa: S105 - fake, as below
    huawei_user: str = "simulated-user"
    huawei_password: str = "simulated-password-0001"  # noqa: S105 - a fake credential the simulator accepts
    huawei_domain: str = "simulated-domain"
    huawei_project_id: str = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
    huawei_region: str = "ap-southeast-1"
    alibaba_access_key_id: str = "LTAISIMULATED0001"
    alibaba_access_key_secret: str = "simulated-alibaba-secret-0001"  # noqa: S105 - fake, as above
    alibaba_region: str = "cn-shanghai"
    azure_subscription_key: str = "simulated-azure-subscription-key-0001"
    azure_team: str = "teamA"


@dataclass(frozen=True)
class Fault:
    """A fault to inject: ``slow:<s>``, ``error:<5xx>``, ``throttle:<s>``, ``malformed``, ``auth``, ``not-found``."""

    kind: Literal["slow", "error", "throttle", "malformed", "auth", "not-found"]
    value: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Fault:
        name, _, argument = text.strip().partition(":")
        if name in ("malformed", "auth", "not-found") and not argument:
            return cls(name)  # type: ignore[arg-type]
        if name in ("slow", "throttle", "error") and argument:
            try:
                value = float(argument)
            except ValueError:
                value = -1.0
            if name == "error" and (not value.is_integer() or not 500 <= value <= 599):
                raise ValueError(f"fault {text!r}: error takes an HTTP 5xx status, e.g. error:503")
            if value >= 0:
                return cls(name, value)  # type: ignore[arg-type]
        raise ValueError(
            f"unknown fault {text!r}: expected slow:<s>, error:<5xx>, throttle:<s>, malformed, auth or not-found"
        )


# --- internal request/response shapes ---------------------------------------------------------------------------


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class _Incoming:
    method: str
    target: str
    path: str
    query: str
    headers: Mapping[str, str]
    repeated_headers: frozenset[str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def query_params(self) -> dict[str, str]:
        return _parse_params(self.query)

    def form_params(self) -> dict[str, str]:
        content_type = (self.header("Content-Type") or "").lower()
        if self.body and content_type.startswith("application/x-www-form-urlencoded"):
            return _parse_params(self.body.decode("utf-8", errors="replace"))
        return {}


def _parse_params(text: str) -> dict[str, str]:
    # As the providers' gateways read it: split on & and =, percent-decode, "+" stays a plus sign.
    params: dict[str, str] = {}
    for item in text.split("&"):
        name, _, value = item.partition("=")
        if name:
            params[unquote(name)] = unquote(value)
    return params


def _json_reply(status: int, document: Any, headers: Mapping[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(document).encode("utf-8"), dict(headers or {}))


def _huawei_error(status: int, code: str, message: str) -> _Reply:
    return _json_reply(status, {"error_code": code, "error_msg": message})


def _azure_gateway_error(status: int, code: str, message: str) -> _Reply:
    return _json_reply(status, {"error": {"code": code, "message": message}})


def _azure_not_found(message: str) -> _Reply:
    # The Review API's own APIError shape (its API reference): {"Error": {"Code", "Message"}}.
    return _json_reply(404, {"Error": {"Code": "NotFound", "Message": message}})


def _page_size(params: Mapping[str, str]) -> int | None:
    """An MPS call's ``MaximumPageSize``: 30 when absent, None when it is not a whole number within 1..300."""
    try:
        size = int(params.get("MaximumPageSize", "30"))
    except ValueError:
        return None
    return size if 1 <= size <= 300 else None


def _alibaba_error(
    status: int, code: str, message: str, host: str, headers: Mapping[str, str] | None = None
) -> _Reply:
    return _json_reply(
        status,
        {
            "RequestId": str(uuid.uuid4()).upper(),
            "HostId": host,
            "Code": code,
            "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Mts",
        },
        headers,
    )


def _parse_auth_fields(text: str) -> dict[str, str]:
    """``A=1, B=2,C=3`` -> {A: 1, B: 2, C: 3} (Huawei separates with ", ", Alibaba with ",")."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        name, _, value = item.strip().partition("=")
        if name:
            fields[name] = value
    return fields


def _within_skew(sent: datetime) -> bool:
    return abs(datetime.now(UTC) - sent) <= MAX_CLOCK_SKEW


def _parse_utc(value: str, layout: str) -> datetime | None:
    try:
        return datetime.strptime(value, layout).replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _unwrap(value: Any, inner: str) -> list[Any]:
    """An XML-style list ``{inner: [...]}`` as MPS sends it, tolerating a missing wrapper or a lone item."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if inner in value:
            items = value[inner]
            return items if isinstance(items, list) else ([] if items in (None, "") else [items])
        return [value] if value else []
    return []


# --- the HTTP server --------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can show their connection reuse
    timeout = 30  # an idle keep-alive connection is closed after this long
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        arrived = self.server.simulator.clock()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "bad Content-Length")
            return
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        repeated: set[str] = set()
        for name, value in self.headers.items():
            key = name.lower()
            if key in headers:
                repeated.add(key)
            headers[key] = value
        path, _, query = self.path.partition("?")
        incoming = _Incoming(self.command, self.path, path, query, headers, frozenset(repeated), body)
        simulator = self.server.simulator
        reply = simulator._dispatch(incoming, arrived)
        if reply.delay_s > 0 and simulator._stopping.wait(reply.delay_s):
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test run's output is not the place for an access log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], simulator: ProviderSimulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections, so their handler threads finish with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (read timeout during a slow fault) leaves a broken pipe behind: not an error.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


# --- the simulator ----------------------------------------------------------------------------------------------


class ProviderSimulator:
    """The providers' APIs over real HTTP on 127.0.0.1 (port chosen by the OS). Use as a context manager."""

    def __init__(
        self,
        credentials: SimulatorCredentials | None = None,
        *,
        rate_limits: Mapping[str, float] | None = None,
        latency_s: float = 0.0,
        timeline_page_size: int = 100,
        list_page_limit: int = 300,
        iam_token_ttl_s: float = 24 * 3600.0,
        host: str = "127.0.0.1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if latency_s < 0:
            raise ValueError("latency_s must not be negative")
        if timeline_page_size < 1 or list_page_limit < 1:
            raise ValueError("page sizes must be at least 1")
        self.credentials = credentials or SimulatorCredentials()
        self.latency_s = latency_s
        self.timeline_page_size = timeline_page_size
        self.list_page_limit = list_page_limit
        self.iam_token_ttl_s = iam_token_ttl_s
        self.clock = clock
        """Monotonic seconds: when a request arrived (its rate window, its record) and how old a nonce is."""
        self._host = host
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._jobs: dict[str, dict[str, Any]] = {provider: {} for provider in PROVIDERS}
        self._faults: dict[str, deque[list[Any]]] = {service: deque() for service in SERVICES}
        self._requests: dict[str, list[RecordedRequest]] = {service: [] for service in (*SERVICES, UNROUTED)}
        self._admitted: dict[str, deque[float]] = {service: deque() for service in SERVICES}
        self._over_limit: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self._rate_limits: dict[str, float] = {}
        for service, limit in (rate_limits or {}).items():
            self.set_rate_limit(service, limit)
        self._nonces: dict[str, float] = {}
        self._issued_tokens: dict[str, datetime] = {}
        self._page_tokens: dict[str, tuple[str, str, int]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        self._server = _Server((self._host, 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="provider-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping through latency or a slow fault
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the endpoint of every simulated provider (and of IAM)."""
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() first")
        port = self._server.server_address[1]
        return f"http://{self._host}:{port}"

    # --- configuration and state --------------------------------------------------------------------------------

    def provider_entry(
        self, provider: str, *, auth: Literal["aksk", "token", "iam"] = "aksk", **overrides: Any
    ) -> dict[str, Any]:
        """A providers-document entry (``ProviderSettings`` fields) pointing ``provider`` at this simulator.

        ``auth`` picks the Huawei credentials (AK/SK, static token or IAM user); Alibaba takes
        ``signature="HMAC-SHA1"`` through ``credentials`` in ``overrides``. ``overrides`` are merged on top
        (``credentials`` key by key).
        """
        creds = self.credentials
        entry: dict[str, Any]
        if provider in HUAWEI_APIS:
            huawei_credentials = {
                "aksk": {"ak": creds.huawei_ak, "sk": creds.huawei_sk},
                "token": {"token": creds.huawei_token},
                "iam": {
                    "user_name": creds.huawei_user,
                    "password": creds.huawei_password,
                    "domain_name": creds.huawei_domain,
                    "iam_endpoint": self.base_url,
                },
            }[auth]
            entry = {
                "endpoint": self.base_url,
                "project_id": creds.huawei_project_id,
                "region": creds.huawei_region,
                "credentials": huawei_credentials,
            }
        elif provider == "alibaba-mps":
            entry = {
                "endpoint": self.base_url,
                "region": creds.alibaba_region,
                "credentials": {
                    "access_key_id": creds.alibaba_access_key_id,
                    "access_key_secret": creds.alibaba_access_key_secret,
                },
            }
        elif provider == "azure-review":
            entry = {
                "endpoint": self.base_url,
                "team": creds.azure_team,
                "credentials": {"subscription_key": creds.azure_subscription_key},
            }
        else:
            raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
        credentials_override = overrides.pop("credentials", None)
        entry.update(overrides)
        if credentials_override:
            entry["credentials"] = {**entry["credentials"], **credentials_override}
        return entry

    def put_job(self, provider: str, job_id: str, body: Mapping[str, Any]) -> None:
        """Store the JSON the provider's API returns for ``job_id`` (replacing any earlier state)."""
        self._check_provider(provider)
        with self._lock:
            self._jobs[provider][job_id] = copy.deepcopy(dict(body))

    def remove_job(self, provider: str, job_id: str) -> None:
        """Forget a job: the provider now answers as for an unknown (expired) one."""
        self._check_provider(provider)
        with self._lock:
            self._jobs[provider].pop(job_id, None)

    def job(self, provider: str, job_id: str) -> dict[str, Any] | None:
        """A copy of the stored body, or None."""
        self._check_provider(provider)
        with self._lock:
            body = self._jobs[provider].get(job_id)
            return copy.deepcopy(body) if body is not None else None

    def inject(self, provider: str, fault: str, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests of ``provider`` (after those already queued)."""
        self._check_service(provider)
        if times < 1:
            raise ValueError("times must be at least 1")
        parsed = Fault.parse(fault)
        with self._lock:
            self._faults[provider].append([parsed, times])

    def set_rate_limit(self, provider: str, per_second: float | None) -> None:
        """Requests per second ``provider`` admits (sliding one-second window); None removes the limit.

        The window holds ``max(1, floor(per_second))`` requests: below 1/s the limit is one per second.
        """
        self._check_service(provider)
        with self._lock:
            if per_second is None:
                self._rate_limits.pop(provider, None)
            elif per_second > 0:
                self._rate_limits[provider] = float(per_second)
            else:
                raise ValueError("a rate limit must be positive")

    def requests(self, provider: str) -> list[RecordedRequest]:
        """Every request ``provider`` received so far, in arrival order."""
        if provider != UNROUTED:
            self._check_service(provider)
        with self._lock:
            return sorted(self._requests[provider])

    def over_limit(self, provider: str) -> int:
        """How many requests ``provider`` refused for exceeding its rate limit."""
        self._check_service(provider)
        with self._lock:
            return self._over_limit[provider]

    def clear_requests(self) -> None:
        """Forget the recorded requests and over-limit counts (rate windows keep running)."""
        with self._lock:
            for records in self._requests.values():
                records.clear()
            for service in self._over_limit:
                self._over_limit[service] = 0

    def revoke_tokens(self) -> None:
        """Invalidate every token IAM issued so far (as a password change would): clients must fetch anew."""
        with self._lock:
            self._issued_tokens.clear()

    @staticmethod
    def _check_provider(provider: str) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")

    @staticmethod
    def _check_service(service: str) -> None:
        if service not in SERVICES:
            raise ValueError(f"unknown provider {service!r}; expected one of {', '.join(SERVICES)}")

    # --- dispatch -----------------------------------------------------------------------------------------------

    def _dispatch(self, incoming: _Incoming, arrived: float) -> _Reply:
        service = _service_for(incoming)
        if service is None:
            reply = _json_reply(404, {"error": "no such path on the provider simulator"})
            self._record(UNROUTED, arrived, incoming, reply.status)
            return reply
        fault: Fault | None = None
        reply_or_none: _Reply | None = None
        with self._lock:
            wait = self._rate_limited(service, arrived)
            if wait is not None:
                self._over_limit[service] += 1
                reply_or_none = self._throttled(service, incoming, wait)
            else:
                fault = self._next_fault(service)
        reply = reply_or_none or self._faulted(service, incoming, fault)
        reply.delay_s += self.latency_s
        self._record(service, arrived, incoming, reply.status)
        return reply

    def _record(self, service: str, arrived: float, incoming: _Incoming, status: int) -> None:
        with self._lock:
            credential = next(filter(None, map(incoming.header, _CREDENTIAL_HEADERS)), "")
            self._requests[service].append(
                RecordedRequest(arrived, incoming.method, incoming.target, status, credential)
            )

    def _rate_limited(self, service: str, now: float) -> float | None:
        """None when the request is admitted (and counted), else the seconds until the window has room."""
        limit = self._rate_limits.get(service)
        if limit is None:
            return None
        window = self._admitted[service]
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= max(1, math.floor(limit + 1e-9)):
            return max(0.0, window[0] + 1.0 - now)
        window.append(now)
        return None

    def _next_fault(self, service: str) -> Fault | None:
        queue = self._faults[service]
        if not queue:
            return None
        entry = queue[0]
        entry[1] -= 1
        if entry[1] <= 0:
            queue.popleft()
        fault: Fault = entry[0]
        return fault

    def _faulted(self, service: str, incoming: _Incoming, fault: Fault | None) -> _Reply:
        if fault is None:
            return self._serve(service, incoming)
        if fault.kind == "slow":
            reply = self._serve(service, incoming)
            reply.delay_s += fault.value
            return reply
        if fault.kind == "malformed":
            reply = self._serve(service, incoming)
            # A body cut short mid-JSON, delivered in full as far as HTTP is concerned.
            return _Reply(200, reply.body[: max(1, len(reply.body) // 2)], {})
        if fault.kind == "error":
            return self._server_error(service, incoming, int(fault.value))
        if fault.kind == "throttle":
            return self._throttled(service, incoming, fault.value)
        if fault.kind == "auth":
            return self._auth_error(service, incoming)
        return self._not_found(service, incoming)

    # --- provider-shaped errors ---------------------------------------------------------------------------------

    def _host_id(self, incoming: _Incoming) -> str:
        return incoming.header("Host") or f"mts.{self.credentials.alibaba_region}.aliyuncs.com"

    def _throttled(self, service: str, incoming: _Incoming, retry_after_s: float) -> _Reply:
        seconds = str(max(0, math.ceil(retry_after_s)))
        if service == "alibaba-mps":
            # MPS answers a throttle with HTTP 400, as tea-openapi's own test servers do: the header says so.
            return _alibaba_error(
                400,
                "Throttling",
                "Request was denied due to request throttling.",
                self._host_id(incoming),
                {"x-acs-retry-after": str(max(1, math.ceil(retry_after_s * 1000)))},
            )
        if service == "azure-review":
            reply = _azure_gateway_error(
                429, "RateLimitExceeded", f"Rate limit is exceeded. Try again in {seconds} seconds."
            )
        elif service in (*HUAWEI_APIS, IAM):
            reply = _huawei_error(429, "APIG.0308", "The throttling threshold has been reached")
        else:
            raise _not_played(service)
        reply.headers["Retry-After"] = seconds
        return reply

    def _server_error(self, service: str, incoming: _Incoming, status: int) -> _Reply:
        if service == "alibaba-mps":
            if status == 503:
                code, message = (
                    "ServiceUnavailable",
                    "The request has failed due to a temporary failure of the server.",
                )
            else:
                code, message = (
                    "InternalError",
                    "The request processing has failed due to some unknown error.",
                )
            return _alibaba_error(status, code, message, self._host_id(incoming))
        if service == "azure-review":
            code = "ServiceUnavailable" if status == 503 else "InternalServerError"
            return _azure_gateway_error(
                status, code, "The service is temporarily unable to process the request."
            )
        if service not in (*HUAWEI_APIS, IAM):
            raise _not_played(service)
        if status == 500:
            return _huawei_error(
                500, "AIS.0003", "Failed to complete the request because of an internal service error."
            )
        return _huawei_error(status, "APIG.0201", "Backend unavailable")

    def _auth_error(self, service: str, incoming: _Incoming, detail: str | None = None) -> _Reply:
        if service == "alibaba-mps":
            return _alibaba_error(
                400,
                "SignatureDoesNotMatch",
                detail or "Specified signature does not match our calculation.",
                self._host_id(incoming),
            )
        if service == "azure-review":
            return _azure_gateway_error(
                401,
                "Unauthorized",
                "Access denied due to invalid subscription key. Make sure to provide a valid key for an active "
                "subscription.",
            )
        if service == IAM:
            return _json_reply(
                401,
                {
                    "error": {
                        "code": 401,
                        "message": "The username or password is wrong.",
                        "title": "Unauthorized",
                    }
                },
            )
        if service not in HUAWEI_APIS:
            raise _not_played(service)
        return _huawei_error(
            401, "APIG.0301", f"Incorrect IAM authentication information: {detail or 'refused'}"
        )

    def _not_found(self, service: str, incoming: _Incoming) -> _Reply:
        if service == "alibaba-mps":
            return _alibaba_error(
                404, ALIBABA_NOT_FOUND, "The resource operated cannot be found", self._host_id(incoming)
            )
        if service == "azure-review":
            return _azure_not_found("Job not found.")
        if service == IAM:
            return _json_reply(404, {"error": {"code": 404, "message": "Not found", "title": "Not Found"}})
        if service not in HUAWEI_APIS:
            raise _not_played(service)
        return _huawei_error(400, HUAWEI_JOB_NOT_FOUND, "Job not found")

    # --- serving ------------------------------------------------------------------------------------------------

    def _serve(self, service: str, incoming: _Incoming) -> _Reply:
        if service == IAM:
            return self._serve_iam(incoming)
        if service == "alibaba-mps":
            return self._serve_alibaba(incoming)
        if service == "azure-review":
            return self._serve_azure(incoming)
        if service in HUAWEI_APIS:
            return self._serve_huawei(service, incoming)
        raise _not_played(service)

    # Huawei ------------------------------------------------------------------------------------------------------

    def _serve_huawei(self, service: str, incoming: _Incoming) -> _Reply:
        if incoming.method != "GET":
            return _huawei_error(
                405, "APIG.0101", "The API does not exist or has not been published in the environment"
            )
        refused = self._huawei_auth_problem(incoming)
        if refused is not None:
            return refused
        if service == "huawei-image-batch":
            return self._serve_image_batch(incoming)
        match = _HUAWEI_V3.match(incoming.path)
        if match is None or unquote(match["project"]) != self.credentials.huawei_project_id:
            return _huawei_error(
                404, "APIG.0101", "The API does not exist or has not been published in the environment"
            )
        with self._lock:
            body = self._jobs[service].get(unquote(match["job"]))
            if body is None:
                return _huawei_error(400, HUAWEI_JOB_NOT_FOUND, "Job not found")
            return _json_reply(200, body)

    def _serve_image_batch(self, incoming: _Incoming) -> _Reply:
        params = incoming.query_params()
        with self._lock:
            jobs = list(self._jobs["huawei-image-batch"].items())
        if _IMAGE_LIST.match(incoming.path):
            status = params.get("status")
            if status is not None and status not in _IMAGE_STATUSES:
                return _huawei_error(400, "AIS.0012", "The request parameter is not supported.")
            listed = []
            for _, body in jobs:
                result = body.get("result")
                if isinstance(result, dict) and (status is None or result.get("status") == status):
                    listed.append(
                        {key: result.get(key) for key in ("job_id", "status", "create_time", "update_time")}
                    )
            return _json_reply(200, {"result": listed})
        job_id = params.get("job_id")
        if not job_id:
            return _huawei_error(
                400, "AIS.0011", "Lack the request parameter, or the request parameter is empty."
            )
        body = dict(jobs).get(job_id)
        if body is None:
            return _huawei_error(400, HUAWEI_JOB_NOT_FOUND, "Job not found")
        return _json_reply(200, body)

    def _huawei_auth_problem(self, incoming: _Incoming) -> _Reply | None:
        token = incoming.header("X-Auth-Token")
        if token is not None:
            if self._token_valid(token):
                return None
            return _huawei_error(401, "APIG.0307", "The token must be updated.")
        authorization = incoming.header("Authorization")
        if authorization is None:
            return _huawei_error(401, "APIG.0301", "Incorrect IAM authentication information: no credentials")
        problem = self._huawei_signature_problem(incoming, authorization)
        if problem is not None:
            return _huawei_error(401, "APIG.0301", f"Incorrect IAM authentication information: {problem}")
        return None

    def _huawei_signature_problem(self, incoming: _Incoming, authorization: str) -> str | None:
        algorithm, _, rest = authorization.partition(" ")
        if algorithm != HUAWEI_ALGORITHM:
            return "unsupported authorization scheme"
        fields = _parse_auth_fields(rest)
        access, signed_headers, signature = (
            fields.get("Access"),
            fields.get("SignedHeaders"),
            fields.get("Signature"),
        )
        if not access or not signed_headers or not signature:
            return "malformed Authorization header"
        if not hmac.compare_digest(access, self.credentials.huawei_ak):
            return "unknown access key"
        names = signed_headers.split(";")
        if "x-sdk-date" not in names or "host" not in names:
            return "X-Sdk-Date and Host must be signed"
        signed: dict[str, str] = {}
        for name in names:
            value = incoming.header(name)
            if value is None or name in incoming.repeated_headers:
                return f"signed header {name} missing or repeated"
            signed[name] = value
        sent = _parse_utc(signed["x-sdk-date"], _HUAWEI_DATE)
        if sent is None or not _within_skew(sent):
            return "X-Sdk-Date is unreadable or more than 15 minutes from server time"
        canonical, recomputed = huawei_canonical_request(
            incoming.method, incoming.path, incoming.query, signed, incoming.body
        )
        if recomputed != signed_headers:
            return "SignedHeaders is not the sorted, lower-case list of signed headers"
        expected = hmac.new(
            self.credentials.huawei_sk.encode("utf-8"),
            huawei_string_to_sign(canonical, signed["x-sdk-date"]).encode("utf-8"),
            hashlib.sha256,
        ).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "verify aksk signature fail"
        return None

    def _token_valid(self, token: str) -> bool:
        if hmac.compare_digest(token, self.credentials.huawei_token):
            return True
        with self._lock:
            expires_at = self._issued_tokens.get(token)
        return expires_at is not None and expires_at > datetime.now(UTC)

    def _serve_iam(self, incoming: _Incoming) -> _Reply:
        if incoming.method != "POST":
            return _json_reply(
                405, {"error": {"code": 405, "message": "Method not allowed", "title": "Not Allowed"}}
            )
        try:
            document = json.loads(incoming.body.decode("utf-8"))
            identity = document["auth"]["identity"]
            user = identity["password"]["user"]
            methods, name, password = identity["methods"], user["name"], user["password"]
            domain = user["domain"]["name"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            return _json_reply(
                400,
                {"error": {"code": 400, "message": "The request body is invalid.", "title": "Bad Request"}},
            )
        creds = self.credentials
        valid = (
            isinstance(methods, list)
            and "password" in methods
            and all(isinstance(value, str) for value in (name, password, domain))
            and hmac.compare_digest(str(name), creds.huawei_user)
            and hmac.compare_digest(str(password), creds.huawei_password)
            and hmac.compare_digest(str(domain), creds.huawei_domain)
        )
        if not valid:
            return self._auth_error(IAM, incoming)
        issued_at = datetime.now(UTC)
        expires_at = issued_at + timedelta(seconds=self.iam_token_ttl_s)
        token = f"MIIsimulated{uuid.uuid4().hex}"
        with self._lock:
            self._issued_tokens[token] = expires_at
        body = {
            "token": {
                "expires_at": f"{expires_at:%Y-%m-%dT%H:%M:%S.%f}Z",
                "issued_at": f"{issued_at:%Y-%m-%dT%H:%M:%S.%f}Z",
                "methods": ["password"],
                "user": {"name": name, "domain": {"name": domain}},
            }
        }
        scope = document["auth"].get("scope") if isinstance(document["auth"], dict) else None
        if isinstance(scope, dict) and isinstance(scope.get("project"), dict):
            body["token"]["project"] = scope["project"]
        return _json_reply(201, body, {"X-Subject-Token": token})

    # Alibaba -----------------------------------------------------------------------------------------------------

    def _serve_alibaba(self, incoming: _Incoming) -> _Reply:
        query = incoming.query_params()
        params = {**query, **incoming.form_params()}
        refused = self._alibaba_auth_problem(incoming, query, params)
        if refused is not None:
            return refused
        host = self._host_id(incoming)
        action = params.get("Action") or incoming.header("x-acs-action")
        version = params.get("Version") or incoming.header("x-acs-version")
        if version != MPS_VERSION:
            return _alibaba_error(400, "InvalidVersion", "Specified parameter Version is not valid.", host)
        if action == "QueryMediaCensorJobList":
            return self._mps_job_list(params, host)
        if action == "QueryMediaCensorJobDetail":
            return self._mps_job_detail(params, host)
        return _alibaba_error(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            host,
        )

    def _alibaba_auth_problem(
        self, incoming: _Incoming, query: Mapping[str, str], params: Mapping[str, str]
    ) -> _Reply | None:
        host = self._host_id(incoming)
        authorization = incoming.header("Authorization")
        if authorization is not None and authorization.startswith(f"{ACS3_ALGORITHM} "):
            problem = self._acs3_problem(incoming, query, authorization)
        elif "Signature" in params:
            problem = self._rpc_v1_problem(incoming, params)
        else:
            problem = (
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
                None,
            )
        if problem is None:
            return None
        code, message, nonce = problem
        if code is None:
            if nonce is not None:
                with self._lock:
                    now = self.clock()
                    if nonce in self._nonces:
                        return _alibaba_error(
                            400, "SignatureNonceUsed", "Specified signature nonce was used already.", host
                        )
                    if len(self._nonces) > 10_000:
                        self._nonces = {
                            key: at for key, at in self._nonces.items() if now - at < _NONCE_TTL_S
                        }
                    self._nonces[nonce] = now
            return None
        status = 404 if code == "InvalidAccessKeyId.NotFound" else 400
        return _alibaba_error(status, code, message, host)

    def _acs3_problem(
        self, incoming: _Incoming, query: Mapping[str, str], authorization: str
    ) -> tuple[str | None, str, str | None]:
        fields = _parse_auth_fields(authorization.removeprefix(f"{ACS3_ALGORITHM} "))
        credential, signed_headers, signature = (
            fields.get("Credential"),
            fields.get("SignedHeaders"),
            fields.get("Signature"),
        )
        if not credential or not signed_headers or not signature:
            return "IncompleteSignature", "The request signature does not conform to Aliyun standards.", None
        if not hmac.compare_digest(credential, self.credentials.alibaba_access_key_id):
            return "InvalidAccessKeyId.NotFound", "Specified access key is not found.", None
        names = signed_headers.split(";")
        required = {
            "host",
            "x-acs-action",
            "x-acs-version",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
        }
        if not required.issubset(names):
            return (
                "IncompleteSignature",
                f"These headers must be signed: {', '.join(sorted(required))}.",
                None,
            )
        signed: dict[str, str] = {}
        for name in names:
            value = incoming.header(name)
            if value is None or name in incoming.repeated_headers:
                return "IncompleteSignature", f"Signed header {name} is missing or repeated.", None
            signed[name] = value
        payload_hash = hashlib.sha256(incoming.body).hexdigest()
        canonical, recomputed = acs3_canonical_request(
            incoming.method, incoming.path, query, signed, payload_hash
        )
        expected = hmac.new(
            self.credentials.alibaba_access_key_secret.encode("utf-8"),
            acs3_string_to_sign(canonical).encode("utf-8"),
            hashlib.sha256,
        ).hexdigest()
        if (
            recomputed != signed_headers
            or signed["x-acs-content-sha256"] != payload_hash
            or not hmac.compare_digest(expected, signature)
        ):
            return "SignatureDoesNotMatch", "Specified signature does not match our calculation.", None
        sent = _parse_utc(signed["x-acs-date"], _ISO_Z)
        if sent is None or not _within_skew(sent):
            return "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", None
        return None, "", signed["x-acs-signature-nonce"]

    def _rpc_v1_problem(
        self, incoming: _Incoming, params: Mapping[str, str]
    ) -> tuple[str | None, str, str | None]:
        access_key_id = params.get("AccessKeyId", "")
        if not hmac.compare_digest(access_key_id, self.credentials.alibaba_access_key_id):
            return "InvalidAccessKeyId.NotFound", "Specified access key is not found.", None
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            return "IncompleteSignature", "SignatureMethod must be HMAC-SHA1 and SignatureVersion 1.0.", None
        unsigned = {name: value for name, value in params.items() if name != "Signature"}
        key = f"{self.credentials.alibaba_access_key_secret}&".encode()
        digest = hmac.new(key, rpc_v1_string_to_sign(incoming.method, unsigned).encode("utf-8"), hashlib.sha1)
        expected = base64.b64encode(digest.digest()).decode("ascii")
        if not hmac.compare_digest(expected, params["Signature"]):
            return "SignatureDoesNotMatch", "Specified signature does not match our calculation.", None
        sent = _parse_utc(params.get("Timestamp", ""), _ISO_Z)
        if sent is None or not _within_skew(sent):
            return "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", None
        nonce = params.get("SignatureNonce")
        if not nonce:
            return "MissingSignatureNonce", "SignatureNonce is mandatory for this action.", None
        return None, "", nonce

    def _mps_job_list(self, params: Mapping[str, str], host: str) -> _Reply:
        request_id = str(uuid.uuid4()).upper()
        size = _page_size(params)
        if size is None:
            return _alibaba_error(
                400, "InvalidParameter", "Specified parameter MaximumPageSize is not valid.", host
            )
        size = min(size, self.list_page_limit)
        if "JobIds" in params:
            # Paged like any listing: each page answers the next `size` of the ids asked for.
            ids = [job_id.strip() for job_id in params["JobIds"].split(",") if job_id.strip()]
            with self._lock:
                offset = self._list_offset(params, f"ids|{params['JobIds']}")
                if offset is None:
                    return _alibaba_error(
                        400, "InvalidParameter", "Specified parameter NextPageToken is not valid.", host
                    )
                found: list[dict[str, Any]] = []
                unknown: list[str] = []
                for job_id in ids[offset : offset + size]:
                    body = self._jobs["alibaba-mps"].get(job_id)
                    if body is None:
                        unknown.append(job_id)
                    else:
                        found.append(self._timeline_page(job_id, body, 0))
                reply: dict[str, Any] = {
                    "RequestId": request_id,
                    "MediaCensorJobList": {"MediaCensorJob": found},
                    "NonExistIds": {"String": unknown},
                }
                if offset + size < len(ids):
                    reply["NextPageToken"] = self._new_page_token(
                        "list", f"ids|{params['JobIds']}", offset + size
                    )
            return _json_reply(200, reply)
        state = params.get("State", "All")
        if state != "All" and state not in _MPS_STATES:
            return _alibaba_error(400, "InvalidParameter", "Specified parameter State is not valid.", host)
        bounds = []
        for name in ("StartOfJobCreatedTimeRange", "EndOfJobCreatedTimeRange"):
            value = params.get(name)
            parsed = _parse_utc(value, _ISO_Z) if value else None
            if value and parsed is None:
                return _alibaba_error(
                    400, "InvalidParameter", f"Specified parameter {name} is not valid.", host
                )
            bounds.append(parsed)
        listing_key = f"{state}|{params.get('StartOfJobCreatedTimeRange', '')}|{params.get('EndOfJobCreatedTimeRange', '')}"
        with self._lock:
            offset = self._list_offset(params, listing_key)
            if offset is None:
                return _alibaba_error(
                    400, "InvalidParameter", "Specified parameter NextPageToken is not valid.", host
                )
            start, end = bounds
            selected = []
            for job_id, body in self._jobs["alibaba-mps"].items():
                created = _parse_iso(body.get("CreationTime"))
                if state != "All" and body.get("State") != state:
                    continue
                if (start or end) and created is None:
                    continue
                if created is not None and ((start and created < start) or (end and created >= end)):
                    continue
                selected.append((created or datetime.min.replace(tzinfo=UTC), job_id, body))
            selected.sort(key=lambda item: (item[0], item[1]))
            page = [
                self._timeline_page(job_id, body, 0) for _, job_id, body in selected[offset : offset + size]
            ]
            document: dict[str, Any] = {
                "RequestId": request_id,
                "MediaCensorJobList": {"MediaCensorJob": page},
            }
            if offset + size < len(selected):
                document["NextPageToken"] = self._new_page_token("list", listing_key, offset + size)
        return _json_reply(200, document)

    def _list_offset(self, params: Mapping[str, str], listing_key: str) -> int | None:
        """Where a list page starts: 0, or the offset its NextPageToken was handed out for (None: not valid)."""
        token = params.get("NextPageToken")
        if not token:
            return 0
        entry = self._page_tokens.get(token)
        if entry is None or entry[:2] != ("list", listing_key):
            return None
        return entry[2]

    def _mps_job_detail(self, params: Mapping[str, str], host: str) -> _Reply:
        job_id = params.get("JobId")
        if not job_id:
            return _alibaba_error(400, "MissingParameter", "JobId is mandatory for this action.", host)
        size = _page_size(params)
        if size is None:
            return _alibaba_error(
                400, "InvalidParameter", "Specified parameter MaximumPageSize is not valid.", host
            )
        with self._lock:
            body = self._jobs["alibaba-mps"].get(job_id)
            if body is None:
                return _alibaba_error(404, ALIBABA_NOT_FOUND, "The resource operated cannot be found", host)
            offset = 0
            token = params.get("NextPageToken")
            if token:
                entry = self._page_tokens.get(token)
                if entry is None or entry[:2] != ("timeline", job_id):
                    return _alibaba_error(
                        400, "InvalidParameter", "Specified parameter NextPageToken is not valid.", host
                    )
                offset = entry[2]
            page = self._timeline_page(job_id, body, offset, size)
        return _json_reply(200, {"RequestId": str(uuid.uuid4()).upper(), "MediaCensorJobDetail": page})

    def _timeline_page(
        self, job_id: str, body: Mapping[str, Any], offset: int, size: int | None = None
    ) -> dict[str, Any]:
        """The job with one page of its video timeline (and the token for the next page, if any): ``size``
        entries (a detail call's ``MaximumPageSize``), or ``timeline_page_size`` (a list call's first page)."""
        size = size or self.timeline_page_size
        view = copy.deepcopy(dict(body))
        part = next((view[key] for key in _VIDEO_PARTS if isinstance(view.get(key), dict)), None)
        if part is None:
            return view
        entries = _unwrap(part.get("VideoTimelines"), "VideoTimeline")
        if offset == 0 and len(entries) <= size:
            return view
        end = offset + size
        part["VideoTimelines"] = {"VideoTimeline": entries[offset:end]}
        if end < len(entries):
            part["NextPageToken"] = self._new_page_token("timeline", job_id, end)
        else:
            part.pop("NextPageToken", None)
        return view

    def _new_page_token(self, kind: str, key: str, offset: int) -> str:
        token = uuid.uuid4().hex
        with self._lock:
            self._page_tokens[token] = (kind, key, offset)
        return token

    # Azure -------------------------------------------------------------------------------------------------------

    def _serve_azure(self, incoming: _Incoming) -> _Reply:
        if incoming.method != "GET":
            return _azure_gateway_error(405, "MethodNotAllowed", "The method is not allowed.")
        key = incoming.header("Ocp-Apim-Subscription-Key")
        if key is None or not hmac.compare_digest(key, self.credentials.azure_subscription_key):
            return self._auth_error("azure-review", incoming)
        match = _AZURE_JOB.match(incoming.path)
        if match is None or unquote(match["team"]) != self.credentials.azure_team:
            return _azure_not_found("Team not found.")
        with self._lock:
            body = self._jobs["azure-review"].get(unquote(match["job"]))
            if body is None:
                return _azure_not_found("Job not found.")
            return _json_reply(200, body)


def _not_played(service: str) -> ValueError:
    return ValueError(f"the simulator does not play {service!r}: add its answers to local/simulator.py")


def _service_for(incoming: _Incoming) -> str | None:
    path = incoming.path
    match = _HUAWEI_V3.match(path)
    if match is not None:
        return f"huawei-{match['media']}"
    if _IMAGE_RESULT.match(path) or _IMAGE_LIST.match(path):
        return "huawei-image-batch"
    if _IAM_TOKENS.match(path):
        return IAM
    if _AZURE_JOB.match(path):
        return "azure-review"
    if path == "/" and incoming.method in ("GET", "POST"):
        return "alibaba-mps"
    return None


# --- realistic bodies -------------------------------------------------------------------------------------------


def _utc(value: datetime | None, default: datetime | None = None) -> datetime:
    moment = value or default or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC)


def _huawei_time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def huawei_video_job(
    job_id: str,
    status: Literal["running", "succeeded", "failed"] = "succeeded",
    suggestion: Literal["pass", "review", "block"] = "block",
    *,
    frames: int = 2,
    url: str = "https://media-bucket.obs.ap-southeast-1.myhuaweicloud.com/uploads/clip.mp4",
    created: datetime | None = None,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """A Huawei v3 video job as ``GET .../moderation/video/jobs/{job_id}`` returns it (the shape of
    ``events/providers/huawei-video/succeeded.json``).

    ``result`` only when ``succeeded``: for ``review``/``block``, ``frames`` image frames (one every 5 s, each
    with one ``porn`` detail) and one audio clip; for ``pass``, no details. A ``failed`` job carries no reason,
    as Huawei documents none.
    """
    created_at = _utc(created)
    updated_at = _utc(updated, created_at + timedelta(seconds=30))
    body: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "job_id": job_id,
        "status": status,
        "request_params": {
            "data": {"url": url, "frame_interval": 5},
            "event_type": "default",
            "image_categories": ["porn", "terrorism", "image_text"],
            "audio_categories": ["porn", "ad", "moan", "abuse"],
        },
        "create_time": _huawei_time(created_at),
        "update_time": _huawei_time(updated_at),
    }
    if status == "succeeded":
        flagged = suggestion != "pass"
        body["result"] = {
            "suggestion": suggestion,
            "image_detail": [
                {
                    "suggestion": suggestion,
                    "category": "porn",
                    "time": float(index * 5),
                    "detail": [
                        {
                            "confidence": 0.91,
                            "category": "porn",
                            "suggestion": suggestion,
                            "label": "pornography",
                        }
                    ],
                }
                for index in range(frames if flagged else 0)
            ],
            "audio_detail": [
                {
                    "suggestion": suggestion,
                    "label": "abuse",
                    "audio_text": "you are an idiot",
                    "start_time": 1.0,
                    "end_time": 3.5,
                    "detail": [{"confidence": 0.88, "label": "abuse", "suggestion": suggestion}],
                }
            ]
            if flagged
            else [],
        }
    return body


def huawei_audio_job(
    job_id: str,
    status: Literal["running", "succeeded", "failed"] = "succeeded",
    suggestion: Literal["pass", "review", "block"] = "review",
    *,
    segments: int = 1,
    url: str = "https://media-bucket.obs.ap-southeast-1.myhuaweicloud.com/uploads/podcast.mp3",
    created: datetime | None = None,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """A Huawei v3 audio job (``.../moderation/audio/jobs/{job_id}``): ``segments`` flagged spans of 5 s when
    the suggestion is review or block, none for pass."""
    created_at = _utc(created)
    updated_at = _utc(updated, created_at + timedelta(seconds=25))
    body: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "job_id": job_id,
        "status": status,
        "request_params": {
            "data": {"url": url},
            "event_type": "default",
            "categories": ["porn", "ad", "abuse"],
        },
        "create_time": _huawei_time(created_at),
        "update_time": _huawei_time(updated_at),
    }
    if status == "succeeded":
        body["result"] = {
            "suggestion": suggestion,
            "audio_text": "welcome back ... buy followers at our site",
            "details": [
                {
                    "start_time": float(index * 10),
                    "end_time": float(index * 10 + 5),
                    "suggestion": suggestion,
                    "label": "ad",
                    "audio_text": "buy followers at our site",
                    "segments": [{"segment": "buy followers"}],
                }
                for index in range(segments if suggestion != "pass" else 0)
            ],
        }
    return body


ImageItem = Mapping[str, Any] | tuple[str, str]
"""A batch item: the item object as Huawei returns it, or ``(url, suggestion)`` with suggestion pass, review,
block, or ``error`` for an image that failed on its own."""


def huawei_image_batch_job(
    job_id: str,
    status: Literal["created", "running", "finish", "failed"] = "finish",
    items: Sequence[ImageItem] = (),
    *,
    created: datetime | None = None,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """A Huawei v1.0 image batch job as ``GET /v1.0/moderation/image/batch?job_id=`` returns it:
    ``{"result": {job_id, status, create_time, update_time, items}}`` (items only once finished or failed).

    ``(url, "block")`` becomes an item with a ``porn`` detail list (the corrected shape: a list per
    category) and ``category_suggestions``; ``(url, "error")`` an item with its own ``error_code``.
    """
    created_at = _utc(created)
    updated_at = _utc(updated, created_at + timedelta(seconds=10))
    result: dict[str, Any] = {
        "job_id": job_id,
        "status": status,
        "create_time": f"{created_at:%Y-%m-%dT%H:%M:%SZ}",
        "update_time": f"{updated_at:%Y-%m-%dT%H:%M:%SZ}",
    }
    if status in ("finish", "failed"):
        result["items"] = [_image_item(item) for item in items]
    return {"result": result}


def _image_item(item: ImageItem) -> dict[str, Any]:
    if not isinstance(item, tuple):
        return dict(item)
    url, suggestion = item
    if suggestion == "error":
        return {"url": url, "error_code": "AIS.0103", "error_msg": "The image could not be downloaded."}
    confidence = {"pass": 0.02, "review": 0.62, "block": 0.97}[suggestion]
    return {
        "url": url,
        "suggestion": suggestion,
        "category_suggestions": {"porn": suggestion, "terrorism": "pass"},
        "detail": {
            "porn": [
                {"label": "porn", "confidence": confidence},
                {"label": "normal", "confidence": 1 - confidence},
            ],
            "terrorism": [{"label": "normal", "confidence": 0.99}],
        },
    }


def alibaba_job(
    job_id: str,
    state: Literal["Queuing", "Analysing", "Success", "Fail"] = "Success",
    suggestion: Literal["pass", "review", "block"] = "pass",
    *,
    timeline_entries: int = 0,
    created: datetime | None = None,
    finished: datetime | None = None,
    user_data: str | None = None,
    bucket: str = "media-bucket",
    object_key: str = "uploads/clip.mp4",
) -> dict[str, Any]:
    """An MPS ``MediaCensorJob`` object (as in ``events/providers/alibaba-mps/job-list.json``) for
    ``put_job("alibaba-mps", ...)``.

    A ``Success`` job has a cover result, title and description results, and a video result with one
    job-level result plus ``timeline_entries`` frames (``Timestamp`` every 5 s, ``Object``
    ``output00000.jpg``, ...; every tenth frame carries the job's suggestion, the others pass). ``Rate`` is a
    string "0".."100", as MPS sends it. A ``Fail`` job has ``Code`` and ``Message``.
    """
    created_at = _utc(created)
    body: dict[str, Any] = {
        "JobId": job_id,
        "State": state,
        "CreationTime": f"{created_at:%Y-%m-%dT%H:%M:%SZ}",
        "Input": {"Bucket": bucket, "Location": "oss-cn-shanghai", "Object": object_key},
        "PipelineId": "c5b30b7c0d0e4a0abde1d5f9e7510000",
    }
    if user_data is not None:
        body["UserData"] = user_data
    if state in ("Success", "Fail"):
        body["FinishTime"] = f"{_utc(finished, created_at + timedelta(minutes=2)):%Y-%m-%dT%H:%M:%SZ}"
    if state == "Fail":
        body["Code"] = "InternalError"
        body["Message"] = "The media censor job failed: the input file could not be read."
    if state != "Success":
        return body
    flagged_rate = {"pass": "0.5", "review": "72.5", "block": "99.9"}[suggestion]
    body["Suggestion"] = suggestion
    body["CoverImageCensorResults"] = {
        "CoverImageCensorResult": [
            {
                "Object": "covers/cover-0001.jpg",
                "Location": "oss-cn-shanghai",
                "Bucket": bucket,
                "Results": {
                    "Result": [{"Suggestion": "pass", "Label": "normal", "Scene": "porn", "Rate": "100"}]
                },
            }
        ]
    }
    body["TitleCensorResult"] = {
        "Suggestion": "pass",
        "Label": "normal",
        "Scene": "antispam",
        "Rate": "99.91",
    }
    body["DescCensorResult"] = {"Suggestion": "pass", "Label": "normal", "Scene": "antispam", "Rate": "100"}
    timeline = []
    for index in range(timeline_entries):
        flagged = index % 10 == 0 and suggestion != "pass"
        seconds = index * 5
        timeline.append(
            {
                "Timestamp": f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000",
                "Object": f"output{index:05d}.jpg",
                "CensorResults": {
                    "CensorResult": [
                        {
                            "Suggestion": suggestion if flagged else "pass",
                            "Label": "porn" if flagged else "normal",
                            "Scene": "porn",
                            "Rate": flagged_rate if flagged else "99.5",
                        }
                    ]
                },
            }
        )
    body["VensorCensorResult"] = {
        "CensorResults": {
            "CensorResult": [
                {
                    "Suggestion": suggestion,
                    "Label": "porn" if suggestion != "pass" else "normal",
                    "Scene": "porn",
                    "Rate": flagged_rate,
                }
            ]
        },
        "VideoTimelines": {"VideoTimeline": timeline},
    }
    return body


def azure_job(
    job_id: str,
    status: str = "Complete",
    adult_score: float = 0.01,
    racy_score: float = 0.02,
    *,
    team: str = "teamA",
    content_type: Literal["Image", "Text", "Video"] = "Image",
    started: datetime | None = None,
) -> dict[str, Any]:
    """An Azure Review API ``Job`` (the shape of ``events/providers/azure-review/job-get.json``) for
    ``put_job("azure-review", ...)``.

    ``status``: Pending, InProgress, Complete (or Completed), Failed. Finished jobs carry ``ResultMetaData``
    with the scores as strings and ``isAdult``/``isRacy`` set at 0.5; ``JobExecutionReport`` times have
    Azure's seven fractional digits and no zone.
    """
    started_at = _utc(started)

    def ts(offset_s: float) -> str:
        moment = started_at + timedelta(seconds=offset_s)
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0"

    report = [{"Ts": ts(0), "Msg": "Starting Execution - Try 1"}]
    metadata: list[dict[str, str]] = []
    if status in ("Complete", "Completed"):
        metadata = [
            {"Key": "adultScore", "Value": f"{adult_score:.3f}"},
            {"Key": "isAdult", "Value": str(adult_score >= 0.5)},
            {"Key": "racyScore", "Value": f"{racy_score:.3f}"},
            {"Key": "isRacy", "Value": str(racy_score >= 0.5)},
        ]
        report = [
            {"Ts": ts(1.5), "Msg": "Job marked completed and job content has been removed"},
            {"Ts": ts(1.4), "Msg": "Execution Complete"},
            *report,
        ]
    elif status in ("Failed", "Error"):
        report = [{"Ts": ts(1.0), "Msg": "Execution failed: the content could not be retrieved"}, *report]
    return {
        "Id": job_id,
        "TeamName": team,
        "Status": status,
        "WorkflowId": "default",
        "Type": content_type,
        "CallBackEndpoint": "",
        "ReviewId": "",
        "ResultMetaData": metadata,
        "JobExecutionReport": report,
    }


__all__ = [
    "IAM",
    "PROVIDERS",
    "SERVICES",
    "Fault",
    "ImageItem",
    "ProviderSimulator",
    "RecordedRequest",
    "SimulatorCredentials",
    "alibaba_job",
    "azure_job",
    "huawei_audio_job",
    "huawei_image_batch_job",
    "huawei_video_job",
]
