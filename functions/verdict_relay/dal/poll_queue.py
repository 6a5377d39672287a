"""The poll fan-out queue (SQS): batches of due jobs for the poll workers.

A message is one provider's batch: each job's id with its poll count and creation time, so a worker reschedules
an unfinished job without reading it first, and the end of the hold it was sent under, after which it is stale.
A batch whose JSON would not fit an SQS message (long job ids) is sent as several smaller ones. The JSON is ASCII
(other characters escaped): SQS takes only XML 1.0's characters in a body (replacing, or refusing, U+FFFE and
U+FFFF, which a job id stored by an earlier version may hold), and an escape reads back as the character it stands
for.

The queue is FIFO and a batch's message group is its provider: SQS hands a provider's next batch out only once
the one before it is done, so at most one worker polls a provider at any time, and that worker can use the
provider's whole rate limit without a second one adding to it. A FIFO message needs a deduplication id: its
body's SHA-256 (a body carries its hold's end, so two different sends do not share one).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from verdict_relay.errors import StorageError
from verdict_relay.models.jobs import DueJob
from verdict_relay.models.verdict import ProviderName

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_MESSAGE_BYTES = 256 * 1024
"""SQS's limit for one message, and for all the messages of one SendMessageBatch call together."""


class PollBatch(BaseModel):
    """One message on the poll queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName
    jobs: list[DueJob] = Field(min_length=1, max_length=5000)
    until: AwareDatetime | None = None
    """When the provider's hold ends. After it, the jobs are the scheduler's again (it may have sent them once
    more), so a worker that receives the batch later leaves it."""

    def is_stale(self, now: datetime) -> bool:
        return self.until is not None and now >= self.until


class PollQueue:
    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self._url = queue_url
        self._client = client

    def send(self, batches: list[PollBatch]) -> None:
        """Send the batches; raises PollQueueError, saying how many messages did go out, if any did not.

        Messages SQS answers it did not take (``Failed`` entries) do not stop the calls after them: the rest of
        the batches still go out, and the error comes at the end. SQS out of reach, or an answer lost, stops the
        send at once."""
        entries: list[dict[str, str]] = []
        size = 0
        sent = 0
        failed: list[str] = []
        for provider, body in ((batch.provider, body) for batch in batches for body in _bodies(batch)):
            body_bytes = len(body)  # ASCII
            if len(entries) == 10 or size + body_bytes > MAX_MESSAGE_BYTES:
                sent += self._send(entries, sent, failed)
                entries, size = [], 0
            entries.append(
                {
                    "Id": str(len(entries)),
                    "MessageBody": body,
                    "MessageGroupId": provider,
                    "MessageDeduplicationId": hashlib.sha256(body.encode("ascii")).hexdigest(),
                }
            )
            size += body_bytes
        if entries:
            sent += self._send(entries, sent, failed)
        if failed:
            codes = ", ".join(sorted(set(failed)))
            raise PollQueueError(f"poll queue: {len(failed)} batches not sent ({codes})", sent)

    def _send(self, entries: list[dict[str, str]], sent_before: int, failed_codes: list[str]) -> int:
        """One SendMessageBatch call: how many of ``entries`` SQS took; the codes of those it did not are added
        to ``failed_codes``."""
        try:
            response = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
        except (HTTPClientError, BotoConnectionError) as exc:
            if not isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
                # A lost answer (a read timeout, a dropped connection, a TLS failure): SQS may have queued them.
                # The client does not retry (SQS_CONFIG), so no later attempt can hide an earlier one's fate.
                raise PollQueueError(f"poll queue: send unconfirmed ({type(exc).__name__})", None) from exc
            raise PollQueueError(f"poll queue: SQS not reached ({type(exc).__name__})", sent_before) from exc
        except (ClientError, BotoCoreError) as exc:
            # SQS answered with an error, or the request never left (credentials, parameters): none went out.
            raise PollQueueError(f"poll queue: send failed ({type(exc).__name__})", sent_before) from exc
        failed = response.get("Failed", [])
        failed_codes.extend(entry.get("Code", "") for entry in failed)
        return len(entries) - len(failed)


class PollQueueError(StorageError):
    """Batches that could not be sent; ``sent``: how many messages of the same send did go out, None when that
    is not known (SQS's answer was lost)."""

    def __init__(self, message: str, sent: int | None) -> None:
        super().__init__(message)
        self.sent = sent


def _bodies(batch: PollBatch) -> Iterator[str]:
    """The batch as ASCII message bodies of at most ``MAX_MESSAGE_BYTES``, halving it until they fit."""
    body = batch.model_dump_json(ensure_ascii=True)
    if len(body) <= MAX_MESSAGE_BYTES or len(batch.jobs) == 1:
        yield body
        return
    half = len(batch.jobs) // 2
    yield from _bodies(batch.model_copy(update={"jobs": batch.jobs[:half]}))
    yield from _bodies(batch.model_copy(update={"jobs": batch.jobs[half:]}))


def parse_batch(body: str) -> PollBatch:
    return PollBatch.model_validate(json.loads(body))
