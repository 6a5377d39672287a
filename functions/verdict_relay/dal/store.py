"""DynamoDB job store: each job's state and latest verdict in one item, every change a conditional write.

Item layout (table key ``pk`` = ``<provider>#<job_id>``, ``sk``):

* ``sk = "STATE"``: the job. ``status`` and ``status_rank`` (pending 0, running 1, terminal 2) — a write only
  lands if it moves the rank up, so a job never goes backwards and a duplicate is a no-op. The verdict and the
  provider's raw payload are kept gzip-compressed (``verdict_gz``, ``raw_gz``) or, when too large for an item,
  in S3 (``verdict_s3_key``, ``raw_s3_key``). Those objects are uploaded untagged, and tagged for the bucket's
  lifecycle to delete them with the job once the terminal write has decided, except while the verdict's publish
  is owed: then ``owed_objects`` lists them, and the publish confirmation tags them (``dal/archive.py``).
* ``sk = "CONFLICT#<fingerprint>"``: a different terminal result for an already-terminal job, kept for audit
  and never published.
* ``pk = "<scope>#<digest>"``, ``sk = "SIGNED"``: the provider and job a signature over joined ids was first
  accepted for, and when (:meth:`JobStore.claim_signed`). Kept for good, with no TTL (about 160 bytes a signed
  callback): a binding that expired would let the captured callback through again, and its age tells a replay
  of a job deleted at the end of its retention from a provider re-sending its callback.

Two sparse global secondary indexes let the poller work without a Scan: ``outstanding`` (``poll_provider``,
``next_poll_at``) holds only unfinished jobs, ``unpublished`` (``unpublished_provider``, ``completed_epoch``)
only verdicts whose publish has not been confirmed. ``unpublished`` projects keys only: entering and leaving it
then costs a write unit each instead of the size of the item with its verdict (up to 300 units), and the sweep that
reads it gets each item from the claim write it makes anyway.

``expires_at`` is the TTL attribute, set only with a job's verdict: the retention after it. An unfinished job has
none (each write to it removes one an earlier version set), so DynamoDB never deletes a job that is still
followed, which would drop it from ``outstanding`` with its verdict never found: not while a provider refuses
our credentials or is down for longer than the retention, when no poll writes to its jobs. Nor does a verdict
whose publish is owed have one, for as long as SNS refuses it: its terminal write keeps the expiry in
``retain_until`` and the publish confirmation moves it to ``expires_at``. DynamoDB deletes an expired item up to
a few days late, so reads treat one past its ``expires_at`` as gone (its verdict in S3 may already be).
"""

from __future__ import annotations

import contextlib
import secrets
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from botocore import exceptions as botocore_exceptions
from botocore.exceptions import BotoCoreError, ClientError

from verdict_relay.dal.codec import compress, decompress, outcome_fingerprint, verdict_json
from verdict_relay.dal.publisher import message_for
from verdict_relay.errors import ArchiveError, IdConflictError, ItemRefusedError, StorageError
from verdict_relay.models.jobs import (
    DueAt,
    DueJob,
    FanoutHold,
    JobKey,
    NextPoll,
    RecordResult,
    SignedClaim,
    StoredJob,
    Transition,
)
from verdict_relay.models.verdict import JobStatus, Verdict
from verdict_relay.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from verdict_relay.dal.archive import PayloadArchive

STATE = "STATE"
OUTSTANDING_INDEX = "outstanding"
UNPUBLISHED_INDEX = "unpublished"
ITEM_BUDGET = 300 * 1024
"""Bytes of compressed verdict + raw payload kept inline; past that they go to S3 (items max out at 400 KB)."""
PROGRESS_VERDICT_BYTES = 64 * 1024
"""An unfinished job's verdict (its findings so far) is kept up to this much JSON, trimmed as an SNS message is
(its strongest findings first): the timeline of a long video read while it runs could otherwise pass DynamoDB's
400 KB item (and the ``outstanding`` index's copy of it), and every later write of the job would be refused. It is
never published; a finished job's verdict is kept whole (in S3 when it does not fit its item)."""
STORE_CALL_MAX_S = 3 * (1.0 + 3.0) + 1.0 + 2.0
"""A store call's worst case with the DynamoDB client's settings (``DYNAMODB_CONFIG``: 1 s connect, 3 s read,
three attempts): three attempts that each connect at the last moment and then wait out the read, and botocore's
waits between them (at most 1 s, then 2 s). The publish timing counts on it (``PUBLISH_TIME_S``)."""


class _ConditionFailed(Exception):
    """The conditional write lost: the item as it was (when DynamoDB returned it)."""

    def __init__(self, old: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.old = old


UNREADABLE = (ArchiveError, ValueError, LookupError, EOFError, OSError, zlib.error)
"""What reading a stored job raises when its item was read but its verdict cannot be: its archived payload out of
S3's reach, or an item the code cannot load (an attribute missing, JSON that is not a verdict, or bytes that do
not decompress: gzip raises OSError, EOFError or zlib.error for those). Not the table failing (a StorageError),
which says nothing of the job."""


def _key(provider: str, job_id: str, sk: str = STATE) -> dict[str, Any]:
    return {"pk": {"S": f"{provider}#{job_id}"}, "sk": {"S": sk}}


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class JobStore:
    """The only code that reads or writes the jobs table."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        archive: PayloadArchive,
        retention: timedelta = timedelta(days=90),
        publish_claim: timedelta = timedelta(seconds=60),
    ) -> None:
        self._table = table_name
        self._publish_claim = publish_claim
        self._client = client
        self._archive = archive
        self._retention = retention

    # -- writes -------------------------------------------------------------------------------------------

    def register(
        self, provider: str, job_id: str, metadata: dict[str, str], now: datetime, first_poll_at: datetime
    ) -> tuple[bool, StoredJob]:
        """Start following a job. Idempotent: registering a known job keeps its state and adds the metadata
        if it had none (a registration without metadata stores none, so a later one can still add it).
        Returns (created, job)."""
        sets = "registered_at = if_not_exists(registered_at, :now)"
        values: dict[str, Any] = {}
        if metadata:
            sets = f"caller_metadata = if_not_exists(caller_metadata, :meta), {sets}"
            values[":meta"] = {"M": {k: {"S": v} for k, v in metadata.items()}}
        for _ in range(2):
            try:
                # A job already known (a callback came first) keeps its status and its poll time.
                item = self._open_job(
                    "register",
                    provider,
                    job_id,
                    now,
                    due_at=first_poll_at,
                    keep_due=True,
                    sets=sets,
                    values=values,
                    removes="unconfirmed",  # the caller vouches for the job
                )
                return item.get("created_at", {}).get("S") == now.isoformat(), self._to_job(item)
            except _ConditionFailed as lost:
                finished = lost.old
            # Already finished: keep the caller's metadata with it, change nothing else. The item must still be
            # there: one removed by its TTL meanwhile is registered afresh, not recreated as a bare fragment; so is
            # one past its TTL, which DynamoDB deletes up to days late (its verdict in S3 may be gone already):
            # it is deleted here, only if still expired.
            if finished is not None and _expired(finished, now):
                self._drop_expired(provider, job_id, now)
                continue
            if not metadata:
                if finished is not None:
                    return False, self._to_job(finished)
                continue
            try:
                item = self._update(
                    "register",
                    Key=_key(provider, job_id),
                    UpdateExpression="SET caller_metadata = if_not_exists(caller_metadata, :meta)",
                    ConditionExpression="attribute_exists(pk) AND NOT expires_at <= :now",
                    ExpressionAttributeValues={":meta": values[":meta"], ":now": {"N": str(_epoch(now))}},
                    ReturnValues="ALL_NEW",
                )["Attributes"]
                return False, self._to_job(item)
            except _ConditionFailed:
                continue
        raise StorageError(
            f"register {provider}/{job_id}: the job changed while it was registered; try again"
        )

    def record(
        self,
        verdict: Verdict,
        raw: bytes | None,
        now: datetime,
        publish: bool,
        next_poll: NextPoll | None = None,
    ) -> RecordResult:
        """Apply an observation of a job. Only forward moves land; ``publish`` marks the verdict as owed to SNS.

        ``next_poll`` (a poll that found the job unfinished) reschedules it in the same write, whether or not
        its status changed: one write per poll of a running job."""
        if verdict.is_terminal:
            return self._record_terminal(verdict, raw, now, publish)
        return self._record_progress(verdict, now, next_poll)

    def _record_progress(self, verdict: Verdict, now: datetime, next_poll: NextPoll | None) -> RecordResult:
        rank = verdict.status.rank
        values = {
            ":provider": {"S": verdict.provider},
            ":job_id": {"S": verdict.job_id},
            ":status": {"S": verdict.status.value},
            ":rank": {"N": str(rank)},
            ":verdict": {"B": compress(_progress_json(verdict))},
            ":now": {"S": now.isoformat()},
        }
        if next_poll is None:
            # A callback's progress notice: the job keeps its poll time; the same status again changes nothing.
            schedule = "next_poll_at = if_not_exists(next_poll_at, :due)"
            condition = "attribute_not_exists(pk) OR status_rank < :rank"
            values[":due"] = {"N": str(_epoch(now))}
        else:
            # A poll: the same status again still moves the poll time on (a higher stored status is kept).
            schedule = "next_poll_at = :due, poll_attempts = :attempts"
            condition = "attribute_not_exists(pk) OR status_rank <= :rank"
            values[":due"] = {"N": str(_epoch(next_poll.at))}
            values[":attempts"] = {"N": str(next_poll.attempts)}
        try:
            response = self._update(
                "record",
                Key=_key(verdict.provider, verdict.job_id),
                UpdateExpression=(
                    "SET provider = :provider, job_id = :job_id, #s = :status, status_rank = :rank, "
                    "verdict_gz = :verdict, updated_at = :now, created_at = if_not_exists(created_at, :now), "
                    f"poll_provider = :provider, {schedule} REMOVE unconfirmed, expires_at"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
                # ALL_OLD, not UPDATED_OLD: DynamoDB returns an attribute set to its own value as updated, moto
                # does not, so with UPDATED_OLD the tests would see a repeated status as a new job. An unfinished
                # job's item is small, and returned values cost no capacity.
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as lost:
            old_rank = int((lost.old or {}).get("status_rank", {}).get("N", "2"))
            if old_rank == rank and "unconfirmed" in (lost.old or {}):
                self._confirm(verdict.provider, verdict.job_id)  # the provider answered for it all the same
            if next_poll is not None and old_rank < 2:
                # Stored further along but unfinished (a late 'pending'): still poll it later, not now.
                self.reschedule(verdict.provider, verdict.job_id, next_poll.at, next_poll.attempts)
            return RecordResult(Transition.DUPLICATE if old_rank == rank else Transition.STALE, None)
        old = response.get("Attributes", {})
        if "status_rank" not in old:
            return RecordResult(Transition.CREATED, None)
        same = int(old["status_rank"]["N"]) == rank
        return RecordResult(Transition.DUPLICATE if same else Transition.ADVANCED, None)

    def _confirm(self, provider: str, job_id: str) -> None:
        """Clear a job's unconfirmed mark (``mark_due``): the provider answered for it."""
        with contextlib.suppress(_ConditionFailed):
            self._update(
                "confirm job",
                Key=_key(provider, job_id),
                UpdateExpression="REMOVE unconfirmed",
                ConditionExpression="attribute_exists(unconfirmed)",
            )

    def _record_terminal(
        self, verdict: Verdict, raw: bytes | None, now: datetime, publish: bool
    ) -> RecordResult:
        fingerprint = outcome_fingerprint(verdict)
        archiving = time.monotonic()
        payload = self._payload_attributes(verdict, raw, fingerprint)
        archived = _archived_keys(payload)
        # The claim runs from ``now``, with the time archiving a large payload took added: the publish the claim
        # is for comes after it, and a slow S3 must not leave the writer publishing while the sweep may too.
        claim = self._publish_claim + timedelta(seconds=time.monotonic() - archiving)
        completed = verdict.completed_at or now
        values: dict[str, Any] = {
            ":provider": {"S": verdict.provider},
            ":job_id": {"S": verdict.job_id},
            ":status": {"S": verdict.status.value},
            ":two": {"N": "2"},
            ":suggestion": {"S": verdict.suggestion.value if verdict.suggestion else "none"},
            ":fingerprint": {"S": fingerprint},
            ":now": {"S": now.isoformat()},
            ":completed": {"N": str(_epoch(completed))},
            ":expires": {"N": str(_epoch(now + self._retention))},
            ":publish_state": {"S": "pending" if publish else "not_required"},
        }
        sets = [
            "provider = :provider",
            "job_id = :job_id",
            "#s = :status",
            "status_rank = :two",
            "suggestion = :suggestion",
            "fingerprint = :fingerprint",
            "updated_at = :now",
            "created_at = if_not_exists(created_at, :now)",
            "completed_epoch = :completed",
            "publish_state = :publish_state",
        ]
        removes = ["poll_provider", "next_poll_at", "poll_attempts", "unconfirmed"]
        if publish:
            # The winner of the transition publishes; its claim keeps the owed-publish sweep off it meanwhile.
            # No TTL until the publish is confirmed: DynamoDB must not delete a verdict SNS has not taken yet.
            sets.append("retain_until = :expires")
            removes.append("expires_at")
            sets.append("unpublished_provider = :provider")
            sets.append("publish_claimed_until = :claim")
            values[":claim"] = {"N": f"{(now + claim).timestamp():.3f}"}
            # This call's own mark: a retry of this write by the SDK, its first attempt landed with its answer
            # lost, finds it on the item and knows the transition was its own (below).
            sets.append("claim_token = :claim_token")
            values[":claim_token"] = {"S": secrets.token_hex(16)}
            # Its objects in S3 are kept too, untagged, until the confirmation tags them (mark_published).
            if archived:
                sets.append("owed_objects = :owed_objects")
                values[":owed_objects"] = {"SS": archived}
        else:
            sets.append("expires_at = :expires")
        for name, value in payload.items():
            values[f":{name}"] = value
            sets.append(f"{name} = :{name}")
        for stale in {"verdict_gz", "verdict_s3_key", "raw_gz", "raw_s3_key"} - set(payload):
            removes.append(stale)
        categories = verdict.categories
        if categories:
            values[":categories"] = {"SS": categories}
            sets.append("categories = :categories")
        # A reviewer's decision is keyed by its review id, in the key space of the jobs: it may only create its
        # item (a revised decision meets the first, finished, as any result meets a finished job's). Were it to
        # finish an unfinished job as a result may, whoever holds Azure's callback token could decide any job
        # this deployment follows, trust: fetch or not, by sending a "review" under its id.
        reviewer = verdict.decided_by == "reviewer"
        try:
            response = self._update(
                "record",
                Key=_key(verdict.provider, verdict.job_id),
                UpdateExpression=f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
                ConditionExpression=(
                    "attribute_not_exists(pk)"
                    if reviewer
                    else "attribute_not_exists(pk) OR status_rank < :two"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as lost:
            old = lost.old or self._get_item(verdict.provider, verdict.job_id) or {}
            if reviewer and int(old.get("status_rank", {}).get("N", "2")) < 2:
                self._expire_with_job(archived)
                raise IdConflictError(
                    f"review {verdict.job_id} is the id of an unfinished job this deployment follows: a reviewer's"
                    " decision cannot decide a job; nothing stored"
                ) from None
            # The objects this write uploaded that the stored job does not hold (a repeat's, a conflict's)
            # expire. Those it holds are left for the confirmation while their publish is owed; with nothing
            # owed they expire too, in case the write that stored them landed with its answer lost (this one's,
            # which its retry found, or an earlier call's that failed): nothing else would ever tag them.
            held = _archived_keys(old)
            expiring = [key for key in archived if key not in held]
            if publish and old.get("claim_token") == values[":claim_token"]:
                # This very write: its first attempt landed, its answer lost, and the SDK's retry met it. It won
                # the transition and holds the publish claim: it publishes now, rather than the sweep once the
                # claim has run out (and its caller is not told the job finished meanwhile).
                self._expire_with_job(expiring)
                return RecordResult(
                    self._transition(old, now), self._to_job(old, verdict=verdict), publish=True
                )
            if old.get("fingerprint", {}).get("S") == fingerprint:
                if old.get("publish_state", {}).get("S") != "pending":
                    expiring += held
                self._expire_with_job(expiring)
                return RecordResult(Transition.DUPLICATE, None)
            self._record_conflict(verdict, payload, fingerprint, now)
            self._expire_with_job(expiring)  # a conflict is never published: they expire with its record
            return RecordResult(Transition.CONFLICT, None)
        except StorageError:
            if archived:
                # Not tagged: the write may have landed, owing their publish. If it landed with nothing owed, a
                # repeat of the result tags them; if it did not, nothing holds them.
                logger.warning(
                    "archived objects left without their expiry tag: the write that would hold them failed",
                    s3_keys=archived,
                )
            raise
        if not publish:
            self._expire_with_job(archived)
        attributes = response["Attributes"]
        job = self._to_job(attributes, verdict=verdict)
        return RecordResult(self._transition(attributes, now), job, publish=publish)

    def _record_conflict(
        self, verdict: Verdict, payload: dict[str, Any], fingerprint: str, now: datetime
    ) -> None:
        item = {
            **_key(verdict.provider, verdict.job_id, f"CONFLICT#{fingerprint}"),
            "provider": {"S": verdict.provider},
            "job_id": {"S": verdict.job_id},
            "status": {"S": verdict.status.value},
            "suggestion": {"S": verdict.suggestion.value if verdict.suggestion else "none"},
            "recorded_at": {"S": now.isoformat()},
            "expires_at": {"N": str(_epoch(now + self._retention))},
            **payload,
        }
        # The same conflicting result again is already kept: a lost condition is fine.
        with contextlib.suppress(_ConditionFailed):
            self._write(
                "record conflict",
                self._client.put_item,
                Item=item,
                ConditionExpression="attribute_not_exists(sk)",
            )

    def claim_publish(
        self, provider: str, job_id: str, now: datetime, *, give_back_unreadable: bool = False
    ) -> StoredJob | None:
        """Take an owed publish for the sweep: only while it is still owed (checked on the table, not the
        eventually consistent index) and nobody else holds it. The job to publish, or None if this caller may
        not publish it. A verdict that cannot be read raises (``UNREADABLE``), its claim kept, or given back
        with ``give_back_unreadable``."""
        try:
            response = self._update(
                "claim publish",
                Key=_key(provider, job_id),
                UpdateExpression="SET publish_claimed_until = :until",
                ConditionExpression=(
                    "publish_state = :pending AND "
                    "(attribute_not_exists(publish_claimed_until) OR publish_claimed_until <= :now)"
                ),
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":now": {"N": f"{now.timestamp():.3f}"},
                    ":until": {"N": f"{(now + self._publish_claim).timestamp():.3f}"},
                },
                ReturnValues="ALL_NEW",
            )
        except _ConditionFailed:
            return None
        attributes = response["Attributes"]
        try:
            return self._to_job(attributes)
        except UNREADABLE:
            if give_back_unreadable:
                # Taken for nothing: an operator's next try (S3 answering again) need not wait the claim out.
                # The sweep keeps it: its claim keeps the sweeps that follow from reading it again meanwhile.
                self.release_publish(provider, job_id, attributes["publish_claimed_until"]["N"], now)
            raise

    def mark_published(self, provider: str, job_id: str, now: datetime) -> bool:
        """Confirm a publish; False if it was already confirmed (by a concurrent sweep). The verdict's retention,
        kept aside while its publish was owed, becomes its TTL (the retention from now for a verdict an earlier
        version stored owed, with a TTL and nothing kept aside), and its objects in S3 get their expiry tag."""
        try:
            response = self._update(
                "mark published",
                Key=_key(provider, job_id),
                UpdateExpression="SET publish_state = :published, published_at = :now, "
                "expires_at = if_not_exists(retain_until, :expires) "
                "REMOVE unpublished_provider, retain_until, owed_objects, claim_token",
                ConditionExpression="publish_state = :pending",
                ExpressionAttributeValues={
                    ":published": {"S": "published"},
                    ":pending": {"S": "pending"},
                    ":now": {"S": now.isoformat()},
                    ":expires": {"N": str(_epoch(now + self._retention))},
                },
                ReturnValues="UPDATED_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as lost:
            # Confirmed already: by a concurrent sweep, or by this call's first attempt, which DynamoDB applied
            # without its answer arriving. Its objects are tagged again (the same tag), in case that was this.
            old = lost.old or {}
            if old.get("publish_state", {}).get("S") == "published":
                self._expire_with_job(_archived_keys(old))
            return False
        self._expire_with_job(response.get("Attributes", {}).get("owed_objects", {}).get("SS", []))
        return True

    def requeue_publish(self, provider: str, job_id: str, now: datetime) -> None:
        """Move an owed publish to the back of the ``unpublished`` index (ordered by ``completed_epoch``, which
        nothing else reads): one SNS refuses, or the sweep cannot read, must not keep the verdicts owed after
        it from ever reaching the head of the sweep. Nothing happens if it is no longer owed."""
        self._set_while_owed("requeue publish", provider, job_id, "completed_epoch", now)

    def release_publish(self, provider: str, job_id: str, claim: str, now: datetime) -> None:
        """Give up a claim on an owed publish left to the sweep, so the next sweep takes it rather than wait
        the claim out. ``claim``: the claim as this caller wrote it (``StoredJob.publish_claimed_until``).
        Nothing happens if it is no longer owed or someone else has claimed it since (a release tried again
        after its first attempt landed must not end the claim of a sweep that took the verdict meanwhile)."""
        self._set_while_owed("release publish", provider, job_id, "publish_claimed_until", now, claim)

    def _set_while_owed(
        self, action: str, provider: str, job_id: str, attribute: str, now: datetime, claim: str | None = None
    ) -> None:
        condition = "publish_state = :pending"
        values: dict[str, Any] = {":pending": {"S": "pending"}, ":now": {"N": f"{now.timestamp():.3f}"}}
        if claim is not None:
            condition += " AND publish_claimed_until = :claim"
            values[":claim"] = {"N": claim}
        with contextlib.suppress(_ConditionFailed):
            self._update(
                action,
                Key=_key(provider, job_id),
                UpdateExpression=f"SET {attribute} = :now",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )

    def mark_due(self, provider: str, job_id: str, now: datetime, unconfirmed: bool = False) -> None:
        """Make a job due for polling now (a notice without a result arrived); creates it if unknown.
        A terminal job is left alone (a lost condition).

        ``unconfirmed``: nobody but the notice vouches for the job (the provider has not answered for it). A job
        this creates is marked so, and :meth:`drop_unconfirmed` deletes it if the provider then does not know it;
        the first observation the provider gives (``record``) or a registration clears the mark. A job that
        exists is made due as it is, marked or not, and is never created again unmarked: one deleted meanwhile
        is created marked."""
        if not unconfirmed:
            with contextlib.suppress(_ConditionFailed):
                self._open_job("mark due", provider, job_id, now, due_at=now, keep_due=False)
            return

        def make_due(condition: str, **marked: Any) -> None:
            self._open_job("mark due", provider, job_id, now, now, False, condition=condition, **marked)

        for _ in range(3):
            try:
                make_due(
                    "attribute_not_exists(pk)", sets="unconfirmed = :true", values={":true": {"BOOL": True}}
                )
                return
            except _ConditionFailed:
                pass  # it exists (registered, or held after an earlier notice): made due as it is
            try:
                make_due("attribute_exists(pk) AND status_rank < :two")
                return
            except _ConditionFailed as lost:
                if lost.old:
                    return  # finished meanwhile: left alone
                # deleted meanwhile (the provider did not know it): created marked, next time round

    def drop_unconfirmed(
        self, provider: str, job_id: str, created_after: datetime | None = None
    ) -> tuple[Literal["deleted", "absent", "kept"], datetime | None]:
        """Delete a job only a notice vouched for (``mark_due(unconfirmed=True)``), now that the provider says it
        does not know it: any Alibaba account can make MNS sign a notice naming any id, and such an id must not
        become a stored, published verdict. ``deleted``; ``absent`` when there is no such job (another writer
        told the same deleted it first): nothing to do either; ``kept``, changing nothing, for any other job
        (registered, observed by the provider, or finished), with its creation time while it is unfinished:
        that one is expired as usual. ``created_after``: only a job first stored after then (by its notice) is
        deleted; one stored before is ``kept`` too."""
        condition = "unconfirmed = :true AND status_rank < :two"
        values: dict[str, Any] = {":true": {"BOOL": True}, ":two": {"N": "2"}}
        if created_after is not None:
            condition += (
                " AND created_at > :after"  # ISO 8601 in UTC, as every write stores it: ordered as text
            )
            values[":after"] = {"S": created_after.astimezone(UTC).isoformat()}
        try:
            self._write(
                "drop unconfirmed job",
                self._client.delete_item,
                Key=_key(provider, job_id),
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as lost:
            if not lost.old:
                return "absent", None
            created = lost.old.get("created_at", {}).get("S")
            finished = int(lost.old.get("status_rank", {}).get("N", "0")) >= 2
            return "kept", datetime.fromisoformat(created) if created and not finished else None
        return "deleted", None

    def _open_job(
        self,
        action: str,
        provider: str,
        job_id: str,
        now: datetime,
        due_at: datetime,
        keep_due: bool,
        sets: str = "",
        values: dict[str, Any] | None = None,
        removes: str = "",
        condition: str = "attribute_not_exists(pk) OR status_rank < :two",
    ) -> dict[str, Any]:
        """Create the job if unknown and put it in the poll index; a finished job is left alone (the condition
        fails). ``keep_due`` keeps an existing poll time instead of moving it to ``due_at``. ``condition``
        replaces that one (a lost condition returns the item as it was, if there was one)."""
        due = "if_not_exists(next_poll_at, :due)" if keep_due else ":due"
        update = (
            "SET provider = :provider, job_id = :job_id, #s = if_not_exists(#s, :pending), "
            "status_rank = if_not_exists(status_rank, :zero), created_at = if_not_exists(created_at, :now), "
            f"poll_provider = :provider, next_poll_at = {due}"
        )
        response = self._update(
            action,
            Key=_key(provider, job_id),
            UpdateExpression=update
            + (f", {sets}" if sets else "")
            + " REMOVE expires_at"
            + (f", {removes}" if removes else ""),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":provider": {"S": provider},
                ":job_id": {"S": job_id},
                ":pending": {"S": JobStatus.PENDING.value},
                ":zero": {"N": "0"},
                ":now": {"S": now.isoformat()},
                ":due": {"N": str(_epoch(due_at))},
                **({":two": {"N": "2"}} if ":two" in condition else {}),
                **(values or {}),
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        attributes: dict[str, Any] = response["Attributes"]
        return attributes

    def reschedule(self, provider: str, job_id: str, next_poll_at: datetime, attempts: int) -> bool:
        """Set when an unfinished job is polled next; False if it finished meanwhile (nothing to poll)."""
        try:
            self._update(
                "reschedule",
                Key=_key(provider, job_id),
                UpdateExpression="SET next_poll_at = :due, poll_attempts = :attempts REMOVE expires_at",
                ConditionExpression="attribute_exists(pk) AND status_rank < :two",
                ExpressionAttributeValues={
                    ":due": {"N": str(_epoch(next_poll_at))},
                    ":attempts": {"N": str(attempts)},
                    ":two": {"N": "2"},
                },
            )
        except _ConditionFailed:
            return False
        return True

    def watermark(self, provider: str) -> datetime | None:
        """Up to when a provider's finished jobs have been discovered."""
        return self._marker(provider, "WATERMARK")

    def set_watermark(self, provider: str, until: datetime) -> None:
        self._set_marker(provider, "WATERMARK", until)

    def fanout_hold(self, provider: str) -> FanoutHold | None:
        """Whether poll workers hold a provider's jobs: until when, and which (those due by ``through``)."""
        item = self._marker_item(provider, "FANOUT")
        if item is None or "through_epoch" not in item:
            return None
        return FanoutHold(
            until=datetime.fromisoformat(item["until"]["S"]),
            through=int(item["through_epoch"]["N"]),
            rescan_at=datetime.fromisoformat(item["rescan_at"]["S"]) if "rescan_at" in item else None,
            drained_until=(
                datetime.fromisoformat(item["drained_until"]["S"]) if "drained_until" in item else None
            ),
        )

    def set_fanout_hold(self, provider: str, until: datetime, through: int, rescan_at: datetime) -> None:
        self._set_marker(
            provider,
            "FANOUT",
            until,
            {"through_epoch": {"N": str(through)}, "rescan_at": {"S": rescan_at.isoformat()}},
        )

    def mark_fanout_drained(self, provider: str, until: datetime) -> None:
        """A worker is done with a batch of the provider's that carried the hold's end ``until``: the batches
        sent before it are too (one worker at a time takes a provider's batches, in order). Moves only forward,
        and only on a hold that exists."""
        with contextlib.suppress(_ConditionFailed):
            self._update(
                "mark fanout drained",
                Key=_key(provider, "-", f"FANOUT#{provider}"),
                UpdateExpression="SET drained_until = :until, drained_epoch = :epoch",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(drained_epoch) OR drained_epoch < :epoch)"
                ),
                ExpressionAttributeValues={
                    ":until": {"S": until.isoformat()},
                    ":epoch": {"N": str(until.timestamp())},
                },
            )

    def withdraw_fanout_hold(
        self, provider: str, written: datetime, previous: FanoutHold | None, now: datetime
    ) -> None:
        """Take back a hold just written (``until`` = ``written``) whose batches never reached the queue: the
        previous hold again, or one that has ended (``now``) if there was none. Markers otherwise only move
        forward; this one moves back only if nobody has moved it since."""
        restored = previous or FanoutHold(until=now, through=0, rescan_at=now)
        with contextlib.suppress(_ConditionFailed):
            self._update(
                "withdraw fanout",
                Key=_key(provider, "-", f"FANOUT#{provider}"),
                UpdateExpression=(
                    "SET #until = :until, until_epoch = :epoch, through_epoch = :through, rescan_at = :rescan"
                ),
                ConditionExpression="until_epoch = :written",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={
                    ":until": {"S": restored.until.isoformat()},
                    ":epoch": {"N": str(restored.until.timestamp())},
                    ":through": {"N": str(restored.through)},
                    ":rescan": {"S": (restored.rescan_at or restored.until).isoformat()},
                    ":written": {"N": str(written.timestamp())},
                },
            )

    def _marker(self, provider: str, name: str) -> datetime | None:
        item = self._marker_item(provider, name)
        return datetime.fromisoformat(item["until"]["S"]) if item else None

    def _marker_item(self, provider: str, name: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._call(
            f"read {name.lower()}",
            self._client.get_item,
            TableName=self._table,
            Key=_key(provider, "-", f"{name}#{provider}"),
            ConsistentRead=True,
        ).get("Item")
        return item

    def _set_marker(
        self, provider: str, name: str, until: datetime, extra: dict[str, Any] | None = None
    ) -> None:
        """Markers only move forward: a slower concurrent run cannot move one back."""
        sets = ", ".join(f"{attribute} = :{attribute}" for attribute in extra or {})
        with contextlib.suppress(_ConditionFailed):
            self._update(
                f"set {name.lower()}",
                Key=_key(provider, "-", f"{name}#{provider}"),
                UpdateExpression="SET #until = :until, until_epoch = :epoch" + (f", {sets}" if sets else ""),
                ConditionExpression="attribute_not_exists(until_epoch) OR until_epoch < :epoch",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={
                    ":until": {"S": until.isoformat()},
                    ":epoch": {"N": str(until.timestamp())},
                    **{f":{attribute}": value for attribute, value in (extra or {}).items()},
                },
            )

    def _drop_expired(self, provider: str, job_id: str, now: datetime) -> None:
        """Delete a job past its TTL that DynamoDB has not deleted yet; nothing if it is not (any more)."""
        with contextlib.suppress(_ConditionFailed):
            self._write(
                "drop expired job",
                self._client.delete_item,
                Key=_key(provider, job_id),
                ConditionExpression="expires_at <= :now",
                ExpressionAttributeValues={":now": {"N": str(_epoch(now))}},
            )

    def claim_signed(self, scope: str, digest: str, provider: str, job_id: str, now: datetime) -> SignedClaim:
        """Bind the text a callback signature covers (``digest``, a SHA-256 of it, among the texts signed the
        same way: ``scope``) to the provider and job it was first accepted for, and when (``claimed_at``).

        ``ANOTHER_JOB`` when it was accepted for another: the same signed text read with its ids split
        elsewhere, or posted to another provider's route (``SignedIds``). For the same job (a provider re-sending
        its callback), ``RECENT``, or ``LONG_AGO`` when it was first accepted more than :meth:`resend_window`
        before ``now``: for a job the store no longer holds (deleted with its verdict at the end of its
        retention), that is a captured callback replayed. A binding made before bindings were dated is
        ``LONG_AGO``, and stays undated: when it was made is unknown, and dating it now would let a replay of its
        deleted job through."""
        same_job = {":provider": {"S": provider}, ":job_id": {"S": job_id}}
        try:
            item = self._write(
                "record signature",
                self._client.update_item,
                Key=_key(scope, digest, "SIGNED"),
                UpdateExpression="SET provider = :provider, job_id = :job_id, "
                "claimed_at = if_not_exists(claimed_at, :now)",
                ConditionExpression="attribute_not_exists(pk) OR "
                "(provider = :provider AND job_id = :job_id AND attribute_exists(claimed_at))",
                ExpressionAttributeValues={**same_job, ":now": {"N": str(_epoch(now))}},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )["Attributes"]
        except _ConditionFailed as lost:
            old = lost.old or {}
            if old.get("provider") != same_job[":provider"] or old.get("job_id") != same_job[":job_id"]:
                return SignedClaim.ANOTHER_JOB
            return SignedClaim.LONG_AGO  # undated, and left so by the condition
        claimed_at = int(item["claimed_at"]["N"])
        if _epoch(now) - claimed_at > self.resend_window().total_seconds():
            return SignedClaim.LONG_AGO
        return SignedClaim.RECENT

    def resend_window(self) -> timedelta:
        """Half the retention: how long after a callback was accepted, or after its job finished, one for a job
        the store does not hold may still be genuine (a provider re-sending a callback whose storing failed, or
        calling back late). A job the store deleted at the end of its retention finished at least the retention
        before, so its callback is always past the window; and a binding made up to half a retention after its
        job finished (a registered job polled to its end before the callback came) still passes it before the
        job is deleted."""
        return self._retention / 2

    def exists(self, provider: str, job_id: str) -> bool:
        return self.status(provider, job_id) is not None

    def status(self, provider: str, job_id: str) -> JobStatus | None:
        """A job's status alone, None when the store does not hold it: the item's status attribute, never its
        verdict (which a large job keeps in S3), so a replayed callback's check costs one small read."""
        item = self._get_item(
            provider, job_id, ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"}
        )
        return JobStatus(item["status"]["S"]) if item else None

    # -- reads --------------------------------------------------------------------------------------------

    def get(self, provider: str, job_id: str, *, with_verdict: bool = True) -> StoredJob | None:
        """The job, None when the store does not hold it or holds it past its retention (DynamoDB deletes an
        expired item up to a few days late; its verdict archived in S3 may already be gone). Without
        ``with_verdict``, its verdict is left unread (None): what the item says of the job, which reads even
        when the verdict cannot be (its archived payload gone)."""
        item = self._get_item(provider, job_id)
        if not item or _expired(item):
            return None
        return self._to_job(item, load_verdict=with_verdict)

    def conflicts(self, provider: str, job_id: str) -> list[Verdict]:
        """The different terminal results recorded for a job after its first one, every page of them (a
        conflict can hold a large raw payload, and a Query page ends at 1 MB; the raw payloads are not read)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :conflict)",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"{provider}#{job_id}"},
                ":conflict": {"S": "CONFLICT#"},
            },
            "ProjectionExpression": "verdict_gz, verdict_s3_key, expires_at",
            "ConsistentRead": True,
        }
        verdicts: list[Verdict] = []
        while True:
            response = self._call("read conflicts", self._client.query, **kwargs)
            verdicts.extend(
                v
                for item in response.get("Items", [])
                if not _expired(item) and (v := self._load_verdict(item)) is not None
            )
            if "LastEvaluatedKey" not in response:
                return verdicts
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def due_jobs(
        self,
        provider: str,
        now: datetime,
        limit: int = 100,
        after: int | None = None,
        *,
        with_verdict: bool = True,
    ) -> Iterator[StoredJob]:
        """Unfinished jobs of a provider whose next poll is due, oldest first (sparse index, no Scan), as stored;
        with ``after`` (epoch seconds), only those due later than that; without ``with_verdict``, their verdicts
        (findings so far) left unread, as :meth:`get`'s. Polling reads :meth:`due_to_poll`."""
        for item in self._query_due(provider, now, limit, after):
            yield self._to_job(item, load_verdict=with_verdict)

    def due_to_poll(
        self, provider: str, now: datetime, limit: int = 100, after: int | None = None
    ) -> Iterator[DueAt]:
        """The jobs :meth:`due_jobs` reads, with only what a poll needs: a fan-out reads up to
        ``FANOUT_SCAN_LIMIT`` of them a provider, and decoding each one's stored verdict and metadata (a
        running job's progress, say) would cost the schedule seconds of its minute for nothing."""
        projection = "job_id, poll_attempts, created_at, next_poll_at"
        for item in self._query_due(provider, now, limit, after, projection):
            created = item.get("created_at", {}).get("S")
            job = DueJob(
                item["job_id"]["S"],
                int(item.get("poll_attempts", {}).get("N", "0")),
                datetime.fromisoformat(created) if created else None,
            )
            yield DueAt(job, int(item["next_poll_at"]["N"]))

    def _query_due(
        self, provider: str, now: datetime, limit: int, after: int | None, projection: str | None = None
    ) -> Iterator[dict[str, Any]]:
        condition = "poll_provider = :p AND next_poll_at <= :now"
        values = {":p": {"S": provider}, ":now": {"N": str(_epoch(now))}}
        if after is not None:
            if after >= _epoch(now):
                return  # nothing can be due both later than that and by now
            condition = "poll_provider = :p AND next_poll_at BETWEEN :after AND :now"
            values[":after"] = {"N": str(after + 1)}
        yield from self._query_index(OUTSTANDING_INDEX, condition, values, limit, projection)

    def unpublished(self, provider: str, limit: int = 100) -> Iterator[JobKey]:
        """Jobs whose verdict's publish is owed but not confirmed, oldest first (sparse keys-only index, no
        Scan). The index is eventually consistent: ``claim_publish`` checks the table."""
        for item in self._query_index(
            UNPUBLISHED_INDEX, "unpublished_provider = :p", {":p": {"S": provider}}, limit
        ):
            job_id = item["pk"]["S"].split("#", 1)[1]  # provider names hold no '#'
            yield JobKey(provider, job_id)

    def _query_index(
        self, index: str, condition: str, values: dict[str, Any], limit: int, projection: str | None = None
    ) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if projection is not None:
            kwargs["ProjectionExpression"] = projection
        returned = 0
        while returned < limit:
            response = self._call("query " + index, self._client.query, Limit=limit - returned, **kwargs)
            for item in response.get("Items", []):
                returned += 1
                yield item
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- helpers ------------------------------------------------------------------------------------------

    def _payload_attributes(self, verdict: Verdict, raw: bytes | None, fingerprint: str) -> dict[str, Any]:
        """The compressed verdict and raw payload, inline when they fit an item and in S3 when they don't
        (uploaded without the tag the bucket's lifecycle deletes by: the write that follows decides whether they
        get it, ``_record_terminal``)."""
        verdict_gz = compress(verdict_json(verdict))
        raw_gz = compress(raw) if raw is not None else b""
        # Each write uploads objects of its own, under keys no write used before: an object is never written
        # twice (``PayloadArchive.put``), and one an earlier write uploaded may already be tagged, and as old as
        # its retention. A job registered afresh after its TTL, given the same result again and owing its
        # publish, would hold objects about to be deleted; and a repeat of a result that loses could otherwise
        # neither replace the winner's objects nor change their tags.
        base = f"jobs/{verdict.provider}/{verdict.job_id}/{fingerprint}/{secrets.token_hex(8)}"
        attributes: dict[str, Any] = {}
        if len(verdict_gz) + len(raw_gz) <= ITEM_BUDGET:
            attributes["verdict_gz"] = {"B": verdict_gz}
            if raw_gz:
                attributes["raw_gz"] = {"B": raw_gz}
            return attributes
        if raw_gz:
            key = f"{base}/raw.json.gz"
            attributes["raw_s3_key"] = {"S": self._archive.put(key, raw_gz)}
        if len(verdict_gz) <= ITEM_BUDGET:
            attributes["verdict_gz"] = {"B": verdict_gz}
        else:
            key = f"{base}/verdict.json.gz"
            attributes["verdict_s3_key"] = {"S": self._archive.put(key, verdict_gz)}
        return attributes

    def _expire_with_job(self, keys: list[str]) -> None:
        """Tag archived objects for the bucket's lifecycle. One S3 refuses the tag is kept for good (storage,
        never a verdict, is what a failure costs): logged with its key, for you to delete."""
        for key in keys:
            try:
                self._archive.expire_with_job(key)
            except StorageError as exc:
                logger.warning("archived object left without its expiry tag", s3_key=key, error=exc.message)

    def raw_payload(self, provider: str, job_id: str) -> bytes | None:
        """The provider's raw payload kept with the terminal verdict, for audit."""
        item = self._get_item(provider, job_id)
        if not item:
            return None
        if "raw_gz" in item:
            return decompress(item["raw_gz"]["B"])
        if "raw_s3_key" in item:
            return decompress(self._archive.get(item["raw_s3_key"]["S"]))
        return None

    def _get_item(self, provider: str, job_id: str, **projection: Any) -> dict[str, Any] | None:
        response = self._call(
            "read",
            self._client.get_item,
            TableName=self._table,
            Key=_key(provider, job_id),
            ConsistentRead=True,
            **projection,
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _load_verdict(self, item: dict[str, Any]) -> Verdict | None:
        if "verdict_gz" in item:
            data = decompress(item["verdict_gz"]["B"])
        elif "verdict_s3_key" in item:
            data = decompress(self._archive.get(item["verdict_s3_key"]["S"]))
        else:
            return None
        return Verdict.model_validate_json(data)

    def _to_job(
        self, item: dict[str, Any], verdict: Verdict | None = None, *, load_verdict: bool = True
    ) -> StoredJob:
        if verdict is None and load_verdict:
            verdict = self._load_verdict(item)
        return StoredJob(
            provider=item["provider"]["S"],
            job_id=item["job_id"]["S"],
            status=JobStatus(item["status"]["S"]),
            verdict=verdict,
            caller_metadata={k: v["S"] for k, v in item.get("caller_metadata", {}).get("M", {}).items()},
            publish_state=item.get("publish_state", {}).get("S", "not_required"),
            next_poll_at=int(item["next_poll_at"]["N"]) if "next_poll_at" in item else None,
            created_at=datetime.fromisoformat(item["created_at"]["S"]) if "created_at" in item else None,
            poll_attempts=int(item.get("poll_attempts", {}).get("N", "0")),
            publish_claimed_until=item.get("publish_claimed_until", {}).get("N"),
        )

    @staticmethod
    def _transition(attributes: dict[str, Any], now: datetime) -> Transition:
        # created_at is only set when absent, so it equals this write's time exactly when this write created it.
        created = attributes.get("created_at", {}).get("S") == now.isoformat()
        return Transition.CREATED if created else Transition.ADVANCED

    def _update(self, action: str, **kwargs: Any) -> dict[str, Any]:
        return self._write(action, self._client.update_item, **kwargs)

    def _write(self, action: str, operation: Any, **kwargs: Any) -> dict[str, Any]:
        """A write; a lost condition raises _ConditionFailed, anything else that failed a StorageError."""
        try:
            result: dict[str, Any] = operation(TableName=self._table, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise _ConditionFailed(exc.response.get("Item")) from exc
            raise _storage_error(action, exc) from exc
        except BotoCoreError as exc:
            raise _storage_error(action, exc) from exc
        return result

    def _call(self, action: str, operation: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = operation(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error(action, exc) from exc
        return result


def _archived_keys(item: dict[str, Any]) -> list[str]:
    """The S3 keys an item (or the payload attributes of one) holds."""
    return [item[name]["S"] for name in ("raw_s3_key", "verdict_s3_key") if name in item]


def _expired(item: dict[str, Any], now: datetime | None = None) -> bool:
    """Past its TTL (at ``now``, else the clock's time): kept only until DynamoDB gets round to deleting it."""
    at = now.timestamp() if now is not None else time.time()
    return "expires_at" in item and int(item["expires_at"]["N"]) <= at


_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
"""DynamoDB's answers that a later call may not get: throttling, and failures on its side."""


def _progress_json(verdict: Verdict) -> bytes:
    """An unfinished verdict's JSON, within ``PROGRESS_VERDICT_BYTES``."""
    body = verdict_json(verdict)
    if len(body) <= PROGRESS_VERDICT_BYTES:
        return body
    trimmed, _ = message_for(verdict, PROGRESS_VERDICT_BYTES)
    return trimmed.encode("utf-8")


def _storage_error(action: str, exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "ValidationException":
            return ItemRefusedError(f"job store: {action} failed ({code})")
        transient = code in _TRANSIENT_CODES or status >= 500
    else:  # BotoCoreError: out of reach or timed out, or (not transient) no credentials, a malformed call
        code = type(exc).__name__
        transient = isinstance(exc, botocore_exceptions.ConnectionError | botocore_exceptions.HTTPClientError)
    return StorageError(f"job store: {action} failed ({code})", transient=transient)
