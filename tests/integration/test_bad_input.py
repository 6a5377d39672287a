"""Bad input gets a clear 4xx with a JSON body saying what was wrong, and stores nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeAws
from tests.helpers import (
    api_event,
    huawei_signature,
    load_payload,
    load_payload_bytes,
    mns_push_event,
    with_changes,
)
from tests.integration.conftest import (
    AZURE_TOKENS,
    HUAWEI_AUDIO_SEEDS,
    HUAWEI_AUDIO_TOKENS,
    HUAWEI_SEEDS,
    PROVIDERS_DOCUMENT,
    ApiClient,
    configure_environment,
)
from verdict_relay.handlers.callback import JOB_REQUEST_MAX_BYTES
from verdict_relay.handlers.http_errors import MAX_DETAIL_CHARS, MAX_DETAILS
from verdict_relay.local.callback_signing import MnsSigner


def assert_rejected(response, status: int, code: str, aws: FakeAws, mentions: str = "") -> None:  # type: ignore[no-untyped-def]
    assert response.status == status, response.body
    assert response.body["error"]["code"] == code
    assert mentions.lower() in response.body["error"]["message"].lower()
    assert aws.table_items() == [], "a rejected request must store nothing"
    assert aws.published() == []


def test_malformed_json_is_a_400(api: ApiClient, aws: FakeAws) -> None:
    body = b'{"job_id": "x", "create_time": '
    response = api.callback("azure-review", body, query={"token": AZURE_TOKENS[0]})
    assert_rejected(response, 400, "malformed_payload", aws, "not valid JSON")


def test_body_that_is_not_utf8_is_a_400(api: ApiClient, aws: FakeAws) -> None:
    response = api.callback(
        "azure-review", b"\xff\xfe{}", query={"token": AZURE_TOKENS[0]}, base64_encoded=True
    )
    assert_rejected(response, 400, "malformed_payload", aws, "UTF-8")


def test_payload_of_the_wrong_shape_is_a_422_naming_the_field(api: ApiClient, aws: FakeAws) -> None:
    body = json.dumps({"JobId": "j1", "Status": "Exploded", "CallBackType": "Job"}).encode()
    response = api.callback("azure-review", body, query={"token": AZURE_TOKENS[0]})
    assert_rejected(response, 422, "invalid_payload", aws, "status")


def test_wrong_content_type_is_a_415(api: ApiClient, aws: FakeAws) -> None:
    body = load_payload_bytes("azure-review", "job-callback")
    response = api.callback(
        "azure-review", body, headers={"Content-Type": "text/html"}, query={"token": AZURE_TOKENS[0]}
    )
    assert_rejected(response, 415, "unsupported_media_type", aws, "text/html")


@pytest.mark.parametrize(
    "content_type", [None, "Application/JSON; charset=UTF-8"], ids=["no-content-type", "mixed-case"]
)
def test_a_callback_without_a_content_type_or_with_it_in_another_case_is_accepted(
    api: ApiClient, aws: FakeAws, content_type: str | None
) -> None:
    # Given an Azure job callback with a valid token, sent with no Content-Type header at all (let through to
    # the adapter's parser) or with its media type in another case (media types are case-insensitive)
    body = load_payload_bytes("azure-review", "job-callback")
    event = api_event(
        "POST",
        "/callbacks/azure-review",
        resource="/callbacks/{provider}",
        path_parameters={"provider": "azure-review"},
        body=body,
        headers={"Content-Type": content_type} if content_type else None,
        query={"token": AZURE_TOKENS[0]},
    )

    # When it reaches the receiver
    response = api.invoke(event)

    # Then it is acknowledged and its job stored, not refused with a 415
    assert response.status == 200, response.body
    assert [item["job_id"]["S"] for item in aws.table_items() if "job_id" in item] == [
        load_payload("azure-review", "job-callback")["JobId"]
    ]


def test_oversized_body_is_a_413(aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT, MAX_BODY_BYTES="2048")
    body = json.dumps({"JobId": "j", "padding": "x" * 4096}).encode()
    response = ApiClient().callback("azure-review", body, query={"token": AZURE_TOKENS[0]})
    assert_rejected(response, 413, "payload_too_large", aws, "2048")


def test_a_callback_of_exactly_max_body_bytes_is_accepted(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given MAX_BODY_BYTES of 2048 and an Azure job callback padded to exactly that size
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT, MAX_BODY_BYTES="2048")
    body = load_payload_bytes("azure-review", "job-callback")
    body = body[: body.rindex(b"}")] + b" " * (2047 - body.rindex(b"}")) + b"}"
    assert len(body) == 2048

    # When it reaches the receiver
    response = ApiClient().callback("azure-review", body, query={"token": AZURE_TOKENS[0]})

    # Then it is accepted: only a body larger than the limit is a 413
    assert response.status == 200, response.body
    assert len([item for item in aws.table_items() if "job_id" in item]) == 1


def test_oversized_base64_body_is_a_413_before_decoding(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT, MAX_BODY_BYTES="2048")
    response = ApiClient().callback(
        "azure-review", b"x" * 8192, query={"token": AZURE_TOKENS[0]}, base64_encoded=True
    )
    assert_rejected(response, 413, "payload_too_large", aws)


def test_invalid_base64_body_is_a_400(api: ApiClient, aws: FakeAws) -> None:
    event = api_event(
        "POST",
        "/callbacks/azure-review",
        resource="/callbacks/{provider}",
        path_parameters={"provider": "azure-review"},
        body="%%%not-base64%%%",
        headers={"Content-Type": "application/json"},
        query={"token": AZURE_TOKENS[0]},
    )
    event["isBase64Encoded"] = True
    assert_rejected(api.invoke(event), 400, "malformed_payload", aws, "base64")


@pytest.mark.parametrize("job_id", ["a b", "a/b", "a#b", "a\u0007b", "..", "."])
def test_an_azure_callback_naming_a_job_id_no_job_can_have_is_a_422_naming_the_field(
    api: ApiClient, aws: FakeAws, job_id: str
) -> None:
    # Azure signs nothing: a token alone lets a callback in, so its ids get the registration's rules
    payload = {**load_payload("azure-review", "job-callback"), "JobId": job_id}
    response = api.callback("azure-review", json.dumps(payload).encode(), query={"token": AZURE_TOKENS[0]})
    assert_rejected(response, 422, "invalid_payload", aws, "jobid")


@pytest.mark.parametrize("job_id", ["a b", "a/b", "a#b", "a\u0007b", "..", "."])
def test_a_signed_huawei_callback_naming_a_job_id_its_url_cannot_address_is_a_422_storing_nothing(
    api: ApiClient, aws: FakeAws, job_id: str
) -> None:
    # The poller asks Huawei about a job at .../jobs/{job_id}: '.' would ask about the jobs list and '/' about
    # another path, so such a job could never be resolved and would be polled for good
    body = with_changes("huawei-video", "succeeded", job_id=job_id)
    headers = {"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
    assert_rejected(
        api.callback("huawei-video", body, headers=headers), 422, "invalid_payload", aws, "job_id"
    )


def test_unknown_provider_is_a_404(api: ApiClient, aws: FakeAws) -> None:
    response = api.callback("acme-moderation", b"{}")
    assert_rejected(response, 404, "unknown_provider", aws, "acme-moderation")


SIGNED_VIDEO_BODY = load_payload_bytes("huawei-video", "succeeded")
VALID_HEX_SIGNATURE = huawei_signature(HUAWEI_SEEDS[0], SIGNED_VIDEO_BODY)
VALID_BASE64_SIGNATURE = huawei_signature(HUAWEI_SEEDS[0], SIGNED_VIDEO_BODY, encoding="base64")
"""The X-Auth-Signature the receiver accepts for the body, in either encoding Huawei may send it in."""


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"X-Auth-Signature": "0" * 64}, "invalid"),
        # The valid signature without its last byte: two hex digits, or Base64's last character and padding
        ({"X-Auth-Signature": VALID_HEX_SIGNATURE[:-2]}, "invalid"),
        ({"X-Auth-Signature": VALID_BASE64_SIGNATURE[:-2]}, "invalid"),
        ({"X-Auth-Signature": huawei_signature("another_seed", SIGNED_VIDEO_BODY)}, "invalid"),
    ],
    ids=["missing", "wrong", "truncated-hex", "truncated-base64", "unconfigured-seed"],
)
def test_bad_or_missing_huawei_signature_is_a_401(
    api: ApiClient, aws: FakeAws, headers: dict[str, str], reason: str
) -> None:
    body = SIGNED_VIDEO_BODY
    response = api.callback("huawei-video", body, headers=headers)
    assert_rejected(response, 401, "unauthorized", aws, reason)
    assert headers.get("X-Auth-Signature", "§") not in json.dumps(response.body)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({}, "missing"),
        ({"token": "wrong-token-000000000"}, "invalid"),
        ({"token": AZURE_TOKENS[0][:-1]}, "invalid"),
    ],
    ids=["missing", "wrong", "truncated"],
)
def test_bad_or_missing_azure_token_is_a_401(
    api: ApiClient, aws: FakeAws, query: dict[str, str], reason: str
) -> None:
    body = load_payload_bytes("azure-review", "job-callback")
    response = api.callback("azure-review", body, query=query)
    assert_rejected(response, 401, "unauthorized", aws, reason)


VIDEO_BODY = load_payload_bytes("huawei-video", "succeeded")
AUDIO_BODY = load_payload_bytes("huawei-audio", "succeeded")
AZURE_BODY = load_payload_bytes("azure-review", "job-callback")
MNS_BODY = load_payload_bytes("alibaba-mps", "mns-notification")


def signed_with(seed: str, body: bytes) -> dict[str, str]:
    return {"X-Auth-Signature": huawei_signature(seed, body)}


@pytest.mark.parametrize(
    ("provider", "body", "headers", "query", "reason"),
    [
        pytest.param(
            "huawei-video",
            VIDEO_BODY,
            signed_with(HUAWEI_AUDIO_SEEDS[0], VIDEO_BODY),
            {},
            "invalid x-auth-signature",
            id="huawei-audio-seed-on-huawei-video",
        ),
        pytest.param(
            "huawei-audio",
            AUDIO_BODY,
            signed_with(HUAWEI_SEEDS[1], AUDIO_BODY),
            {"token": HUAWEI_AUDIO_TOKENS[0]},
            "invalid x-auth-signature",
            id="huawei-video-previous-seed-on-huawei-audio",
        ),
        pytest.param(
            "huawei-audio",
            AUDIO_BODY,
            signed_with(HUAWEI_AUDIO_SEEDS[0], AUDIO_BODY),
            {"token": AZURE_TOKENS[0]},
            "invalid callback token",
            id="azure-token-on-huawei-audio",
        ),
        pytest.param(
            "azure-review",
            AZURE_BODY,
            {},
            {"token": HUAWEI_AUDIO_TOKENS[0]},
            "invalid callback token",
            id="huawei-audio-token-on-azure-review",
        ),
        pytest.param(
            "azure-review",
            AZURE_BODY,
            {},
            {"token": HUAWEI_SEEDS[0]},
            "invalid callback token",
            id="huawei-video-seed-as-azure-token",
        ),
        pytest.param(
            "azure-review",
            AZURE_BODY,
            {},
            {"token": HUAWEI_AUDIO_SEEDS[1]},
            "invalid callback token",
            id="huawei-audio-previous-seed-as-azure-token",
        ),
        pytest.param(
            "huawei-video",
            VIDEO_BODY,
            signed_with(AZURE_TOKENS[0], VIDEO_BODY),
            {},
            "invalid x-auth-signature",
            id="azure-token-as-huawei-video-seed",
        ),
        pytest.param(
            "huawei-video",
            VIDEO_BODY,
            {},
            {"token": HUAWEI_AUDIO_TOKENS[0]},
            "missing x-auth-signature",
            id="huawei-audio-token-on-huawei-video",
        ),
        pytest.param(
            "alibaba-mps",
            MNS_BODY,
            {},
            {"token": AZURE_TOKENS[0]},
            "missing header",
            id="azure-token-on-alibaba-mps",
        ),
        pytest.param(
            "alibaba-mps",
            MNS_BODY,
            signed_with(HUAWEI_SEEDS[0], VIDEO_BODY),
            {},
            "missing header",
            id="huawei-video-signature-on-alibaba-mps",
        ),
    ],
)
def test_another_providers_secret_is_a_401_and_stores_nothing(
    api: ApiClient,
    aws: FakeAws,
    provider: str,
    body: bytes,
    headers: dict[str, str],
    query: dict[str, str],
    reason: str,
) -> None:
    # Given each provider configured with secrets of its own (tests/integration/conftest.py), When a callback
    # carries another provider's seed or token (with its own route's other secret right, where it has two)
    response = api.callback(provider, body, headers=headers, query=query or None)

    # Then it is refused, saying which check failed, and nothing is stored or published
    assert_rejected(response, 401, "unauthorized", aws, reason)


@pytest.mark.parametrize(
    "tokens",
    [["wrong-token-000000000", AZURE_TOKENS[0]], [AZURE_TOKENS[0], AZURE_TOKENS[0]]],
    ids=["wrong-then-right", "right-twice"],
)
def test_a_token_given_more_than_once_is_a_401(api: ApiClient, aws: FakeAws, tokens: list[str]) -> None:
    # Given a callback URL with ?token= twice (API Gateway passes the last value as the query's)
    event = api_event(
        "POST",
        "/callbacks/azure-review",
        resource="/callbacks/{provider}",
        path_parameters={"provider": "azure-review"},
        body=load_payload_bytes("azure-review", "job-callback"),
        headers={"Content-Type": "application/json"},
        query={"token": tokens[-1]},
    )
    event["multiValueQueryStringParameters"] = {"token": tokens}

    assert_rejected(api.invoke(event), 401, "unauthorized", aws, "more than once")


def test_provider_without_configured_secret_refuses_callbacks(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given no callback secret for Huawei at all: an unsigned callback must not get in
    configure_environment(monkeypatch, aws, tmp_path, {})
    body = load_payload_bytes("huawei-video", "succeeded")
    signature = huawei_signature(HUAWEI_SEEDS[0], body)
    response = ApiClient().callback("huawei-video", body, headers={"X-Auth-Signature": signature})
    assert_rejected(response, 401, "unauthorized", aws, "not enabled")


def test_register_job_with_malformed_json_is_a_400(api: ApiClient, aws: FakeAws) -> None:
    assert_rejected(api.register('{"provider": '), 400, "malformed_payload", aws)


@pytest.mark.parametrize("body", [None, ""], ids=["no-body", "empty-body"])
def test_register_job_without_a_body_is_a_400_saying_so(
    api: ApiClient, aws: FakeAws, body: str | None
) -> None:
    response = api.invoke(
        api_event("POST", "/jobs", resource="/jobs", body=body, headers={"Content-Type": "application/json"})
    )

    assert_rejected(response, 400, "malformed_payload", aws, "request body is empty")


def test_register_job_with_a_json_null_body_is_a_422_asking_for_an_object(
    api: ApiClient, aws: FakeAws
) -> None:
    response = api.register("null")

    assert_rejected(response, 422, "invalid_request", aws)
    assert response.body["error"]["details"] == [
        {"field": "", "problem": "a JSON object is required, not null"}
    ]


@pytest.mark.parametrize(
    "body",
    [
        [{"provider": "azure-review", "job_id": "first"}, {"provider": "azure-review", "job_id": "second"}],
        [{"provider": "azure-review", "job_id": "only"}],
        [{"provider": "azure-review", "job_id": "first"}, {"provider": "no-such-provider", "job_id": 7}],
    ],
    ids=["two-jobs", "one-job", "a-valid-job-then-an-invalid-one"],
)
def test_register_job_with_a_json_array_is_a_422_registering_none_of_it(
    api: ApiClient, aws: FakeAws, body: list[dict[str, Any]]
) -> None:
    response = api.register(body)

    assert_rejected(response, 422, "invalid_request", aws)
    assert response.body["error"]["details"] == [
        {"field": "", "problem": "a JSON object is required, not an array: register one job per request"}
    ]


def test_a_registration_with_more_problems_than_a_response_could_list_is_a_422_listing_the_first(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a registration under the size limit whose metadata has 60,000 values of the wrong type, and one key
    # of 50,000 characters
    metadata: dict[str, Any] = {f"k{i}": 1 for i in range(60_000)}
    metadata["x" * 50_000] = 1
    body = json.dumps(
        {"provider": "azure-review", "job_id": "j1", "metadata": metadata}, separators=(",", ":")
    )
    assert len(body) < JOB_REQUEST_MAX_BYTES

    response = api.register(body)

    # Then the 422 says how many problems there are and lists the first, each shortened: a response the size of
    # all of them would not fit Lambda's 6 MB, and API Gateway would answer a 502
    assert_rejected(response, 422, "invalid_request", aws, "problems; the first 50 are listed")
    details = response.body["error"]["details"]
    assert len(details) == MAX_DETAILS
    assert all(len(d["field"]) <= MAX_DETAIL_CHARS and len(d["problem"]) <= MAX_DETAIL_CHARS for d in details)
    assert len(json.dumps(response.body)) < 100_000


@pytest.mark.parametrize(
    ("body", "why"),
    [
        # Deeper than json.loads reads on CPython 3.11 (1,000) and on 3.13, the Lambda runtime's (which reads
        # 1,200 levels, and a 422 then says metadata is not an object).
        (
            '{"provider": "alibaba-mps", "job_id": "j1", "metadata": ' + "[" * 20_000 + "]" * 20_000 + "}",
            "nested too deeply",
        ),
        ('{"provider": "alibaba-mps", "job_id": "j1", "metadata": {"a": ' + "9" * 5000 + "}}", "digits"),
        ('{"provider": "alibaba-mps", "job_id": "j1",}', "Expecting property name"),
    ],
    ids=["nested-20000-deep", "integer-of-5000-digits", "trailing-comma"],
)
def test_a_job_registration_whose_json_cannot_be_read_is_a_400_saying_why(
    api: ApiClient, aws: FakeAws, body: str, why: str
) -> None:
    response = api.register(body)
    assert_rejected(response, 400, "malformed_payload", aws, "not valid JSON")
    assert why in response.body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "base64_encoded"),
    [
        (json.dumps({"provider": "acme", "job_id": "j", "pad": "x" * 4096}), False),
        (json.dumps({"provider": "alibaba-mps", "job_id": "j", "metadata": {"k": "x" * 4096}}), False),
        (b"x" * 100_000, True),
    ],
    ids=["wrong-shape", "right-shape", "base64-not-json"],
)
def test_an_oversized_job_registration_is_a_413_whatever_it_holds(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: str | bytes, base64_encoded: bool
) -> None:
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT, MAX_BODY_BYTES="2048")
    event = api_event(
        "POST",
        "/jobs",
        resource="/jobs",
        body=body,
        headers={"Content-Type": "application/json"},
        base64_encoded=base64_encoded,
    )
    assert_rejected(ApiClient().invoke(event), 413, "payload_too_large", aws, "2048")


def test_a_job_registration_of_exactly_the_largest_size_is_registered(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT, MAX_BODY_BYTES="2048")
    body = json.dumps({"provider": "alibaba-mps", "job_id": "j", "metadata": {"a": "x" * 1000, "b": ""}})
    body = body.replace('"b": ""', '"b": "' + "x" * (2048 - len(body)) + '"')
    assert len(body) == 2048
    event = api_event("POST", "/jobs", resource="/jobs", body=body.encode(), base64_encoded=True)
    event["headers"]["Content-Type"] = "application/json"
    assert ApiClient().invoke(event).status == 201


def test_a_job_registration_past_a_megabyte_is_the_functions_413_whatever_max_body_bytes_allows(
    api: ApiClient, aws: FakeAws
) -> None:
    # A body of control characters is escaped sixfold in the Lambda event (\u0001): past 1 MB, one could make the
    # event larger than Lambda's 6 MB and get API Gateway's own 5xx, a server error for a client's mistake. The
    # largest registration the schema accepts is under 300 KB, so whitespace pads a valid one up to each size.
    valid = json.dumps({"provider": "alibaba-mps", "job_id": "padded"})
    for size, status in ((1_000_000, 201), (1_000_001, 413)):
        body = valid[:-1] + " " * (size - len(valid)) + "}"
        event = api_event(
            "POST", "/jobs", resource="/jobs", body=body, headers={"Content-Type": "application/json"}
        )
        response = ApiClient().invoke(event)
        assert response.status == status, size
    assert response.body["error"] == {"code": "payload_too_large", "message": "body exceeds 1000000 bytes"}
    assert [item["job_id"]["S"] for item in aws.table_items()] == ["padded"]


def test_register_job_with_unknown_provider_is_a_422_naming_the_field(api: ApiClient, aws: FakeAws) -> None:
    response = api.register({"provider": "acme", "job_id": "j1"})
    assert_rejected(response, 422, "invalid_request", aws)
    assert response.body["error"]["details"][0]["field"] == "provider"


def test_register_job_with_unknown_field_is_a_422(api: ApiClient, aws: FakeAws) -> None:
    response = api.register({"provider": "alibaba-mps", "job_id": "j1", "priority": "high"})
    assert_rejected(response, 422, "invalid_request", aws)


def test_register_job_with_wrong_content_type_is_a_415(api: ApiClient, aws: FakeAws) -> None:
    response = api.register({"provider": "alibaba-mps", "job_id": "j1"}, content_type="text/plain")
    assert_rejected(response, 415, "unsupported_media_type", aws)


def test_unknown_route_is_a_json_404(api: ApiClient, aws: FakeAws) -> None:
    response = api.invoke(api_event("GET", "/nowhere", resource="/nowhere"))
    assert_rejected(response, 404, "not_found", aws)


def test_register_job_without_a_content_type_is_read_as_json_and_registered(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a registration sent with no Content-Type header (some HTTP clients send none with a JSON body)
    event = api_event(
        "POST", "/jobs", resource="/jobs", body=json.dumps({"provider": "alibaba-mps", "job_id": "no-type"})
    )
    assert "content-type" not in {name.lower() for name in event["headers"]}

    # When it reaches the API
    response = api.invoke(event)

    # Then it is read as JSON and registered, not refused with a 415
    assert response.status == 201, response.body
    assert [item["job_id"]["S"] for item in aws.table_items()] == ["no-type"]


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "application/x-www-form-urlencoded", "text/plain"]
)
def test_register_job_in_a_form_or_other_encoding_is_a_415(
    api: ApiClient, aws: FakeAws, content_type: str
) -> None:
    response = api.register("provider=alibaba-mps&job_id=j1", content_type=content_type)
    assert_rejected(response, 415, "unsupported_media_type", aws, content_type)


def test_register_job_with_a_body_that_is_not_utf8_is_a_400(api: ApiClient, aws: FakeAws) -> None:
    event = api_event(
        "POST",
        "/jobs",
        resource="/jobs",
        body=b"\xb5\xff{}",
        headers={"Content-Type": "application/json"},
        base64_encoded=True,
    )
    assert_rejected(api.invoke(event), 400, "malformed_payload", aws, "UTF-8")


@pytest.mark.parametrize(
    "payload",
    [
        {"provider": "alibaba-mps", "job_id": "job\u009f"},
        {"provider": "alibaba-mps", "job_id": "j1", "metadata": {"": "x"}},
        {"provider": "alibaba-mps", "job_id": "j1", "metadata": {"k": "bell\u0007"}},
        {"provider": "alibaba-mps", "job_id": "j1", "metadata": {"k": []}},
        {
            "provider": "alibaba-mps",
            "job_id": "\U0001f600" * 200,
        },  # 200 characters, 800 bytes: over the key's share
        {"provider": "azure-review", "job_id": ".."},
        {"provider": "azure-review", "job_id": "."},
    ],
    ids=[
        "control-char-in-job-id",
        "empty-metadata-key",
        "control-char-in-metadata",
        "metadata-not-text",
        "job-id-over-512-bytes",
        "dot-dot-job-id",
        "dot-job-id",
    ],
)
def test_register_job_with_unprintable_or_malformed_ids_is_a_422(
    api: ApiClient, aws: FakeAws, payload: dict[str, object]
) -> None:
    assert_rejected(api.register(payload), 422, "invalid_request", aws)


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        (b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}", "not valid JSON"),  # deeper than any parser's limit
        (b'{"a": 1} trailing', "not valid JSON"),
    ],
    ids=["nested-50000-deep", "trailing-text"],
)
def test_json_no_signature_can_be_checked_over_is_a_400_before_authentication(
    api: ApiClient, aws: FakeAws, body: bytes, mentions: str
) -> None:
    response = api.callback("huawei-video", body, headers={"X-Auth-Signature": "00"})
    assert_rejected(response, 400, "malformed_payload", aws, mentions)


def test_a_job_registration_flagged_base64_that_is_not_base64_is_a_400(api: ApiClient, aws: FakeAws) -> None:
    event = api_event(
        "POST", "/jobs", resource="/jobs", body="abc", headers={"Content-Type": "application/json"}
    )
    event["isBase64Encoded"] = True

    response = api.invoke(event)

    assert_rejected(response, 400, "malformed_payload", aws, "base64")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"job_id": "xxxxxxx", "request_id": ""}, "request_id"),
        ({"create_time": "2022-07-30T08:57:11.011", "job_id": "Zxxx"}, "create_time"),
        ({"create_time": "2022-07-30T08:57:11.01", "job_id": "1Zxxx"}, "create_time"),
    ],
    ids=["request-id-into-job-id", "create-time-z-into-job-id", "create-time-digit-and-z-into-job-id"],
)
def test_a_signature_reused_over_the_same_characters_split_differently_is_a_422_naming_the_field(
    api: ApiClient, aws: FakeAws, changes: dict[str, str], field: str
) -> None:
    # Given the genuine signature of the seed example ("2022-07-30T08:57:11.011Z" + "xxx" + "xxxx")
    signature = huawei_signature(HUAWEI_SEEDS[0], load_payload_bytes("huawei-video", "succeeded"))
    payload = {**load_payload("huawei-video", "succeeded"), **changes}

    # When the body moves the boundaries between the signed fields
    response = api.callback(
        "huawei-video", json.dumps(payload).encode(), headers={"X-Auth-Signature": signature}
    )

    # Then the field no longer in Huawei's shape is named, before any signature is compared
    assert_rejected(response, 422, "invalid_payload", aws, field)


def test_a_huawei_time_past_the_calendars_end_in_utc_is_a_422_not_a_server_error(
    api: ApiClient, aws: FakeAws
) -> None:
    # 9999-12-31T23:59:59-01:00 is 10000-01-01T00:59:59 in UTC, past what a datetime holds
    payload = {**load_payload("huawei-video", "succeeded"), "update_time": "9999-12-31T23:59:59-01:00"}
    body = json.dumps(payload).encode()

    response = api.callback(
        "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
    )

    assert_rejected(response, 422, "invalid_payload", aws, "update_time")


def test_an_azure_time_before_the_calendars_start_in_utc_is_a_422_not_a_server_error(
    api: ApiClient, aws: FakeAws
) -> None:
    payload = {**load_payload("azure-review", "review-callback"), "ModifiedOn": "0001-01-01T00:00:00+01:00"}

    response = api.callback("azure-review", json.dumps(payload).encode(), query={"token": AZURE_TOKENS[0]})

    assert_rejected(response, 422, "invalid_payload", aws, "modifiedon")


def test_an_mns_notice_nested_past_the_json_parsers_limit_is_a_400_not_a_server_error(
    api: ApiClient, aws: FakeAws, mns: MnsSigner
) -> None:
    body = b"[" * 50_000
    event = mns_push_event(body, mns.sign("/v1/callbacks/alibaba-mps", body))

    assert_rejected(api.invoke(event), 400, "malformed_payload", aws, "not valid JSON")


# A job id is part of the table's key, which counts UTF-8 bytes: 300 x "é" is 300 characters but 600 bytes.
OVER_512_BYTES_IN_FEWER_CHARACTERS = "\u00e9" * 300


def test_a_signed_huawei_callback_whose_job_id_is_over_512_bytes_is_a_422_naming_it(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a correctly signed callback whose job id has 300 characters but 600 bytes
    payload = {**load_payload("huawei-video", "succeeded"), "job_id": OVER_512_BYTES_IN_FEWER_CHARACTERS}
    body = json.dumps(payload).encode()

    # When it is delivered
    response = api.callback(
        "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
    )

    # Then it is refused naming the job id, not a server error when the verdict is built
    assert_rejected(response, 422, "invalid_payload", aws, "field 'job_id'")
    assert "bytes" in response.body["error"]["message"]


def test_an_azure_callback_whose_job_id_is_over_512_bytes_is_a_422_naming_it(
    api: ApiClient, aws: FakeAws
) -> None:
    payload = {**load_payload("azure-review", "job-callback"), "JobId": OVER_512_BYTES_IN_FEWER_CHARACTERS}

    response = api.callback("azure-review", json.dumps(payload).encode(), query={"token": AZURE_TOKENS[0]})

    assert_rejected(response, 422, "invalid_payload", aws, "field 'jobid'")


@pytest.mark.parametrize(
    "job_id",
    [OVER_512_BYTES_IN_FEWER_CHARACTERS, "\U0001f600" * 512],
    ids=["300-two-byte-characters", "512-four-byte-characters"],
)
def test_an_mns_notice_whose_job_id_is_over_512_bytes_is_a_422_naming_it(
    api: ApiClient, aws: FakeAws, mns: MnsSigner, job_id: str
) -> None:
    # Given a genuinely signed MNS push naming a job id within 512 characters but over 512 bytes
    body = json.dumps({"JobId": job_id, "State": "Success"}).encode()
    event = mns_push_event(body, mns.sign("/v1/callbacks/alibaba-mps", body))

    # Then it is refused before anything is keyed by it (it would not fit the table's key, or GET /jobs)
    response = api.invoke(event)

    assert_rejected(response, 422, "invalid_payload", aws, "field 'JobId'")
    assert "512 bytes" in response.body["error"]["message"]


def test_an_azure_score_too_large_for_a_float_is_a_422_that_quotes_it_only_in_part(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given a score sent as a 400-digit integer, which float() cannot hold
    body = (
        b'{"JobId":"j-big","Status":"Complete","CallBackType":"Job","Metadata":{"adultscore":'
        + b"9" * 400
        + b"}}"
    )

    response = api.callback("azure-review", body, query={"token": AZURE_TOKENS[0]})

    # Then it is out of range like any other score, and the answer does not echo all of it
    assert_rejected(response, 422, "invalid_payload", aws, "field 'Metadata.adultscore'")
    assert "9" * 41 not in response.body["error"]["message"]


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_a_huawei_time_that_is_not_a_finite_number_is_a_422_naming_it(
    api: ApiClient, aws: FakeAws, number: str
) -> None:
    # Given a signed callback whose frame time is a number JSON parsers accept but no provider means
    # (Infinity and NaN are not JSON; 1e400 is, and overflows to infinity)
    text = json.dumps(load_payload("huawei-video", "succeeded"))
    assert '"time": 0' in text
    body = text.replace('"time": 0', f'"time": {number}', 1).encode()

    response = api.callback(
        "huawei-video", body, headers={"X-Auth-Signature": huawei_signature(HUAWEI_SEEDS[0], body)}
    )

    # Then it is refused naming the field, rather than stored as a finding at no time
    assert_rejected(response, 422, "invalid_payload", aws, "field 'result.image_detail.0.time'")


@pytest.mark.parametrize(
    "payload",
    [
        {"provider": "alibaba-mps", "job_id": "j1", "metadata": {f"k{i}": "v" for i in range(21)}},
        {"provider": "alibaba-mps", "job_id": "j1", "metadata": {"k" * 129: "v"}},
        {"provider": "alibaba-mps", "job_id": "j1", "metadata": {"k": "v" * 1025}},
        {"provider": "alibaba-mps", "job_id": "j1", "metadata": {"k": "next\u0085line"}},
        {"provider": "alibaba-mps", "job_id": "j1", "metadata": {"k\u007f": "v"}},
    ],
    ids=[
        "21-metadata-keys",
        "metadata-key-of-129-characters",
        "metadata-value-of-1025-characters",
        "c1-control-in-metadata-value",
        "delete-in-metadata-key",
    ],
)
def test_register_job_past_a_documented_limit_is_a_422_naming_the_field(
    api: ApiClient, aws: FakeAws, payload: dict[str, object]
) -> None:
    # Given a registration one step past what the README's POST /jobs row allows (20 keys of 1-128 printable
    # characters to values of up to 1,024; printable: no C0 or C1 control character, nor DEL)
    # When it is posted
    response = api.register(payload)

    # Then it is a 422 naming the field, and nothing is stored or published
    assert_rejected(response, 422, "invalid_request", aws)
    assert [d["field"].split(".")[0] for d in response.body["error"]["details"]] == ["metadata"], (
        response.body
    )


def test_register_job_with_metadata_at_every_documented_limit_is_stored_as_given(
    api: ApiClient, aws: FakeAws
) -> None:
    # Given metadata at the README's limits: 20 keys, one of 128 characters, a value of 1,024
    metadata = {f"k{i}": "v" for i in range(18)} | {"k" * 128: "v", "long": "v" * 1024}

    # When it is registered
    response = api.register({"provider": "alibaba-mps", "job_id": "j1", "metadata": metadata})

    # Then the job is followed, its metadata returned as given
    assert response.status == 201, response.body
    assert response.body["metadata"] == metadata
