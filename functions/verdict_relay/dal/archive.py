"""S3 archive for what does not fit a DynamoDB item: large raw payloads and large verdicts (gzip-compressed)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from verdict_relay.errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class PayloadArchive:
    """Most payloads fit their item, so the S3 client is created on first use, not at cold start (~30 ms)."""

    def __init__(self, bucket: str, client_factory: Callable[[], S3Client]) -> None:
        self._bucket = bucket
        self._client_factory = client_factory
        self._s3: S3Client | None = None
        self._lock = threading.Lock()  # boto3 client creation is not thread-safe; the poller runs threads

    @property
    def _client(self) -> S3Client:
        with self._lock:
            if self._s3 is None:
                self._s3 = self._client_factory()
            return self._s3

    def put(self, key: str, data: bytes) -> str:
        """Store bytes under ``key``; the caller names its bytes in the key, so a retry rewrites the same object."""
        try:
            self._client.put_object(
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
            body: bytes = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"payload archive: get failed ({type(exc).__name__})") from exc
        return body
