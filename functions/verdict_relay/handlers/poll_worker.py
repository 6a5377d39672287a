"""The poll worker (SQS, reserved concurrency): polls the batches the scheduler fanned out.

Same ``Poller`` as the scheduled cycle; a batch carries each job's poll count and age, so the worker reads
nothing before polling. The poll queue is FIFO with the provider as message group, so one worker at a time polls
a provider, at the provider's rate limit. A batch that fails (storage unreachable) is reported back to SQS as a
partial batch failure and retried before any later batch of its provider; after the queue's receive limit it
lands in the dead-letter queue. A batch received after its hold ended is left alone, and a batch being polled
stops when its hold ends: its jobs are the scheduler's again. A batch whose provider's breaker opens waits for it
when it ends within the batch's time (``Poller.poll_jobs``). Jobs a worker leaves due are sent again when the
scheduler next reads the provider's due jobs from the start (see ``handlers/poller.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from verdict_relay.dal.poll_queue import PollBatch, parse_batch
from verdict_relay.errors import StorageError
from verdict_relay.handlers.dependencies import dependencies
from verdict_relay.observability import count, log_metrics, logger


@logger.inject_lambda_context(clear_state=True)
@log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    deps = dependencies()
    poller = deps.poller(build_all=False)

    def time_left_s() -> float:
        return context.get_remaining_time_in_millis() / 1000

    def poll(record: SQSRecord) -> None:
        batch = parse_batch(record.body)
        if batch.is_stale(datetime.now(UTC)):
            # Its hold has ended: the scheduler has these jobs again, and polling them here could double the
            # provider's rate. Whatever was not polled is still due.
            logger.warning(
                "stale poll batch left to the scheduler", provider=batch.provider, held_until=batch.until
            )
            count("StalePollBatches", batch.provider)
            drained(batch)
            return

        # The hold is the batch's time with the provider: once it ends, the scheduler polls the provider again
        # at its own rate, so no request goes out after it. A StorageError (the table unreachable) fails the
        # record: SQS delivers the batch again, and after the queue's receive limit the dead-letter queue has it.
        try:
            report = poller.poll_jobs(batch.provider, batch.jobs, time_left_s, requests_until=batch.until)
        except StorageError as exc:
            # Counted and logged here, with the jobs: the batch utility logs a failed record at debug only.
            count("PollerStorageFailed", batch.provider)
            logger.error(
                "poll batch failed: storage failed; SQS delivers it again",
                provider=batch.provider,
                jobs=len(batch.jobs),
                job_ids=[job.job_id for job in batch.jobs[:10]],
                error=exc.message,
            )
            raise
        logger.info("poll batch done", provider=batch.provider, jobs=len(batch.jobs), report=vars(report))
        drained(batch)

    def drained(batch: PollBatch) -> None:
        # Tells the scheduler how far the provider's queued batches have gone, so it sends more once they run
        # low rather than by its estimate alone (FANOUT_HORIZON_S). The batch is done either way: a failure
        # here leaves the scheduler its estimate, and SQS must not deliver the batch again for it.
        if batch.until is None:  # sent by hand, without a hold
            return
        try:
            deps.store.mark_fanout_drained(batch.provider, batch.until)
        except StorageError as exc:
            logger.warning(
                "poll batch done but not marked drained", provider=batch.provider, error=exc.message
            )

    # One per invocation (a processor keeps the records' outcomes): the local stack runs workers side by side in
    # one process. After a failed record, the rest of the batch is failed too, in order.
    processor = SqsFifoPartialProcessor()
    return process_partial_response(event=event, record_handler=poll, processor=processor, context=context)
