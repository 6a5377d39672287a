"""A verdict archived in S3 is kept as long as its job: the bucket's lifecycle deletes only tagged objects, and
those of a verdict whose publish is owed are tagged only once it is confirmed."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from tests.conftest import FakeAws
from tests.helpers import aws_response
from verdict_relay.dal.archive import (
    CONFLICT_RETRY_WITHIN_S,
    CONFLICT_WAITS_S,
    EXPIRES_WITH_JOB,
    PayloadArchive,
)
from verdict_relay.dal.store import JobStore
from verdict_relay.errors import ArchiveError, StorageError
from verdict_relay.local.resources import load_template, resources_of_type
from verdict_relay.models.jobs import Transition
from verdict_relay.models.verdict import JobStatus, Suggestion, Verdict, VerdictError

LARGE_RAW = random.Random(7).randbytes(400 * 1024)  # compresses to no less: archived in S3


def store_of(aws: FakeAws, s3: Any = None) -> JobStore:
    s3 = s3 or aws.session.client("s3")
    return JobStore(
        aws.resources.table_name,
        aws.session.client("dynamodb"),
        PayloadArchive(aws.resources.bucket, lambda: s3),
    )


def finished(job_id: str, suggestion: Suggestion, reason: str = "") -> Verdict:
    return Verdict(
        provider="huawei-video",
        job_id=job_id,
        status=JobStatus.SUCCEEDED,
        suggestion=suggestion,
        metadata={"reason": reason} if reason else {},
    )  # type: ignore[call-arg]


def large_verdict(job_id: str, suggestion: Suggestion) -> Verdict:
    """A verdict too large for its item too: metadata that compresses to no less than 300 KiB."""
    noise = random.Random(job_id).randbytes(400 * 1024).hex()
    return finished(job_id, suggestion).model_copy(update={"metadata": {"notes": noise}})


def tags(aws: FakeAws) -> dict[str, list[dict[str, str]]]:
    s3 = aws.session.client("s3")
    return {
        key: s3.get_object_tagging(Bucket=aws.resources.bucket, Key=key)["TagSet"]
        for key in aws.bucket_keys()
    }


def state(aws: FakeAws, job_id: str) -> dict[str, Any]:
    return next(i for i in aws.job_items() if i["job_id"]["S"] == job_id)


EXPIRING = [{"Key": EXPIRES_WITH_JOB[0], "Value": EXPIRES_WITH_JOB[1]}]


def test_an_owed_verdicts_objects_expire_only_once_its_publish_is_confirmed(aws: FakeAws) -> None:
    store = store_of(aws)
    now = datetime.now(UTC)

    # Given a block verdict too large for its item, stored owed (SNS refusing it, say)
    assert store.record(large_verdict("big-block", Suggestion.BLOCK), LARGE_RAW, now, publish=True).publish

    # Then S3 keeps its objects untagged, out of the lifecycle's reach however long the publish stays owed
    assert aws.bucket_keys()
    assert all(tag_set == [] for tag_set in tags(aws).values())
    assert sorted(state(aws, "big-block")["owed_objects"]["SS"]) == sorted(aws.bucket_keys())

    # When its publish is confirmed, months later
    assert store.mark_published("huawei-video", "big-block", now + timedelta(days=120))

    # Then its objects are tagged to expire with the job, and the item no longer lists them
    assert all(tag_set == EXPIRING for tag_set in tags(aws).values())
    assert "owed_objects" not in state(aws, "big-block")
    assert store.raw_payload("huawei-video", "big-block") == LARGE_RAW


def test_objects_of_a_verdict_nothing_is_owed_for_expire_from_their_upload(aws: FakeAws) -> None:
    store_of(aws).record(finished("big-pass", Suggestion.PASS), LARGE_RAW, datetime.now(UTC), publish=False)

    assert aws.bucket_keys()
    assert all(tag_set == EXPIRING for tag_set in tags(aws).values())
    assert "owed_objects" not in state(aws, "big-pass")


def test_a_conflicting_results_objects_expire_and_the_owed_winners_stay_kept(aws: FakeAws) -> None:
    store = store_of(aws)
    now = datetime.now(UTC)
    store.record(finished("big-job", Suggestion.BLOCK), LARGE_RAW, now, publish=True)
    kept = set(aws.bucket_keys())

    # When another result for the finished job comes, as large and as owed as the first was
    other = random.Random(8).randbytes(400 * 1024)
    store.record(finished("big-job", Suggestion.REVIEW, "second"), other, now, publish=True)

    # Then the conflict record's own objects expire with it (a conflict is never published); the winner's are
    # still kept untagged for its owed publish
    by_key = tags(aws)
    assert set(by_key) > kept
    assert all(by_key[key] == [] for key in kept)
    assert all(by_key[key] == EXPIRING for key in set(by_key) - kept)


def test_a_later_result_that_differs_only_in_its_failed_items_is_kept_as_a_conflict(aws: FakeAws) -> None:
    # Given an image batch's verdict stored, one image of which could not be moderated
    store = store_of(aws)
    now = datetime.now(UTC)
    failed = [VerdictError(code="image_download_failed", message="timeout", item="https://cdn.example/1.jpg")]
    first = finished("batch-1", Suggestion.REVIEW).model_copy(update={"item_errors": failed})
    store.record(first, None, now, publish=True)

    # When another result for it comes that names another image as the one that failed
    other = [VerdictError(code="image_download_failed", message="timeout", item="https://cdn.example/2.jpg")]
    second = first.model_copy(update={"item_errors": other})
    result = store.record(second, None, now, publish=True)

    # Then it is a different result, kept aside for the operator to see: not taken for a repeat and dropped
    assert result.transition is Transition.CONFLICT
    assert [c.item_errors for c in store.conflicts("huawei-video", "batch-1")] == [other]
    assert store.get("huawei-video", "batch-1").verdict.item_errors == failed  # type: ignore[union-attr]


def test_a_later_failure_that_gives_another_reason_is_kept_as_a_conflict(aws: FakeAws) -> None:
    # Given a job stored as failed, for the reason its provider gave
    store = store_of(aws)
    now = datetime.now(UTC)
    first = Verdict(
        provider="huawei-video",
        job_id="failed-1",
        status=JobStatus.FAILED,
        suggestion=Suggestion.REVIEW,
        error=VerdictError(code="download_failed", message="the video could not be downloaded"),
    )  # type: ignore[call-arg]
    store.record(first, None, now, publish=True)

    # When another result for it comes that says it failed for another reason
    other = VerdictError(code="unsupported_format", message="the video's format is not supported")
    result = store.record(first.model_copy(update={"error": other}), None, now, publish=True)

    # Then it is a different result, kept aside for the operator to see: not taken for a repeat and dropped
    assert result.transition is Transition.CONFLICT
    assert [c.error for c in store.conflicts("huawei-video", "failed-1")] == [other]
    assert store.get("huawei-video", "failed-1").verdict.error == first.error  # type: ignore[union-attr]


def test_repeats_of_the_result_never_change_the_tags_of_the_objects_the_job_holds(aws: FakeAws) -> None:
    store = store_of(aws)
    now = datetime.now(UTC)
    verdict = large_verdict("big-block", Suggestion.BLOCK)

    # Given a block verdict archived whole (verdict and raw payload) and owed
    store.record(verdict, LARGE_RAW, now, publish=True)
    held = sorted(aws.bucket_keys())
    assert len(held) == 2
    assert sorted(state(aws, "big-block")["owed_objects"]["SS"]) == held

    # When the same result comes again from a writer that would not publish it (PUBLISH_PASS_VERDICTS set
    # otherwise, say), and with other raw bytes of the same outcome (a poll after the callback)
    assert store.record(verdict, LARGE_RAW, now, publish=False).transition == Transition.DUPLICATE
    other = random.Random(9).randbytes(400 * 1024)
    assert store.record(verdict, other, now, publish=True).transition == Transition.DUPLICATE

    # Then the job's objects are still untagged while the publish is owed, and the repeats' own objects expire
    by_key = tags(aws)
    assert all(by_key[key] == [] for key in held)
    extra = set(by_key) - set(held)
    assert len(extra) == 4
    assert all(by_key[key] == EXPIRING for key in extra)

    # And once the publish is confirmed, a repeat does not take the tag off (nothing writes an object twice)
    assert store.mark_published("huawei-video", "big-block", now)
    store.record(verdict, LARGE_RAW, now, publish=True)
    assert all(tags(aws)[key] == EXPIRING for key in held)


def test_a_job_registered_afresh_owes_its_publish_with_objects_of_its_own(aws: FakeAws) -> None:
    store = store_of(aws)
    s3 = aws.session.client("s3")
    then = datetime.now(UTC) - timedelta(days=91)
    verdict = large_verdict("big-block", Suggestion.BLOCK)

    # Given a large block verdict published and confirmed 91 days ago: its objects tagged, about to expire
    store.record(verdict, LARGE_RAW, then, publish=True)
    assert store.mark_published("huawei-video", "big-block", then)
    earlier = set(aws.bucket_keys())
    assert all(tag_set == EXPIRING for tag_set in tags(aws).values())

    # When the job, past its TTL, is registered afresh and the provider gives the same result, owed (SNS
    # refusing it, say)
    now = datetime.now(UTC)
    created, _ = store.register("huawei-video", "big-block", {}, now, now)
    assert created
    assert store.record(verdict, LARGE_RAW, now, publish=True).publish

    # Then the owed verdict holds objects of its own, untagged, out of the lifecycle's reach
    owed = set(state(aws, "big-block")["owed_objects"]["SS"])
    assert len(owed) == 2
    assert not owed & earlier
    assert all(s3.get_object_tagging(Bucket=aws.resources.bucket, Key=key)["TagSet"] == [] for key in owed)
    assert store.raw_payload("huawei-video", "big-block") == LARGE_RAW


def landing_first_attempt(aws: FakeAws, later_answered: bool) -> JobStore:
    """A store whose first UpdateItem DynamoDB applies without its answer arriving (a read timeout inside
    botocore's retry loop); the attempts after it are answered, or time out unsent."""
    dynamodb = aws.session.client("dynamodb")
    first = iter([True])

    def land_first(request: Any, **_: Any) -> None:
        if next(first, False):
            sent = json.loads(request.body)
            for value in sent["ExpressionAttributeValues"].values():
                if "B" in value:
                    value["B"] = base64.b64decode(value["B"])
            aws.session.client("dynamodb").update_item(**sent)
        elif later_answered:
            return
        raise ReadTimeoutError(endpoint_url="https://dynamodb.example")

    dynamodb.meta.events.register("before-send.dynamodb.UpdateItem", land_first)
    return JobStore(
        aws.resources.table_name,
        dynamodb,
        PayloadArchive(aws.resources.bucket, lambda: aws.session.client("s3")),
    )


def test_a_write_that_landed_unanswered_tags_its_objects_when_nothing_is_owed(aws: FakeAws) -> None:
    store = landing_first_attempt(aws, later_answered=True)

    # When a pass verdict too large for its item is recorded, and its write's retry finds it stored already
    result = store.record(finished("big-pass", Suggestion.PASS), LARGE_RAW, datetime.now(UTC), publish=False)

    # Then its objects, which the job holds, expire with it all the same: nothing else would ever tag them
    assert result.transition == Transition.DUPLICATE
    assert aws.bucket_keys()
    assert all(tag_set == EXPIRING for tag_set in tags(aws).values())


@pytest.mark.parametrize("registered", [False, True], ids=["new-job", "registered-job"])
def test_a_write_that_won_the_transition_with_its_answer_lost_still_publishes(
    aws: FakeAws, registered: bool
) -> None:
    now = datetime.now(UTC)
    if registered:
        store_of(aws).register("huawei-video", "big-block", {}, now - timedelta(minutes=1), now)
    store = landing_first_attempt(aws, later_answered=True)

    # When a block verdict too large for its item is recorded, and its write's retry finds its own first attempt
    result = store.record(large_verdict("big-block", Suggestion.BLOCK), LARGE_RAW, now, publish=True)

    # Then it is this write's transition and its publish, under the claim it wrote, its objects kept untagged
    assert result.transition == (Transition.ADVANCED if registered else Transition.CREATED)
    assert result.publish
    assert result.job is not None
    assert result.job.publish_claimed_until == state(aws, "big-block")["publish_claimed_until"]["N"]
    assert all(tag_set == [] for tag_set in tags(aws).values())

    # And another write of the same result, by anyone else, is still a duplicate that publishes nothing
    again = store_of(aws).record(large_verdict("big-block", Suggestion.BLOCK), LARGE_RAW, now, publish=True)
    assert (again.transition, again.publish) == (Transition.DUPLICATE, False)


def test_a_call_that_failed_after_its_write_landed_has_its_objects_tagged_by_the_repeat(aws: FakeAws) -> None:
    store = landing_first_attempt(aws, later_answered=False)
    now = datetime.now(UTC)
    with pytest.raises(StorageError):
        store.record(finished("big-pass", Suggestion.PASS), LARGE_RAW, now, publish=False)

    # When the result comes again (the provider's retry of the callback that failed)
    repeat = store_of(aws).record(finished("big-pass", Suggestion.PASS), LARGE_RAW, now, publish=False)

    # Then the objects the job holds, stored by the call that failed, expire with it as the repeat's own do
    assert repeat.transition == Transition.DUPLICATE
    assert len(aws.bucket_keys()) == 2
    assert all(tag_set == EXPIRING for tag_set in tags(aws).values())


def test_objects_whose_write_failed_are_left_untagged_and_logged(
    aws: FakeAws, caplog: pytest.LogCaptureFixture
) -> None:
    dynamodb = aws.session.client("dynamodb")
    store = JobStore(
        aws.resources.table_name,
        dynamodb,
        PayloadArchive(aws.resources.bucket, lambda: aws.session.client("s3")),
    )

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.example")

    # Given DynamoDB out of reach once the objects are uploaded
    dynamodb.meta.events.register("before-send.dynamodb.UpdateItem", unreachable)

    # When the verdict is recorded
    with pytest.raises(StorageError):
        store.record(finished("big-block", Suggestion.BLOCK), LARGE_RAW, datetime.now(UTC), publish=True)

    # Then its objects are not tagged (a retry may win with them, and owe its publish), and their keys are logged
    assert aws.bucket_keys()
    assert all(tag_set == [] for tag_set in tags(aws).values())
    logged = [r.s3_keys for r in caplog.records if "the write that would hold them failed" in r.getMessage()]
    assert logged == [aws.bucket_keys()]


def test_a_tag_s3_refuses_does_not_undo_the_confirmation(
    aws: FakeAws, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = aws.session.client("s3")
    store = store_of(aws, s3)
    now = datetime.now(UTC)
    store.record(finished("big-block", Suggestion.BLOCK), LARGE_RAW, now, publish=True)

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://s3.example")

    # Given S3 out of reach for the tagging
    s3.meta.events.register("before-send.s3.PutObjectTagging", unreachable)

    # When the publish is confirmed
    confirmed = store.mark_published("huawei-video", "big-block", now)

    # Then it is confirmed all the same (SNS has the verdict: it must not be sent again), and each object left
    # without its tag is logged by key, for the operator to delete (storage kept, nothing lost)
    assert confirmed
    assert state(aws, "big-block")["publish_state"]["S"] == "published"
    logged = [r.s3_key for r in caplog.records if "left without its expiry tag" in r.getMessage()]
    assert sorted(logged) == sorted(aws.bucket_keys())
    assert logged


def test_a_confirmation_whose_first_attempt_landed_unanswered_still_tags_the_objects(aws: FakeAws) -> None:
    store = store_of(aws)
    now = datetime.now(UTC)
    store.record(finished("big-block", Suggestion.BLOCK), LARGE_RAW, now, publish=True)

    # Given the confirmation's first attempt applied by DynamoDB, its answer lost on the way back
    aws.session.client("dynamodb").update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": "huawei-video#big-block"}, "sk": {"S": "STATE"}},
        UpdateExpression="SET publish_state = :published REMOVE unpublished_provider, retain_until, owed_objects",
        ExpressionAttributeValues={":published": {"S": "published"}},
    )

    # When the SDK's retry finds it confirmed already
    assert not store.mark_published("huawei-video", "big-block", now)

    # Then the objects get their tag all the same: nothing else would ever tag them
    assert aws.bucket_keys()
    assert all(tag_set == EXPIRING for tag_set in tags(aws).values())


def test_the_buckets_lifecycle_deletes_only_tagged_objects_and_those_of_earlier_versions(
    aws: FakeAws,
) -> None:
    bucket = resources_of_type(load_template(), "AWS::S3::Bucket")["RawPayloadBucket"]
    rules = bucket["LifecycleConfiguration"]["Rules"]

    # Every rule is the tag's or an earlier version's prefix, and expires after the jobs' retention (!Ref loads
    # as the parameter's name)
    by_tag = [rule for rule in rules if "TagFilters" in rule]
    by_prefix = {rule["Prefix"] for rule in rules if "Prefix" in rule}
    assert len(by_tag) + len(by_prefix) == len(rules)
    assert [rule["TagFilters"] for rule in by_tag] == [EXPIRING]
    assert by_prefix == {"raw/", "verdicts/"}
    assert all(rule["ExpirationInDays"] == "RetentionDays" for rule in rules)
    assert all(rule["Status"] == "Enabled" for rule in rules)

    # And no key this version writes falls under those prefixes: an owed verdict's objects would expire
    store_of(aws).record(finished("big-block", Suggestion.BLOCK), LARGE_RAW, datetime.now(UTC), publish=True)
    assert aws.bucket_keys()
    assert not [key for key in aws.bucket_keys() if key.startswith(tuple(by_prefix))]


def test_an_upload_whose_first_attempt_landed_unanswered_succeeds_and_replaces_nothing(aws: FakeAws) -> None:
    s3 = aws.session.client("s3")
    archive = PayloadArchive(aws.resources.bucket, lambda: s3)
    key = "jobs/huawei-video/job-1/f/u/raw.json.gz"
    first = iter([True])

    def lose_first_answer(request: Any, **_: Any) -> None:  # inside botocore's retry loop
        if next(first, False):  # S3 stores the first attempt; its answer never arrives
            aws.session.client("s3").put_object(Bucket=aws.resources.bucket, Key=key, Body=b"payload")
            raise ReadTimeoutError(endpoint_url="https://s3.example")

    s3.meta.events.register("before-send.s3.PutObject", lose_first_answer)

    # When the retry finds the object its first attempt stored
    assert archive.put(key, b"payload") == key

    # Then the upload succeeds, with the object as stored, written once
    assert archive.get(key) == b"payload"
    archive.expire_with_job(key)
    assert archive.put(key, b"payload") == key
    assert s3.get_object_tagging(Bucket=aws.resources.bucket, Key=key)["TagSet"] == EXPIRING


CONFLICT = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ConditionalRequestConflict</Code>'
    b"<Message>A conflicting conditional operation is currently in progress against this resource.</Message>"
    b"</Error>"
)


@pytest.mark.parametrize(
    "first_attempt_lands", [True, False], ids=["first-attempt-lands", "first-attempt-fails"]
)
def test_an_upload_whose_retry_meets_its_first_attempt_in_progress_waits_for_it(
    aws: FakeAws, first_attempt_lands: bool
) -> None:
    s3 = aws.session.client("s3")
    waits: list[float] = []
    archive = PayloadArchive(aws.resources.bucket, lambda: s3, sleep=waits.append)
    key = "jobs/huawei-video/job-1/f/u/raw.json.gz"
    attempts = iter(["timed out", "in progress", "in progress"])

    def first_attempt_in_progress(request: Any, **_: Any) -> Any:
        attempt = next(attempts, None)
        if attempt == "timed out":  # botocore gives up on the first attempt while S3 is still storing it
            raise ReadTimeoutError(endpoint_url="https://s3.example")
        if attempt == "in progress":  # botocore's retry, and ours once: S3 refuses them while it is
            return aws_response(request, 409, CONFLICT, "application/xml")
        if first_attempt_lands and not aws.bucket_keys():  # by the next retry, the first attempt has ended
            aws.session.client("s3").put_object(Bucket=aws.resources.bucket, Key=key, Body=b"payload")
        return None

    s3.meta.events.register("before-send.s3.PutObject", first_attempt_in_progress)

    # When the upload's retries meet its own first attempt still in progress
    assert archive.put(key, b"payload") == key

    # Then it waits for that attempt to end, and the object is stored, whether that attempt stored it or not
    assert waits == list(CONFLICT_WAITS_S)
    assert archive.get(key) == b"payload"


def test_an_upload_that_conflicts_for_longer_than_its_waits_fails_with_a_storage_error(aws: FakeAws) -> None:
    s3 = aws.session.client("s3")
    waits: list[float] = []
    archive = PayloadArchive(aws.resources.bucket, lambda: s3, sleep=waits.append)
    s3.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: aws_response(request, 409, CONFLICT, "application/xml"),
    )

    with pytest.raises(StorageError, match="ConditionalRequestConflict"):
        archive.put("jobs/huawei-video/job-1/f/u/raw.json.gz", b"payload")
    assert waits == list(CONFLICT_WAITS_S)
    assert not aws.bucket_keys()


@pytest.mark.parametrize(
    "failure",
    [EndpointConnectionError(endpoint_url="https://s3"), ReadTimeoutError(endpoint_url="https://s3")],
    ids=["unreachable", "timed-out"],
)
def test_an_upload_s3_does_not_answer_fails_with_a_storage_error(aws: FakeAws, failure: Exception) -> None:
    # Given S3 out of reach, or not answering in time, through every attempt the SDK makes
    s3 = aws.session.client("s3")

    def fail(**_: Any) -> None:
        raise failure

    s3.meta.events.register("before-send.s3.PutObject", fail)
    archive = PayloadArchive(aws.resources.bucket, lambda: s3)

    # When a large payload is uploaded, Then it fails as a storage step (its callback answers 5xx, the poller
    # leaves its job due), naming what happened
    with pytest.raises(StorageError, match=f"payload archive: put failed \\({type(failure).__name__}\\)"):
        archive.put("jobs/huawei-video/xxx/raw.json.gz", LARGE_RAW)


def test_an_upload_slow_before_its_conflict_fails_rather_than_outlast_its_bound(aws: FakeAws) -> None:
    s3 = aws.session.client("s3")
    now = [0.0]
    waits: list[float] = []
    archive = PayloadArchive(aws.resources.bucket, lambda: s3, sleep=waits.append, clock=lambda: now[0])

    def slow_then_conflict(request: Any, **_: Any) -> Any:
        now[0] += 6.9  # S3 slow: the attempts took their timeouts before S3 answered 409
        return aws_response(request, 409, CONFLICT, "application/xml")

    s3.meta.events.register("before-send.s3.PutObject", slow_then_conflict)

    # When the upload meets a 409 with too little of its bound left for a wait and another call
    with pytest.raises(StorageError, match="ConditionalRequestConflict"):
        archive.put("jobs/huawei-video/job-1/f/u/raw.json.gz", b"payload")

    # Then it fails at once, as before retries existed: its caller answers 5xx, or leaves the job due
    assert waits == []
    assert now[0] <= CONFLICT_RETRY_WITHIN_S


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ((403, b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"), "AccessDenied"),
        (
            (400, b"<Error><Code>ExpiredToken</Code><Message>The token has expired</Message></Error>"),
            "ExpiredToken",
        ),
        (
            (404, b"<Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>"),
            "NoSuchKey",
        ),
        (None, "EndpointConnectionError"),
    ],
    ids=["denied", "expired-credentials", "gone", "unreachable"],
)
def test_a_read_or_tagging_s3_refuses_says_what_s3_answered(
    aws: FakeAws, answer: tuple[int, bytes] | None, why: str
) -> None:
    # Given S3 answering every request with an error (or out of reach)
    s3 = aws.session.client("s3")

    def refuse(request: Any, **_: Any) -> Any:
        if answer is None:
            raise EndpointConnectionError(endpoint_url=request.url)
        return aws_response(request, answer[0], answer[1], "application/xml")

    s3.meta.events.register("before-send.s3", refuse)
    archive = PayloadArchive(aws.resources.bucket, lambda: s3)

    # When a stored payload is read and tagged, Then each error names S3's error code, else the SDK's error
    with pytest.raises(ArchiveError) as read:
        archive.get("jobs/huawei-video/xxx/raw.json.gz")
    with pytest.raises(StorageError) as tagging:
        archive.expire_with_job("jobs/huawei-video/xxx/raw.json.gz")
    assert (str(read.value), str(tagging.value)) == (
        f"payload archive: get failed ({why})",
        f"payload archive: tagging failed ({why})",
    )
    # And only an object S3 says is gone is one no retry will read (what the operator is told to do)
    assert read.value.may_answer_again is (why != "NoSuchKey")


def test_a_reschedule_that_comes_after_the_job_finished_changes_nothing(aws: FakeAws) -> None:
    # Given a job whose pass verdict is stored, with its retention's TTL (nothing owed)
    store = store_of(aws)
    now = datetime.now(UTC)
    store.record(finished("done-1", Suggestion.PASS), None, now, publish=False)
    (before,) = aws.table_items()
    assert "expires_at" in before

    # When a poll that failed for it meanwhile puts it back for later (the poller's backoff after a failure)
    moved = store.reschedule("huawei-video", "done-1", now + timedelta(minutes=5), 3)

    # Then nothing changes: the finished job keeps its TTL, and is not polled again
    assert moved is False
    assert aws.table_items() == [before]


def test_a_running_jobs_findings_so_far_give_way_to_its_final_verdict_archived_in_s3(aws: FakeAws) -> None:
    store = store_of(aws)
    now = datetime.now(UTC)

    # Given a running job whose findings so far are kept in its item
    running = finished("long-video", Suggestion.PASS).model_copy(update={"status": JobStatus.RUNNING})
    store.record(running, None, now, publish=False)

    # When it finishes with a verdict too large for its item, owed to SNS
    final = large_verdict("long-video", Suggestion.BLOCK)
    assert store.record(final, LARGE_RAW, now, publish=True).publish

    # Then the job read back, and the owed publish the sweep takes, carry the final verdict, not the progress
    job = store.get("huawei-video", "long-video")
    assert job is not None
    assert job.verdict is not None
    assert (job.verdict.status, job.verdict.suggestion) == (JobStatus.SUCCEEDED, Suggestion.BLOCK)
    claimed = store.claim_publish("huawei-video", "long-video", now + timedelta(minutes=5))
    assert claimed is not None
    assert claimed.verdict == final


def test_a_conflicting_result_is_deleted_with_its_job_at_the_end_of_the_retention(aws: FakeAws) -> None:
    store = store_of(aws)
    recorded = datetime.now(UTC) - timedelta(days=91)

    # Given a finished job and a different later result for it, both recorded more than the retention ago
    store.record(finished("old-job", Suggestion.BLOCK), b"{}", recorded, publish=False)
    other = finished("old-job", Suggestion.REVIEW, "second")
    assert store.record(other, b"{}", recorded, publish=False).transition is Transition.CONFLICT

    # Then the conflict record carries the job's TTL, for DynamoDB to delete it, and reads as gone meanwhile
    conflict = next(i for i in aws.table_items() if i["sk"]["S"].startswith("CONFLICT#"))
    assert conflict["expires_at"] == state(aws, "old-job")["expires_at"]
    assert store.conflicts("huawei-video", "old-job") == []
