"""What an authenticated callback leads to: its body's verdicts, or a fetch of the job from the provider.

How far a callback body is trusted is per provider (``trust`` in the providers document):

* ``body``: the authenticated callback's content becomes the verdict. Fast, but only as trustworthy as what
  the signature covers — Huawei's covers the job id and times, not the result; Azure signs nothing.
* ``fetch``: the callback only says "look now": the job is fetched from the provider's API, so the verdict
  is what the provider's authenticated API says. Costs one API call and its latency.

Default: ``fetch`` for Huawei v3 and Azure when API credentials are configured (``fetch_by_default`` in
``providers/profiles.py``), else ``body``. An MNS notice (Alibaba) never carries a result, so its job is always
fetched; an Azure reviewer's decision has no API to fetch it from, so it is always taken from the authenticated
body. A fetch must fit the provider's deadline for acknowledging the callback; when it fails or there is no
client, the job stays due and the poller fetches it.

What a fetch after a callback costs is bounded by what the store already holds, read once per job first:

* a job the store holds as finished is not fetched: a replayed callback (Huawei's signature has no timestamp,
  Azure's token never changes) costs one read, never a call to the provider's API;
* a job the store does not hold (or holds only as a notice's unconfirmed job: deleted, by this fetch or the
  poller's) that the provider says finished more than half the retention ago stores nothing (metric
  ``CallbackForRetiredJob``): the callback most likely names a job deleted with its verdict at
  the end of its retention, which would be published again;
* a job the provider does not know is expired only if the store already held it. One the store had never
  heard of stores nothing (metric ``CallbackForUnknownJob``) and the callback is still acknowledged, so the
  provider stops re-sending it: any Alibaba account can make MNS push a signed notice naming any job id, and
  such ids must not become stored, published verdicts;
* a job is made due only when it could not be resolved now (the fetch failed, there is no client, or the job
  is unfinished), so the poller follows it from there. One the store did not hold and the provider has not
  answered for is made due as *unconfirmed*: if the provider then says it does not know it (to the poller, or
  to the fetch after a later notice), it is deleted, not expired and published; the provider's first answer
  about it, or its registration, makes it an ordinary job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from verdict_relay.clients.base import FetchResult
from verdict_relay.errors import CallbackAuthError, ProviderApiError, StorageError
from verdict_relay.logic.ingest import IngestService
from verdict_relay.models.jobs import SignedClaim
from verdict_relay.models.verdict import JobStatus
from verdict_relay.observability import count, logger
from verdict_relay.providers.base import CallbackResult
from verdict_relay.providers.profiles import PROFILES

Trust = Literal["body", "fetch"]

Fetcher = Callable[[list[str]], FetchResult]


def trust_mode(provider: str, configured: Trust | None, has_credentials: bool) -> Trust:
    if configured is not None:
        return configured
    return "fetch" if PROFILES[provider].fetch_by_default and has_credentials else "body"


StoredStatus = Callable[[str, str], JobStatus | None]
"""The stored status of (provider, job_id), or None when the store does not hold the job: one read of the status
alone (never the verdict, which may be archived in S3)."""

ClaimSigned = Callable[[str, str, str, str, datetime], SignedClaim]
"""``JobStore.claim_signed``: (scope, digest, provider, job_id, now) -> whether the signed text was accepted for
another job (or the same job id on another provider's route) first, and if not, how long ago."""


@dataclass(frozen=True)
class CallbackOutcome:
    from_body: int = 0
    fetched: int = 0
    left_due: int = 0
    already_final: int = 0
    """Jobs the store held as finished: neither fetched nor changed."""
    unknown: int = 0
    """Jobs neither the store nor the provider knows: nothing stored."""
    retired: int = 0
    """Jobs the store no longer holds (deleted at the end of their retention) that it would be a replay to store
    again: a signed text first accepted long ago, or a fetched job that finished long ago. Nothing stored."""

    @property
    def accepted(self) -> int:
        return (
            self.from_body + self.fetched + self.left_due + self.already_final + self.unknown + self.retired
        )


def accept(
    provider: str,
    result: CallbackResult,
    raw: bytes,
    trust: Trust,
    ingest: IngestService,
    fetch: Fetcher | None,
    now: datetime,
    stored_status: StoredStatus,
    time_left_s: Callable[[], float] | None = None,
    claim_signed: ClaimSigned | None = None,
) -> CallbackOutcome:
    """Store what a verified callback says, fetching what it only names. ``time_left_s``: the invocation's time
    left, under which a verdict is stored but its publish left owed for the sweep (``IngestService.ingest``).

    With ``trust: body``, a body whose signature leaves in doubt which job it names (``result.signed``) is taken
    only for the first job its signed text was accepted for (``claim_signed``): anyone holding one signed Huawei
    callback could otherwise re-send it with its ids split elsewhere, or to the other Huawei route when both list
    its seed, as another job with any result. A fetched
    job needs no such check: the provider answers for the id asked, and one it does not know stores nothing.

    The same binding tells a captured callback replayed after its job's retention: the job is gone with its
    verdict, so the body (whose result the signature does not cover) would be stored and published as new. A
    signed text first accepted more than ``JobStore.resend_window`` ago (half the retention), for a job the store
    no longer holds, stores nothing (metric ``CallbackForRetiredJob``) and is acknowledged. So does a fetched job
    the store did not hold, or held only as a notice's unconfirmed job (deleted then), that the provider says
    finished longer ago than that (``IngestService.retired``):
    a captured callback (or, for MPS, a notice any account can have MNS sign) naming a job deleted at the end of
    its retention, which the provider still keeps, would otherwise be stored and published again."""
    if trust == "body":
        signed = result.signed
        if signed and claim_signed:
            claim = claim_signed(signed.scope, signed.digest, provider, signed.job_id, now)
            if claim is SignedClaim.ANOTHER_JOB:
                raise CallbackAuthError(
                    "signature already accepted for another job: the signed create_time, job_id and request_id "
                    "join to the same text (the ids split elsewhere, or the job sent to another provider's route)"
                )
            if claim is SignedClaim.LONG_AGO and stored_status(provider, signed.job_id) is None:
                ingest.retire(provider, signed.job_id)
                return CallbackOutcome(retired=1)
        job_verdicts, to_fetch = list(result.verdicts), list(result.jobs_to_fetch)
    else:
        job_verdicts = []
        to_fetch = [*result.jobs_to_fetch, *(v.job_id for v in result.verdicts)]
    # A job stored as finished is not changed by a body's verdict about it, as it is never fetched again for a
    # callback: a signature that does not cover the result (Huawei's) would otherwise let one captured callback,
    # re-sent with a different result each time, add a conflict record (and archived payloads) per re-send. A
    # verdict only a body holds (a reviewer's decision, which no API returns) is still stored, a revised one as
    # a conflict record: it is the only copy.
    final_in_body = 0
    for verdict in job_verdicts:
        stored = stored_status(verdict.provider, verdict.job_id)
        if stored is not None and stored.is_terminal:
            final_in_body += 1
            continue
        ingest.ingest(verdict, raw, now, time_left_s=time_left_s)
    for verdict in result.body_only:
        ingest.ingest(verdict, raw, now, time_left_s=time_left_s)
    from_body = len(job_verdicts) - final_in_body + len(result.body_only)
    known: set[str] = set()
    unfinished: list[str] = []
    for job_id in dict.fromkeys(to_fetch):  # in order, once each
        status = stored_status(provider, job_id)
        if status is not None and status.is_terminal:
            continue
        if status is not None:
            known.add(job_id)
        unfinished.append(job_id)
    already_final = len(dict.fromkeys(to_fetch)) - len(unfinished) + final_in_body
    if already_final:
        count("CallbackForFinishedJob", provider, already_final)
    outcome = CallbackOutcome(from_body=from_body, already_final=already_final)
    if not unfinished:
        return outcome
    if fetch is None:
        return replace(outcome, left_due=_mark_due(ingest, provider, unfinished, now, answered=set()))
    try:
        fetched = fetch(unfinished)
    except ProviderApiError as exc:
        # Left due: the poller fetches it within a minute.
        count("CallbackFetchFailed", provider)
        logger.warning(
            "fetch after callback failed; job left due", provider=provider, job_ids=unfinished, code=exc.code
        )
        return replace(outcome, left_due=_mark_due(ingest, provider, unfinished, now, answered=set()))
    resolved: set[str] = set()
    # A job whose answer would be retired is not vouched for by it: were storing to fail after its unconfirmed job
    # was deleted, it must not come back as a confirmed job.
    answered = {
        job.verdict.job_id for job in fetched.jobs if not ingest.finished_too_long_ago(job.verdict, now)
    }
    retired = 0
    try:
        for job in fetched.jobs:
            if ingest.retired(job.verdict, now, held=job.verdict.job_id in known):
                retired += 1
                resolved.add(job.verdict.job_id)
                continue
            ingest.ingest(
                job.verdict, job.raw if job.verdict.is_terminal else None, now, time_left_s=time_left_s
            )
            if job.verdict.is_terminal:
                resolved.add(job.verdict.job_id)
    except StorageError:
        # Answered 503, so the provider sends the callback again; but it may give up, and a job nobody registered
        # is polled only when due (Huawei v3 and Azure jobs are not discovered). A verdict the archive refused
        # while the table works (a large payload for S3) is left due with the jobs not stored yet.
        pending = [j for j in unfinished if j not in resolved]
        logger.warning("fetched jobs not stored: storage failed", provider=provider, job_ids=pending)
        _mark_due_after_failure(ingest, provider, pending, now, answered)
        raise
    count("CallbackFetched", provider, len(fetched.jobs))
    unknown = 0
    for job_id in fetched.missing:
        resolved.add(job_id)
        if job_id not in known:
            unknown += 1
            count("CallbackForUnknownJob", provider)
            logger.warning(
                "callback names a job neither the store nor the provider knows; nothing stored",
                provider=provider,
                job_id=job_id,
            )
            continue
        dropped = ingest.unknown_to_provider(provider, job_id, now, time_left_s)
        if dropped == "deleted":
            unknown += 1  # held only as an earlier notice's unconfirmed job
        elif dropped == "waiting":
            resolved.discard(job_id)  # created lately: left due, the poller asks again before expiring it
    left_due = _mark_due(ingest, provider, [j for j in unfinished if j not in resolved], now, answered)
    return replace(
        outcome,
        fetched=len(resolved) - unknown - retired,
        left_due=left_due,
        unknown=unknown,
        retired=retired,
    )


def _mark_due(
    ingest: IngestService, provider: str, job_ids: list[str], now: datetime, answered: set[str]
) -> int:
    """Make the jobs due for the poller; those the provider has not just answered for as unconfirmed: one the
    store holds stays what it is (registered, observed by the provider, or unconfirmed), and one it does not
    hold, or no longer holds, is created marked, so a notice naming an id nobody has, made while the provider
    could not be asked, is deleted rather than expired and published when the poller asks."""
    for job_id in job_ids:
        ingest.mark_due(provider, job_id, now, unconfirmed=job_id not in answered)
    return len(job_ids)


def _mark_due_after_failure(
    ingest: IngestService, provider: str, job_ids: list[str], now: datetime, answered: set[str]
) -> None:
    """:func:`_mark_due` on the way out of a storage failure: a failure of its own (the table too) leaves the
    jobs to the provider's next send, and the first failure is the one raised."""
    try:
        _mark_due(ingest, provider, job_ids, now, answered)
    except StorageError as exc:
        # Only the provider's next send stores them now (a job nobody registered is found no other way).
        logger.error(
            "jobs not left due after a storage failure", provider=provider, job_ids=job_ids, error=exc.message
        )
