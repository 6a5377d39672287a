"""The request signers in ``verdict_relay.signing``, checked byte for byte against the providers' official SDKs.

The SDKs are test-only oracles (never imported by the package): ``huaweicloudsdkcore`` 3.1.219 (``Signer`` on an
``SdkRequest``), ``alibabacloud-tea-openapi`` 0.4.6 (``Utils.get_authorization`` and a full ``Client.call_api`` with
the transport stubbed) and ``aliyun-python-sdk-core`` 2.16.1 (``rpc_signature_composer.get_signed_url`` and
``RpcRequest.get_url``). Time and nonce are fixed through the SDKs' own inputs where they take them (Huawei's
``X-Sdk-Date`` header, the ACS3 request headers) and patched inside the oracle module otherwise. No network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import alibabacloud_tea_openapi.client as tea_client
import alibabacloud_tea_openapi.utils as tea_utils
import pytest
from alibabacloud_tea_openapi import utils_models as tea_models
from aliyunsdkcore.auth.composer import rpc_signature_composer
from aliyunsdkcore.request import RpcRequest
from aliyunsdkcore.utils import parameter_helper
from darabonba.exceptions import UnretryableException
from darabonba.request import DaraRequest
from darabonba.runtime import RuntimeOptions
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from verdict_relay.errors import ConfigurationError
from verdict_relay.signing import (
    acs3_canonical_request,
    encode_query,
    huawei_canonical_request,
    new_nonce,
    percent_encode,
    rpc_v1_string_to_sign,
    sign_acs3,
    sign_huawei,
    sign_rpc_v1,
)

AK = "HPUAQ1EXAMPLEAK0KEY9"
SK = "Sk0Example+Secret/Key=WithReserved~Chars"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
HUAWEI_DATE = "20240506T070809Z"
ISO_DATE = "2024-05-06T07:08:09Z"
NONCE = "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
PROJECT_ID = "0f51a9e00c80f40f2f3cc00be3572e74"
HUAWEI_HOST = "moderation.cn-north-4.myhuaweicloud.com"
MTS_HOST = "mts.cn-shanghai.aliyuncs.com"
ACS3 = "ACS3-HMAC-SHA256"
MTS_VERSION = "2014-06-18"

RESERVED = "a b*c~d/e=f&g+h%i:j,k;l"


# --- Huawei SDK-HMAC-SHA256 -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HuaweiCase:
    id: str
    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    host: str = HUAWEI_HOST

    @property
    def url(self) -> str:
        # Built with the standard library's encoder (unsorted, %20 for space), not with the module under test.
        query = f"?{urlencode(self.query, quote_via=quote)}" if self.query else ""
        return f"https://{self.host}{self.path}{query}"


@dataclass(frozen=True)
class HuaweiOracle:
    authorization: str
    canonical_request: str
    sent_uri: str
    headers: dict[str, str]


HUAWEI_CASES = [
    HuaweiCase(
        id="video job query",
        method="GET",
        path=f"/v3/{PROJECT_ID}/moderation/video/jobs/01661529600_4b1c2b9e6e7c4a2f",
        headers={"Content-Type": "application/json", "X-Project-Id": PROJECT_ID},
    ),
    HuaweiCase(
        id="video job create with a JSON body",
        method="POST",
        path=f"/v3/{PROJECT_ID}/moderation/video/jobs",
        headers={"Content-Type": "application/json;charset=UTF-8", "X-Project-Id": PROJECT_ID},
        body=json.dumps(
            {"data": {"url": "https://obs.example.com/v.mp4"}, "seed": "s_1", "callback": "https://x/é"},
            ensure_ascii=False,
        ).encode("utf-8"),
    ),
    HuaweiCase(
        id="image batch result with reserved and non-ASCII query values and look-alike names",
        method="GET",
        path="/v1.0/moderation/image/batch",
        query=[
            ("job_id", RESERVED),
            ("status", "finish"),
            ("label", "色情"),
            ("Label", "B"),
            ("label", "a"),
            ("label.1", ""),
            ("empty", ""),
            ("name with space", "~tilde*star"),
        ],
        headers={
            "Content-Type": "application/json",
            "X-Project-Id": PROJECT_ID,
            "X_Trace_Id": "unsigned-because-underscore",
            "X-Padded": "  padded value  ",
        },
    ),
    HuaweiCase(
        id="job list with an explicit Host header and port",
        method="GET",
        path="/v1.0/moderation/image/batch/jobs",
        query=[("status", "running")],
        headers={"Host": f"{HUAWEI_HOST}:443", "Content-Type": "application/json"},
        host=f"{HUAWEI_HOST}:443",
    ),
    HuaweiCase(
        # A configured endpoint with a port (a proxy, a private endpoint): the Host we add keeps it, as the SDK's.
        id="endpoint with a non-default port and no Host header",
        method="GET",
        path=f"/v3/{PROJECT_ID}/moderation/video/jobs/j1",
        headers={"Content-Type": "application/json", "X-Project-Id": PROJECT_ID},
        host=f"{HUAWEI_HOST}:8443",
    ),
    HuaweiCase(
        id="percent-encoded and non-ASCII path segments",
        method="GET",
        path="/v3/p%20id/moderation/audio/jobs/a~b%2Ac%C3%A9(1)",
        headers={"X-Project-Id": PROJECT_ID},
    ),
    HuaweiCase(
        id="non-JSON body is sent as an unsigned payload",
        method="POST",
        path=f"/v3/{PROJECT_ID}/moderation/audio/jobs",
        headers={"Content-Type": "text/plain"},
        body=b"raw \x00\xff bytes",
    ),
    HuaweiCase(
        id="non-JSON content type without a body",
        method="DELETE",
        path=f"/v3/{PROJECT_ID}/moderation/audio/jobs/j1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
]


def huawei_sdk_sign(case: HuaweiCase) -> HuaweiOracle:
    """What huaweicloudsdkcore's Signer produces for the case (time fixed through its own X-Sdk-Date header)."""

    def build() -> Any:
        return SdkRequest(
            method=case.method,
            schema="https",
            host=case.host,
            resource_path=case.path,
            query_params=list(case.query),
            header_params={**case.headers, "X-Sdk-Date": HUAWEI_DATE},
            body=case.body,
        )

    signer = Signer(BasicCredentials(ak=AK, sk=SK))
    # The SDK keeps the canonical request private: replay the steps Signer.sign takes before it.
    probe = build()
    signer._process_content_header(probe)
    signer._process_header_time(probe)
    signer._process_header_host(probe)
    canonical_request = signer._process_canonical_request(probe, signer._process_signed_headers(probe))

    signed = signer.sign(build())
    return HuaweiOracle(
        authorization=signed.header_params["Authorization"],
        canonical_request=canonical_request,
        sent_uri=signed.uri,
        headers=dict(signed.header_params),
    )


@pytest.mark.parametrize("case", HUAWEI_CASES, ids=lambda case: case.id)
def test_huawei_authorization_equals_the_sdk_signers(case: HuaweiCase) -> None:
    # Given the same request, keys and time
    oracle = huawei_sdk_sign(case)

    # When we sign it
    added = sign_huawei(case.method, case.url, case.headers, case.body, AK, SK, NOW)

    # Then the Authorization header is the SDK's, byte for byte
    assert added["Authorization"] == oracle.authorization


@pytest.mark.parametrize("case", HUAWEI_CASES, ids=lambda case: case.id)
def test_huawei_canonical_request_and_added_headers_equal_the_sdks(case: HuaweiCase) -> None:
    added = sign_huawei(case.method, case.url, case.headers, case.body, AK, SK, NOW)
    sent = {**case.headers, **added}
    parts = urlsplit(case.url)

    canonical_request, _ = huawei_canonical_request(
        case.method,
        parts.path,
        parts.query,
        {k: v for k, v in sent.items() if k != "Authorization"},
        case.body,
    )

    oracle = huawei_sdk_sign(case)
    assert canonical_request == oracle.canonical_request
    # The SDK adds the same headers (Host, X-Sdk-Date, X-Sdk-Content-Sha256) with the same values.
    assert {k: v.strip() for k, v in sent.items()} == oracle.headers


@pytest.mark.parametrize("case", [c for c in HUAWEI_CASES if c.query], ids=lambda case: case.id)
def test_encode_query_builds_the_query_the_huawei_sdk_sends(case: HuaweiCase) -> None:
    oracle = huawei_sdk_sign(case)

    assert f"{case.path}?{encode_query(case.query)}" == oracle.sent_uri


def test_huawei_signature_does_not_depend_on_how_the_url_spells_its_query() -> None:
    # Given one parameter set spelled two ways (order, %7E for ~, lower-case hex escapes)
    canonical = "https://h.example.com/v1/jobs?a=~x&b=%E4%B8%AD"
    respelled = "https://h.example.com/v1/jobs?b=%e4%b8%ad&a=%7Ex"

    # Then both sign the same
    assert sign_huawei("GET", canonical, {}, b"", AK, SK, NOW) == sign_huawei(
        "GET", respelled, {}, b"", AK, SK, NOW
    )


def test_huawei_reads_a_plus_in_the_query_as_a_plus_sign() -> None:
    # Huawei's gateway reference signer decodes with unquote, not unquote_plus.
    with_plus = sign_huawei("GET", "https://h.example.com/v1?q=a+b", {}, b"", AK, SK, NOW)
    encoded_plus = sign_huawei("GET", "https://h.example.com/v1?q=a%2Bb", {}, b"", AK, SK, NOW)
    encoded_space = sign_huawei("GET", "https://h.example.com/v1?q=a%20b", {}, b"", AK, SK, NOW)

    assert with_plus == encoded_plus
    assert with_plus != encoded_space


def test_huawei_signs_an_empty_path_as_the_root() -> None:
    parts = urlsplit("https://h.example.com")

    canonical_request, _ = huawei_canonical_request(
        "GET", parts.path, parts.query, {"Host": "h.example.com"}, b""
    )

    assert canonical_request.split("\n")[1] == "/"


def test_huawei_date_is_the_utc_time_of_an_aware_now() -> None:
    shanghai_now = NOW.astimezone(timezone(timedelta(hours=8)))

    added = sign_huawei("GET", "https://h.example.com/v1", {}, b"", AK, SK, shanghai_now)

    assert added["X-Sdk-Date"] == HUAWEI_DATE
    assert added == sign_huawei("GET", "https://h.example.com/v1", {}, b"", AK, SK, NOW)


def test_huawei_lower_case_content_type_header_is_honoured_too() -> None:
    # The SDK only looks at the exact spelling "Content-Type"; headers are case-insensitive, so we do not.
    added = sign_huawei("POST", "https://h.example.com/v1", {"content-type": "text/plain"}, b"x", AK, SK, NOW)

    assert added["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"


@pytest.mark.parametrize(
    "headers",
    [{"x-sdk-date": HUAWEI_DATE}, {"authorization": "SDK-HMAC-SHA256 ..."}, {"X-A": "1", "x-a": "2"}],
    ids=["date already set", "authorization already set", "one header spelled twice"],
)
def test_huawei_refuses_headers_it_cannot_sign_unambiguously(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="huawei signing"):
        sign_huawei("GET", "https://h.example.com/v1", headers, b"", AK, SK, NOW)


def test_huawei_refuses_a_naive_clock_and_a_relative_url() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_huawei("GET", "https://h.example.com/v1", {}, b"", AK, SK, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="absolute"):
        sign_huawei("GET", "/v1/jobs", {}, b"", AK, SK, NOW)


def test_huawei_empty_secret_is_a_configuration_error_that_does_not_echo_the_key() -> None:
    with pytest.raises(ConfigurationError, match="sk is empty") as raised:
        sign_huawei("GET", "https://h.example.com/v1", {}, b"", AK, "", NOW)

    assert AK not in str(raised.value)


# --- Alibaba ACS3-HMAC-SHA256 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acs3Case:
    id: str
    method: str
    action: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    path: str = "/"


ACS3_CASES = [
    Acs3Case(
        id="job list by ids",
        method="GET",
        action="QueryMediaCensorJobList",
        query={"JobIds": "2288c6ca184c0e47098a5b665e2a12****,78dc866518b843259669df58ed30****"},
        headers={"accept": "application/json", "user-agent": "verdict-relay/0.1 (poller)"},
    ),
    Acs3Case(
        id="job list by state with time range and page token",
        method="GET",
        action="QueryMediaCensorJobList",
        query={
            "State": "All",
            "StartOfJobCreatedTimeRange": "2024-05-01T00:00:00Z",
            "EndOfJobCreatedTimeRange": "2024-05-06T00:00:00Z",
            "NextPageToken": "ae0fd49c0840e14daf0d66a75b83****+/=",
            "MaximumPageSize": "300",
        },
    ),
    Acs3Case(
        id="reserved and non-ASCII values and look-alike names",
        method="GET",
        action="QueryMediaCensorJobDetail",
        query={
            "JobId": RESERVED,
            "Name": "中文 é",
            "Key.1": "~",
            "Key.2": "",
            "key": "lower*",
            "Key": "upper",
        },
        headers={"x-custom": "  padded  ", "Accept": "application/json"},
    ),
    Acs3Case(
        id="POST with a JSON body",
        method="POST",
        action="QueryMediaCensorJobDetail",
        query={"JobId": "j1"},
        headers={"content-type": "application/json; charset=utf-8", "accept": "application/json"},
        body=json.dumps({"JobId": "j1", "Note": "é"}, ensure_ascii=False).encode("utf-8"),
    ),
    Acs3Case(
        id="POST with a form body",
        method="POST",
        action="QueryMediaCensorJobList",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=b"JobIds=a%2Cb&State=All",
    ),
]


def acs3_sdk_authorization(case: Acs3Case) -> tuple[str, dict[str, str]]:
    """tea-openapi's Authorization for the case, and the headers it signed (the ones do_request builds)."""
    payload_hash = tea_utils.Utils.hash(case.body, ACS3).hex()
    request = DaraRequest()
    request.method = case.method
    request.pathname = case.path
    request.query = dict(case.query)
    request.headers = {
        "host": MTS_HOST,
        "x-acs-version": MTS_VERSION,
        "x-acs-action": case.action,
        "x-acs-date": ISO_DATE,
        "x-acs-signature-nonce": NONCE,
        **case.headers,
        "x-acs-content-sha256": payload_hash,
    }
    signed_headers = dict(request.headers)
    return tea_utils.Utils.get_authorization(request, ACS3, payload_hash, AK, SK), signed_headers


def our_acs3(case: Acs3Case) -> dict[str, str]:
    return sign_acs3(
        case.method,
        MTS_HOST,
        case.path,
        case.query,
        case.headers,
        case.body,
        AK,
        SK,
        case.action,
        MTS_VERSION,
        NOW,
        NONCE,
    )


@pytest.mark.parametrize("case", ACS3_CASES, ids=lambda case: case.id)
def test_acs3_authorization_equals_tea_openapis(case: Acs3Case) -> None:
    oracle_authorization, _ = acs3_sdk_authorization(case)

    added = our_acs3(case)

    assert added["Authorization"] == oracle_authorization


@pytest.mark.parametrize("case", ACS3_CASES, ids=lambda case: case.id)
def test_acs3_adds_exactly_the_headers_tea_openapi_signs(case: Acs3Case) -> None:
    _, oracle_headers = acs3_sdk_authorization(case)

    added = our_acs3(case)

    assert {**case.headers, **{k: v for k, v in added.items() if k != "Authorization"}} == oracle_headers


def test_acs3_canonical_request_lists_lower_case_sorted_headers_and_the_payload_hash() -> None:
    canonical_request, signed_headers = acs3_canonical_request(
        "get", "", {"b": "2", "a": "x y"}, {"Host": MTS_HOST, "X-Acs-Action": " A "}, "abc"
    )

    assert (
        canonical_request == f"GET\n/\na=x%20y&b=2\nhost:{MTS_HOST}\nx-acs-action:A\n\nhost;x-acs-action\nabc"
    )
    assert signed_headers == "host;x-acs-action"


class _StopBeforeSending(Exception):
    """Raised by the stubbed transport once the SDK has signed its request."""


@pytest.fixture
def captured_tea_requests(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Stubs tea-openapi's transport and fixes its clock and nonce, collecting the requests it would send."""
    captured: list[Any] = []

    def do_action(request: Any, runtime: Any) -> Any:
        captured.append(request)
        raise _StopBeforeSending

    class FixedClock:
        @staticmethod
        def utcnow() -> datetime:
            return NOW.replace(tzinfo=None)

    monkeypatch.setattr(tea_client.DaraCore, "do_action", staticmethod(do_action))
    monkeypatch.setattr(tea_utils, "datetime", FixedClock)
    monkeypatch.setattr(tea_utils.Utils, "get_nonce", staticmethod(lambda: NONCE))
    return captured


@pytest.mark.parametrize(
    ("method", "query", "form_body"),
    [
        ("GET", {"JobIds": "a,b", "State": "All"}, None),
        ("POST", {"JobId": RESERVED}, {"JobIds": "a,b", "Note": "中 文"}),
    ],
    ids=["GET query", "POST form body"],
)
def test_acs3_signs_the_request_tea_openapis_client_builds_identically(
    captured_tea_requests: list[Any], method: str, query: dict[str, str], form_body: dict[str, str] | None
) -> None:
    # Given the request the official client builds for an MPS RPC call (transport stubbed before sending)
    config = tea_models.Config(access_key_id=AK, access_key_secret=SK, endpoint=MTS_HOST)
    params = tea_models.Params(
        action="QueryMediaCensorJobList",
        version=MTS_VERSION,
        protocol="HTTPS",
        pathname="/",
        method=method,
        auth_type="AK",
        style="RPC",
        body_type="json",
        req_body_type="formData",
    )
    with pytest.raises(UnretryableException):
        tea_client.Client(config).call_api(
            params, tea_models.OpenApiRequest(query=query, body=form_body), RuntimeOptions()
        )
    sent = captured_tea_requests[0]
    body = sent.body.encode("utf-8") if sent.body else b""
    ours = {
        "host",
        "x-acs-action",
        "x-acs-version",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
    }
    extra_headers = {k: v for k, v in sent.headers.items() if k not in ours and k != "Authorization"}

    # When we sign the same request
    added = sign_acs3(
        sent.method,
        MTS_HOST,
        sent.pathname,
        sent.query,
        extra_headers,
        body,
        AK,
        SK,
        "QueryMediaCensorJobList",
        MTS_VERSION,
        NOW,
        NONCE,
    )

    # Then every header we add, Authorization included, is the one the client sends
    assert added == {k: v for k, v in sent.headers.items() if k in ours or k == "Authorization"}


@pytest.mark.parametrize(
    "headers",
    [{"X-Acs-Date": ISO_DATE}, {"Host": MTS_HOST}, {"authorization": "x"}, {"Accept": "a", "accept": "b"}],
    ids=["date already set", "host already set", "authorization already set", "one header spelled twice"],
)
def test_acs3_refuses_headers_it_cannot_sign_unambiguously(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="alibaba signing"):
        sign_acs3("GET", MTS_HOST, "/", {}, headers, b"", AK, SK, "A", MTS_VERSION, NOW, NONCE)


def test_acs3_refuses_an_empty_nonce_and_empty_credentials() -> None:
    with pytest.raises(ValueError, match="nonce"):
        sign_acs3("GET", MTS_HOST, "/", {}, {}, b"", AK, SK, "A", MTS_VERSION, NOW, "")
    with pytest.raises(ConfigurationError, match="access_key_secret is empty"):
        sign_acs3("GET", MTS_HOST, "/", {}, {}, b"", AK, "", "A", MTS_VERSION, NOW, NONCE)


def test_new_nonce_is_fresh_each_time() -> None:
    assert len({new_nonce() for _ in range(100)}) == 100


# --- Alibaba RPC v1 (HMAC-SHA1) ---------------------------------------------------------------------------------


@pytest.fixture
def fixed_aliyun_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """aliyunsdkcore reads time and nonce from its parameter_helper module and takes neither as an argument."""
    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: ISO_DATE)
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: NONCE)


RPC_V1_CASES = [
    pytest.param(
        "GET",
        {
            "Action": "QueryMediaCensorJobList",
            "Version": MTS_VERSION,
            "RegionId": "cn-shanghai",
            "JobIds": "a,b",
        },
        id="job list by ids",
    ),
    pytest.param(
        "GET",
        {
            "Action": "QueryMediaCensorJobList",
            "Version": MTS_VERSION,
            "State": "All",
            "StartOfJobCreatedTimeRange": "2024-05-01T00:00:00Z",
            "NextPageToken": "ae0f+/=",
        },
        id="job list by state with time range and page token",
    ),
    pytest.param(
        "POST",
        {
            "Action": "QueryMediaCensorJobDetail",
            "Version": MTS_VERSION,
            "JobId": RESERVED,
            "Name": "中文 é",
            "Key.1": "~",
            "Key.2": "",
            "key": "lower*",
            "name with space": "x",
        },
        id="reserved and non-ASCII values and look-alike names",
    ),
]


@pytest.mark.usefixtures("fixed_aliyun_clock")
@pytest.mark.parametrize(("method", "params"), RPC_V1_CASES)
def test_rpc_v1_parameters_and_signature_equal_aliyunsdkcores(method: str, params: dict[str, str]) -> None:
    # Given the SDK's signed URL and string to sign for the same parameters, keys, time and nonce
    sdk_url, sdk_string_to_sign = rpc_signature_composer.get_signed_url(
        dict(params), AK, SK, "JSON", method, {}
    )
    sdk_params = dict(parse_qsl(urlsplit(sdk_url).query, keep_blank_values=True))

    # When we sign them
    signed = sign_rpc_v1(method, params, AK, SK, NOW, NONCE)

    # Then the parameters (Signature included) and the string to sign are the SDK's
    assert signed == sdk_params
    unsigned = {k: v for k, v in signed.items() if k != "Signature"}
    assert rpc_v1_string_to_sign(method, unsigned) == sdk_string_to_sign


@pytest.mark.usefixtures("fixed_aliyun_clock")
def test_rpc_v1_signs_the_url_aliyunsdkcores_rpc_request_builds() -> None:
    request = RpcRequest("Mts", MTS_VERSION, "QueryMediaCensorJobList")
    request.set_accept_format("JSON")
    request.add_query_param("JobIds", "a,b c")
    sdk_params = dict(
        parse_qsl(urlsplit(request.get_url("cn-shanghai", AK, SK)).query, keep_blank_values=True)
    )

    signed = sign_rpc_v1(
        "GET",
        {
            "Action": "QueryMediaCensorJobList",
            "Version": MTS_VERSION,
            "RegionId": "cn-shanghai",
            "JobIds": "a,b c",
        },
        AK,
        SK,
        NOW,
        NONCE,
    )

    assert signed == sdk_params


def test_rpc_v1_string_to_sign_matches_alibabas_documented_example() -> None:
    # The worked example of Alibaba Cloud's RPC signature documentation (ECS DescribeRegions, no SignatureType).
    params = {
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "Format": "XML",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z",
        "Version": "2014-05-26",
    }

    assert rpc_v1_string_to_sign("GET", params) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
        "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
        "%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
    )


def test_rpc_v1_can_leave_format_out() -> None:
    signed = sign_rpc_v1("GET", {"Action": "A"}, AK, SK, NOW, NONCE, response_format=None)

    assert "Format" not in signed


@pytest.mark.parametrize("common", ["Signature", "Timestamp", "AccessKeyId", "Format", "SignatureNonce"])
def test_rpc_v1_refuses_params_that_set_a_common_parameter(common: str) -> None:
    with pytest.raises(ValueError, match=common):
        sign_rpc_v1("GET", {"Action": "A", common: "x"}, AK, SK, NOW, NONCE)


def test_rpc_v1_refuses_a_naive_clock_and_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_rpc_v1("GET", {"Action": "A"}, AK, SK, NOW.replace(tzinfo=None), NONCE)
    with pytest.raises(ConfigurationError, match="access_key_secret is empty"):
        sign_rpc_v1("GET", {"Action": "A"}, AK, "", NOW, NONCE)


# --- shared encoding --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (" ", "%20"),
        ("*", "%2A"),
        ("~", "~"),
        ("/", "%2F"),
        ("=", "%3D"),
        ("&", "%26"),
        ("+", "%2B"),
        ("é", "%C3%A9"),
    ],
)
def test_percent_encode_follows_rfc_3986(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


def test_encode_query_sorts_by_name_then_value() -> None:
    assert encode_query([("b", "1"), ("a", "2"), ("a", "1"), ("B", " ")]) == "B=%20&a=1&a=2&b=1"
