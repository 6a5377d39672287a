"""Callback latency: a provider's callback through the local HTTP stack, from sending it to the acknowledgement.

The stack: :class:`~verdict_relay.local.http_api.LocalHttpApi` (each request becomes the API Gateway event the
deployed function receives) invoking the real callback handler, whose dependencies come from its environment
as in Lambda, against :class:`~verdict_relay.local.aws.EmbeddedAws` (moto in server mode, in a process of its
own so its CPU is not the handler's). Requests are sent one at a time over a new connection each, as a
provider would; every request is a new job, so each is a real store and publish, never a duplicate.

* huawei-video, huawei-audio: the v3 job body, ``X-Auth-Signature`` with the job's seed; block/review
  verdicts, so each request is a conditional write, an SNS publish and the publish confirmation.
* azure-review: the job callback Azure POSTs when a job ends (``CallBackType: "Job"``, the scores in
  ``Metadata``) with a block score, authenticated by the ``?token=`` in the URL.
* alibaba-mps: an MNS HTTP push signed with :class:`~verdict_relay.local.callback_signing.MnsSigner`, its
  certificate served over HTTP on 127.0.0.1 (fetched once, then cached by the receiver). The notice carries no
  result, so the receiver fetches the job from MPS (the simulator on 127.0.0.1, no added latency, its rate limit
  raised so the benchmark measures the path, not the quota): a block verdict, stored and published.

``trust`` is ``body`` for the others: the callback's content is the verdict and no provider API is called. Then
the Huawei video and Azure callbacks again with ``trust: fetch``, the default with API credentials, in a stack of
their own: the receiver fetches each job from a simulator that answers in ``FETCH_LATENCY_S`` (50 ms), as the
poller benchmark's does.
Warm handler: ``WARMUP`` requests per provider first (imports, dependencies, the certificate), then ``RUNS``
measured. Then the growth of p50 with the findings in a payload (Huawei video frames, audio segments).

No latency target is set; the reference is each provider's acknowledgement deadline (Huawei 3 s, MNS 5 s;
Azure documents none, so Huawei's 3 s serves as the yardstick). A row is missed only if p99 exceeds it.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from poller_throughput import aws_env, environment, in_own_process, quiet_output

RUNS = 200
WARMUP = 20
SCALING_RUNS = 100
FINDINGS_STEPS = (1, 10, 100)
SEEDS = {"huawei-video": "bench_video_seed_01", "huawei-audio": "bench_audio_seed_01"}
TOKEN = "bench-callback-token-0001"  # noqa: S105 - a made-up URL token for the loopback stack
DEADLINE_S = {"huawei-video": 3.0, "huawei-audio": 3.0, "azure-review": 3.0, "alibaba-mps": 5.0}
DEADLINE_NOTE = {
    "huawei-video": "Huawei acknowledgement deadline 3 s",
    "huawei-audio": "Huawei acknowledgement deadline 3 s",
    "azure-review": "no deadline documented; Huawei's 3 s as yardstick",
    "alibaba-mps": "MNS acknowledgement deadline 5 s",
}
PROVIDERS_DOCUMENT: dict[str, Any] = {
    "huawei-video": {"trust": "body", "callback": {"seeds": [SEEDS["huawei-video"]]}},
    "huawei-audio": {"trust": "body", "callback": {"seeds": [SEEDS["huawei-audio"]]}},
    "azure-review": {"trust": "body", "callback": {"tokens": [TOKEN]}},
}
MPS_RATE_PER_S = 1000.0
"""The rate the fetched providers are given: the highest a providers document takes, so no fetch waits on it."""
FETCH_LATENCY_S = 0.05
"""For the rows with ``trust: fetch``: the simulator's time to answer each fetch, as in the poller benchmark."""
STAGE_PATH = "/v1/callbacks/{provider}"

Request = tuple[str, bytes, dict[str, str]]
"""Path (with query), body, headers."""
Plan = tuple[Callable[[], Request], int, str]
"""What builds a provider's callbacks, the status the receiver answers them with, and what they are."""


class Callbacks:
    """Builds each provider's callback for a new job, signed as the provider signs it."""

    def __init__(self, mns: Any, simulator: Any) -> None:
        self._mns = mns
        self._simulator = simulator

    def huawei_video(self, frames: int = 2) -> Request:
        from verdict_relay.local.simulator import huawei_video_job

        return self._huawei("huawei-video", huawei_video_job(new_id(), "succeeded", "block", frames=frames))

    def huawei_audio(self, segments: int = 1) -> Request:
        from verdict_relay.local.simulator import huawei_audio_job

        return self._huawei(
            "huawei-audio", huawei_audio_job(new_id(), "succeeded", "review", segments=segments)
        )

    def azure(self, job_id: str | None = None) -> Request:
        job_id = job_id or new_id()
        # What Azure POSTs to the job's CallBackEndpoint when it ends (events/providers/azure-review/
        # job-callback.json): the scores in a Metadata object, not the Get job's Key/Value list.
        callback = {
            "JobId": job_id,
            "ReviewId": "",
            "WorkFlowId": "default",
            "Status": "Complete",
            "ContentType": "Image",
            "ContentId": f"content-{job_id}",
            "CallBackType": "Job",
            "Metadata": {"adultscore": "0.950", "a": "True", "racyscore": "0.020", "r": "False"},
        }
        path = STAGE_PATH.format(provider="azure-review") + f"?token={TOKEN}"
        return path, json.dumps(callback).encode(), {"Content-Type": "application/json"}

    def mns(self) -> Request:
        from verdict_relay.local.callback_signing import mns_notification
        from verdict_relay.local.simulator import alibaba_job

        job_id = new_id()
        self._simulator.put_job("alibaba-mps", job_id, alibaba_job(job_id, "Success", "block"))
        body = mns_notification(job_id)
        path = STAGE_PATH.format(provider="alibaba-mps")
        return path, body, self._mns.sign(path, body)

    def fetched_huawei_video(self) -> Request:
        """A Huawei video callback whose job the simulator holds too, for a receiver that fetches it."""
        from verdict_relay.local.simulator import huawei_video_job

        job = huawei_video_job(new_id(), "succeeded", "block")
        self._simulator.put_job("huawei-video", job["job_id"], job)
        return self._huawei("huawei-video", job)

    def fetched_azure(self) -> Request:
        """An Azure job callback whose job the simulator holds too (its Get job answer), likewise."""
        from verdict_relay.local.simulator import azure_job

        job_id = new_id()
        self._simulator.put_job("azure-review", job_id, azure_job(job_id, "Complete", adult_score=0.95))
        return self.azure(job_id)

    @staticmethod
    def _huawei(provider: str, payload: dict[str, Any]) -> Request:
        from verdict_relay.local.callback_signing import huawei_callback_signature

        headers = {
            "Content-Type": "application/json",
            "X-Auth-Signature": huawei_callback_signature(SEEDS[provider], payload),
        }
        return STAGE_PATH.format(provider=provider), json.dumps(payload).encode(), headers


def new_id() -> str:
    return f"bench-{uuid.uuid4().hex}"


def send(port: int, request: Request) -> tuple[int, float]:
    """POST over a new connection; (status, seconds until the whole answer was read)."""
    path, body, headers = request
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def percentile(samples: list[float], share: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[round(share * 100) - 1]


def series(port: int, build: Callable[[], Request], runs: int, expected: int) -> list[float]:
    """Latencies in ms of ``runs`` requests; any answer other than ``expected`` stops the benchmark."""
    latencies = []
    for _ in range(runs):
        status, seconds = send(port, build())
        if status != expected:
            raise RuntimeError(f"callback answered {status}, expected {expected}")
        latencies.append(seconds * 1000)
    return latencies


@contextlib.contextmanager
def local_api(endpoint_url: str, document: Mapping[str, Any]) -> Iterator[int]:
    """The callback handler behind the local HTTP API, configured through its environment; yields the port."""
    import boto3

    from verdict_relay.handlers.dependencies import dependencies
    from verdict_relay.local.http_api import LocalHttpApi
    from verdict_relay.local.resources import create_resources

    with environment(aws_env(endpoint_url)):
        resources = create_resources(boto3.session.Session(), prefix="bench")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as providers_file:
            json.dump(document, providers_file)
        env = {
            "TABLE_NAME": resources.table_name,
            "TOPIC_ARN": resources.topic_arn,
            "RAW_PAYLOAD_BUCKET": resources.bucket,
            "PROVIDERS_FILE": providers_file.name,
            "PROVIDERS_CACHE_SECONDS": "3600",
        }
        with environment(env):
            from verdict_relay.handlers.callback import lambda_handler

            dependencies.cache_clear()
            api = LocalHttpApi(lambda_handler, port=0).start()
            try:
                yield int(api.base_url.rsplit(":", 1)[1])
            finally:
                api.stop()
                dependencies.cache_clear()
                os.unlink(providers_file.name)


def findings(provider: str, request: Request) -> int:
    from verdict_relay.providers.registry import get_adapter

    return sum(len(v.findings) for v in get_adapter(provider).parse(json.loads(request[1])))


def findings_label(count: int) -> str:
    return f"{count} finding" if count == 1 else f"{count} findings"


def main() -> list[dict[str, object]]:
    from verdict_relay.local.callback_signing import MnsSigner
    from verdict_relay.local.simulator import ProviderSimulator

    signer = MnsSigner.generate()
    stop_certificate = signer.serve_certificate()
    mps = ProviderSimulator().start()
    mps.set_rate_limit("alibaba-mps", MPS_RATE_PER_S)
    document = {
        **PROVIDERS_DOCUMENT,
        "alibaba-mps": {
            **mps.provider_entry("alibaba-mps", rate_limit_per_s=MPS_RATE_PER_S),
            "callback": {"certificate_hosts": ["127.0.0.1"]},
        },
    }
    callbacks = Callbacks(signer, mps)
    plans: dict[str, Plan] = {
        "huawei-video": (callbacks.huawei_video, 200, "signed, {findings}, block"),
        "huawei-audio": (callbacks.huawei_audio, 200, "signed, {findings}, review"),
        "azure-review": (callbacks.azure, 200, "job callback, URL token, {findings}, block"),
        "alibaba-mps": (callbacks.mns, 204, "MNS push, RSA-signed, no result: job fetched from MPS, block"),
    }
    if set(plans) != set(DEADLINE_S):  # a provider that calls back and has no plan would go unmeasured
        raise ValueError(f"callback plans for {sorted(plans)}; DEADLINE_S names {sorted(DEADLINE_S)}")
    scaling: dict[str, Callable[[int], Request]] = {
        "huawei-video": callbacks.huawei_video,
        "huawei-audio": callbacks.huawei_audio,
    }
    rows: list[dict[str, object]] = []
    try:
        with (
            in_own_process("AwsHost") as aws,
            quiet_output(),
            local_api(aws.endpoint_url(), document) as port,
        ):
            rows += latency_rows(aws, port, plans)
            for provider, make in scaling.items():
                # Sizes interleaved, so drift over the run (a growing table) weighs on each the same.
                by_size: dict[int, list[float]] = {count: [] for count in FINDINGS_STEPS}
                for _ in range(SCALING_RUNS):
                    for count in FINDINGS_STEPS:
                        by_size[count] += series(port, functools.partial(make, count), 1, 200)
                steps = []
                for count, latencies in by_size.items():
                    sample = make(count)
                    size = f"{len(sample[1]) / 1024:.1f} KiB"
                    steps.append((findings(provider, sample), size, statistics.median(latencies)))
                worst = max(percentile(latencies, 0.99) for latencies in by_size.values())
                growth = " -> ".join(f"{findings_label(n)} ({size}) {p50:.1f} ms" for n, size, p50 in steps)
                rows.append(
                    {
                        "benchmark": f"callback p50 by findings per payload, {provider}",
                        "measured": f"{growth} ({steps[-1][2] / steps[0][2]:.2f} x; "
                        f"worst p99 {worst:.1f} ms; {SCALING_RUNS} new jobs each)",
                        "target": f"reported; {DEADLINE_NOTE[provider]}: p99 well inside",
                        "ok": worst < DEADLINE_S[provider] * 1000,
                    }
                )
        rows += fetched_rows()
    finally:
        stop_certificate()
        mps.stop()
    return rows


def latency_rows(aws: Any, port: int, plans: Mapping[str, Plan]) -> list[dict[str, object]]:
    """Each plan's callbacks sent ``WARMUP`` times, then ``RUNS`` times measured: one row each."""
    for build, expected, _ in plans.values():
        series(port, build, WARMUP, expected)
    rows: list[dict[str, object]] = []
    for provider, (build, expected, what) in plans.items():
        moto_before = aws.cpu_seconds()
        latencies = series(port, build, RUNS, expected)
        moto_ms = (aws.cpu_seconds() - moto_before) / RUNS * 1000
        p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
        if "{findings}" in what:  # an MNS notice has none: it only names the job
            what = what.format(findings=findings_label(findings(provider, build())))
        rows.append(
            {
                "benchmark": f"callback latency, {provider} ({what})",
                "measured": f"p50 {p50:.1f} ms, p99 {p99:.1f} ms over {RUNS} new jobs "
                f"(moto CPU {moto_ms:.1f} ms per request)",
                "target": f"reported; {DEADLINE_NOTE[provider]}: p99 well inside",
                "ok": p99 < DEADLINE_S[provider] * 1000,
            }
        )
    return rows


def fetched_rows() -> list[dict[str, object]]:
    """The Huawei video and Azure callbacks again, with ``trust: fetch`` (the default with API credentials): the
    receiver fetches each job from the simulator, which answers in ``FETCH_LATENCY_S``, before it answers."""
    from verdict_relay.local.simulator import ProviderSimulator

    simulator = ProviderSimulator(latency_s=FETCH_LATENCY_S).start()
    try:
        for provider in ("huawei-video", "azure-review"):
            simulator.set_rate_limit(provider, MPS_RATE_PER_S)
        document = {
            provider: {
                **simulator.provider_entry(provider, rate_limit_per_s=MPS_RATE_PER_S),
                **PROVIDERS_DOCUMENT[provider],
                "trust": "fetch",
            }
            for provider in ("huawei-video", "azure-review")
        }
        fetching = Callbacks(None, simulator)
        fetched = f"the job fetched from the simulator at {FETCH_LATENCY_S * 1000:.0f} ms"
        plans = {
            "huawei-video": (fetching.fetched_huawei_video, 200, f"trust: fetch, signed, block; {fetched}"),
            "azure-review": (
                fetching.fetched_azure,
                200,
                f"trust: fetch, job callback, URL token, block; {fetched}",
            ),
        }
        with (
            in_own_process("AwsHost") as aws,
            quiet_output(),
            local_api(aws.endpoint_url(), document) as port,
        ):
            rows = latency_rows(aws, port, plans)
    finally:
        simulator.stop()
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
