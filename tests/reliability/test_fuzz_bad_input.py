"""Property-based bad input: every adapter and the receiver, fed arbitrary JSON and bytes.

Promise under test: a client's mistake is never a 5xx, never stores anything, and always gets a JSON error;
an adapter never leaks a bare KeyError/TypeError/ValueError. The receiver is fed arbitrary requests (which
authenticate only by chance), real callbacks past its size limit or in UTF-16 or Latin-1 (refused whatever else
they get right), and authenticated requests with arbitrary bodies, some of them past the size limit or so encoded: Huawei bodies signed with their
route's seed (huawei-audio's with its callback token as well), MNS pushes signed with the certificate the receiver
fetches, Azure bodies with the configured token. The number of examples is the profile's
(tests/reliability/conftest.py): the fast one runs in `make test`; set HYPOTHESIS_PROFILE=soak for the long one
(`make soak`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.conftest import FakeAws
from tests.helpers import EVENTS_DIR, api_event, huawei_signature, load_payload, load_payload_bytes
from tests.integration.conftest import (
    AZURE_TOKENS,
    HUAWEI_AUDIO_SEEDS,
    HUAWEI_AUDIO_TOKENS,
    HUAWEI_SEEDS,
    ApiClient,
)
from tests.integration.conftest import api as api
from tests.integration.conftest import mns as mns
from verdict_relay.config import Settings
from verdict_relay.errors import ClientError
from verdict_relay.local.callback_signing import MnsSigner
from verdict_relay.models.verdict import PROVIDER_NAMES, Verdict
from verdict_relay.providers.registry import get_adapter

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)

SHAPES = {
    "huawei-video": "succeeded",
    "huawei-audio": "succeeded",
    "huawei-image-batch": "finish",
    "alibaba-mps": "job-detail",
    "azure-review": "job-get",
}

CALLING_BACK = ("huawei-video", "huawei-audio", "alibaba-mps", "azure-review")
"""The providers whose callbacks the authenticated-receiver property signs, each in a branch of its own."""


def test_the_receiver_properties_reach_the_checks_of_every_provider_that_calls_back() -> None:
    from tests.integration.conftest import PROVIDERS_DOCUMENT

    calling_back = {provider for provider in PROVIDER_NAMES if get_adapter(provider).takes_callbacks}

    # The authenticated property signs the callbacks of each, and the tests' providers document has an entry for
    # each: a provider without one has every callback refused (401) before its own checks, which no fuzzing
    # would then reach
    assert set(CALLING_BACK) == calling_back
    assert calling_back <= set(PROVIDERS_DOCUMENT)


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_the_time_property_sets_a_time_field_of_every_providers_payload(provider: str) -> None:
    payload = load_payload(provider, SHAPES[provider])

    sets_a_time = with_times(payload, "not a time") != payload
    assert sets_a_time is (provider not in WITHOUT_TIMES), (
        f"{provider}: add its time fields to TIME_KEYS, or, if its payloads carry none, its name to WITHOUT_TIMES"
    )


def mutate(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    """Replace, drop or retype one field somewhere in a real payload."""
    if isinstance(value, dict) and value and depth < 6:
        key = data.draw(st.sampled_from(sorted(value)))
        action = data.draw(st.sampled_from(["replace", "drop", "descend"]))
        copy = dict(value)
        if action == "drop":
            del copy[key]
        elif action == "replace":
            copy[key] = data.draw(json_values)
        else:
            copy[key] = mutate(value[key], data, depth + 1)
        return copy
    if isinstance(value, list) and value and depth < 6:
        index = data.draw(st.integers(0, len(value) - 1))
        copy = list(value)
        copy[index] = mutate(value[index], data, depth + 1)
        return copy
    return data.draw(json_values)


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@given(payload=json_values)
def test_adapters_turn_arbitrary_json_into_verdicts_or_a_typed_client_error(
    provider: str, payload: Any
) -> None:
    try:
        verdicts = get_adapter(provider).parse(payload)
    except ClientError:
        return
    assert all(isinstance(v, Verdict) for v in verdicts)


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@given(data=st.data())
def test_adapters_survive_any_single_field_of_a_real_payload_going_wrong(
    provider: str, data: st.DataObject
) -> None:
    payload = mutate(load_payload(provider, SHAPES[provider]), data)
    try:
        verdicts = get_adapter(provider).parse(payload)
    except ClientError:
        return
    assert all(isinstance(v, Verdict) for v in verdicts)


TIME_KEYS = frozenset({"create_time", "update_time", "creationtime", "finishtime", "ts", "modifiedon"})
"""Every provider's time fields, lower-cased."""
WITHOUT_TIMES: frozenset[str] = frozenset()
"""Providers whose payloads carry no time at all, which the time property then has nothing to set."""

utc_offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
)
provider_times = st.builds(
    lambda moment, zone, separator: moment.isoformat(sep=separator) + zone,
    # the calendar's ends, where an offset takes the time out of the years a datetime holds in UTC
    st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)]) | st.datetimes(),
    utc_offsets | st.sampled_from(["Z", ""]),
    st.sampled_from(["T", " "]),
)


def with_times(value: Any, time: Any) -> Any:
    """``value`` with every time field, at any depth, set to ``time``."""
    if isinstance(value, dict):
        return {k: time if k.lower() in TIME_KEYS else with_times(v, time) for k, v in value.items()}
    if isinstance(value, list):
        return [with_times(v, time) for v in value]
    return value


@pytest.mark.parametrize(
    ("provider", "shape"),
    [*SHAPES.items(), ("huawei-video", "callback-space-time"), ("azure-review", "review-callback")],
)
@given(time=st.one_of(provider_times, st.text(max_size=40) | json_values))
@example(time="9999-12-31T23:59:59-01:00")  # past the calendar's end once in UTC
@example(time="0001-01-01T00:00:00+01:00")  # before its start once in UTC
def test_adapters_read_any_time_or_refuse_it_as_a_client_error(provider: str, shape: str, time: Any) -> None:
    payload = with_times(load_payload(provider, shape), time)
    try:
        verdicts = get_adapter(provider).parse(payload)
    except ClientError:
        return
    assert all(isinstance(v, Verdict) for v in verdicts)
    assert all(v.updated_at is None or v.updated_at.tzinfo is not None for v in verdicts)


MAX_BODY_BYTES: int = Settings.model_fields["max_body_bytes"].default
"""The receiver's size limit as deployed (the ``api`` fixture leaves MAX_BODY_BYTES at its default)."""
CALLBACK_PAYLOADS = [
    load_payload("huawei-video", "succeeded"),
    load_payload("huawei-audio", "succeeded"),
    load_payload("azure-review", "job-callback"),
    load_payload("azure-review", "review-callback"),
    load_payload("alibaba-mps", "mns-notification"),
]
"""Callbacks the receiver takes as they are (given their provider's secret): only their size or encoding goes
wrong below."""


def padded(payload: dict[str, Any], extra: int) -> bytes:
    """``payload`` as JSON, ``extra`` bytes past the receiver's limit: a field no adapter reads holds the padding,
    so nothing but the size is wrong. Built by repetition, so cheap at any size."""
    stub = len(json.dumps({**payload, "padding": ""}).encode())
    return json.dumps({**payload, "padding": "x" * (MAX_BODY_BYTES + extra - stub)}).encode()


def repeated(unit: bytes, extra: int) -> bytes:
    """``unit`` repeated to ``extra`` bytes past the receiver's limit."""
    size = MAX_BODY_BYTES + extra
    return (unit * (size // len(unit) + 1))[:size]


def misencoded(payload: dict[str, Any], text: str, encoding: str) -> bytes:
    """``payload`` as JSON carrying non-ASCII ``text`` (in a field no adapter reads), in an encoding other than the
    UTF-8 JSON must be sent in. The payload's own text is escaped to ASCII, which every encoding can hold."""
    head = json.dumps(payload)[:-1] + (", " if payload else "")
    return (head + '"note": ' + json.dumps(text, ensure_ascii=False) + "}").encode(encoding)


def is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


extras = st.integers(1, 1024)
oversized_bodies = st.builds(padded, st.sampled_from(CALLBACK_PAYLOADS), extras) | st.builds(
    repeated, st.binary(min_size=1, max_size=20), extras
)
non_ascii_text = st.text(
    st.characters(min_codepoint=0x80, exclude_categories=("Cs",)), min_size=1, max_size=20
)
latin_1_text = st.text(st.characters(min_codepoint=0xA0, max_codepoint=0xFF), min_size=1, max_size=20)


def misencodings(payloads: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """``payloads`` carrying non-ASCII text, in UTF-16 (with and without a byte order mark) or Latin-1: never
    UTF-8 JSON (the rare Latin-1 bytes that are UTF-8 too, as "Ã©" is "é", are left out)."""
    utf16 = st.sampled_from(["utf-16", "utf-16-le", "utf-16-be"])
    in_utf16 = st.builds(misencoded, payloads, non_ascii_text, utf16)
    in_latin_1 = st.builds(misencoded, payloads, latin_1_text, st.just("latin-1"))
    return in_utf16 | in_latin_1.filter(lambda body: not is_utf8(body))


misencoded_bodies = misencodings(st.sampled_from(CALLBACK_PAYLOADS))
AZURE_CALLBACK = load_payload("azure-review", "job-callback")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    provider=st.sampled_from([*PROVIDER_NAMES, "acme", "", "huawei-video%00"]),
    body=st.one_of(
        st.tuples(
            st.just("arbitrary"),
            st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
        ),
        st.tuples(st.just("oversized"), oversized_bodies),
        st.tuples(st.just("misencoded"), misencoded_bodies),
    ),
    content_type=st.sampled_from(
        ["application/json", "APPLICATION/JSON; charset=utf-8", "text/plain", "", "text/xml"]
    ),
    base64_encoded=st.booleans(),
    signature_header=st.sampled_from(["X-Auth-Signature", "x-auth-signature", "X-AUTH-SIGNATURE"]),
    signature=st.text(max_size=80),
    with_token=st.booleans(),
)
# An Azure callback with the right token, which the receiver would store: one byte too large, and in UTF-16
@example(
    provider="azure-review",
    body=("oversized", padded(AZURE_CALLBACK, 1)),
    content_type="application/json",
    base64_encoded=False,
    signature_header="X-Auth-Signature",
    signature="",
    with_token=True,
)
@example(
    provider="azure-review",
    body=("misencoded", misencoded(AZURE_CALLBACK, "r\u00e9examen \u5ba1\u6838", "utf-16")),
    content_type="application/json",
    base64_encoded=False,
    signature_header="X-Auth-Signature",
    signature="",
    with_token=True,
)
def test_receiver_never_answers_bad_input_with_a_5xx_nor_stores_it(
    api: ApiClient,
    aws: FakeAws,
    provider: str,
    body: tuple[str, bytes],
    content_type: str,
    base64_encoded: bool,
    signature_header: str,
    signature: str,
    with_token: bool,
) -> None:
    kind, raw = body
    event(f"body {kind}")
    if not is_utf8(raw):
        base64_encoded = True  # API Gateway can only pass bytes that are not UTF-8 base64-encoded
    headers = {signature_header: signature}
    if content_type:
        headers["Content-Type"] = content_type
    stored_before = aws.table_items()
    aws.published()  # drained: what earlier examples had published
    response = api.callback(
        provider,
        raw,
        headers=headers,
        query={"token": AZURE_TOKENS[0]} if with_token else None,
        base64_encoded=base64_encoded,
    )

    assert response.status < 500, response.body
    if response.status >= 400:
        assert set(response.body) == {"error"}
        assert response.body["error"]["code"]
    # an arbitrary body never carries a valid Huawei seed signature or MNS signature, and an Azure body
    # that parses is the only thing that can be stored: anything stored must be a job that parsed
    for item in aws.table_items():
        assert item["provider"]["S"] == "azure-review"
    assert HUAWEI_SEEDS[0] not in json.dumps(response.body)
    if kind != "arbitrary":
        # a body past the size limit, or JSON in UTF-16 or Latin-1, is refused whatever else it gets right
        assert response.status >= 400, response.body
        assert aws.table_items() == stored_before
        assert aws.published() == []
    if kind == "oversized" and provider in PROVIDER_NAMES:
        assert response.status == 413, response.body


SIGNED_FIELDS = ("create_time", "job_id", "request_id")
"""What a Huawei callback signature covers: kept as the real payload has them, so every body authenticates."""
MNS_PATH = "/v1/callbacks/alibaba-mps"
MNS_BODIES = [
    load_payload_bytes("alibaba-mps", "mns-notification"),
    load_payload_bytes("alibaba-mps", "mns-notification-envelope"),
    (EVENTS_DIR / "providers" / "alibaba-mps" / "mns-notification.xml").read_bytes(),
]
"""The notices MNS pushes: the message alone, in its JSON envelope, in its XML envelope."""
JSON_CONTENT_TYPES = ["application/json", "APPLICATION/JSON; charset=utf-8", ""]
MNS_CONTENT_TYPES = [*JSON_CONTENT_TYPES, "text/xml", "application/xml", "text/plain"]


def json_body(data: st.DataObject, real: Any) -> bytes:
    """A real payload with one field gone wrong, or arbitrary JSON (as bytes)."""
    kind = data.draw(st.sampled_from(["mutated", "arbitrary"]), label="body kind")
    value = mutate(real, data) if kind == "mutated" else data.draw(json_values, label="body")
    return json.dumps(value).encode()


def any_body(data: st.DataObject, real: bytes) -> bytes:
    """``real`` (a payload's bytes) with one field gone wrong, cut short, or arbitrary bytes."""
    kind = data.draw(st.sampled_from(["mutated", "cut", "bytes"]), label="body kind")
    if kind == "mutated":
        try:
            return json_body(data, json.loads(real))
        except ValueError:  # XML
            kind = "cut"
    if kind == "cut":
        return real[: data.draw(st.integers(0, len(real)), label="cut at")]
    return data.draw(st.binary(max_size=300), label="body")


def signed_huawei_body(provider: str, data: st.DataObject) -> bytes:
    """A Huawei callback body with anything but its signed fields gone wrong: a dict, so it can be signed."""
    real = load_payload(provider, "succeeded")
    payload = mutate(real, data) if data.draw(st.booleans(), label="mutated") else {}
    if not isinstance(payload, dict) or not payload:
        payload = data.draw(st.dictionaries(st.text(max_size=12), json_values, max_size=5), label="body")
    return json.dumps({**payload, **{name: real[name] for name in SIGNED_FIELDS}}).encode()


def size_or_encoding_gone_wrong(data: st.DataObject, body: bytes) -> tuple[str, bytes]:
    """``body`` as drawn (most often), or past the size limit, or, a JSON object, in UTF-16 or Latin-1; and
    which."""
    variant = data.draw(
        st.sampled_from(["as drawn"] * 4 + ["oversized", "misencoded"]), label="size, encoding"
    )
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if variant == "oversized":
        extra = data.draw(extras, label="bytes past the limit")
        return variant, padded(payload, extra) if isinstance(payload, dict) else repeated(body or b"x", extra)
    if variant == "misencoded" and isinstance(payload, dict):
        return variant, data.draw(misencodings(st.just(payload)), label="misencoded body")
    return "as drawn", body


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    provider=st.sampled_from(CALLING_BACK),
    data=st.data(),
    base64_encoded=st.booleans(),
)
def test_receiver_answers_authenticated_callbacks_with_any_body_without_a_5xx_storing_nothing_it_refuses(
    api: ApiClient, aws: FakeAws, mns: MnsSigner, provider: str, data: st.DataObject, base64_encoded: bool
) -> None:
    # Given a request that authenticates as the provider signs it, whatever its body, its size or its encoding
    query = None
    if provider.startswith("huawei-"):
        body = signed_huawei_body(provider, data)
        content_type = data.draw(st.sampled_from(JSON_CONTENT_TYPES), label="content type")
        encoding = data.draw(st.sampled_from(["hex", "base64"]), label="signature encoding")
        seed = HUAWEI_SEEDS[0] if provider == "huawei-video" else HUAWEI_AUDIO_SEEDS[0]
        # over the signed fields, which a padding or another encoding leaves as they are
        headers = {"X-Auth-Signature": huawei_signature(seed, body, encoding)}
        if provider == "huawei-audio":
            query = {"token": HUAWEI_AUDIO_TOKENS[0]}  # its route takes a token besides the signature
        variant, body = size_or_encoding_gone_wrong(data, body)
    elif provider == "alibaba-mps":
        body = any_body(data, data.draw(st.sampled_from(MNS_BODIES), label="notice"))
        content_type = data.draw(st.sampled_from(MNS_CONTENT_TYPES), label="content type")
        variant, body = size_or_encoding_gone_wrong(data, body)
        headers = mns.sign(MNS_PATH, body, content_type=content_type)
    elif provider == "azure-review":
        shape = data.draw(st.sampled_from(["job-callback", "review-callback"]), label="callback")
        body = any_body(data, load_payload_bytes("azure-review", shape))
        content_type = data.draw(st.sampled_from(JSON_CONTENT_TYPES), label="content type")
        headers = {}
        query = {"token": AZURE_TOKENS[1]}
        variant, body = size_or_encoding_gone_wrong(data, body)
    else:
        raise AssertionError(f"no authenticated callback is made for {provider!r}: add a branch above")
    event(f"body {variant}")
    if content_type:
        headers["Content-Type"] = content_type
    else:
        # none at all: the receiver reads the body as the provider's default
        headers.pop("Content-Type", None)
    if not is_utf8(body):
        base64_encoded = True  # API Gateway can only pass bytes that are not UTF-8 base64-encoded
    stored_before = aws.table_items()
    keys_before = aws.bucket_keys()
    aws.published()  # drained: what earlier examples had published

    # When it reaches the receiver
    response = api.invoke(
        api_event(
            "POST",
            f"/callbacks/{provider}",
            resource="/callbacks/{provider}",
            path_parameters={"provider": provider},
            body=body,
            headers=headers,
            query=query,
            base64_encoded=base64_encoded,
        )
    )

    # Then it got past authentication, and either was taken or refused with a JSON error, never a 5xx
    assert response.status not in (401, 403, 404), response.body
    assert response.status < 500, response.body
    if variant != "as drawn":  # refused, however right the rest
        assert response.status == 413 if variant == "oversized" else response.status >= 400, response.body
    stored = aws.table_items()
    if response.status >= 400:
        assert set(response.body) == {"error"}, response.body
        assert response.body["error"]["code"]
        # and what it refused stored, archived and published nothing
        assert stored == stored_before
        assert aws.bucket_keys() == keys_before
        assert aws.published() == []
    else:
        assert {item["provider"]["S"] for item in stored if item not in stored_before} <= {provider}


@pytest.mark.parametrize("variant", ["oversized", "utf-16", "utf-16-be", "latin-1"])
@pytest.mark.parametrize("provider", CALLING_BACK)
def test_an_authenticated_callback_too_large_or_not_in_utf8_is_refused_with_a_json_4xx_storing_nothing(
    api: ApiClient, aws: FakeAws, mns: MnsSigner, provider: str, variant: str
) -> None:
    # Given the provider's real callback, authenticated as the provider signs it, with only its size or its
    # encoding gone wrong (the fuzzing above draws these for some examples; here every provider gets each)
    real = {
        "huawei-video": load_payload("huawei-video", "succeeded"),
        "huawei-audio": load_payload("huawei-audio", "succeeded"),
        "alibaba-mps": load_payload("alibaba-mps", "mns-notification"),
        "azure-review": AZURE_CALLBACK,
    }[provider]
    body = padded(real, 1) if variant == "oversized" else misencoded(real, "é ü ß ©", variant)
    query = None
    headers = {"Content-Type": "application/json"}
    if provider.startswith("huawei-"):
        seed = HUAWEI_SEEDS[0] if provider == "huawei-video" else HUAWEI_AUDIO_SEEDS[0]
        signed = json.dumps({name: real[name] for name in SIGNED_FIELDS}).encode()  # the fields it covers
        headers["X-Auth-Signature"] = huawei_signature(seed, signed)
        if provider == "huawei-audio":
            query = {"token": HUAWEI_AUDIO_TOKENS[0]}
    elif provider == "alibaba-mps":
        headers = mns.sign(MNS_PATH, body, content_type="application/json")
    else:
        query = {"token": AZURE_TOKENS[1]}

    # When it reaches the receiver
    response = api.callback(provider, body, headers=headers, query=query, base64_encoded=not is_utf8(body))

    # Then it is refused for its size (413) or its encoding (4xx, not 401: its secret held), with a JSON error,
    # and nothing is stored, archived or published
    if variant == "oversized":
        assert response.status == 413, response.body
    else:
        assert response.status in (400, 415, 422), response.body
    assert set(response.body) == {"error"}
    assert response.body["error"]["code"]
    assert aws.table_items() == []
    assert aws.bucket_keys() == []
    assert aws.published() == []
