"""Builds ``events/api/*.json``: API Gateway events for each provider callback shape and each job route.

The bodies are the provider payloads in ``events/providers/``; callbacks are signed with the sample secrets in
``events/README.md``. ``make events`` rewrites the files; ``tests/unit/test_repository_files.py`` fails when
they are stale. Usable with ``sam local invoke ApiFunction -e events/api/<name>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from verdict_relay.local.apigw import api_event
from verdict_relay.local.callback_signing import huawei_callback_signature

ROOT = Path(__file__).resolve().parent.parent

SAMPLE_HUAWEI_SEED = "sample_seed_change_me"
SAMPLE_CALLBACK_TOKEN = "sample-callback-token-change-me"  # noqa: S105 - a documented sample, not a secret

CALLBACKS: list[tuple[str, str, str]] = [
    ("huawei-video", "succeeded", "huawei-video-succeeded"),
    ("huawei-video", "running", "huawei-video-running"),
    ("huawei-video", "failed", "huawei-video-failed"),
    ("huawei-audio", "succeeded", "huawei-audio-succeeded"),
    ("azure-review", "job-callback", "azure-review-job-callback"),
    ("azure-review", "job-callback-camelcase", "azure-review-job-callback-camelcase"),
    ("azure-review", "review-callback", "azure-review-review-callback"),
    ("alibaba-mps", "mns-notification", "alibaba-mps-mns-notification"),
]


def _callback_event(provider: str, payload_name: str) -> dict[str, Any]:
    if provider not in ("huawei-video", "huawei-audio", "azure-review", "alibaba-mps"):
        raise ValueError(
            f"no sample callback is signed for {provider!r}: add how it signs to tools/build_events.py"
        )
    body = (ROOT / "events" / "providers" / provider / f"{payload_name}.json").read_bytes()
    headers = {"Content-Type": "application/json"}
    query: dict[str, str] | None = None
    if provider in ("huawei-video", "huawei-audio"):
        headers["X-Auth-Signature"] = huawei_callback_signature(SAMPLE_HUAWEI_SEED, json.loads(body))
    elif provider == "azure-review":
        query = {"token": SAMPLE_CALLBACK_TOKEN}
    else:  # alibaba-mps
        # An MNS push is signed over its Date, so a stored one is always stale: this event shows the shape
        # and is refused with 401 "stale Date", as a replay must be.
        headers.update(
            {
                "Date": "Sun, 22 Nov 2026 03:00:00 GMT",
                "x-mns-version": "2015-06-06",
                "x-mns-signing-cert-url": "aHR0cHM6Ly9tbnN0ZXN0Lm9zcy1jbi1oYW5nemhvdS5hbGl5dW5jcy5jb20veDUwOV9wdWJsaWNfY2VydGlmaWNhdGUucGVt",
                "Authorization": "c2FtcGxl",
            }
        )
    return api_event(
        "POST",
        f"/callbacks/{provider}",
        resource="/callbacks/{provider}",
        path_parameters={"provider": provider},
        body=body,
        headers=headers,
        query=query,
    )


def build() -> dict[str, dict[str, Any]]:
    events = {name: _callback_event(provider, payload) for provider, payload, name in CALLBACKS}
    events["jobs-register"] = api_event(
        "POST",
        "/jobs",
        resource="/jobs",
        body=json.dumps(
            {
                "provider": "alibaba-mps",
                "job_id": "f8f166eea7a44e9bb0a4aecf9543****",
                "metadata": {"content_id": "video-123"},
            }
        ),
        headers={"Content-Type": "application/json"},
    )
    events["jobs-get"] = api_event(
        "GET",
        "/jobs/huawei-video/xxx",
        resource="/jobs/{provider}/{job_id}",
        path_parameters={"provider": "huawei-video", "job_id": "xxx"},
    )
    return events


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2, sort_keys=True) + "\n"


def main() -> None:
    target = ROOT / "events" / "api"
    target.mkdir(exist_ok=True)
    for name, event in build().items():
        (target / f"{name}.json").write_text(render(event), encoding="utf-8")


if __name__ == "__main__":
    main()
