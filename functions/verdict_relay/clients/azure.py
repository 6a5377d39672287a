"""Azure Content Moderator Review API client: ``GET {endpoint}/contentmoderator/review/v1.0/teams/{team}/jobs/{id}``.

Microsoft retired the Review API (2021-12-31) and retires Content Moderator in February 2027; this client
serves systems that still run jobs against it. One GET per job, authenticated with the
``Ocp-Apim-Subscription-Key`` header. A 404 makes the job missing only when it is the Review API's own "job
not found" (:func:`review_api_job_not_found`); any other 404 -> ProviderResponseError, so the job stays due and
nothing expires: the API Management gateway's ``{"error": {"code": "404", "message": "Resource not found"}}``
for a path no operation serves (an endpoint entered with the API's path on it, which the client then doubles),
an HTML page, or "Team not found" (a wrong team). 401/403 -> ProviderAuthError; 429 -> ProviderThrottledError
after the retries ``Retry-After`` allowed; 5xx -> ProviderUnavailableError. The verdict comes from the Azure
adapter and its configured policy (Azure reports scores, not a verdict).

Which code and message the Review API sends for an unknown job is undocumented: the seed gives only the shape
of its error body (``APIError``: ``{"Error": {"Code", "Message"}}``, PascalCase). The reading taken is the
strictest that still accepts the Review API's own answer as the simulator stands in for it (``{"Error":
{"Code": "NotFound", "Message": "Job not found."}}``): that shape with those exact keys (the gateway writes
lowercase ``error``/``code``/``message``), the code ``NotFound`` exactly, and a message that names the job and
not the team (the same code comes back for "Team not found."). A real answer that differs leaves the job due
and logged as an unreadable answer, polled again after its backoff; expiring every job on a misread 404 would
publish each as unmoderated, which cannot be taken back.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from verdict_relay.clients.base import FetchedJob, FetchResult, ProviderClient
from verdict_relay.clients.http import (
    HttpResponse,
    OutgoingRequest,
    ProviderHttp,
    code_and_message,
    error_for_response,
    read_json,
    require_batch,
    single_verdict,
)
from verdict_relay.config import AzureKey
from verdict_relay.providers.base import ProviderAdapter
from verdict_relay.signing import percent_encode

SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
REVIEW_API_JOB_NOT_FOUND_CODE = "NotFound"
"""The ``Error.Code`` the simulator gives the Review API's unknown-job answer (undocumented; see above)."""


def azure_error(response: HttpResponse) -> tuple[str | None, str | None]:
    """``(code, message)`` of an Azure error body: the gateway's ``{error: {code, message}}`` or the Review
    API's ``{Error: {Code, Message}}``."""
    payload = response.json_object()
    if payload is None:
        return None, None
    lowered = {str(key).lower(): value for key, value in payload.items()}
    nested = lowered.get("error")
    if not isinstance(nested, dict):
        return None, None
    fields = {str(key).lower(): value for key, value in nested.items()}
    return code_and_message(fields.get("code"), fields.get("message"))


def review_api_job_not_found(response: HttpResponse) -> bool:
    """Whether ``response`` is the Review API's own answer for an unknown job: HTTP 404 and ``{"Error":
    {"Code": "NotFound", "Message": "...job..."}}`` with exactly those keys, the message naming the job and not
    the team. Any other 404 (the gateway's, an HTML page, a wrong team) says nothing about the job."""
    if response.status != 404:
        return False
    payload = response.json_object()
    error = payload.get("Error") if payload is not None else None
    if not isinstance(error, dict):
        return False
    code, message = error.get("Code"), error.get("Message")
    if code != REVIEW_API_JOB_NOT_FOUND_CODE or not isinstance(message, str):
        return False
    text = message.lower()
    return "job" in text and "team" not in text


def _same(request: OutgoingRequest) -> OutgoingRequest:
    return request


class AzureReviewClient(ProviderClient):
    """Azure Content Moderator review jobs of one team."""

    name = "azure-review"
    max_batch = 1

    def __init__(
        self, http: ProviderHttp, key: AzureKey, adapter: ProviderAdapter, *, endpoint: str, team: str
    ) -> None:
        self._http = http
        self._key = key
        self._adapter = adapter
        self._jobs_url = (
            f"{endpoint.rstrip('/')}/contentmoderator/review/v1.0/teams/{percent_encode(team)}/jobs"
        )

    def fetch(self, job_ids: Sequence[str]) -> FetchResult:
        ids = list(job_ids)
        require_batch(self.name, ids, self.max_batch)
        result = FetchResult()
        for job_id in ids:
            url = f"{self._jobs_url}/{percent_encode(job_id)}"
            request = OutgoingRequest(
                "GET",
                url,
                {SUBSCRIPTION_KEY_HEADER: self._key.subscription_key, "Accept": "application/json"},
            )
            response = self._http.send(functools.partial(_same, request))  # nothing to re-sign per attempt
            if not response.ok:
                # Only the Review API's own "job not found" makes a 404 the job's: the gateway's 404 for a wrong
                # path, an HTML page or "Team not found" would otherwise expire every job of the team at once.
                if review_api_job_not_found(response):
                    result.missing.append(job_id)
                    continue
                code, message = azure_error(response)
                raise error_for_response(self.name, response, code=code, message=message)
            payload = read_json(self.name, response)
            result.jobs.append(
                FetchedJob(single_verdict(self.name, self._adapter, payload, job_id), response.body)
            )
        return result

    def close(self) -> None:
        self._http.close()
