"""API Gateway REST (v1 proxy) events built from HTTP requests: what API Gateway hands the Lambda.

Used by the local stack (each HTTP request becomes the event the deployed function receives), the sample events
in ``events/api`` and the tests. A query parameter given more than once is carried as API Gateway carries it: every
value, in order, in ``multiValueQueryStringParameters`` and the last in ``queryStringParameters``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any


def api_event(
    method: str,
    path: str,
    *,
    resource: str,
    path_parameters: dict[str, str] | None = None,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    query: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    base64_encoded: bool = False,
    stage: str = "v1",
) -> dict[str, Any]:
    """An API Gateway REST (v1 proxy) event, as API Gateway sends it to the Lambda.

    ``query`` is a mapping (each name once) or the query's ``(name, value)`` pairs in order, names repeated as sent.
    """

    if isinstance(body, bytes):
        body = base64.b64encode(body).decode("ascii") if base64_encoded else body.decode("utf-8")
    elif isinstance(body, str) and base64_encoded:
        body = base64.b64encode(body.encode("utf-8")).decode("ascii")
    multi_query: dict[str, list[str]] = {}
    for name, value in query.items() if isinstance(query, Mapping) else query or ():
        multi_query.setdefault(name, []).append(value)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or {},
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
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
