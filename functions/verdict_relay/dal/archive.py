"""S3 archive for what does not fit a DynamoDB item: large raw payloads and large verdicts (gzip-compressed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from verdict_relay.dal.lazy import LazyClient
from verdict_relay.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class PayloadArchive:
    """Most payloads fit their item, so the S3 client is created on first use (:class:`LazyClient`)."""

    def __init__(self, bucket: str, client_factory: Callable[[], S3Client]) -> None:
        self._bucket = bucket
        self._s3 = LazyClient(client_factory)

    def put(self, key: str, data: bytes) -> str:
        """Store bytes under ``key``; the caller names its bytes in the key, so a retry rewrites the same object."""
        try:
            self._s3.get().put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                ContentType="application/json",
                ContentEncoding="gzip",
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"payload archive: put failed ({type(exc).__name__})") from exc
        return key

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self._s3.get().get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"payload archive: get failed ({type(exc).__name__})") from exc
        return body
