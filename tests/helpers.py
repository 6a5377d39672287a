"""Test helpers shared by every tier: loading sample events and provider payloads from ``events/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def payload_path(provider: str, name: str) -> Path:
    return EVENTS_DIR / "providers" / provider / f"{name}.json"


def load_payload(provider: str, name: str) -> Any:
    """A provider's payload from ``events/providers/<provider>/<name>.json``, parsed."""
    return json.loads(payload_path(provider, name).read_text(encoding="utf-8"))


def load_payload_bytes(provider: str, name: str) -> bytes:
    return payload_path(provider, name).read_bytes()


def load_api_event(name: str) -> dict[str, Any]:
    """An API Gateway event from ``events/api/<name>.json`` (the same files ``sam local invoke -e`` takes)."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / "api" / f"{name}.json").read_text(encoding="utf-8"))
    return event


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
    import base64

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


def huawei_signature(seed: str, body: bytes, encoding: str = "hex") -> str:
    """X-Auth-Signature as Huawei computes it for a job created with ``seed``."""
    import base64
    import hashlib
    import hmac

    payload = json.loads(body)
    message = f"{payload['create_time']}{payload['job_id']}{payload['request_id']}{seed}"
    digest = hmac.new(seed.encode(), message.encode(), hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")


def with_changes(provider: str, name: str, **changes: Any) -> bytes:
    """A fixture payload with top-level fields replaced, as bytes."""
    payload = load_payload(provider, name)
    payload.update(changes)
    return json.dumps(payload).encode("utf-8")
