"""What goes to SNS: the verdict JSON and attributes subscribers can filter on; oversized verdicts trimmed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError

from tests.helpers import QuietHandler, serving
from verdict_relay.dal.publisher import (
    CATEGORIES_MAX_BYTES,
    PUBLISH_ATTEMPTS,
    PUBLISH_BACKOFF_S,
    SNS_MAX_BYTES,
    VerdictPublisher,
    attributes_for,
    sns_message,
)
from verdict_relay.errors import PublishError
from verdict_relay.handlers.dependencies import SNS_CONFIG
from verdict_relay.local.stack import free_port
from verdict_relay.models.verdict import Finding, JobStatus, Suggestion, Verdict, VerdictError


def block_verdict(findings: list[Finding]) -> Verdict:
    return Verdict(
        provider="alibaba-mps",
        job_id="j1",
        status=JobStatus.SUCCEEDED,
        suggestion=Suggestion.BLOCK,
        findings=findings,
    )


def test_attributes_carry_provider_suggestion_status_and_flagged_categories() -> None:
    verdict = block_verdict(
        [
            Finding(category="porn", label="sexy", confidence=0.9, suggestion=Suggestion.BLOCK),
            Finding(category="ad", label="qr", confidence=0.6, suggestion=Suggestion.REVIEW),
            Finding(category="terrorism", label="normal", confidence=0.1, suggestion=Suggestion.PASS),
        ]
    )

    attributes = attributes_for(verdict, truncated=False)

    assert attributes["provider"]["StringValue"] == "alibaba-mps"
    assert attributes["suggestion"]["StringValue"] == "block"
    assert attributes["status"]["StringValue"] == "succeeded"
    assert attributes["categories"]["DataType"] == "String.Array"
    assert json.loads(attributes["categories"]["StringValue"]) == ["ad", "porn"]


def test_small_verdict_is_sent_whole() -> None:
    verdict = block_verdict(
        [Finding(category="porn", label="sexy", confidence=0.9, suggestion=Suggestion.BLOCK)]
    )

    body, attributes = sns_message(verdict)

    assert attributes["findings_truncated"]["StringValue"] == "false"
    assert Verdict.model_validate_json(body) == verdict


def test_times_are_sent_in_utc_to_the_millisecond() -> None:
    # Given a verdict whose provider reported its times with milliseconds, in another zone
    finished = datetime(2022, 7, 30, 16, 57, 11, 11000, tzinfo=timezone(timedelta(hours=8)))
    verdict = block_verdict([]).model_copy(update={"updated_at": finished, "completed_at": finished})

    # When it is sent
    body, _ = sns_message(verdict)

    # Then subscribers read the times in UTC with their milliseconds (docs/verdict.schema.json)
    sent = json.loads(body)
    assert (sent["updated_at"], sent["completed_at"]) == (
        "2022-07-30T08:57:11.011Z",
        "2022-07-30T08:57:11.011Z",
    )


def test_a_providers_text_with_characters_sqs_would_not_carry_is_sent_escaped_and_reads_back_the_same() -> (
    None
):
    # Given a verdict whose finding holds a QR code's content with U+FFFE and U+FFFF (the uploader's to choose)
    verdict = block_verdict(
        [
            Finding(
                category="ad",
                label="qr",
                suggestion=Suggestion.BLOCK,
                qr_content="pay-\uffff-\ufffe-€",
            )
        ]
    )

    body, _ = sns_message(verdict)

    # Then neither is in the message as it is (SQS subscribers would get U+FFFD, or nothing), yet it reads back
    assert "\uffff" not in body
    assert "\ufffe" not in body
    assert "€" in body  # other characters stay as they are, at UTF-8's size
    assert Verdict.model_validate_json(body) == verdict


def test_oversized_verdict_keeps_its_strongest_findings_within_the_sns_limit() -> None:
    weak = [
        Finding(category="ad", label=f"weak-{i}", confidence=0.1, suggestion=Suggestion.PASS, text="x" * 300)
        for i in range(2000)
    ]
    strong = Finding(
        category="porn", label="explicit", confidence=0.99, suggestion=Suggestion.BLOCK, text="y" * 300
    )
    verdict = block_verdict([*weak, strong])

    body, attributes = sns_message(verdict)

    assert attributes["findings_truncated"]["StringValue"] == "true"
    assert sns_size(body, attributes) <= SNS_MAX_BYTES
    sent = Verdict.model_validate_json(body)
    assert sent.findings[0] == strong
    assert sent.suggestion is Suggestion.BLOCK


def test_a_verdict_too_large_even_without_findings_is_still_sent_trimmed_to_what_fits() -> None:
    # 600 failed images with long signed URLs: over the limit with no findings at all
    errors = [
        VerdictError(
            code="image_download_failed", message="timeout", item=f"https://cdn.example/{i}?" + "s" * 500
        )
        for i in range(600)
    ]
    verdict = block_verdict([]).model_copy(
        update={"item_errors": errors, "metadata": {"content_id": "c-1"}, "status": JobStatus.FAILED}
    )

    body, attributes = sns_message(verdict)

    assert attributes["findings_truncated"]["StringValue"] == "true"
    assert sns_size(body, attributes) <= SNS_MAX_BYTES
    sent = Verdict.model_validate_json(body)
    assert 0 < len(sent.item_errors) < len(errors)
    assert sent.item_errors[0] == errors[0]
    assert (sent.job_id, sent.status, sent.suggestion, sent.metadata) == (
        "j1",
        JobStatus.FAILED,
        Suggestion.BLOCK,
        {"content_id": "c-1"},
    )


def test_a_verdict_over_the_limit_by_its_item_errors_keeps_every_finding() -> None:
    # Given a batch with five blocked images, and 600 images that could not be moderated (long signed URLs)
    blocked = [
        Finding(
            category="porn", label="explicit", confidence=0.99, suggestion=Suggestion.BLOCK, item=f"img-{i}"
        )
        for i in range(5)
    ]
    errors = [
        VerdictError(
            code="image_download_failed", message="timeout", item=f"https://cdn.example/{i}?" + "s" * 500
        )
        for i in range(600)
    ]
    verdict = block_verdict(blocked).model_copy(update={"item_errors": errors})

    body, attributes = sns_message(verdict)

    # Then the message names every blocked image, and as many of the failed ones as fit
    assert attributes["findings_truncated"]["StringValue"] == "true"
    assert sns_size(body, attributes) <= SNS_MAX_BYTES
    sent = Verdict.model_validate_json(body)
    assert sent.findings == blocked
    assert 0 < len(sent.item_errors) < len(errors)


def test_a_verdict_whose_single_parts_are_too_large_is_sent_as_its_core() -> None:
    verdict = block_verdict([]).model_copy(
        update={
            "error": VerdictError(code="job_failed", message="m" * 300_000),
            "metadata": {"content_id": "c-1"},
        }
    )

    body, attributes = sns_message(verdict)

    assert attributes["findings_truncated"]["StringValue"] == "true"
    sent = Verdict.model_validate_json(body)
    assert (sent.job_id, sent.error, sent.metadata) == ("j1", None, {"content_id": "c-1"})


def sns_size(body: str, attributes: dict[str, dict[str, str]]) -> int:
    """A message's size as SNS counts it against its limit: the body, and each attribute's name, data type and
    value (the SNS API reference, MessageAttributeValue)."""
    return len(body.encode()) + sum(
        len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
        for name, value in attributes.items()
    )


def test_the_attributes_count_against_the_limit_so_a_near_limit_body_with_many_categories_is_trimmed() -> (
    None
):
    # Given a verdict whose body alone fits, with 400 flagged categories (9 KiB of attribute) that do not fit beside it
    findings = [
        Finding(
            category=f"label-category-{i:03}",
            label="x",
            confidence=0.9,
            suggestion=Suggestion.BLOCK,
            text="t" * 424,
        )
        for i in range(400)
    ]
    verdict = block_verdict(findings)
    whole = len(verdict.model_dump_json().encode())
    assert whole < SNS_MAX_BYTES < whole + len(json.dumps(verdict.categories))

    body, attributes = sns_message(verdict)

    # Then body and attributes together fit what SNS takes (SNS refuses more at every attempt), every category is
    # still there to filter on, and the message says it was trimmed
    assert sns_size(body, attributes) <= SNS_MAX_BYTES
    assert json.loads(attributes["categories"]["StringValue"]) == verdict.categories
    assert attributes["findings_truncated"]["StringValue"] == "true"
    assert Verdict.model_validate_json(body).suggestion is Suggestion.BLOCK


def test_categories_past_their_share_of_the_message_keep_those_of_block_findings_first() -> None:
    # Given 3,000 categories flagged for review, and 3 flagged for block that sort after them all
    reviews = [
        Finding(category=f"review-{i:04}", label="x", confidence=0.6, suggestion=Suggestion.REVIEW)
        for i in range(3000)
    ]
    blocks = [
        Finding(category=f"zz-block-{i}", label="x", confidence=0.9, suggestion=Suggestion.BLOCK)
        for i in range(3)
    ]
    verdict = block_verdict([*reviews, *blocks])

    body, attributes = sns_message(verdict)

    sent = json.loads(attributes["categories"]["StringValue"])
    assert len(attributes["categories"]["StringValue"].encode()) <= CATEGORIES_MAX_BYTES
    assert {"zz-block-0", "zz-block-1", "zz-block-2"} <= set(sent)
    assert 0 < len(sent) < 3003
    assert sent == sorted(sent)
    assert attributes["findings_truncated"]["StringValue"] == "true"
    assert sns_size(body, attributes) <= SNS_MAX_BYTES


SNS_PUBLISHED = (
    200,
    b"<PublishResponse><PublishResult><MessageId>m-1</MessageId></PublishResult>"
    b"<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>",
)


def sns_error(status: int, code: str) -> tuple[int, bytes]:
    """SNS's answer refusing a request, as its query API sends it."""
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>refused</Message></Error>"
        "<RequestId>r-1</RequestId></ErrorResponse>"
    )
    return status, body.encode()


def sns_at(endpoint: str, config: Config = SNS_CONFIG) -> Any:
    """An SNS client of ``endpoint``, with the functions' SNS client config unless told otherwise."""
    return boto3.client(
        "sns",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config,
    )


@contextmanager
def sns_answering(*answers: tuple[int, bytes]) -> Iterator[tuple[Any, list[str]]]:
    """An SNS client (the functions' SNS_CONFIG) talking to an endpoint on 127.0.0.1 that gives ``answers`` in
    turn; and the requests it received."""
    received: list[str] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, body = answers[min(len(received), len(answers) - 1)]
            received.append(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Handler) as url:
        yield sns_at(url), received


@pytest.mark.parametrize(
    ("code", "status", "unavailable"),
    [
        ("InternalError", 500, True),
        ("Throttled", 400, True),
        ("KMSThrottling", 400, True),
        ("NotFound", 404, False),
        ("AuthorizationError", 403, False),
        ("InvalidParameter", 400, False),
        ("Throttling", 400, True),  # codes SNS's model does not name read as ClientError: named by their code
        ("ServiceUnavailable", 503, True),
    ],
)
def test_a_failed_publish_says_whether_sns_is_out_of_reach_or_refused_this_message(
    code: str, status: int, unavailable: bool
) -> None:
    with sns_answering(sns_error(status, code)) as (sns, received), pytest.raises(PublishError) as raised:
        VerdictPublisher("arn:aws:sns:us-east-1:123456789012:verdicts", lambda: sns).publish(
            block_verdict([])
        )

    assert raised.value.unavailable is unavailable
    assert code in raised.value.message
    assert len(received) == 1


def test_sns_that_cannot_be_reached_is_out_of_reach() -> None:
    sns = sns_at(  # nothing listens
        f"http://127.0.0.1:{free_port()}", Config(retries={"max_attempts": 1}, connect_timeout=1)
    )

    with pytest.raises(PublishError) as raised:
        VerdictPublisher("arn:aws:sns:us-east-1:123456789012:verdicts", lambda: sns).publish(
            block_verdict([])
        )

    assert raised.value.unavailable is True


def test_only_a_publish_that_never_reached_sns_is_tried_again() -> None:
    attempts: list[str] = []
    sns = sns_at(f"http://127.0.0.1:{free_port()}")  # nothing listens: no connection is made
    sns.meta.events.register("before-send.sns.Publish", lambda **_: attempts.append("sent") and None)

    with pytest.raises(PublishError) as raised:
        VerdictPublisher("arn:aws:sns:us-east-1:123456789012:verdicts", lambda: sns).publish(
            block_verdict([])
        )

    assert raised.value.unavailable is True
    assert len(attempts) == PUBLISH_ATTEMPTS
    # A throttled publish came with a whole attempt's time: it is left owed, not tried again here.
    with (
        sns_answering(sns_error(400, "Throttling"), SNS_PUBLISHED) as (throttled, received),
        pytest.raises(PublishError),
    ):
        VerdictPublisher("arn:aws:sns:us-east-1:123456789012:verdicts", lambda: throttled).publish(
            block_verdict([])
        )
    assert len(received) == 1


def test_a_message_of_exactly_what_sns_takes_is_sent_whole_and_one_byte_more_is_trimmed() -> None:
    # Given a block verdict whose body and attributes, as SNS counts them, come to exactly its limit
    def verdict_of(text_bytes: int) -> Verdict:
        return block_verdict(
            [Finding(category="porn", label="explicit", suggestion=Suggestion.BLOCK, text="x" * text_bytes)]
        )

    probe = verdict_of(0)
    fitting = SNS_MAX_BYTES - sns_size(probe.model_dump_json(), attributes_for(probe, truncated=False))
    at_limit, over_limit = verdict_of(fitting), verdict_of(fitting + 1)

    # When each is made a message
    body, attributes = sns_message(at_limit)
    over_body, over_attributes = sns_message(over_limit)

    # Then the one at the limit goes out whole, untrimmed: SNS takes it as it is
    assert sns_size(body, attributes) == SNS_MAX_BYTES
    assert attributes["findings_truncated"]["StringValue"] == "false"
    assert Verdict.model_validate_json(body) == at_limit
    # And the one a byte over is trimmed to what SNS takes (every attribute's name, data type and value
    # counted): sent as it is, SNS would refuse it at every attempt and the verdict would stay owed for good
    assert sns_size(over_body, over_attributes) <= SNS_MAX_BYTES
    assert over_attributes["findings_truncated"]["StringValue"] == "true"
    assert Verdict.model_validate_json(over_body).suggestion is Suggestion.BLOCK


def test_a_message_whose_categories_are_cut_says_so_even_when_its_body_is_whole() -> None:
    # Given a verdict of few, short findings in more flagged categories than the attribute carries
    # (800 category names of 40 characters: 34 KiB of JSON; the body well under SNS's limit)
    findings = [
        Finding(category=f"{i:04}-" + "c" * 35, label="x", suggestion=Suggestion.REVIEW) for i in range(800)
    ]
    verdict = block_verdict(findings)

    body, attributes = sns_message(verdict)

    # Then the body is the whole verdict, but the categories a filter policy reads are not all there: the
    # message says it is incomplete, so a subscriber knows to read the verdict from GET /jobs
    assert Verdict.model_validate_json(body) == verdict
    sent = json.loads(attributes["categories"]["StringValue"])
    assert 0 < len(sent) < len(verdict.categories)
    assert attributes["findings_truncated"]["StringValue"] == "true"


def test_a_publish_whose_connection_timed_out_is_tried_again_and_sent_once() -> None:
    # Given SNS whose first connection is not accepted within the client's connect timeout (no request was
    # sent: it cannot have taken the message), and which answers the next
    with sns_answering(SNS_PUBLISHED) as (sns, received):
        timeouts: list[str] = []

        def connect_times_out(request: Any, **_: Any) -> None:
            if not timeouts:
                timeouts.append(request.url)
                raise ConnectTimeoutError(endpoint_url=request.url)

        sns.meta.events.register("before-send.sns.Publish", connect_times_out)

        # When a verdict is published
        started = time.monotonic()
        message_id = VerdictPublisher("arn:aws:sns:us-east-1:123456789012:verdicts", lambda: sns).publish(
            block_verdict([])
        )

        took = time.monotonic() - started

    # Then it is sent at the next attempt, after its wait, once: not left owed for the sweep a claim later
    assert message_id == "m-1"
    assert (len(timeouts), len(received)) == (1, 1)
    assert took >= PUBLISH_BACKOFF_S[0]


def test_a_verdict_whose_findings_alone_fill_the_message_keeps_every_finding_and_drops_its_item_errors() -> (
    None
):
    # Given a long video's verdict whose findings alone come near SNS's limit, and two parts that could not be
    # moderated, each with a long signed URL: not even one of them fits beside the findings
    findings = [
        Finding(category="porn", label="explicit", suggestion=Suggestion.BLOCK, time_offset=i, text="t" * 900)
        for i in range(220)
    ]
    errors = [
        VerdictError(
            code="segment_failed", message="timeout", item=f"https://cdn.example/{i}?" + "s" * 20_000
        )
        for i in range(2)
    ]
    verdict = block_verdict(findings).model_copy(update={"item_errors": errors})
    alone = len(block_verdict(findings).model_dump_json())
    assert alone < SNS_MAX_BYTES - 1024 < alone + 20_000

    body, attributes = sns_message(verdict)

    # Then what was found is sent whole, and the item errors are what is left out
    sent = Verdict.model_validate_json(body)
    assert attributes["findings_truncated"]["StringValue"] == "true"
    assert sns_size(body, attributes) <= SNS_MAX_BYTES
    assert (sent.findings, sent.item_errors) == (findings, [])


@contextmanager
def sns_that_never_answers() -> Iterator[tuple[str, list[str]]]:
    """An endpoint that reads each request, counts it, and does not answer in time."""
    received: list[str] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(self.path)
            time.sleep(1.0)

    with serving(Handler) as url:
        yield url, received


def test_a_publish_whose_answer_times_out_is_not_sent_again() -> None:
    # SNS may have taken it: a retry could deliver it twice. It is left owed for the claim-guarded sweep.
    with sns_that_never_answers() as (endpoint, received):
        sns = sns_at(endpoint, SNS_CONFIG.merge(Config(read_timeout=0.2)))
        with pytest.raises(PublishError) as raised:
            VerdictPublisher("arn:aws:sns:us-east-1:123456789012:verdicts", lambda: sns).publish(
                block_verdict([])
            )

    assert raised.value.unavailable is True
    assert len(received) == 1


def test_a_finishing_write_a_publish_and_its_confirmation_at_their_worst_end_inside_the_claim() -> None:
    from verdict_relay.config import Settings
    from verdict_relay.dal.publisher import PUBLISH_MAX_S
    from verdict_relay.dal.store import STORE_CALL_MAX_S
    from verdict_relay.handlers.dependencies import DYNAMODB_CONFIG
    from verdict_relay.local.resources import load_template, resources_of_type
    from verdict_relay.logic.ingest import PUBLISH_TIME_S

    # A store call at its worst: every attempt connects at the last moment and waits out its read, with
    # botocore's longest waits between attempts (standard mode: up to 1 s, then 2 s, ...).
    retries = DYNAMODB_CONFIG.retries or {}
    attempts = retries["total_max_attempts"]
    assert retries["mode"] == "standard"
    waits = sum(min(2**i, 20) for i in range(attempts - 1))
    assert (
        attempts * (DYNAMODB_CONFIG.connect_timeout + DYNAMODB_CONFIG.read_timeout) + waits
        == STORE_CALL_MAX_S
    )

    # A publish is started only with time for it and its confirmation left
    assert PUBLISH_TIME_S >= PUBLISH_MAX_S + STORE_CALL_MAX_S
    # The writer that finished a job publishes under a claim that outlasts the finishing write, the publish
    # and the confirmation; and the receiver's timeout ends its invocation before its claim runs out.
    claim = min(
        Settings.model_fields["publish_claim_seconds"].default,
        *(m.ge for m in Settings.model_fields["publish_claim_seconds"].metadata if hasattr(m, "ge")),
    )  # the default, and the least the settings accept
    assert claim > STORE_CALL_MAX_S + PUBLISH_TIME_S
    receiver = resources_of_type(load_template(), "AWS::Serverless::Function")["ApiFunction"]
    assert PUBLISH_TIME_S < receiver["Timeout"] < claim
