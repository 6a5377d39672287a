"""Reading the waits providers ask for, and mapping failed answers onto the typed errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from verdict_relay.clients.alibaba import alibaba_error
from verdict_relay.clients.azure import azure_error
from verdict_relay.clients.base import (
    ProviderAuthError,
    ProviderResponseError,
    ProviderThrottledError,
    ProviderUnavailableError,
)
from verdict_relay.clients.http import HttpResponse, error_for_response, read_json, retry_after_seconds
from verdict_relay.clients.huawei import huawei_error


def test_alibaba_retry_after_is_read_in_milliseconds() -> None:
    assert retry_after_seconds({"x-acs-retry-after": "1500"}) == 1.5


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_alibaba_retry_after_that_is_not_a_positive_number_falls_back_to_retry_after(value: str) -> None:
    assert retry_after_seconds({"x-acs-retry-after": value, "Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"x-acs-retry-after": value}) is None


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
    assert isinstance(error_for_response("p", response(400), code="X", auth_error=True), ProviderAuthError)
    throttled = error_for_response("p", response(429, {"Retry-After": "4"}))
    assert isinstance(throttled, ProviderThrottledError)
    assert throttled.retry_after == 4.0
    assert isinstance(error_for_response("p", response(503)), ProviderUnavailableError)
    assert isinstance(error_for_response("p", response(400), code="Odd"), ProviderResponseError)


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
