"""The ingest pipeline every verdict goes through, from a callback or a poll: policy, store, publish.

Exactly-once publishing rests on the store: only the write that wins a job's terminal transition is told to
publish, and it holds a publish claim while it does. If SNS fails, the verdict stays stored with its publish
owed (``publish_state = pending``, in the sparse ``unpublished`` index) and the poller's sweep publishes it once
the claim has run out, claiming it first: a verdict is never lost. The one window for a second message is a
writer that takes longer than its claim between SNS accepting and the store confirming; subscribers can drop
such a repeat by ``provider`` + ``job_id``.

SNS out of reach costs each publish its timeouts and retries (seconds). So that it cannot stall callbacks and
polls, a publish that fails that way opens a circuit breaker: for its cool-down, verdicts are stored with their
publish owed and not sent; then one publish goes out as a trial, and its outcome closes or reopens the breaker.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from verdict_relay.dal.publisher import PUBLISH_MAX_S
from verdict_relay.dal.store import STORE_CALL_MAX_S, UNREADABLE
from verdict_relay.errors import PublishError, StorageError
from verdict_relay.logic.breaker import CircuitBreaker
from verdict_relay.logic.policy import VerdictPolicy
from verdict_relay.models.jobs import JobKey, NextPoll, RecordResult, StoredJob, Transition
from verdict_relay.models.verdict import JobStatus, Verdict, VerdictError
from verdict_relay.observability import count, logger


class JobStorePort(Protocol):
    def record(
        self,
        verdict: Verdict,
        raw: bytes | None,
        now: datetime,
        publish: bool,
        next_poll: NextPoll | None = None,
    ) -> RecordResult: ...

    def mark_published(self, provider: str, job_id: str, now: datetime) -> bool: ...

    def mark_due(self, provider: str, job_id: str, now: datetime, unconfirmed: bool = False) -> None: ...

    def drop_unconfirmed(
        self, provider: str, job_id: str, created_after: datetime | None = None
    ) -> tuple[Literal["deleted", "absent", "kept"], datetime | None]: ...

    def requeue_publish(self, provider: str, job_id: str, now: datetime) -> None: ...

    def release_publish(self, provider: str, job_id: str, claim: str, now: datetime) -> None: ...

    def claim_publish(
        self, provider: str, job_id: str, now: datetime, *, give_back_unreadable: bool = False
    ) -> StoredJob | None: ...

    def unpublished(self, provider: str, limit: int = 100) -> Iterable[JobKey]: ...

    def get(self, provider: str, job_id: str) -> StoredJob | None: ...

    def resend_window(self) -> timedelta: ...


class PublisherPort(Protocol):
    def publish(self, verdict: Verdict, *, republished: bool = False) -> str: ...


_OUTCOME_METRIC = {
    Transition.CREATED: "VerdictRecorded",
    Transition.ADVANCED: "VerdictRecorded",
    Transition.DUPLICATE: "DuplicateIgnored",
    Transition.STALE: "StaleIgnored",
    Transition.CONFLICT: "ConflictRecorded",
}


@dataclass(frozen=True)
class IngestResult:
    transition: Transition
    published: bool
    publish_failed: bool = False


SNS_COOLDOWN_S = 30.0
"""How long publishes are left owed after SNS was found out of reach, before one goes out as a trial."""
PUBLISH_TIME_S = PUBLISH_MAX_S + STORE_CALL_MAX_S
"""Invocation time a publish needs to be sure to finish, its confirmation in the store included (each at its
worst case: about 11 + 15 s). With less left, a verdict is not published inline but left owed: cut off between
SNS taking it and the store confirming it, it would be sent again by the sweep."""
CONFIRM_WAITS_S = (0.5, 1.0, 2.0, 4.0)
"""Waits before trying again to confirm a publish whose confirmation the table throttled or did not answer (the
SDK's own three attempts spent), the last one repeated, while the invocation's time and the claim's allow."""

SWEEP_LIMIT = 1000
"""Owed verdicts one sweep reads at most (keys only): it publishes as many of them as its time allows. At 100 a
sweep, an hour of SNS refusing 20 verdicts a second of a provider left 72,000 owed, published over 12 hours."""

REDACTED = b"REDACTED"


def redact(raw: bytes, secrets: Iterable[str]) -> bytes:
    """``raw`` with each secret replaced by ``REDACTED`` wherever it stands whole.

    Callback tokens and Huawei seeds are made of unreserved URL characters, which neither JSON nor
    percent-encoding escapes, so a secret appears verbatim wherever a provider echoes it: Azure returns the
    job's ``CallBackEndpoint``, our callback URL with its ``?token=``, in every job it is asked for; Huawei
    returns a job's creation parameters (``request_params``), where its ``seed`` was given. Only whole secrets
    are replaced (not next to another token character), so a number or a longer word that merely contains one is
    left intact. A secret right after an escaped character is whole too: a URL quoted percent-encoded, once or
    twice (``%3Ftoken%3D<token>``, ``%253Ftoken%253D<token>``) or a JSON string that escapes its ``=``
    (``\\u003d<token>``).
    """
    for secret in secrets:
        whole = (
            rb"(?:(?<![A-Za-z0-9._~-])|(?<=%%[0-9A-Fa-f]{2})|(?<=%%25[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4}))"
            rb"%b(?![A-Za-z0-9._~-])" % (re.escape(secret.encode()))
        )
        raw = re.sub(whole, REDACTED, raw)
    return raw


def redact_verdict(verdict: Verdict, secrets: Iterable[str]) -> Verdict:
    """``verdict`` with each secret replaced as :func:`redact` replaces it, wherever a provider's text carried
    it into the verdict (an error message quoting our callback URL, say): the verdict is stored, returned by
    the job API and published to every subscriber. The same verdict when it holds none; its job id is kept as
    it is, as the job's key."""
    dumped = verdict.model_dump_json().encode()
    redacted = redact(dumped, secrets)
    if redacted == dumped:
        return verdict
    return Verdict.model_validate_json(redacted).model_copy(update={"job_id": verdict.job_id})


def _finished_at(verdict: Verdict) -> datetime | None:
    """When a finished job finished, as its provider says (None for an unfinished one, or one it gives no time)."""
    return (verdict.completed_at or verdict.updated_at) if verdict.is_terminal else None


class IngestService:
    """Stores each observation of a job and publishes the verdicts that finish one.

    ``secrets(provider)``: the provider's current callback tokens, kept out of the raw payloads it stores (they
    are kept for audit, readable by whoever may read the table or the bucket, who may not forge callbacks) and
    out of the verdicts it stores and publishes (read by every subscriber).
    """

    def __init__(
        self,
        store: JobStorePort,
        publisher: PublisherPort,
        policy: VerdictPolicy,
        sns_breaker: CircuitBreaker | None = None,
        secrets: Callable[[str], Iterable[str]] = lambda provider: (),
        unknown_grace: timedelta = timedelta(0),
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._policy = policy
        self._sns = sns_breaker or CircuitBreaker(threshold=1, cooldown_s=SNS_COOLDOWN_S)
        self._secrets = secrets
        self._unknown_grace = unknown_grace

    @property
    def policy(self) -> VerdictPolicy:
        return self._policy

    def ingest(
        self,
        verdict: Verdict,
        raw: bytes | None,
        now: datetime,
        next_poll: NextPoll | None = None,
        time_left_s: Callable[[], float] | None = None,
    ) -> IngestResult:
        """Store an observation of a job; publish it if this write finished the job with a publishable verdict.
        ``next_poll``: the poller found the job unfinished and reschedules it in the same write.
        ``time_left_s``: the invocation's time left; under ``PUBLISH_TIME_S`` the verdict is left owed for the
        sweep rather than published."""
        final = self._policy.finalize(verdict)
        secrets = list(self._secrets(final.provider))
        if secrets:
            final = redact_verdict(final, secrets)
            if raw is not None:
                raw = redact(raw, secrets)
        result = self._store.record(
            final, raw, now, publish=self._policy.should_publish(final), next_poll=next_poll
        )
        count(_OUTCOME_METRIC[result.transition], final.provider)
        logger.info(
            "verdict ingested",
            provider=final.provider,
            job_id=final.job_id,
            status=final.status.value,
            suggestion=final.suggestion.value if final.suggestion else None,
            transition=result.transition.value,
        )
        if not result.publish or result.job is None:
            return IngestResult(result.transition, published=False)
        published = self._publish(result.job, now, time_left_s)
        return IngestResult(result.transition, published=published, publish_failed=not published)

    def finished_too_long_ago(self, verdict: Verdict, now: datetime) -> bool:
        """Whether the provider says the job finished longer ago than a callback about it can be genuine
        (``JobStore.resend_window``: half the retention). A job the store deleted with its verdict at the end of
        its retention finished at least that long ago: a callback naming it, for a job the store does not hold
        (or holds only as a notice's unconfirmed job), is a replay, and storing its answer would publish it
        again."""
        return self._window_ended(verdict, now) is not None

    def _window_ended(self, verdict: Verdict, now: datetime) -> datetime | None:
        """When the resend window after the job finished ended, if it has by ``now`` (None if not, or unknown)."""
        finished = _finished_at(verdict)
        window = self._store.resend_window()
        # Compared by subtracting: a provider's time late in the year 9999 plus the window is past what a
        # datetime holds (it has not ended, then, and the sum below is before ``now``).
        if finished is None or now - finished <= window:
            return None
        return finished + window

    def retired(self, verdict: Verdict, now: datetime, *, held: bool) -> bool:
        """True, storing nothing (:meth:`retire`), for an answer that :meth:`finished_too_long_ago` about a job
        the store does not hold (``held`` False), or holds only as the unconfirmed job of a notice that came that
        long after the job finished (a notice whose fetch failed: the job is deleted). A notice that came in time
        and waited out an outage of the provider's API for its answer, however long, is stored as usual; so is
        any other answer or job."""
        ended = self._window_ended(verdict, now)
        if ended is None:
            return False
        if held:
            dropped, _ = self._store.drop_unconfirmed(verdict.provider, verdict.job_id, created_after=ended)
            if dropped == "kept":
                return False
        self.retire(verdict.provider, verdict.job_id)
        return True

    def retire(self, provider: str, job_id: str) -> None:
        """Count and log a callback for a job the store does not hold that it would be a replay to store."""
        count("CallbackForRetiredJob", provider)
        logger.warning(
            "callback for a job that finished, or whose signed text was first accepted, longer ago than half the "
            "retention, which the store does not hold (deleted with its verdict at the end of its retention) or "
            "holds only as a notice named it; nothing stored",
            provider=provider,
            job_id=job_id,
        )

    def mark_due(self, provider: str, job_id: str, now: datetime, unconfirmed: bool = False) -> None:
        """Make a job due for the poller. ``unconfirmed``: only a notice vouches for it (JobStore.mark_due)."""
        self._store.mark_due(provider, job_id, now, unconfirmed=unconfirmed)
        count("JobMarkedDue", provider)

    def expire(
        self,
        provider: str,
        job_id: str,
        now: datetime,
        why: str,
        time_left_s: Callable[[], float] | None = None,
    ) -> IngestResult:
        """Finish a job the provider no longer has (or no longer keeps) as ``expired``, published by policy; or one
        an operator gave up on (``verdict-relay jobs expire``). Logged as a warning once stored: the job's content
        goes out with what unmoderated content gets, for good, and the on-call may want to know which jobs."""
        verdict = Verdict(
            provider=provider,
            job_id=job_id,
            status=JobStatus.EXPIRED,
            error=VerdictError(code="job_expired", message=why),
            updated_at=now,
            completed_at=now,
        )
        result = self.ingest(verdict, None, now, time_left_s=time_left_s)
        if result.transition in (Transition.ADVANCED, Transition.CREATED):
            logger.warning(
                "job expired as unmoderated",
                provider=provider,
                job_id=job_id,
                why=why,
                published=result.published,
            )
        return result

    def unknown_to_provider(
        self, provider: str, job_id: str, now: datetime, time_left_s: Callable[[], float] | None = None
    ) -> Literal["expired", "deleted", "waiting"]:
        """The provider says it does not know a job the store holds. A job only a notice vouched for (a
        callback naming an id the store did not hold while the provider could not be asked) is ``deleted``, not
        expired, so a notice naming any id can never become a published verdict (so is one already gone:
        deleted by another writer the provider told the same, and expiring it would create it again). Any other
        job is ``expired``, unless it was created less than ``unknown_grace`` ago: then it is ``waiting``, left
        to be asked again after its backoff (counted ``JobUnknownToProvider``). A providers document with the
        wrong region or endpoint makes the provider deny every job it has; without the grace each of them would
        be published as expired at its first poll, for good, before anyone could correct the document."""
        dropped, created_at = self._store.drop_unconfirmed(provider, job_id)
        if dropped == "deleted":
            count("CallbackForUnknownJob", provider)
            logger.warning(
                "a job only a callback named is unknown to the provider; deleted, nothing published",
                provider=provider,
                job_id=job_id,
            )
        if dropped != "kept":
            return "deleted"
        if created_at is not None and now - created_at < self._unknown_grace:
            count("JobUnknownToProvider", provider)
            logger.warning(
                "the provider does not know a job created less than the grace ago; asked again later",
                provider=provider,
                job_id=job_id,
                created_at=created_at,
                expires_after=created_at + self._unknown_grace,
            )
            return "waiting"
        self.expire(
            provider, job_id, now, "the provider does not know this job (deleted or expired)", time_left_s
        )
        return "expired"

    def publish_owed(
        self,
        provider: str,
        clock: Callable[[], datetime],
        limit: int = SWEEP_LIMIT,
        time_left_s: Callable[[], float] | None = None,
        invocation_left_s: Callable[[], float] | None = None,
    ) -> int:
        """Publish verdicts whose publish failed earlier; returns how many went out.

        A verdict whose winning writer may still be publishing it is claimed by that writer for a while; the
        sweep only takes verdicts it can claim itself, so the two never both publish. Each claim is taken at
        the ``clock``'s time of its own write: publishing the ones before it can take a while, and a claim
        dated from the sweep's start could already have run out when it is written.

        The sweep stops, leaving the rest owed for the next one, when SNS is out of reach (the breaker is not
        closed: claiming more would only delay them) and when ``time_left_s`` reaches 0: a publish cut off by
        the end of the invocation could be sent again once its claim runs out. ``invocation_left_s``: the
        invocation's time left, checked again once a verdict is claimed (the claim, or the read of a verdict
        archived in S3, may have taken long): with less than ``PUBLISH_TIME_S`` left it is not published, its
        claim is given up, and the sweep stops. A table that fails (throttled past the SDK's retries, out of
        reach) stops it with the StorageError: the next sweep tries the rest again.
        """
        published = 0
        for key in self._store.unpublished(provider, limit):
            if self._sns.is_open:
                logger.info("owed-publish sweep paused: SNS was out of reach moments ago", provider=provider)
                break
            if time_left_s is not None and time_left_s() <= 0:
                logger.info("owed-publish sweep out of time; the rest stays owed", provider=provider)
                break
            now = clock()
            claimed_at = time.monotonic()
            try:
                job = self._store.claim_publish(key.provider, key.job_id, now)
            except UNREADABLE as exc:
                # One verdict that cannot be read (its archived payload unreachable, an item the code cannot
                # load) must not hold back the ones after it; it stays owed and a later sweep tries it again
                # (once a claim taken here runs out), counted each time: its alarm fires while that lasts. The
                # table itself failing (a StorageError) is not this: it stops the sweep, its caller counts it.
                count("OwedPublishUnreadable", provider)
                logger.error(
                    "owed verdict could not be read; left owed",
                    provider=provider,
                    job_id=key.job_id,
                    error=str(exc),
                )
                self._requeue(key.provider, key.job_id, now)
                continue
            if job is None:
                continue
            if self._publish(job, now, _within_claim(job, now, claimed_at, invocation_left_s)):
                published += 1
            elif not self._sns.is_closed:
                break  # SNS out of reach: this one waits out its claim, the rest are not claimed in vain
            elif invocation_left_s is not None and invocation_left_s() < PUBLISH_TIME_S:
                break  # out of time: the rest are not claimed in vain either
        return published

    def republish(self, provider: str, job_id: str, now: datetime, *, force: bool = False) -> str:
        """Send a finished job's verdict again (an operator's explicit choice, e.g. for a subscriber that lost
        it). The outcome: ``published``; ``publish_failed`` (SNS refused it; an owed verdict stays owed);
        ``unknown``; ``unfinished``; ``in_flight``: its publish is owed and another writer or the sweep holds
        its claim, so sending it here as well could duplicate it (a writer that failed to publish leaves it to
        the sweep, once the claim ends);
        ``not_published_by_policy``: a verdict the policy does not publish (pass), sent only with ``force``.

        A verdict already published, or one the policy does not publish, goes out marked ``republished``: it is
        the operator's re-send, not the relay's publish. An owed one is its first publish, sent as the sweep
        would send it, unmarked."""
        job = self._store.get(provider, job_id)
        if job is None:
            return "unknown"
        if job.verdict is None or not job.status.is_terminal:
            return "unfinished"
        owed = job.publish_state == "pending"
        time_left_s = None
        if owed:
            claimed_at = time.monotonic()
            # As the sweep does: one sender at a time. A verdict that cannot be read is not held from the next try.
            claimed = self._store.claim_publish(provider, job_id, now, give_back_unreadable=True)
            if claimed is None:
                return "in_flight"
            job = claimed
            time_left_s = _within_claim(job, now, claimed_at, None)
        elif job.publish_state == "not_required" and not force:
            return "not_published_by_policy"
        published = self._publish(job, now, time_left_s, republished=not owed)
        return "published" if published else "publish_failed"

    def _requeue(self, provider: str, job_id: str, now: datetime) -> None:
        try:
            self._store.requeue_publish(provider, job_id, now)
        except StorageError as exc:  # it stays where it is: tried again by the next sweep all the same
            logger.warning("owed publish not requeued", provider=provider, job_id=job_id, error=exc.message)

    def _release(self, job: StoredJob, now: datetime) -> None:
        if job.publish_claimed_until is None:
            return
        try:
            self._store.release_publish(job.provider, job.job_id, job.publish_claimed_until, now)
        except StorageError as exc:  # the sweep takes it once the claim runs out all the same
            logger.warning(
                "publish claim not released", provider=job.provider, job_id=job.job_id, error=exc.message
            )

    def _publish(
        self,
        job: StoredJob,
        now: datetime,
        time_left_s: Callable[[], float] | None = None,
        *,
        republished: bool = False,
    ) -> bool:
        verdict = job.public_verdict()
        out_of_time = time_left_s is not None and time_left_s() < PUBLISH_TIME_S
        if out_of_time:
            why = "too little time left to publish and confirm"
        elif not self._sns.allow():
            why = "SNS out of reach moments ago"
        else:
            why = ""
        if why:
            count("PublishDeferred", verdict.provider)
            logger.warning(
                f"{why}; verdict kept as unpublished for the sweep",
                provider=verdict.provider,
                job_id=verdict.job_id,
            )
            if out_of_time:
                # Nothing stands in its way: the next sweep may take it at once. After SNS was found out of
                # reach, the claim keeps the sweeps off it for a while, as after a failed publish.
                self._release(job, now)
            return False
        try:
            message_id = self._publisher.publish(verdict, republished=republished)
        except PublishError as exc:
            if exc.unavailable:
                self._sns.record_failure(trip=True)
            else:
                self._sns.record_success()  # SNS answered: it refused this message, not every message
                self._requeue(verdict.provider, verdict.job_id, now)  # it will likely refuse it again
            count("PublishFailed", verdict.provider)
            logger.warning(
                "publish failed; verdict kept as unpublished",
                provider=verdict.provider,
                job_id=verdict.job_id,
                error=exc.message,
                sns_unavailable=exc.unavailable,
            )
            return False
        self._sns.record_success()
        count("VerdictPublished", verdict.provider)
        # The invocation's time left, and no more than the claim's, past which a sweep may send it again.
        self._confirm(verdict, now, _within_claim(job, datetime.now(UTC), time.monotonic(), time_left_s))
        logger.info(
            "verdict published", provider=verdict.provider, job_id=verdict.job_id, message_id=message_id
        )
        return True

    def _confirm(self, verdict: Verdict, now: datetime, time_left_s: Callable[[], float]) -> None:
        """Confirm a publish SNS has taken, tried again after a wait while the table is throttled or out of reach,
        as long as another attempt at its worst (``STORE_CALL_MAX_S``) still ends within ``time_left_s``: the
        invocation's time and the publish claim's, whichever ends first (:func:`_within_claim`).
        Unconfirmed, the verdict stays owed and the sweep sends it again once the claim runs out: a duplicate,
        counted ``PublishUnconfirmed``. A failure of any kind is only counted and logged: SNS has the verdict,
        so the request or poll that published it has done its work."""
        waits = iter(CONFIRM_WAITS_S)
        while True:
            try:
                self._store.mark_published(verdict.provider, verdict.job_id, now)
                return
            except StorageError as exc:
                wait = next(waits, CONFIRM_WAITS_S[-1])
                if exc.transient and wait + STORE_CALL_MAX_S <= time_left_s():
                    time.sleep(wait)
                    continue
                error = exc.message
            except Exception as exc:  # an answer the SDK could not read, say: SNS has the verdict anyway
                error = f"{type(exc).__name__}: {exc}"
            count("PublishUnconfirmed", verdict.provider)
            logger.warning(
                "publish not confirmed in the store; the sweep will send it again",
                provider=verdict.provider,
                job_id=verdict.job_id,
                error=error,
            )
            return


def _within_claim(
    job: StoredJob, now: datetime, claimed_at: float, invocation_left_s: Callable[[], float] | None
) -> Callable[[], float]:
    """The time left to publish a claimed verdict: the invocation's, and no more than its claim's. Reading the
    claimed verdict (from S3, when archived) takes time from the claim, and a publish that outlasts it could be
    sent again meanwhile by the next claimant; with less than ``PUBLISH_TIME_S`` left it is not sent."""
    until = float(job.publish_claimed_until) if job.publish_claimed_until is not None else None

    def left() -> float:
        invocation = invocation_left_s() if invocation_left_s is not None else float("inf")
        if until is None:
            return invocation
        return min(invocation, until - now.timestamp() - (time.monotonic() - claimed_at))

    return left
