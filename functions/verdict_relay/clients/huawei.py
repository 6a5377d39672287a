"""Huawei Cloud Content Moderation clients: v3 video/audio jobs and the v1.0 asynchronous image batch jobs.

* :class:`HuaweiV3Client` — ``GET /v3/{project_id}/moderation/{video|audio}/jobs/{job_id}``, one job per
  request (Huawei has no batch query). ``AIS.0030`` ("Job not found") means the job is unknown or expired.
* :class:`HuaweiImageBatchClient` — ``GET /v1.0/moderation/image/batch?job_id=``; :meth:`discover` reads
  ``GET /v1.0/moderation/image/batch/jobs?status=finish`` and ``...status=failed``. Which error code an
  expired batch job gets is undocumented (Huawei keeps them 30 minutes): ``AIS.0030``, and an HTTP 404 with
  an ``AIS.*`` code, count as missing; ``missing_codes`` can add others. A 404 from the gateway
  (``APIG.0101``, unknown path) or without a Huawei error body is an error, never "missing".

Authentication (:class:`HuaweiAuth`), chosen by the configured credentials:

* :class:`HuaweiAkSkAuth` — every attempt is signed with ``SDK-HMAC-SHA256`` (``X-Project-Id`` included when a
  project is configured, as the Huawei SDK does);
* :class:`HuaweiTokenAuth` — a static ``X-Auth-Token``;
* :class:`HuaweiIamAuth` — an IAM user: a project-scoped token from ``POST /v3/auth/tokens`` (password
  method), cached until an hour before its ``expires_at`` and fetched again once when the API answers 401.
  An IAM answer without ``X-Subject-Token`` or without a ``token`` object holding a readable ``expires_at``
  (``{"token": null}``, not JSON, not an object) is a ProviderResponseError, never an exception that would
  fail the poll cycle or the callback.

Errors: 401/403 and the gateway's authentication codes (``APIG.0301``-``APIG.0307``) and ``AIS.0002``/
``AIS.0004`` -> ProviderAuthError; ``APIG.0308`` (throttling) or 429 -> ProviderThrottledError; 5xx ->
ProviderUnavailableError; any other error -> ProviderResponseError.
"""

from __future__ import annotations

import contextlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from verdict_relay.clients.base import (
    FetchedJob,
    FetchResult,
    ProviderAuthError,
    ProviderClient,
    ProviderResponseError,
)
from verdict_relay.clients.http import (
    HttpResponse,
    OutgoingRequest,
    ProviderHttp,
    code_and_message,
    error_for_response,
    parse_verdicts,
    read_json,
    require_aware,
    require_batch,
    single_verdict,
    the_job,
)
from verdict_relay.errors import ProviderApiError, VerdictRelayError
from verdict_relay.providers.base import ProviderAdapter, parse_provider_time
from verdict_relay.signing import encode_query, percent_encode, sign_huawei

DEFAULT_ENDPOINT = "https://moderation.{region}.myhuaweicloud.com"
DEFAULT_IAM_ENDPOINT = "https://iam.{region}.myhuaweicloud.com"
JOB_NOT_FOUND = "AIS.0030"
SERVICE_NOT_FOUND = "AIS.0005"  # "The service does not exist.": a wrong endpoint or region, not the job
TOKEN_REFRESH_MARGIN = timedelta(hours=1)
"""An IAM token is replaced this long before it expires, so no request carries one that expires in flight."""

_AUTH_CODES = frozenset({"AIS.0002", "AIS.0004", *(f"APIG.030{digit}" for digit in range(1, 8))})


def job_not_found(status: int, code: str | None, missing_codes: frozenset[str]) -> bool:
    """Whether an error answer says the job is unknown. A 404 counts only when the moderation service says so
    (an ``AIS`` code that is about the job): the gateway's ``APIG.0101``, a body that is not Huawei's, a wrong
    service or refused credentials mean a wrong endpoint or account, which must not expire every job."""
    if code in missing_codes:
        return True
    return (
        status == 404
        and code is not None
        and code.startswith("AIS.")
        and code not in _AUTH_CODES
        and code != SERVICE_NOT_FOUND
    )


_THROTTLE_CODES = frozenset({"APIG.0308"})
_JSON = "application/json"

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --- authentication ---------------------------------------------------------------------------------------------


class HuaweiAuth(ABC):
    """How a Huawei request is authenticated: the headers to add to one attempt."""

    @abstractmethod
    def headers(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """Headers to add to this attempt (called again for every retry)."""

    def renew(self, refused: Mapping[str, str]) -> bool:
        """Forget the cached credentials that ``refused`` (the headers of the attempt answered 401) carried;
        True when trying again with new ones may succeed."""
        return False


class HuaweiAkSkAuth(HuaweiAuth):
    """AK/SK: each attempt signed with ``SDK-HMAC-SHA256`` at the current time."""

    def __init__(self, ak: str, sk: str, project_id: str | None = None, clock: Clock = _utc_now) -> None:
        self._ak = ak
        self._sk = sk
        self._project_id = project_id
        self._clock = clock

    def headers(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        added = {"X-Project-Id": self._project_id} if self._project_id else {}
        signed = sign_huawei(method, url, {**headers, **added}, body, self._ak, self._sk, self._clock())
        return {**added, **signed}


class HuaweiTokenAuth(HuaweiAuth):
    """A static IAM token (valid 24 h): for short-lived setups and tests."""

    def __init__(self, token: str) -> None:
        self._token = token

    def headers(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        return {"X-Auth-Token": self._token}


class HuaweiIamAuth(HuaweiAuth):
    """An IAM user's password exchanged for a project-scoped token, cached until an hour before it expires."""

    def __init__(
        self,
        http: ProviderHttp,
        iam_endpoint: str,
        user_name: str,
        password: str,
        domain_name: str,
        *,
        project_id: str | None = None,
        region: str | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self._http = http
        self._url = f"{iam_endpoint.rstrip('/')}/v3/auth/tokens"
        self._user_name = user_name
        self._password = password
        self._domain_name = domain_name
        self._project_id = project_id
        self._region = region
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = datetime.min.replace(tzinfo=UTC)

    def headers(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        return {"X-Auth-Token": self.token()}

    def token(self) -> str:
        """The cached token, fetched first when there is none or it is within an hour of expiring."""
        # One lock around check-and-fetch: concurrent pollers wait for one IAM call instead of each making one.
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, self._renew_at = self._fetch()
            return self._token

    def renew(self, refused: Mapping[str, str]) -> bool:
        with self._lock:
            # Only the token that was refused: when concurrent requests all get a 401 for the same token, the
            # first one's renewal must not be thrown away by the others, each fetching yet another token.
            if self._token is not None and self._token == refused.get("X-Auth-Token"):
                self._token = None
        return True

    def _fetch(self) -> tuple[str, datetime]:
        """A new token and when to renew it. Any answer but a 2xx with ``X-Subject-Token`` and a JSON object
        whose ``token`` is an object with a readable ``expires_at`` is a ProviderApiError: IAM's answer is
        read on the poller's and the callbacks' paths, where anything else would fail the whole invocation."""
        scope: dict[str, Any] = {}
        if self._project_id:
            scope = {"scope": {"project": {"id": self._project_id}}}
        elif self._region:
            scope = {"scope": {"project": {"name": self._region}}}
        document = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._user_name,
                            "password": self._password,
                            "domain": {"name": self._domain_name},
                        }
                    },
                },
                **scope,
            }
        }
        body = json.dumps(document).encode("utf-8")
        request = OutgoingRequest("POST", self._url, {"Content-Type": f"{_JSON};charset=utf8"}, body)
        response = self._http.send(lambda: request)
        if response.status in (400, 401, 403):
            # IAM's message is not passed on: it says which part of the user's credentials was wrong.
            raise ProviderAuthError(
                f"{self._http.provider}: IAM refused the user credentials (HTTP {response.status})"
            )
        if not response.ok:
            code, message = huawei_error(response)
            raise error_for_response(self._http.provider, response, code=code, message=message)
        token = response.header("X-Subject-Token")
        if not token:
            raise ProviderResponseError(f"{self._http.provider}: IAM answered without X-Subject-Token")
        payload = read_json(self._http.provider, response)
        # Checked level by level: ``{"token": null}``, a list or a string must not become an AttributeError.
        details = payload.get("token") if isinstance(payload, dict) else None
        expires = details.get("expires_at") if isinstance(details, dict) else None
        try:
            expires_at = parse_provider_time(expires) if isinstance(expires, str) else None
            # Within an hour of year 1 the renewal time is out of datetime's range (OverflowError).
            renew_at = expires_at - TOKEN_REFRESH_MARGIN if expires_at is not None else None
        except (ValueError, OverflowError):
            renew_at = None
        if renew_at is None:
            raise ProviderResponseError(
                f"{self._http.provider}: IAM token without a readable token.expires_at"
            )
        return token, renew_at


# --- error bodies -----------------------------------------------------------------------------------------------


def huawei_error(response: HttpResponse) -> tuple[str | None, str | None]:
    """``(error_code, error_msg)`` of a Huawei error body (or IAM's ``{error: {code, message}}``), if any."""
    payload = response.json_object()
    if payload is None:
        return None, None
    if "error_code" in payload:
        return code_and_message(payload.get("error_code"), payload.get("error_msg"))
    nested = payload.get("error")
    if isinstance(nested, dict):
        return code_and_message(nested.get("code"), nested.get("message"))
    return None, None


# --- clients ----------------------------------------------------------------------------------------------------


class _HuaweiClient(ProviderClient):
    missing_codes: ClassVar[frozenset[str]] = frozenset({JOB_NOT_FOUND})

    def __init__(self, http: ProviderHttp, auth: HuaweiAuth, adapter: ProviderAdapter, endpoint: str) -> None:
        self._http = http
        self._auth = auth
        self._adapter = adapter
        self._endpoint = endpoint.rstrip("/")

    def _get(self, url: str) -> HttpResponse:
        sent: dict[str, str] = {}

        def build() -> OutgoingRequest:
            # Huawei's SDK sends a JSON content type on every call, GETs included; it is signed like the rest.
            headers = {"Content-Type": _JSON}
            headers.update(self._auth.headers("GET", url, headers, b""))
            sent.clear()
            sent.update(headers)  # the last attempt's: what a 401 refused
            return OutgoingRequest("GET", url, headers)

        response = self._http.send(build)
        if response.status == 401 and self._auth.renew(sent):
            response = self._http.send(build)
        return response

    def _job_or_missing(self, response: HttpResponse, job_id: str) -> FetchedJob | None:
        """The fetched job, or None when Huawei says it does not know it; raises on any other error."""
        if response.ok:
            # The usual answer, a job: validated straight from the bytes (a 2-hour video's result is large).
            with contextlib.suppress(VerdictRelayError):  # an error body or an odd shape: checked below
                verdicts = self._adapter.parse_bytes(response.body)
                return FetchedJob(the_job(self.name, verdicts, job_id), response.body)
        code, message = huawei_error(response)
        if job_not_found(response.status, code, self.missing_codes):
            return None
        if response.ok and code is None:
            payload = read_json(self.name, response)
            return FetchedJob(single_verdict(self.name, self._adapter, payload, job_id), response.body)
        raise self._failure(response, code, message)

    def _failure(self, response: HttpResponse, code: str | None, message: str | None) -> ProviderApiError:
        return error_for_response(
            self.name,
            response,
            code=code,
            message=message,
            auth_error=code in _AUTH_CODES,
            throttled=code in _THROTTLE_CODES,
        )

    def close(self) -> None:
        self._http.close()


class HuaweiV3Client(_HuaweiClient):
    """Huawei v3 video or audio moderation jobs: one GET per job."""

    max_batch = 1

    def __init__(
        self,
        provider: Literal["huawei-video", "huawei-audio"],
        http: ProviderHttp,
        auth: HuaweiAuth,
        adapter: ProviderAdapter,
        *,
        endpoint: str,
        project_id: str,
    ) -> None:
        super().__init__(http, auth, adapter, endpoint)
        self.name = provider
        self._jobs_url = f"{self._endpoint}/v3/{percent_encode(project_id)}/moderation/{provider.removeprefix('huawei-')}/jobs"

    def fetch(self, job_ids: Sequence[str]) -> FetchResult:
        ids = list(job_ids)
        require_batch(self.name, ids, self.max_batch)
        result = FetchResult()
        for job_id in ids:
            fetched = self._job_or_missing(self._get(f"{self._jobs_url}/{percent_encode(job_id)}"), job_id)
            if fetched is None:
                result.missing.append(job_id)
            else:
                result.jobs.append(fetched)
        return result


class HuaweiImageBatchClient(_HuaweiClient):
    """Huawei Image Moderation v1.0 asynchronous batch jobs, and discovery of finished ones."""

    name = "huawei-image-batch"
    max_batch = 1
    discovers = True
    discover_statuses: ClassVar[tuple[str, ...]] = ("finish", "failed")

    def fetch(self, job_ids: Sequence[str]) -> FetchResult:
        ids = list(job_ids)
        require_batch(self.name, ids, self.max_batch)
        result = FetchResult()
        for job_id in ids:
            url = f"{self._endpoint}/v1.0/moderation/image/batch?{encode_query({'job_id': job_id})}"
            fetched = self._job_or_missing(self._get(url), job_id)
            if fetched is None:
                result.missing.append(job_id)
            else:
                result.jobs.append(fetched)
        return result

    def discover(self, since: datetime, until: datetime) -> list[str]:
        """Finished and failed jobs whose ``update_time`` is in [since, until); listed jobs without one are
        included (the poller fetches them and drops what it already has)."""
        since, until = require_aware("since", since), require_aware("until", until)
        found: dict[str, None] = {}
        for status in self.discover_statuses:
            url = f"{self._endpoint}/v1.0/moderation/image/batch/jobs?{encode_query({'status': status})}"
            response = self._get(url)
            code, message = huawei_error(response)
            if not response.ok or code is not None:
                raise self._failure(response, code, message)
            for verdict in parse_verdicts(self.name, self._adapter, read_json(self.name, response)):
                changed = verdict.updated_at or verdict.created_at
                if changed is None or since <= changed < until:
                    found.setdefault(verdict.job_id, None)
        return list(found)
