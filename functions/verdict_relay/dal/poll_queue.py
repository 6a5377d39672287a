"""The poll fan-out queue (SQS): batches of due job ids for the poll workers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from verdict_relay.errors import StorageError
from verdict_relay.models.verdict import ProviderName

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class PollBatch(BaseModel):
    """One message on the poll queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName
    job_ids: list[str] = Field(min_length=1, max_length=5000)


class PollQueue:
    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self._url = queue_url
        self._client = client

    def send(self, batches: list[PollBatch]) -> None:
        for start in range(0, len(batches), 10):
            entries = [
                {"Id": str(i), "MessageBody": batch.model_dump_json()}
                for i, batch in enumerate(batches[start : start + 10])
            ]
            try:
                response = self._client.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"poll queue: send failed ({type(exc).__name__})") from exc
            if response.get("Failed"):
                codes = sorted({f.get("Code", "") for f in response["Failed"]})
                raise StorageError(
                    f"poll queue: {len(response['Failed'])} batches not sent ({', '.join(codes)})"
                )


def parse_batch(body: str) -> PollBatch:
    return PollBatch.model_validate(json.loads(body))
