"""Integration fixtures: the real Lambda handler wired to moto through its own environment variables."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import FakeAws
from tests.helpers import api_event
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.callback_signing import MnsSigner
from verdict_relay.local.http_api import LambdaContext
from verdict_relay.local.simulator import ProviderSimulator

HUAWEI_SEEDS = ["seed_current_0001", "seed_previous_0001"]
"""huawei-video's callback seeds, current and previous (a rotation)."""
HUAWEI_AUDIO_SEEDS = ["audio_seed_current_0001", "audio_seed_previous_0001"]
HUAWEI_AUDIO_TOKENS = ["huawei-audio-token-current-0001"]
"""huawei-audio's seeds, and a callback token it takes besides them: a Huawei route whose URL carries a token."""
AZURE_TOKENS = ["azure-token-current-0001", "azure-token-previous-0001"]
"""Every provider's secrets differ from every other's, so a test can present one provider's to another."""

UNREACHABLE_ENDPOINT = "http://127.0.0.1:9"
"""Where nothing listens (the discard port): a fetch there fails at once with a connection error."""

ALIBABA_MPS_ENTRY: dict[str, Any] = {
    "endpoint": UNREACHABLE_ENDPOINT,
    "credentials": {"access_key_id": "test-access-key-id", "access_key_secret": "test-access-key-secret"},
    "callback": {"certificate_hosts": ["127.0.0.1"]},
}
"""An MNS notice carries no result, so alibaba-mps needs API credentials. These point at nothing: the fetch
after a notice fails and the job is left due for the poller, so the tests see what the push itself stores."""

PROVIDERS_DOCUMENT: dict[str, Any] = {
    "huawei-video": {"callback": {"seeds": HUAWEI_SEEDS}},
    "huawei-audio": {"callback": {"seeds": HUAWEI_AUDIO_SEEDS, "tokens": HUAWEI_AUDIO_TOKENS}},
    "alibaba-mps": ALIBABA_MPS_ENTRY,
    "azure-review": {"callback": {"tokens": AZURE_TOKENS}},
}


@dataclass
class ApiResponse:
    status: int
    body: Any
    headers: dict[str, str]


_containers = threading.local()


def callback_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The callback receiver's ``lambda_handler`` as the calling thread's own Lambda container runs it.

    A container runs one invocation at a time, and the handler relies on it: Powertools' resolver keeps the
    request it is routing in the module's ``app`` (its route arguments among them), so two invocations at once
    in one module read each other's, or none. Threads that invoke the handler at once (the race and delivery
    suites) are several containers, then: each thread but the main one runs a copy of the handler module of its
    own, as each container imports its own; everything below the module (the dependencies, their AWS clients)
    is shared, as thread-safe as the tests need.
    """
    from verdict_relay.handlers import callback

    if threading.current_thread() is threading.main_thread():
        return callback.lambda_handler
    module = getattr(_containers, "callback", None)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            f"{callback.__name__}_container_{threading.get_ident()}", callback.__file__
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _containers.callback = module
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.lambda_handler
    return handler


class NamedContext(LambdaContext):
    """An invocation of a function named ``name``, as Lambda names it in the context."""

    def __init__(self, name: str) -> None:
        self.function_name = name


class ApiClient:
    """Invokes the real callback-receiver handler with API Gateway events (and ``context``, a fresh invocation's
    unless given), from each thread as from a Lambda container of its own (``callback_handler``)."""

    def __init__(self, context: Any = None) -> None:
        self.context = context or LambdaContext()

    def invoke(self, event: dict[str, Any]) -> ApiResponse:
        from tests import log_search

        log_search.present(event.get("headers") or {})

        result = callback_handler()(event, self.context)
        raw = result.get("body")
        body = json.loads(raw) if raw else None
        headers = {**(result.get("headers") or {})}
        headers.update({k: v[-1] for k, v in (result.get("multiValueHeaders") or {}).items() if v})
        return ApiResponse(result["statusCode"], body, headers)

    def callback(
        self,
        provider: str,
        body: bytes | str,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        base64_encoded: bool = False,
    ) -> ApiResponse:
        return self.invoke(
            api_event(
                "POST",
                f"/callbacks/{provider}",
                resource="/callbacks/{provider}",
                path_parameters={"provider": provider},
                body=body,
                headers={"Content-Type": "application/json", **(headers or {})},
                query=query,
                base64_encoded=base64_encoded,
            )
        )

    def register(self, payload: Any, content_type: str = "application/json") -> ApiResponse:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        return self.invoke(
            api_event("POST", "/jobs", resource="/jobs", body=body, headers={"Content-Type": content_type})
        )

    def get_job(self, provider: str, job_id: str) -> ApiResponse:
        # As a client sends it and API Gateway's REST API passes it on: percent-encoded.
        encoded = quote(job_id, safe="")
        return self.invoke(
            api_event(
                "GET",
                f"/jobs/{provider}/{encoded}",
                resource="/jobs/{provider}/{job_id}",
                path_parameters={"provider": provider, "job_id": encoded},
            )
        )


def configure_environment(
    monkeypatch: pytest.MonkeyPatch, aws: FakeAws, tmp_path: Path, document: dict[str, Any], **extra: str
) -> None:
    providers_file = tmp_path / "providers.json"
    providers_file.write_text(json.dumps(document), encoding="utf-8")
    env = {
        "TABLE_NAME": aws.resources.table_name,
        "TOPIC_ARN": aws.resources.topic_arn,
        "RAW_PAYLOAD_BUCKET": aws.resources.bucket,
        "PROVIDERS_FILE": str(providers_file),
        **extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    dependencies_module.dependencies.cache_clear()


@pytest.fixture
def api(aws: FakeAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ApiClient]:
    configure_environment(monkeypatch, aws, tmp_path, PROVIDERS_DOCUMENT)
    yield ApiClient()
    dependencies_module.dependencies.cache_clear()


@pytest.fixture
def mns() -> Iterator[MnsSigner]:
    """An MNS signing identity whose certificate is served over HTTP on 127.0.0.1."""
    signer = MnsSigner.generate()
    stop = signer.serve_certificate()
    yield signer
    stop()


@pytest.fixture
def simulator() -> Iterator[ProviderSimulator]:
    """The providers' APIs on 127.0.0.1, checking signatures as the providers do."""
    with ProviderSimulator() as running:
        yield running


OUTCOME = {"status", "suggestion", "decided_by", "findings", "error", "item_errors"}
"""The fields of a verdict that make its result (the store's fingerprint's, and who decided it)."""


def assert_published_once_as_the_provider_says(
    deps: Any,
    api: ApiClient,
    messages: list[dict[str, Any]],
    provider: str,
    finished: dict[str, dict[str, Any]],
) -> None:
    """Each job of ``finished`` (job id -> the provider's finished job) was settled as its provider says: the
    verdict stored, served by GET /jobs and published once is the job as its adapter and the policy read it, sent
    as the relay's own publish (not a republish), with no conflict record, and the job is neither due nor owed a
    publish any more."""
    from verdict_relay.models.verdict import JobStatus
    from verdict_relay.providers.registry import get_adapter

    by_job = {m["verdict"]["job_id"]: m for m in messages}
    assert sorted(m["verdict"]["job_id"] for m in messages) == sorted(finished)
    for job_id, payload in finished.items():
        (parsed,) = get_adapter(provider).parse(payload)
        expected = deps.ingest.policy.finalize(parsed)
        outcome = expected.model_dump(mode="json", include=OUTCOME)
        stored = deps.store.get(provider, job_id)
        assert stored is not None
        assert stored.verdict is not None
        assert stored.verdict.model_dump(mode="json", include=OUTCOME) == outcome
        assert (stored.status, stored.publish_state, stored.next_poll_at) == (
            JobStatus.SUCCEEDED,
            "published",
            None,
        )
        served = api.get_job(provider, job_id)
        assert served.status == 200
        assert {k: v for k, v in served.body.items() if k in OUTCOME} == outcome
        message = by_job[job_id]
        assert message["verdict"] == served.body
        assert message["attributes"] == {
            "provider": provider,
            "status": "succeeded",
            "suggestion": expected.suggestion.value,
            "categories": json.dumps(expected.categories),
            "findings_truncated": "false",
            "republished": "false",
        }
        assert deps.store.conflicts(provider, job_id) == []
    assert list(deps.store.due_jobs(provider, datetime.now(UTC))) == []
    assert list(deps.store.unpublished(provider)) == []
