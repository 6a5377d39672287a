"""Callback tokens are kept out of stored raw payloads (``logic.ingest.redact``)."""

from __future__ import annotations

import json

from verdict_relay.logic.ingest import redact

TOKEN = "1234567890123456"  # all digits: a hex token can be


def test_a_token_is_replaced_wherever_it_stands_whole() -> None:
    raw = json.dumps(
        {
            "CallBackEndpoint": f"https://api.example.com/prod/callbacks/azure-review?token={TOKEN}&x=1",
            "Other": TOKEN,
        }
    ).encode()

    redacted = json.loads(redact(raw, [TOKEN, "another-token-00001"]))

    assert redacted == {
        "CallBackEndpoint": "https://api.example.com/prod/callbacks/azure-review?token=REDACTED&x=1",
        "Other": "REDACTED",
    }


def test_what_merely_contains_a_token_is_left_intact() -> None:
    raw = json.dumps({"score": int("9" + TOKEN + "9"), "name": f"x{TOKEN}", "id": f"{TOKEN}.v2"}).encode()

    assert redact(raw, [TOKEN]) == raw


def test_no_tokens_leave_the_payload_as_it_came() -> None:
    raw = b'{"a": "b"}'

    assert redact(raw, []) is raw


def test_a_token_after_an_escaped_character_is_replaced() -> None:
    # A callback URL quoted percent-encoded (an error message, a report), or in JSON that escapes its "="
    encoded = f"https%3A%2F%2Fapi.example.com%2Fcallbacks%2Fazure-review%3Ftoken%3D{TOKEN}%26x%3D1"
    raw = json.dumps({"Msg": encoded}).encode() + b' {"u": "?token\\u003d' + TOKEN.encode() + b'"}'

    redacted = redact(raw, [TOKEN])

    assert TOKEN.encode() not in redacted
    assert redacted.count(b"REDACTED") == 2
    assert b"%3DREDACTED%26x%3D1" in redacted


def test_a_token_in_a_url_quoted_twice_percent_encoded_is_replaced() -> None:
    # Our callback URL as a query value inside another URL, that URL itself quoted encoded
    raw = (
        f"https://example.com/?next=https%253A%252F%252Fapi.example.com%252Fcb%253Ftoken%253D{TOKEN}".encode()
    )

    assert redact(raw, [TOKEN]).endswith(b"%253DREDACTED")


def test_a_token_inside_a_longer_word_after_an_escape_is_left_intact() -> None:
    raw = f"%3Dx{TOKEN} %3D{TOKEN}x".encode()

    assert redact(raw, [TOKEN]) == raw
