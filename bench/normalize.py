"""Normalization: each provider's large realistic payload through its adapter, against ``json.loads`` of the
same bytes, measured side by side in one run (best of several rounds). Target: normalize <= 3 x json.loads.

Normalize = the adapter's ``parse_bytes`` of the body as received, which is what ``parse_callback`` does with a
callback. Huawei v3 (video, audio) validates straight from the bytes; the other adapters decode with
``json.loads`` and ``parse`` the result, which is also what a poller holding the decoded answer pays.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from verdict_relay.local.simulator import alibaba_job, huawei_image_batch_job, huawei_video_job
from verdict_relay.providers.registry import get_adapter

TARGET = 3.0
ROUNDS = 7


def huawei_video_two_hours() -> dict[str, Any]:
    """A 2-hour video at one frame every 5 s (1,440 frames), three details per frame, plus audio clips."""
    job = huawei_video_job("bench-video", "succeeded", "block", frames=1)
    frame = job["result"]["image_detail"][0]
    detail = frame["detail"][0]
    job["result"]["image_detail"] = [
        {
            **frame,
            "time": t * 5.0,
            "detail": [{**detail, "confidence": (t % 100) / 100, "label": f"label-{k}"} for k in range(3)],
        }
        for t in range(1440)
    ]
    return job


def image_batch_500() -> dict[str, Any]:
    items = [
        (f"https://images.example/bench/{i}.jpg", ("pass", "review", "block")[i % 3]) for i in range(500)
    ]
    return huawei_image_batch_job("bench-batch", "finish", items)  # type: ignore[arg-type]


def alibaba_timeline_1000() -> dict[str, Any]:
    return {
        "RequestId": "bench",
        "MediaCensorJobList": {
            "MediaCensorJob": [alibaba_job("bench-mps", "Success", "block", timeline_entries=1000)]
        },
    }


PAYLOADS: dict[str, Callable[[], dict[str, Any]]] = {
    "huawei-video": huawei_video_two_hours,
    "huawei-image-batch": image_batch_500,
    "alibaba-mps": alibaba_timeline_1000,
}


def best(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> list[dict[str, object]]:
    rows = []
    for provider, build in PAYLOADS.items():
        raw = json.dumps(build()).encode()
        adapter = get_adapter(provider)
        adapter.parse_bytes(raw)  # warm: the first parse builds nothing lazily that later ones reuse
        baseline = best(lambda raw=raw: json.loads(raw))
        normalized = best(lambda raw=raw, adapter=adapter: adapter.parse_bytes(raw))
        findings = sum(len(v.findings) for v in adapter.parse_bytes(raw))
        ratio = normalized / baseline
        rows.append(
            {
                "benchmark": f"normalize {provider} ({len(raw) // 1024} KiB, {findings} findings)",
                "measured": f"{normalized * 1000:.1f} ms = {ratio:.1f} x json.loads ({baseline * 1000:.1f} ms)",
                "target": f"<= {TARGET} x json.loads",
                "ok": ratio <= TARGET,
            }
        )
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
