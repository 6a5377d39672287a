"""SNS publisher: one message per published verdict, with attributes subscribers can filter on.

Message body: the canonical verdict JSON. Attributes: ``provider``, ``suggestion``, ``status``,
``findings_truncated``, ``republished`` (String) and ``categories`` (String.Array) — e.g. a filter policy
``{"suggestion": ["block"], "provider": ["huawei-video"]}``. ``republished`` is ``true`` on a send beyond the
relay's own publish of a verdict (``verdict-relay republish --job`` of one already published, or of a pass
verdict with ``--force``), so a subscriber can tell it from the relay's one publish.
A verdict too large for SNS (256 KiB, body and attributes together) is sent trimmed (fewer item errors, then its
strongest findings only, or less; see :func:`message_for`) with ``findings_truncated`` set to ``true``; the full
verdict is available from ``GET /jobs/{provider}/{job_id}`` (up to a Lambda response's 6 MB). So is one with more
flagged categories than ``categories`` can carry (``CATEGORIES_MAX_BYTES``): those of its block findings first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from verdict_relay.dal.lazy import LazyClient
from verdict_relay.errors import PublishError
from verdict_relay.models.verdict import Finding, Suggestion, Verdict

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

SNS_MAX_BYTES = 256 * 1024
"""What SNS takes in one message: the body and every attribute's name, data type and value together. More is
refused, at every attempt: the verdict would stay owed for good."""
CATEGORIES_MAX_BYTES = 32 * 1024
"""The ``categories`` attribute's share of a message at most (some 2,000 category names), so that the body keeps
room for the verdict's core and its strongest findings."""

PUBLISH_ATTEMPTS = 3
PUBLISH_BACKOFF_S = (0.1, 0.2)
"""Attempts of one publish, and the waits between them. Only a publish that never reached SNS (no connection
made) is tried again: a timed-out or failed answer may hide a message SNS accepted, and a retry would send it
twice. Anything else is left owed (the sweep sends it once its claim runs out: at most one repeat per publish
whose answer was lost), and SNS out of reach or throttling opens the SNS circuit breaker."""
PUBLISH_MAX_S = 2 * 2.0 + sum(PUBLISH_BACKOFF_S) + 2.0 + 5.0
"""A publish's worst case with the SNS client's timeouts (``SNS_CONFIG``: 2 s connect, 5 s read, no botocore
retries): two attempts that cannot connect (at most the connect timeout each), their waits, then one that
connects and waits for its answer."""

T = TypeVar("T")


def _strength(finding: Finding) -> tuple[int, float]:
    return (finding.suggestion.severity if finding.suggestion else -1, finding.confidence or 0.0)


def _halvings(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """The first half of ``items``, then the first quarter, ... down to none."""
    keep = len(items)
    while keep > 0:
        keep //= 2
        yield items[:keep]


def utf8_size(body: str) -> int:
    return len(body.encode("utf-8"))


def _json(verdict: Verdict) -> str:
    """The verdict's JSON with U+FFFE and U+FFFF escaped: a provider's text (a QR code's content, recognized
    text) can hold them, and SQS, where subscribers commonly read the topic, takes only XML 1.0's characters in a
    message, replacing or refusing others. Either can only occur inside a JSON string, where its escape reads back
    as the same character."""
    body = verdict.model_dump_json()
    if "\ufffe" in body or "\uffff" in body:
        body = body.replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")
    return body


def message_for(verdict: Verdict, limit: int, size: Callable[[str], int] = utf8_size) -> tuple[str, bool]:
    """The verdict's JSON in at most ``limit`` bytes as ``size`` counts them, and whether it was trimmed.

    Trimmed in this order until it fits: to the first item errors (every finding kept: what was found is what a
    subscriber acts on, the items that could not be moderated are summed up in the suggestion), then to the
    strongest findings, then to the verdict's core (ids, status, suggestion, times, the caller's metadata), then
    without the metadata. A verdict always has a message: one that could never be sent would stay owed for good.
    """
    body = _json(verdict)
    if size(body) <= limit:
        return body, False
    findings = sorted(verdict.findings, key=_strength, reverse=True)
    core = verdict.model_copy(update={"findings": [], "item_errors": [], "error": None, "content": None})
    trimmed = chain(
        (verdict.model_copy(update={"item_errors": kept}) for kept in _halvings(verdict.item_errors)),
        (verdict.model_copy(update={"findings": kept, "item_errors": []}) for kept in _halvings(findings)),
        (core,),
    )
    for candidate in trimmed:
        body = _json(candidate)
        if size(body) <= limit:
            return body, True
    return _json(core.model_copy(update={"metadata": {}})), True  # ids fit: job_id <= 512 chars


def sns_message(verdict: Verdict, *, republished: bool = False) -> tuple[str, dict[str, Any]]:
    """The body and attributes of the verdict's message, within ``SNS_MAX_BYTES`` together as SNS counts them:
    the body is trimmed to what the attributes leave."""
    attributes = attributes_for(verdict, truncated=False, republished=republished)
    body, truncated = message_for(verdict, SNS_MAX_BYTES - attributes_size(attributes))
    if truncated:  # "true" is a byte shorter than the "false" counted
        attributes["findings_truncated"]["StringValue"] = "true"
    return body, attributes


def attributes_size(attributes: dict[str, Any]) -> int:
    """The bytes SNS counts for message attributes: each one's name, data type and value."""
    return sum(
        utf8_size(name) + utf8_size(value["DataType"]) + utf8_size(value["StringValue"])
        for name, value in attributes.items()
    )


def categories_within(verdict: Verdict, limit: int = CATEGORIES_MAX_BYTES) -> tuple[list[str], bool]:
    """The verdict's flagged categories as the ``categories`` attribute carries them, in at most ``limit`` bytes
    of JSON, and whether some were left out: those of its block findings first, then its review findings'."""
    categories = verdict.categories
    if utf8_size(json.dumps(categories)) <= limit:
        return categories, False
    blocked = {f.category for f in verdict.findings if f.suggestion is Suggestion.BLOCK}
    kept: list[str] = []
    size = len("[]")
    for category in sorted(categories, key=lambda c: c not in blocked):  # stable: by name within each
        extra = utf8_size(json.dumps(category)) + (len(", ") if kept else 0)
        if size + extra > limit:
            break
        kept.append(category)
        size += extra
    return sorted(kept), True


def attributes_for(verdict: Verdict, truncated: bool, republished: bool = False) -> dict[str, Any]:
    """The message's attributes. ``findings_truncated`` is ``true`` when the body was trimmed (``truncated``) or
    ``categories`` could not carry every flagged category."""
    categories, categories_cut = categories_within(verdict)
    attributes: dict[str, Any] = {
        "provider": {"DataType": "String", "StringValue": verdict.provider},
        "status": {"DataType": "String", "StringValue": verdict.status.value},
        "suggestion": {
            "DataType": "String",
            "StringValue": verdict.suggestion.value if verdict.suggestion else "none",
        },
        "findings_truncated": {
            "DataType": "String",
            "StringValue": "true" if truncated or categories_cut else "false",
        },
        "republished": {"DataType": "String", "StringValue": "true" if republished else "false"},
    }
    if categories:
        attributes["categories"] = {"DataType": "String.Array", "StringValue": json.dumps(categories)}
    return attributes


class VerdictPublisher:
    """Publishes verdicts to the topic; the SNS client is created by the first publish (:class:`LazyClient`)."""

    def __init__(self, topic_arn: str, client_factory: Callable[[], SNSClient]) -> None:
        self._topic_arn = topic_arn
        self._sns = LazyClient(client_factory)

    def publish(self, verdict: Verdict, *, republished: bool = False) -> str:
        """Publish a verdict; returns the SNS message id. Raises PublishError if SNS did not take it.
        ``republished``: an operator's re-send, marked as such in the message's attributes."""
        body, attributes = sns_message(verdict, republished=republished)
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                response = self._sns.get().publish(
                    TopicArn=self._topic_arn, Message=body, MessageAttributes=attributes
                )
            except (ClientError, BotoCoreError) as exc:
                if attempt + 1 < PUBLISH_ATTEMPTS and _not_sent(exc):
                    time.sleep(PUBLISH_BACKOFF_S[attempt])
                    continue
                raise PublishError(
                    f"publish of {verdict.provider}/{verdict.job_id} failed ({_describe(exc)})",
                    unavailable=_unavailable(exc),
                ) from exc
            return str(response["MessageId"])
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


def _describe(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


def _not_sent(exc: ClientError | BotoCoreError) -> bool:
    """SNS certainly did not take the message, and the attempt took at most the connect timeout: no connection
    was made. (Not an SSL error, which can come while reading the answer; not a throttle, which came with a
    whole attempt's time.)"""
    return isinstance(exc, EndpointConnectionError | ConnectTimeoutError)


def _unavailable(exc: ClientError | BotoCoreError) -> bool:
    """SNS out of reach or failing on its side (after botocore's retries): connection errors and timeouts,
    throttling, 5xx. A 4xx that is not throttling is about this request (or the topic), and says SNS answers."""
    if isinstance(exc, BotoCoreError):
        return True
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    code = str(exc.response.get("Error", {}).get("Code") or "")
    return status >= 500 or status == 429 or "throttl" in code.lower()
