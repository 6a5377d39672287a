"""The one place errors become HTTP responses: ``{"error": {"code": ..., "message": ...}}``.

Client mistakes are 4xx with a message saying what was wrong; our own faults are 5xx without internals.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field

from verdict_relay.errors import ClientError, VerdictRelayError
from verdict_relay.models.verdict import PROVIDER_NAMES
from verdict_relay.observability import count, logger

MAX_DETAILS = 50
"""A 422 lists at most this many problems (its message gives their number): a body within the size limit can hold
a hundred thousand, whose list would not fit a Lambda response (6 MB), and API Gateway would answer a 502."""
MAX_DETAIL_CHARS = 300


def _clipped(text: str) -> str:
    """One field or problem, at most ``MAX_DETAIL_CHARS`` characters (a field's path names the keys a client sent)."""
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


class ErrorDetail(BaseModel):
    field: str
    problem: str


class Error(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. unauthorized, invalid_payload")
    message: str = Field(description="What was wrong, for a person")
    details: list[ErrorDetail] | None = Field(
        default=None,
        description="A 422's problems, field by field: the first 50 (the message gives the number when there are more)",
    )


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"code": ..., "message": ...}}``."""

    error: Error


class GatewayMessage(BaseModel):
    """An answer API Gateway gives itself, before the function runs (403 refused by IAM, 429, 504)."""

    message: str


def iam_refused_response() -> dict[int, OpenAPIResponse]:
    """OpenAPI description of the 403 API Gateway answers on an IAM-authorized route."""
    return {
        403: {
            "description": (
                "Refused by API Gateway's IAM authorization, before the function runs: no or an invalid SigV4 "
                "signature, or credentials without execute-api:Invoke on the route"
            ),
            "content": {"application/json": {"model": GatewayMessage}},
        }
    }


def error_responses(*statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI descriptions of a route's error responses, all with the ErrorBody shape."""
    return {
        status: {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"model": ErrorBody}},
        }
        for status in statuses
    }


ERROR_DESCRIPTIONS = {
    400: "Malformed body (not JSON, not UTF-8, bad base64)",
    401: "Missing, invalid or stale signature or token; or callbacks not enabled for the provider",
    404: "Unknown provider in the path; reading a job (GET /jobs/...), also an unknown job",
    409: "An Azure reviewer's decision whose review id is the id of a job being followed: nothing stored",
    413: "Body larger than MAX_BODY_BYTES (POST /jobs: or than 1,000,000 bytes)",
    415: "Content type not accepted",
    422: "Well-formed body of the wrong shape; the message names the field",
    500: "Unexpected fault or invalid configuration: nothing was acknowledged, send again",
    502: "A provider the request depended on failed",
    503: "Storage or configuration unavailable: nothing was stored, send again",
}


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps({"error": error})
    )


def proxy_error(status: int, code: str, message: str) -> dict[str, Any]:
    """An error as the API Gateway proxy response, for checks made before the resolver runs."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": {"code": code, "message": message}}),
        "isBase64Encoded": False,
    }


def register(app: APIGatewayRestResolver) -> None:
    def count_for_route(outcome: str) -> str | None:
        """Count a refused or failed request, by provider too when its route names one (forged callbacks show
        per provider), and return that provider. Only the provider names become a dimension or a log field:
        any other value comes from the request."""
        named = (app.current_event.path_parameters or {}).get("provider")
        provider = named if named in PROVIDER_NAMES else None
        count(outcome, provider)
        return provider

    def described(exc: VerdictRelayError, provider: str | None) -> dict[str, Any]:
        """A refused or failed request's log fields: the whole message (a 5xx answers without it), the provider
        and the route template (never the path, which comes from the request)."""
        return {
            "status": exc.status_code,
            "code": exc.code,
            "reason": exc.message,
            "provider": provider,
            "route": app.current_event.get("resource"),
        }

    @app.exception_handler(ClientError)
    def client_error(exc: ClientError) -> Response:
        logger.info("request rejected", **described(exc, count_for_route(f"Rejected{exc.status_code}")))
        return error_response(exc.status_code, exc.code, exc.message)

    @app.exception_handler(VerdictRelayError)
    def server_error(exc: VerdictRelayError) -> Response:
        logger.error("request failed", **described(exc, count_for_route("ServerError")))
        return error_response(exc.status_code, exc.code, exc.public_message or exc.message)

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported_content_type(_: RequestUnsupportedContentType) -> Response:
        count_for_route("Rejected415")
        media_type = app.current_event.headers.get("content-type", "")
        return error_response(
            415, "unsupported_media_type", f"content type '{media_type}' not accepted; send application/json"
        )

    @app.exception_handler(RequestValidationError)
    def validation_error(exc: RequestValidationError) -> Response:
        errors = exc.errors()
        invalid = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if invalid is not None:
            count_for_route("Rejected400")
            reason = (invalid.get("ctx") or {}).get("error")
            return error_response(
                400,
                "malformed_payload",
                f"request body is not valid JSON: {reason}" if reason else "request body is not valid JSON",
            )
        if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
            # No body, or JSON null: the schema's one problem ("Field required" at no field) would not say so.
            if not app.current_event.body:
                count_for_route("Rejected400")
                return error_response(400, "malformed_payload", "request body is empty; send a JSON object")
            errors = [{"loc": (), "msg": "a JSON object is required, not null"}]
        details = [
            {
                "field": _clipped(".".join(str(p) for p in e.get("loc", ()) if p != "body")),
                # pydantic's prefix for a validator's own ValueError says nothing to a client
                "problem": _clipped(e.get("msg", "").removeprefix("Value error, ")),
            }
            for e in errors[:MAX_DETAILS]
        ]
        message = "request does not match the API schema"
        if len(errors) > MAX_DETAILS:
            message += f" ({len(errors)} problems; the first {MAX_DETAILS} are listed)"
        count_for_route("Rejected422")
        return error_response(422, "invalid_request", message, details)

    @app.exception_handler(UnicodeDecodeError)
    def body_not_utf8(_: UnicodeDecodeError) -> Response:
        # Our own code turns decoding errors into typed errors; one that arrives here is the request body's,
        # decoded by the resolver's validation.
        count_for_route("Rejected400")
        return error_response(400, "malformed_payload", "request body is not valid UTF-8")

    @app.exception_handler(binascii.Error)
    def body_not_base64(_: binascii.Error) -> Response:
        # Likewise: the resolver's validation decodes a body API Gateway flagged base64-encoded.
        count_for_route("Rejected400")
        return error_response(
            400, "malformed_payload", "request body is flagged base64-encoded but is not base64"
        )

    @app.exception_handler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        # A fault of ours or of a dependency: a JSON 500 (the sender retries), the details only in the log.
        count_for_route("ServerError")
        logger.exception("unexpected error", error_type=type(exc).__name__)
        return error_response(500, "internal_error", "internal error; nothing was acknowledged, send again")

    @app.not_found
    def not_found(_: Exception) -> Response:
        count_for_route("Rejected404")
        return error_response(
            404, "not_found", f"no route {app.current_event.http_method} {app.current_event.path}"
        )
