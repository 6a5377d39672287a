"""Request signers for the providers' HTTP APIs: Huawei ``SDK-HMAC-SHA256`` and Alibaba ``ACS3-HMAC-SHA256`` / RPC v1.

Pure functions over the standard library: the caller passes the clock (``now``) and the nonce, so a signature is
reproducible. Each signer reproduces its official SDK signer byte for byte; the SDKs themselves are test-only
oracles (``tests/unit/test_signing.py``), never runtime dependencies:

* :func:`sign_huawei` — ``huaweicloudsdkcore`` 3.1.219, ``huaweicloudsdkcore/signer/signer.py`` (``Signer``).
* :func:`sign_acs3` — ``alibabacloud-tea-openapi`` 0.4.6, ``Utils.get_authorization`` and ``Client.do_request``.
* :func:`sign_rpc_v1` — ``aliyun-python-sdk-core`` 2.16.1, ``auth/composer/rpc_signature_composer.py``.

Send the query string :func:`encode_query` builds: it is the RFC 3986 form all three schemes canonicalize to, so
the provider reads exactly the parameters that were signed (a ``+`` in a hand-built query is the usual mismatch).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

from verdict_relay.errors import ConfigurationError

HUAWEI_ALGORITHM = "SDK-HMAC-SHA256"
ACS3_ALGORITHM = "ACS3-HMAC-SHA256"
RPC_V1_SIGNATURE_METHOD = "HMAC-SHA1"
RPC_V1_SIGNATURE_VERSION = "1.0"

_HUAWEI_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_ISO8601_UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# The Huawei SDK hashes JSON and BSON bodies; any other content type is sent as an unsigned payload.
_HUAWEI_HASHED_CONTENT_TYPES = ("application/json", "application/bson")
_HUAWEI_CONTENT_SHA256 = "X-Sdk-Content-Sha256"
_HUAWEI_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_RPC_V1_COMMON_PARAMETERS = frozenset(
    {
        "Signature",
        "SignatureMethod",
        "SignatureType",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
        "AccessKeyId",
        "Format",
    }
)


def percent_encode(value: str) -> str:
    """RFC 3986 encoding of the UTF-8 bytes: only ``A-Z a-z 0-9 - _ . ~`` stay literal (space -> %20, * -> %2A).

    This is what all three SDKs use for names and values (Huawei's ``quote(s, safe='~')``, tea-openapi's
    ``quote(v, safe='~')``, aliyunsdkcore's ``urlencode`` with ``+`` -> ``%20``, ``*`` -> ``%2A``, ``%7E`` -> ``~``).
    """
    return quote(value, safe="~")


def encode_query(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """The query string to send: pairs sorted by name then value, names and values :func:`percent_encode`-d."""
    pairs = params.items() if isinstance(params, Mapping) else params
    return "&".join(f"{percent_encode(name)}={percent_encode(value)}" for name, value in sorted(pairs))


def new_nonce() -> str:
    """A fresh signature nonce for the Alibaba signers (random, so a replayed request is refused)."""
    return uuid.uuid4().hex


# --- Huawei SDK-HMAC-SHA256 -------------------------------------------------------------------------------------


def sign_huawei(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    ak: str,
    sk: str,
    now: datetime,
) -> dict[str, str]:
    """The headers to add to a Huawei Cloud API request signed with AK/SK (``SDK-HMAC-SHA256``).

    Returns ``X-Sdk-Date``, ``Authorization``, ``Host`` when ``headers`` has none (taken from ``url``, port
    included) and ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` when the body's content type is neither JSON nor BSON.
    Every header in ``headers`` whose name has no ``_`` is signed (``X-Project-Id`` included), as the SDK does, so
    send them all unchanged. ``url`` is sent as given; its query is read as RFC 3986 (a ``+`` is a plus sign).

    Raises ``ValueError`` for a relative URL, a naive ``now``, an ``X-Sdk-Date`` or ``Authorization`` already in
    ``headers`` (``now`` is the only clock), or two headers differing only in case; ``ConfigurationError`` for an
    empty AK or SK.
    """
    _require_credentials("huawei", ak=ak, sk=sk)
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError("huawei signing: url must be absolute (scheme and host)")
    _reject_headers(headers, ("X-Sdk-Date", "Authorization"), "huawei")

    added = {"X-Sdk-Date": _as_utc(now).strftime(_HUAWEI_DATE_FORMAT)}
    if _header(headers, "Host") is None:
        added["Host"] = parts.netloc
    # The SDK matches only the spelling "Content-Type"; header names are case-insensitive, so any spelling counts
    # here (the marker is then signed like any other header).
    content_type = _header(headers, "Content-Type")
    if (
        content_type
        and not content_type.startswith(_HUAWEI_HASHED_CONTENT_TYPES)
        and _header(headers, _HUAWEI_CONTENT_SHA256) is None
    ):
        added[_HUAWEI_CONTENT_SHA256] = _HUAWEI_UNSIGNED_PAYLOAD

    canonical_request, signed_headers = huawei_canonical_request(
        method, parts.path, parts.query, {**headers, **added}, body
    )
    string_to_sign = huawei_string_to_sign(canonical_request, added["X-Sdk-Date"])
    signature = hmac.new(sk.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"{HUAWEI_ALGORITHM} Access={ak}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return added


def huawei_canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """The canonical request and the ``;``-joined signed-header list for the complete set of headers sent.

    ``path`` and ``query`` are the raw (percent-encoded) URL parts. Query names and values are decoded and
    re-encoded, so any RFC 3986 spelling of the same parameters canonicalizes identically.
    """
    lowered = _lower_header_names(headers, "huawei")
    # The SDK leaves names with an underscore out of the signature (gateways may drop such headers).
    signed = sorted(name for name in lowered if "_" not in name)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed)
    if not body:
        payload_hash = _EMPTY_SHA256
    else:
        payload_hash = lowered.get(_HUAWEI_CONTENT_SHA256.lower()) or hashlib.sha256(body).hexdigest()
    canonical_request = "\n".join(
        (
            method.upper(),
            _huawei_canonical_uri(path),
            encode_query(_parse_query(query)),
            canonical_headers,
            ";".join(signed),
            payload_hash,
        )
    )
    return canonical_request, ";".join(signed)


def huawei_string_to_sign(canonical_request: str, sdk_date: str) -> str:
    """``SDK-HMAC-SHA256\\n{X-Sdk-Date}\\n{hex sha256(canonical request)}``."""
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{HUAWEI_ALGORITHM}\n{sdk_date}\n{digest}"


def _huawei_canonical_uri(path: str) -> str:
    # Decoded then re-encoded segment by segment, always ending in "/" (an encoded %2F becomes a separator, as in
    # the SDK).
    encoded = "/".join(percent_encode(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else f"{encoded}/"


def _parse_query(query: str) -> list[tuple[str, str]]:
    # Huawei's API Gateway reference signer splits on "&" and "=", skips empty names and decodes with unquote (not
    # unquote_plus): "+" stays a plus sign.
    pairs: list[tuple[str, str]] = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        if name:
            pairs.append((unquote(name), unquote(value)))
    return pairs


# --- Alibaba ACS3-HMAC-SHA256 -----------------------------------------------------------------------------------


def sign_acs3(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    access_key_id: str,
    access_key_secret: str,
    action: str,
    version: str,
    now: datetime,
    nonce: str,
) -> dict[str, str]:
    """The headers to add to an Alibaba Cloud API request signed with ``ACS3-HMAC-SHA256``.

    Returns ``host``, ``x-acs-action``, ``x-acs-version``, ``x-acs-date``, ``x-acs-signature-nonce``,
    ``x-acs-content-sha256`` and ``Authorization``. As in tea-openapi 0.4.6, EVERY header in ``headers`` is signed
    with them (content-type, accept, user-agent ...), so send them all unchanged and let the HTTP client add none
    that matter. ``path`` is signed as given (``/`` for RPC APIs); send the query as :func:`encode_query` builds it.

    Raises ``ValueError`` for a naive ``now``, an empty nonce, one of the returned headers already in ``headers``, or
    two headers differing only in case; ``ConfigurationError`` for empty credentials.
    """
    _require_credentials("alibaba", access_key_id=access_key_id, access_key_secret=access_key_secret)
    if not nonce:
        raise ValueError("alibaba signing: nonce must not be empty")
    added = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": _as_utc(now).strftime(_ISO8601_UTC_FORMAT),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    _reject_headers(headers, (*added, "Authorization"), "alibaba")

    canonical_request, signed_headers = acs3_canonical_request(
        method, path, query, {**headers, **added}, added["x-acs-content-sha256"]
    )
    string_to_sign = acs3_string_to_sign(canonical_request)
    signature = hmac.new(
        access_key_secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    added["Authorization"] = (
        f"{ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
    )
    return added


def acs3_canonical_request(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """The canonical request and the ``;``-joined signed-header list for the complete set of headers sent."""
    lowered = _lower_header_names(headers, "alibaba")
    signed = sorted(lowered)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed)
    canonical_request = "\n".join(
        (method.upper(), path or "/", encode_query(query), canonical_headers, ";".join(signed), payload_hash)
    )
    return canonical_request, ";".join(signed)


def acs3_string_to_sign(canonical_request: str) -> str:
    """``ACS3-HMAC-SHA256\\n{hex sha256(canonical request)}``."""
    return f"{ACS3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"


# --- Alibaba RPC v1 (HMAC-SHA1) ---------------------------------------------------------------------------------


def sign_rpc_v1(
    method: str,
    params: Mapping[str, str],
    access_key_id: str,
    access_key_secret: str,
    now: datetime,
    nonce: str,
    *,
    response_format: str | None = "JSON",
) -> dict[str, str]:
    """The complete query parameters of an Alibaba RPC request signed with the legacy v1 HMAC-SHA1 scheme.

    ``params`` holds the API's own parameters (``Action``, ``Version``, ``RegionId`` and the business ones). Added:
    ``Timestamp``, ``SignatureMethod``, ``SignatureType`` (empty, as the SDK sends it), ``SignatureVersion``,
    ``SignatureNonce``, ``AccessKeyId``, ``Format`` (unless ``response_format`` is None) and ``Signature``. Send
    them with :func:`encode_query`.

    Raises ``ValueError`` for a naive ``now``, an empty nonce or a common parameter already in ``params``;
    ``ConfigurationError`` for empty credentials.
    """
    _require_credentials("alibaba", access_key_id=access_key_id, access_key_secret=access_key_secret)
    if not nonce:
        raise ValueError("alibaba signing: nonce must not be empty")
    clashing = sorted(_RPC_V1_COMMON_PARAMETERS.intersection(params))
    if clashing:
        raise ValueError(f"alibaba signing: params must not set the common parameters {clashing}")

    signed = dict(params)
    signed.update(
        {
            "Timestamp": _as_utc(now).strftime(_ISO8601_UTC_FORMAT),
            "SignatureMethod": RPC_V1_SIGNATURE_METHOD,
            # The SDK always sends an empty SignatureType, so it is part of the string it signs.
            "SignatureType": "",
            "SignatureVersion": RPC_V1_SIGNATURE_VERSION,
            "SignatureNonce": nonce,
            "AccessKeyId": access_key_id,
        }
    )
    if response_format is not None:
        signed["Format"] = response_format
    string_to_sign = rpc_v1_string_to_sign(method, signed)
    digest = hmac.new(f"{access_key_secret}&".encode(), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    signed["Signature"] = base64.b64encode(digest).decode("ascii")
    return signed


def rpc_v1_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&`` + the percent-encoded canonical query (sorted parameters, encoded twice in effect)."""
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(encode_query(params))}"


# --- shared -----------------------------------------------------------------------------------------------------


def _as_utc(now: datetime) -> datetime:
    # A naive datetime would be read as local time by astimezone(): refuse it rather than sign a skewed date.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("signing: now must be timezone-aware")
    return now.astimezone(UTC)


def _require_credentials(provider: str, **credentials: str) -> None:
    # Names the missing credential, never its value.
    for name, value in credentials.items():
        if not value:
            raise ConfigurationError(f"{provider} signing: {name} is empty")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _reject_headers(headers: Mapping[str, str], names: Iterable[str], provider: str) -> None:
    present = sorted(name for name in names if _header(headers, name) is not None)
    if present:
        raise ValueError(f"{provider} signing: headers must not already contain {present}")


def _lower_header_names(headers: Mapping[str, str], provider: str) -> dict[str, str]:
    # Both SDKs sign lower-cased names with stripped values. Two spellings of one name would be sent as two headers
    # the gateway joins in an order we cannot sign for: refuse them.
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in lowered:
            raise ValueError(f"{provider} signing: header {key!r} given twice")
        lowered[key] = value.strip()
    return lowered
