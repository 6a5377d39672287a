"""What an authenticated callback leads to: its body's verdicts, or a fetch of the job from the provider.

How far a callback body is trusted is per provider (``trust`` in the providers document):

* ``body``: the authenticated callback's content becomes the verdict. Fast, but only as trustworthy as what
  the signature covers — Huawei's covers the job id and times, not the result; Azure signs nothing.
* ``fetch``: the callback only says "look now": the job is made due and fetched from the provider's API,
  so the verdict is what the provider's authenticated API says. Costs one API call and its latency.

Default: ``fetch`` for Huawei v3 and Azure when API credentials are configured, else ``body``. An MNS notice
(Alibaba) never carries a result, so its job is always fetched; an Azure reviewer's decision has no API to
fetch it from, so it is always taken from the authenticated body. A fetch must fit the provider's deadline for
acknowledging the callback; when it fails or there is no client, the job stays due and the poller fetches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from verdict_relay.clients.base import FetchResult
from verdict_relay.errors import ProviderApiError
from verdict_relay.logic.ingest import IngestService
from verdict_relay.models.verdict import JobStatus, Verdict, VerdictError
from verdict_relay.observability import count, logger
from verdict_relay.providers.base import CallbackResult

Trust = Literal["body", "fetch"]
FETCH_BY_DEFAULT = frozenset({"huawei-video", "huawei-audio", "azure-review"})

Fetcher = Callable[[list[str]], FetchResult]


def trust_mode(provider: str, configured: Trust | None, has_credentials: bool) -> Trust:
    if configured is not None:
        return configured
    return "fetch" if provider in FETCH_BY_DEFAULT and has_credentials else "body"


@dataclass(frozen=True)
class CallbackOutcome:
    from_body: int = 0
    fetched: int = 0
    left_due: int = 0


def accept(
    provider: str,
    result: CallbackResult,
    raw: bytes,
    trust: Trust,
    ingest: IngestService,
    fetch: Fetcher | None,
    now: datetime,
) -> CallbackOutcome:
    if trust == "body":
        body_verdicts, to_fetch = [*result.verdicts, *result.body_only], list(result.jobs_to_fetch)
    else:
        body_verdicts = list(result.body_only)
        to_fetch = [*result.jobs_to_fetch, *(v.job_id for v in result.verdicts)]
    for verdict in body_verdicts:
        ingest.ingest(verdict, raw, now)
    if not to_fetch:
        return CallbackOutcome(from_body=len(body_verdicts))
    for job_id in to_fetch:
        ingest.mark_due(provider, job_id, now)
    if fetch is None:
        return CallbackOutcome(from_body=len(body_verdicts), left_due=len(to_fetch))
    try:
        fetched = fetch(to_fetch)
    except ProviderApiError as exc:
        # The job is due already: the poller fetches it within a minute.
        count("CallbackFetchFailed", provider)
        logger.warning("fetch after callback failed; job left due", provider=provider, code=exc.code)
        return CallbackOutcome(from_body=len(body_verdicts), left_due=len(to_fetch))
    for job in fetched.jobs:
        ingest.ingest(job.verdict, job.raw if job.verdict.is_terminal else None, now)
    for job_id in fetched.missing:
        ingest.ingest(
            Verdict(
                provider=provider,
                job_id=job_id,
                status=JobStatus.EXPIRED,
                error=VerdictError(code="job_expired", message="the provider does not know this job"),
                updated_at=now,
                completed_at=now,
            ),
            None,
            now,
        )
    resolved = sum(1 for j in fetched.jobs if j.verdict.is_terminal) + len(fetched.missing)
    count("CallbackFetched", provider, len(fetched.jobs))
    return CallbackOutcome(from_body=len(body_verdicts), fetched=resolved, left_due=len(to_fetch) - resolved)
