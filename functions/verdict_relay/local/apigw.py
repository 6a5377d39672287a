"""API Gateway REST (v1 proxy) events built from HTTP requests: what API Gateway hands the Lambda.

Used by the local stack (each HTTP request becomes the event the deployed function receives), the sample events
in ``events/api`` and the tests.
"""

from __future__ import annotations

import base64
from typing import Any


def api_event(
    method: str,
    path: str,
    *,
    resource: str,
    path_parameters: dict[str, str] | None = None,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    base64_encoded: bool = False,
    stage: str = "v1",
) -> dict[str, Any]:
    """An API Gateway REST (v1 proxy) event, as API Gateway sends it to the Lambda."""

    if isinstance(body, bytes):
        body = base64.b64encode(body).decode("ascii") if base64_encoded else body.decode("utf-8")
    elif isinstance(body, str) and base64_encoded:
        body = base64.b64encode(body.encode("utf-8")).decode("ascii")
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    }
