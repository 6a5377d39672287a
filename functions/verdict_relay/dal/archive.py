"""S3 archive for what does not fit a DynamoDB item: large raw payloads and large verdicts (gzip-compressed).

The bucket's lifecycle deletes only objects tagged :data:`EXPIRES_WITH_JOB`, ``RetentionDays`` after their upload
(``template.yaml``), the same retention as their job's TTL, which is counted from the verdict too. Objects are
uploaded untagged and never overwritten; the store tags them once its write has decided what they belong to, and
those of a verdict whose publish is owed only when the publish is confirmed (:meth:`JobStore.mark_published`), so
S3 keeps them however long SNS refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from verdict_relay.dal.lazy import LazyClient
from verdict_relay.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

EXPIRES_WITH_JOB = ("retention", "with-job")
"""The tag (key, value) of the objects the bucket's lifecycle rule ``expire-with-jobs`` deletes."""


class PayloadArchive:
    """Most payloads fit their item, so the S3 client is created on first use (:class:`LazyClient`)."""

    def __init__(self, bucket: str, client_factory: Callable[[], S3Client]) -> None:
        self._bucket = bucket
        self._s3 = LazyClient(client_factory)

    def put(self, key: str, data: bytes) -> str:
        """Store bytes under ``key``, untagged. The caller gives every upload a key of its own (a random part),
        so an object found there (412 to the conditional upload) is this upload's: an earlier attempt that S3
        stored with its answer lost, which botocore's retry then finds. The condition keeps any object from being
        written twice, which would drop the tag it may have got."""
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
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return key
            raise StorageError(f"payload archive: put failed ({type(exc).__name__})") from exc
        except BotoCoreError as exc:
            raise StorageError(f"payload archive: put failed ({type(exc).__name__})") from exc
        return key

    def expire_with_job(self, key: str) -> None:
        """Tag an object stored without :data:`EXPIRES_WITH_JOB`, for the lifecycle to delete it with its job."""
        try:
            self._s3.get().put_object_tagging(
                Bucket=self._bucket,
                Key=key,
                Tagging={"TagSet": [{"Key": EXPIRES_WITH_JOB[0], "Value": EXPIRES_WITH_JOB[1]}]},
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"payload archive: tagging failed ({type(exc).__name__})") from exc

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self._s3.get().get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"payload archive: get failed ({type(exc).__name__})") from exc
        return body
