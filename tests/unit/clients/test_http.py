"""Reading the waits providers ask for, and mapping failed answers onto the typed errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.helpers import scripted
from verdict_relay.clients.alibaba import alibaba_error
from verdict_relay.clients.azure import azure_error
from verdict_relay.clients.base import (
    ProviderAuthError,
    ProviderResponseError,
    ProviderThrottledError,
    ProviderUnavailableError,
)
from verdict_relay.clients.http import (
    MAX_DEFER_S,
    HttpOptions,
    HttpResponse,
    OutgoingRequest,
    ProviderHttp,
    asked_to_wait,
    error_for_response,
    read_json,
    retry_after_seconds,
)
from verdict_relay.clients.huawei import huawei_error
from verdict_relay.clients.ratelimit import TokenBucket
from verdict_relay.providers.base import load_json, without_lone_surrogates


def test_alibaba_retry_after_is_read_in_milliseconds() -> None:
    assert retry_after_seconds({"x-acs-retry-after": "1500"}) == 1.5


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_alibaba_retry_after_that_is_not_a_positive_number_falls_back_to_retry_after(value: str) -> None:
    assert retry_after_seconds({"x-acs-retry-after": value, "Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"x-acs-retry-after": value}) is None


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (429, {"Retry-After": "3"}, 3.0),
        (503, {"Retry-After": "3"}, 3.0),
        (400, {"x-acs-retry-after": "3000"}, 3.0),  # MPS's throttle: tea-openapi's reading of any error
        (500, {"x-acs-retry-after": "3000"}, 3.0),
        (400, {"Retry-After": "3"}, None),  # a client error that happens to carry one: not a throttle
        (404, {"Retry-After": "3"}, None),
        (200, {"x-acs-retry-after": "3000"}, None),
        (429, {}, None),
    ],
)
def test_only_a_throttle_or_an_answer_alibaba_marks_asks_the_client_to_wait(
    status: int, headers: dict[str, str], wait: float | None
) -> None:
    assert asked_to_wait(status, headers) == wait


def test_retry_after_is_read_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (retry_after_seconds({"Retry-After": when}) or 0) <= 30
    assert retry_after_seconds({"Retry-After": "not a date"}) is None
    assert retry_after_seconds({}) is None


def response(status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, headers or {}, b"{}")


def test_failed_answers_map_to_the_typed_errors() -> None:
    assert isinstance(error_for_response("p", response(401)), ProviderAuthError)
    # a 403 too: Azure's gateway answers a key valid for another resource so, with no code of its own to read
    assert isinstance(error_for_response("p", response(403), code="Forbidden"), ProviderAuthError)
    assert isinstance(error_for_response("p", response(400), code="X", auth_error=True), ProviderAuthError)
    throttled = error_for_response("p", response(429, {"Retry-After": "4"}))
    assert isinstance(throttled, ProviderThrottledError)
    assert throttled.retry_after == 4.0
    assert isinstance(error_for_response("p", response(503)), ProviderUnavailableError)
    assert isinstance(error_for_response("p", response(400), code="Odd"), ProviderResponseError)


def test_a_503_that_says_when_to_come_back_is_a_throttle_with_its_wait() -> None:
    told = error_for_response("p", response(503, {"Retry-After": "120"}))
    assert isinstance(told, ProviderThrottledError)
    assert told.retry_after == 120.0
    assert isinstance(error_for_response("p", response(503)), ProviderUnavailableError)


def test_an_auth_error_never_repeats_the_providers_message() -> None:
    # Alibaba's SignatureDoesNotMatch message carries its string to sign; it must not reach the logs.
    error = error_for_response(
        "p", response(400), code="SignatureDoesNotMatch", message="StringToSign: GET&%2F&...", auth_error=True
    )
    assert "StringToSign" not in str(error)


NESTED_PAST_THE_PARSERS_LIMIT = [b"[" * 50_000, b'{"a":' * 50_000]


@pytest.mark.parametrize("body", NESTED_PAST_THE_PARSERS_LIMIT, ids=["arrays", "objects"])
def test_an_answer_nested_past_the_json_parsers_limit_is_a_response_error(body: bytes) -> None:
    with pytest.raises(ProviderResponseError, match="not valid JSON"):
        read_json("huawei-video", HttpResponse(200, {}, body))


@pytest.mark.parametrize("body", NESTED_PAST_THE_PARSERS_LIMIT, ids=["arrays", "objects"])
@pytest.mark.parametrize("read_error", [huawei_error, azure_error, alibaba_error])
def test_an_error_answer_nested_past_the_json_parsers_limit_has_no_code(read_error, body: bytes) -> None:  # type: ignore[no-untyped-def]
    assert read_error(HttpResponse(500, {}, body)) == (None, None)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (rb'"12\ud83d"', "12\ufffd"),  # a high half at the end
        (rb'"\ude00\ud83d x"', "\ufffd\ufffd x"),  # halves in the wrong order
        (rb'"\ude00 and on"', "\ufffd and on"),  # a low half alone: text cut after a character's first half
        (rb'"\ud83d\ude00"', "\U0001f600"),  # a pair: one character, kept
        (rb'"\\ud83d"', "\\ud83d"),  # an escaped backslash, then letters: no escape at all
        (rb'"a\\\ud800b"', "a\\\ufffdb"),  # an escaped backslash, then a lone half
        (rb'"\u00e9\n"', "\u00e9\n"),  # other escapes, kept
    ],
    ids=[
        "lone-high",
        "reversed",
        "lone-low",
        "pair",
        "escaped-backslash",
        "backslash-then-lone",
        "other-escapes",
    ],
)
def test_lone_surrogate_escapes_in_an_answer_become_the_replacement_character(body: bytes, text: str) -> None:
    cleaned = without_lone_surrogates(body)

    assert json.loads(cleaned) == text
    assert text.encode("utf-8")  # storable: no surrogate left


def test_an_answer_without_a_lone_surrogate_is_returned_as_it_is() -> None:
    body = rb'{"text": "\ud83d\ude00 \u00e9 \\ud800", "n": 1}'
    assert without_lone_surrogates(body) == body


def test_a_callback_body_with_a_byte_order_mark_or_a_cut_character_is_read() -> None:
    assert load_json("huawei-video", b'\xef\xbb\xbf{"text": "12\\ud83d"}') == {"text": "12\ufffd"}


QUICK = HttpOptions(backoff_factor=0.01, backoff_jitter=0)


def get(url: str, limiter: TokenBucket | None = None) -> HttpResponse:
    """One GET through a provider's HTTP session (its retries, rate limit and deferral)."""
    http = ProviderHttp("huawei-video", limiter or TokenBucket(100), QUICK)
    try:
        return http.send(lambda: OutgoingRequest("GET", f"{url}/v3/p/moderation/video/jobs/job-1"))
    finally:
        http.close()


def test_a_connection_dropped_before_its_answer_is_sent_again() -> None:
    # Given a provider that closes the first request's connection without answering (a pooled keep-alive
    # connection it had dropped), then answers
    seen: list[str] = []
    with scripted([None, (200, {})], seen) as url:
        # When a request is sent
        answer = get(url)

    # Then it is sent again and answered, not reported as the provider unavailable
    assert (seen, answer.status) == (["dropped", "200"], 200)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_throttle_or_a_gateways_error_without_retry_after_is_retried_with_backoff(status: int) -> None:
    # Given a provider refusing one request without saying for how long (a 429 is how Huawei's API gateway
    # throttles), then answering
    seen: list[str] = []
    with scripted([(status, {}), (200, {})], seen) as url:
        # When a request is sent
        answer = get(url)

    # Then it is sent again after a backoff and answered
    assert (seen, answer.status) == ([str(status), "200"], 200)


def test_a_retry_after_longer_than_max_defer_s_holds_the_clients_requests_back_only_that_long() -> None:
    # Given a provider answering "come back in a day"
    seen: list[str] = []
    limiter = TokenBucket(100)
    with scripted([(429, {"Retry-After": "86400"})], seen) as url:
        # When a request is sent
        answer = get(url, limiter)

    # Then it is reported throttled, and the client's other requests wait at most MAX_DEFER_S, not a day: a wrong
    # or hostile header cannot stop a warm container's client until its next cold start
    assert (seen, answer.status) == (["429"], 429)
    assert 0 < limiter.deferred_s() <= MAX_DEFER_S
