"""The callback receiver and job API (API Gateway -> Lambda).

Routes:

* ``POST /callbacks/{provider}`` — a provider's job-completion notice, authenticated as that provider signs it,
  answered with the status the provider counts as delivered (Huawei 200, MNS 204).
* ``POST /jobs`` — register an outstanding job so the poller follows it (IAM-authorized in AWS).
* ``GET /jobs/{provider}/{job_id}`` — the canonical verdict (IAM-authorized in AWS).

Order of checks on a callback: provider known (404), body size (413), content type (415), authentication (401),
then parsing (400 malformed / 422 wrong shape). Nothing is stored before every check has passed. A provider
without an entry in the providers document is disabled: its callbacks are refused (401) whatever they carry.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from verdict_relay.dal.publisher import message_for
from verdict_relay.errors import (
    CallbackAuthError,
    ClientError,
    ConfigurationError,
    MalformedPayloadError,
    NotFoundError,
    PayloadTooLargeError,
    UnknownProviderError,
    UnsupportedMediaTypeError,
    VerdictRelayError,
)
from verdict_relay.handlers import http_errors
from verdict_relay.handlers.dependencies import dependencies
from verdict_relay.logic import callbacks
from verdict_relay.models.jobs import RegisterJobRequest
from verdict_relay.models.verdict import MAX_JOB_ID_LENGTH, PROVIDER_NAMES, Verdict
from verdict_relay.observability import count, log_metrics, logger
from verdict_relay.providers.base import CallbackRequest, CallbackResult, VerifyContext
from verdict_relay.providers.profiles import PROFILES
from verdict_relay.providers.registry import get_adapter

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import SecurityScheme


def _json_body(body: str) -> Any:
    """``json.loads`` for the resolver's validation of ``POST /jobs``, with every body it cannot read raised as
    the JSONDecodeError the validation turns into a 400: ``json.loads`` raises RecursionError for arrays nested
    too deeply and a plain ValueError for an integer longer than Python's int-string limit (a 500 otherwise).

    An array is refused here (422): the validation reads a list given for a field that is not one as its first
    element, so ``[job, job, ...]`` would register the first job, answer 201, and drop the others unread."""
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise json.JSONDecodeError(reason, body, 0) from exc
    if isinstance(parsed, list):
        raise RequestValidationError(
            [{"loc": (), "msg": "a JSON object is required, not an array: register one job per request"}]
        )
    return parsed


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_json_body)
http_errors.register(app)

MAX_RESPONSE_BYTES = 6_000_000
"""A body's size inside the proxy response (:func:`_proxy_size`): Lambda returns at most 6 MB (6,291,456 bytes)
for the whole response, which leaves room for its status and headers."""
TRUNCATED_HEADER = "X-Findings-Truncated"
JOB_REQUEST_MAX_BYTES = 1_000_000
"""``POST /jobs`` bodies are refused past this (or ``MAX_BODY_BYTES``, if less) with the function's 413. The
largest registration the schema accepts is under 300 KB, however it is escaped; and API Gateway puts the body
in the function's event as a JSON string, where a control character takes six bytes (``\u0001``): a body of
this size fits Lambda's 6 MB event whatever it holds, so a client's oversized body is never API Gateway's 5xx."""

IAM_AUTHORIZED = {"x-amazon-apigateway-auth": {"type": "AWS_IAM"}}
"""The job routes' authorization (``DefaultAuthorizer: AWS_IAM`` in ``template.yaml``; the document's ``sigv4``
security scheme, :func:`_security_schemes`), in API Gateway's own extension, not an OpenAPI ``security``
requirement: tests/e2e/test_openapi_conformance.py checks the document against the local stack, which leaves
these routes open, and schemathesis fails every operation whose ``security`` it finds unenforced."""
OPEN_TO_PROVIDERS = {"x-amazon-apigateway-auth": {"type": "NONE"}}
"""The callback route is open in API Gateway: the function authenticates each provider as it signs (a URL token,
Huawei's X-Auth-Signature, an MNS signature)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _max_body_bytes() -> int | None:
    try:
        return dependencies().settings.max_body_bytes
    except VerdictRelayError:
        return None  # the route answers the configuration fault itself


def _body_size(event: dict[str, Any]) -> int:
    """The bytes a proxy event's body stands for (base64-decoded when flagged so), without decoding it."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body.rstrip("=")) * 3 // 4
    return len(body.encode("utf-8", "surrogatepass"))


def _raw_body(max_bytes: int) -> bytes:
    """The exact bytes the sender sent (signatures are over these), base64-decoded when API Gateway says so."""
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        if len(body) > (max_bytes * 4) // 3 + 4:
            raise PayloadTooLargeError(f"body exceeds {max_bytes} bytes")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedPayloadError("body is flagged base64-encoded but is not valid base64") from exc
    else:
        raw = body.encode("utf-8", "surrogatepass")  # a lone surrogate then fails as invalid UTF-8 (400)
    if len(raw) > max_bytes:
        raise PayloadTooLargeError(f"body exceeds {max_bytes} bytes")
    return raw


def _check_content_type(allowed: tuple[str, ...]) -> None:
    header = app.current_event.headers.get("content-type")
    if not header:
        return
    media_type = header.split(";", 1)[0].strip().lower()
    if media_type not in allowed:
        raise UnsupportedMediaTypeError(
            f"content type '{media_type}' not accepted; send {' or '.join(allowed)}"
        )


def _signed_target() -> str:
    """The request target the sender addressed, stage and query included (what MNS signs).

    REST API events carry the query parsed, not raw; rebuilt in order it is exact for the values we sign with,
    since callback tokens are restricted to unreserved URL characters.
    """
    event = app.current_event
    request_context = event.raw_event.get("requestContext") or {}
    path = str(request_context.get("path") or event.path)
    query = event.query_string_parameters or {}
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@app.post(
    "/callbacks/<provider>",
    summary="Receive a provider's job callback",
    description=(
        "Authenticated as the provider signs it: Huawei X-Auth-Signature, Alibaba MNS push signature, or a "
        "?token= in the URL. Answered 200 (Huawei, Azure) or 204 (Alibaba MNS). huawei-image-batch never calls "
        "back: its callbacks are refused (401), whatever they carry."
    ),
    tags=["callbacks"],
    openapi_extensions=OPEN_TO_PROVIDERS,
    # No request validation here: the route takes no body model, and the provider's adapter, not the resolver,
    # judges the query (a ?token= given twice is refused by the provider's check, 401, in its turn).
    enable_validation=False,
    responses={
        200: {"description": "Accepted"},
        204: {"description": "Accepted (MNS)"},
        **http_errors.error_responses(400, 401, 404, 409, 413, 415, 422, 500, 502, 503),
    },
)
def receive_callback(
    provider: Annotated[str, Path(description=f"One of: {', '.join(PROVIDER_NAMES)}")],
    token: Annotated[
        str | None,
        Query(
            description=(
                "One of the provider's callback.tokens in the providers document. Required for every provider "
                "whose entry lists tokens, and azure-review has no other way in; optional beside an MNS "
                "signature (alibaba-mps) or a Huawei X-Auth-Signature until tokens are configured. 16 to 256 "
                "characters from [A-Za-z0-9._~-]."
            ),
        ),
    ] = None,
) -> Response[dict[str, int] | None]:
    # ``token`` is declared for the OpenAPI document only: the adapter reads it from the request it verifies.
    if provider not in PROVIDER_NAMES:
        raise UnknownProviderError(provider)
    deps = dependencies()
    providers = deps.providers()
    adapter = get_adapter(provider, providers)
    raw = _raw_body(deps.settings.max_body_bytes)
    _check_content_type(PROFILES[provider].callback_content_types)
    event = app.current_event
    request = CallbackRequest(
        body=raw,
        headers=dict(event.headers or {}),
        query=dict(event.query_string_parameters or {}),
        path=_signed_target(),
        method=event.http_method,
        repeated=frozenset(
            name
            for name, values in (event.multi_value_query_string_parameters or {}).items()
            if len(values) > 1
        ),
    )
    now = _now()
    entry = providers.get(provider)
    if entry is None:
        # Not a default entry: its defaults (MNS's certificate host) would let a signature alone in.
        raise CallbackAuthError(
            f"callbacks for {provider} are not enabled: the provider has no entry in the providers document"
        )
    adapter.verify_callback(
        request,
        VerifyContext(
            settings=entry.callback,
            now=now,
            load_certificate=deps.certificates.load,
            certificate_verified=deps.certificates.certificate_verified,
        ),
    )
    trust = callbacks.trust_mode(provider, entry.trust, has_credentials=entry.credentials is not None)
    try:
        result = adapter.parse_callback(request)
    except ClientError as exc:
        # Authenticated, yet not understood: the provider's payload changed, or our reading of it is wrong. Nothing
        # of it is stored (CallbacksUnreadableAlarm). Counted so only when the sender is proven ours (a token
        # held, where the signature cannot prove it): another account's MNS topic must not page this one's
        # on-call. With trust: fetch, the job it names is fetched all the same, as it would have been: the body's
        # result was never to be used, and a job nobody registered is found no other way.
        if adapter.signature_proves_sender or entry.callback.tokens:
            count("CallbackUnreadable", provider)
        named = adapter.jobs_named(request) if trust == "fetch" else []
        if not named:
            raise
        logger.warning(
            "callback body unreadable; fetching the job it names",
            provider=provider,
            job_id=named[0],
            error=exc.message,
        )
        result = CallbackResult(jobs_to_fetch=named)
    outcome = callbacks.accept(
        provider,
        result,
        raw,
        trust,
        deps.ingest,
        deps.callback_fetcher(provider),
        now,
        stored_status=deps.store.status,
        time_left_s=lambda: app.lambda_context.get_remaining_time_in_millis() / 1000,
        claim_signed=deps.store.claim_signed,
    )
    count("CallbackAccepted", provider)
    status = adapter.callback_ack_status
    if status == 204:
        return Response(status_code=204, body=None)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"accepted": outcome.accepted},
    )


@app.post(
    "/jobs",
    summary="Register an outstanding job for the poller to follow",
    tags=["jobs"],
    openapi_extensions=IAM_AUTHORIZED,
    responses={
        201: {"description": "Registered", "content": {"application/json": {"model": Verdict}}},
        200: {
            "description": (
                "Already known: the job as it is (the first metadata given is kept; another is not taken), trimmed"
                f" as GET trims it when too large for a Lambda response (the header {TRUNCATED_HEADER}: true)"
            ),
            "content": {"application/json": {"model": Verdict}},
        },
        **http_errors.iam_refused_response(),
        **http_errors.error_responses(400, 413, 415, 422, 500, 503),
    },
)
def register_job(job: RegisterJobRequest) -> Response[str]:
    # The size and the content type were checked before the resolver parsed the body (_reject_job_request).
    deps = dependencies()
    now = _now()
    created, stored = deps.store.register(
        job.provider, job.job_id, job.metadata, now, first_poll_at=now + _first_poll_after(job.provider)
    )
    count("JobRegistered" if created else "JobAlreadyKnown", job.provider)
    # A job already known may be finished, with a verdict of any size (a long video's, archived in S3).
    return _verdict_response(stored.public_verdict(), 201 if created else 200)


def _first_poll_after(provider: str) -> timedelta:
    """How long a job registered now waits for its callback before its first poll: the provider's
    ``callback.first_poll_after_seconds``. None while the providers document does not load: the job routes work
    without it, and a poll that comes early loses nothing."""
    try:
        entry = dependencies().providers().providers.get(provider)
    except ConfigurationError as exc:
        logger.warning(
            "providers document not loaded: the job is polled from the next cycle",
            provider=provider,
            code=exc.code,
        )
        return timedelta(0)
    return timedelta(seconds=entry.callback.first_poll_after_seconds if entry is not None else 0)


@app.get(
    "/jobs/<provider>/<job_id>",
    summary="The canonical verdict of a job",
    tags=["jobs"],
    openapi_extensions=IAM_AUTHORIZED,
    responses={
        200: {
            "description": (
                "The verdict. One too large for a Lambda response (about 6 MB) is trimmed as SNS messages are"
                f" (its strongest findings first), and the header {TRUNCATED_HEADER}: true says so. An unfinished"
                " job's findings so far are kept up to 64 KiB of JSON, its strongest first, and may be partial"
                " without the header: they are a progress report, not its verdict."
            ),
            "content": {"application/json": {"model": Verdict}},
        },
        **http_errors.iam_refused_response(),
        **http_errors.error_responses(404, 500, 503),
    },
)
def get_job(
    provider: Annotated[str, Path(description=f"One of: {', '.join(PROVIDER_NAMES)}")],
    job_id: Annotated[str, Path(description="The provider's job id, percent-encoded")],
) -> Response[str]:
    # API Gateway's REST APIs pass the path as the client sent it, percent-encoded, and the router takes the id
    # from there: a job id with a character a client must encode (é, ?, a space) arrives as %XX.
    job_id = unquote(job_id)
    if provider not in PROVIDER_NAMES:
        raise UnknownProviderError(provider)
    if (
        len(job_id.encode("utf-8")) > MAX_JOB_ID_LENGTH
    ):  # no job has such an id; DynamoDB would refuse the key
        raise NotFoundError(f"no job has an id longer than {MAX_JOB_ID_LENGTH} bytes")
    stored = dependencies().store.get(provider, job_id)
    if stored is None:
        raise NotFoundError(f"no job {job_id} for provider {provider}")
    count("JobRead", provider)
    return _verdict_response(stored.public_verdict(), 200)


def _verdict_response(verdict: Verdict, status_code: int) -> Response[str]:
    """The verdict, trimmed as SNS messages are (its strongest findings first) when it would not fit a Lambda
    response, with the header that says so."""
    body, truncated = message_for(verdict, MAX_RESPONSE_BYTES, _proxy_size)
    return Response(
        status_code=status_code,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={TRUNCATED_HEADER: "true"} if truncated else None,
    )


def _proxy_size(body: str) -> int:
    """The body's bytes in the proxy response, where it is a JSON string: its quotes, backslashes and control
    characters are escaped once more (the runtime writes other characters as UTF-8)."""
    return len(json.dumps(body, ensure_ascii=False).encode("utf-8"))


def _lower_media_type(value: str) -> str:
    media_type, separator, parameters = value.partition(";")
    return media_type.strip().lower() + separator + parameters


def openapi_document() -> str:
    """The OpenAPI description of this API (``docs/openapi.json``), generated from the routes."""
    from verdict_relay import __version__

    document = json.loads(
        app.get_openapi_json_schema(
            title="Verdict Relay",
            version=__version__,
            description="Provider callbacks in, canonical moderation verdicts out.",
            security_schemes=_security_schemes(),
        )
    )
    _describe_callback_body(document["paths"]["/callbacks/{provider}"]["post"])
    return json.dumps(_without_unsent_validation_errors(document), indent=2, ensure_ascii=False)


def _describe_callback_body(operation: dict[str, Any]) -> None:
    """The callback route reads its body itself (authenticated over its exact bytes, then parsed by the
    provider's adapter), so the resolver declares none: the document says what it takes. A 204 has no content."""
    json_types = {"application/json"}
    media_types = sorted(
        json_types.union(*(p.callback_content_types for p in PROFILES.values() if p.calls_back))
    )
    operation["requestBody"] = {
        "required": True,
        "description": (
            "The provider's notification as it sent it: a Huawei job callback, an Azure job or review callback "
            "(JSON), or an Alibaba MNS push (JSON, or XML / text as MNS sends it). Its shape per provider is in "
            "docs/providers.md; one of another shape is refused with 422 naming the field."
        ),
        "content": {
            media_type: {"schema": {"type": "object"} if media_type in json_types else {"type": "string"}}
            for media_type in media_types
        },
    }
    operation["responses"]["204"].pop("content", None)


def _security_schemes() -> dict[str, SecurityScheme]:
    """The job API's authentication, as API Gateway itself exports an IAM-authorized API. Built here, not at
    import: Powertools' OpenAPI models take about 65 ms to import, which no cold start should pay."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

    return {
        "sigv4": APIKey(
            name="Authorization",
            in_=APIKeyIn.header,
            description=(
                "AWS Signature Version 4: API Gateway's AWS_IAM authorizer (the job routes, marked "
                "x-amazon-apigateway-auth AWS_IAM) takes a request signed for service execute-api with "
                'credentials allowed execute-api:Invoke on the route, and answers 403 {"message": ...} itself '
                "otherwise. verdict-relay local leaves these routes open."
            ),
            openapi_extensions={"x-amazon-apigateway-authtype": "awsSigv4"},
        )
    }


def _without_unsent_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Powertools gives every route a 422 of its own ``HTTPValidationError`` shape, which a route's ``responses``
    can replace but not remove. This API never sends that shape (``http_errors`` answers every validation error
    with an ErrorBody), so a route still showing it must be one that sends no 422 at all: it takes no body and only
    string parameters, which validation cannot refuse. That 422 goes, and so do the schemas no route uses."""
    powertools_422 = {"$ref": "#/components/schemas/HTTPValidationError"}
    for operations in document["paths"].values():
        for operation in operations.values():
            declared = operation["responses"].get("422", {}).get("content", {}).get("application/json", {})
            if declared.get("schema") != powertools_422:
                continue
            parameters = operation.get("parameters", [])
            if "requestBody" in operation or any(p["schema"].get("type") != "string" for p in parameters):
                raise ValueError(
                    f"{operation['operationId']} can fail the resolver's validation: declare its 422 with "
                    "http_errors.error_responses"
                )
            del operation["responses"]["422"]
    schemas = document["components"]["schemas"]
    used: set[str] = set()
    pending = [document["paths"]]
    while pending:
        for name in re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(pending.pop())):
            if name not in used:
                used.add(name)
                pending.append(schemas[name])
    document["components"]["schemas"] = {name: schema for name, schema in schemas.items() if name in used}
    return document


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rejection = _reject_job_request(event)
    if rejection is not None:
        return rejection
    return app.resolve(event, context)


def _reject_job_request(event: dict[str, Any]) -> dict[str, Any] | None:
    """``POST /jobs`` takes JSON of at most ``JOB_REQUEST_MAX_BYTES``. Checked before the resolver, whose validation
    would otherwise parse the whole body first (and answer an oversized one by what it lacks) and would try to
    parse form or multipart bodies. Media types are case-insensitive: an accepted one is passed on in lower
    case, which is the only spelling the resolver's validation knows."""
    if event.get("httpMethod") != "POST" or event.get("resource") != "/jobs":
        return None
    max_bytes = min(_max_body_bytes() or JOB_REQUEST_MAX_BYTES, JOB_REQUEST_MAX_BYTES)
    if _body_size(event) > max_bytes:
        count("Rejected413")
        return http_errors.proxy_error(413, PayloadTooLargeError.code, f"body exceeds {max_bytes} bytes")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    media_type = (headers.get("content-type") or "application/json").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        for field in ("headers", "multiValueHeaders"):
            for name, value in list((event.get(field) or {}).items()):
                if name.lower() == "content-type":
                    event[field][name] = (
                        [_lower_media_type(v) for v in value]
                        if isinstance(value, list)
                        else _lower_media_type(value)
                    )
        return None
    count("Rejected415")
    return http_errors.proxy_error(
        415, "unsupported_media_type", f"content type '{media_type}' not accepted; send application/json"
    )
