"""S3 archive for what does not fit a DynamoDB item: large raw payloads and large verdicts (gzip-compressed).

The bucket's lifecycle deletes only objects tagged :data:`EXPIRES_WITH_JOB`, ``RetentionDays`` after their upload
(``template.yaml``), the same retention as their job's TTL, which is counted from the verdict too. Objects are
uploaded untagged and never overwritten; the store tags them once its write has decided what they belong to, and
those of a verdict whose publish is owed only when the publish is confirmed (:meth:`JobStore.mark_published`), so
S3 keeps them however long SNS refuses it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from verdict_relay.dal.lazy import LazyClient
from verdict_relay.errors import ArchiveError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

EXPIRES_WITH_JOB = ("retention", "with-job")
"""The tag (key, value) of the objects the bucket's lifecycle rule ``expire-with-jobs`` deletes."""

CONFLICT_WAITS_S = (0.25, 0.5)
"""The waits before each retry of an upload S3 answered 409 ``ConditionalRequestConflict``: a conditional write
of the same key still in progress, which can only be this upload's own first attempt (botocore gave up on it while
S3 was still storing it). botocore does not retry a 409; S3 asks for a retry, which then finds the object stored
(412) or the key free. Bounded, as the callback's time is (:data:`CONFLICT_RETRY_WITHIN_S`)."""

CONFLICT_RETRY_WITHIN_S = 7.0
"""A 409 is waited for only while the upload has taken less than this, its wait included: time for the case it
is for (a first attempt given up at its 5 s read timeout, the retry at once refused), so a put that retries still
ends within this and one call's own bound (three attempts, ``S3_CONFIG``) of about 21 s, under API Gateway's 29 s.
An S3 slow enough to take longer fails the write (a 5xx to the callback, a job left due) as before."""


class PayloadArchive:
    """Most payloads fit their item, so the S3 client is created on first use (:class:`LazyClient`)."""

    def __init__(
        self,
        bucket: str,
        client_factory: Callable[[], S3Client],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bucket = bucket
        self._s3 = LazyClient(client_factory)
        self._sleep = sleep
        self._clock = clock

    def put(self, key: str, data: bytes) -> str:
        """Store bytes under ``key``, untagged. The caller gives every upload a key of its own (a random part),
        so an object found there (412 to the conditional upload) is this upload's: an earlier attempt that S3
        stored with its answer lost, which botocore's retry then finds; and a conditional write still in
        progress there (409) is that attempt too, waited for (:data:`CONFLICT_WAITS_S`). The condition keeps any
        object from being written twice, which would drop the tag it may have got."""
        started = self._clock()
        for wait in (*CONFLICT_WAITS_S, None):
            try:
                self._s3.get().put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=data,
                    ContentType="application/json",
                    ContentEncoding="gzip",
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "PreconditionFailed":
                    return key
                if (
                    code == "ConditionalRequestConflict"
                    and wait is not None
                    and self._clock() - started + wait <= CONFLICT_RETRY_WITHIN_S
                ):
                    self._sleep(wait)
                    continue
                raise ArchiveError(f"payload archive: put failed ({type(exc).__name__} {code})") from exc
            except BotoCoreError as exc:
                raise ArchiveError(f"payload archive: put failed ({type(exc).__name__})") from exc
            return key
        raise AssertionError("not reached: the last attempt returns or raises")

    def expire_with_job(self, key: str) -> None:
        """Tag an object stored without :data:`EXPIRES_WITH_JOB`, for the lifecycle to delete it with its job."""
        try:
            self._s3.get().put_object_tagging(
                Bucket=self._bucket,
                Key=key,
                Tagging={"TagSet": [{"Key": EXPIRES_WITH_JOB[0], "Value": EXPIRES_WITH_JOB[1]}]},
            )
        except (ClientError, BotoCoreError) as exc:
            raise ArchiveError(f"payload archive: tagging failed ({_why(exc)})") from exc

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self._s3.get().get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            why = _why(exc)
            raise ArchiveError(
                f"payload archive: get failed ({why})", may_answer_again=why != "NoSuchKey"
            ) from exc
        return body


def _why(exc: ClientError | BotoCoreError) -> str:
    """S3's error code (``NoSuchKey``, ``AccessDenied``, ``ExpiredToken``), else the SDK's exception name: the
    SDK has a class of its own only for the errors S3's model names, and every other one S3 answered would read
    as ``ClientError``."""
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    return str(code) if code else type(exc).__name__
