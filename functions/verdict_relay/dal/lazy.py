"""A boto3 client created when first used, not at cold start."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LazyClient(Generic[T]):
    """Holds ``factory``'s client once :meth:`get` first asks for it, which a cold start skips when the
    invocation never calls that service: most payloads fit their item (S3: ~28 ms to create, its service model is
    large), and registrations, reads and pass verdicts publish nothing (SNS: ~6 ms after the DynamoDB client)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._client: T | None = None
        self._lock = threading.Lock()  # boto3 client creation is not thread-safe; the poller runs threads

    def get(self) -> T:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client
