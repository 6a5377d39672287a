"""Azure Content Moderator Review API client: ``GET {endpoint}/contentmoderator/review/v1.0/teams/{team}/jobs/{id}``.

Microsoft retired the Review API (2021-12-31) and retires Content Moderator in February 2027; this client
serves systems that still run jobs against it. One GET per job, authenticated with the
``Ocp-Apim-Subscription-Key`` header. 404 with an Azure error body -> missing (a 404 without one means a
wrong endpoint, one about the team a wrong team: ProviderResponseError); 401/403 -> ProviderAuthError; 429 ->
ProviderThrottledError after the retries ``Retry-After`` allowed; 5xx -> ProviderUnavailableError. The verdict
comes from the Azure adapter and its configured policy (Azure reports scores, not a verdict).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence

from verdict_relay.clients.base import FetchedJob, FetchResult, ProviderClient
from verdict_relay.clients.http import (
    HttpResponse,
    OutgoingRequest,
    ProviderHttp,
    error_for_response,
    read_json,
    require_batch,
    single_verdict,
)
from verdict_relay.config import AzureKey
from verdict_relay.providers.base import ProviderAdapter
from verdict_relay.signing import percent_encode

SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"


def azure_error(response: HttpResponse) -> tuple[str | None, str | None]:
    """``(code, message)`` of an Azure error body: the gateway's ``{error: {code, message}}`` or the Review
    API's ``{Error: {Code, Message}}``."""
    try:
        payload = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested past json's limit
        return None, None
    if not isinstance(payload, dict):
        return None, None
    lowered = {str(key).lower(): value for key, value in payload.items()}
    nested = lowered.get("error")
    if not isinstance(nested, dict):
        return None, None
    fields = {str(key).lower(): value for key, value in nested.items()}
    code, message = fields.get("code"), fields.get("message")
    return (str(code) if code is not None else None, str(message) if message is not None else None)


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
        self.limiter = http.limiter
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
                code, message = azure_error(response)
                # Only an Azure error body about the job makes a 404 the job's: an HTML 404 means a wrong
                # endpoint, "Team not found" a wrong team, and neither may expire every job of the team.
                if response.status == 404 and code is not None and "team" not in (message or "").lower():
                    result.missing.append(job_id)
                    continue
                raise error_for_response(self.name, response, code=code, message=message)
            payload = read_json(self.name, response)
            result.jobs.append(
                FetchedJob(single_verdict(self.name, self._adapter, payload, job_id), response.body)
            )
        return result

    def close(self) -> None:
        self._http.close()
