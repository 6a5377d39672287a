"""The ``--simulate`` scenario of the local stack: jobs at all five providers that finish over time.

Per provider, job ``i`` plays outcome ``i % 5``:

0. finishes with ``block``, announced by the provider's callback (signed as the provider signs it);
1. finishes with ``pass``, found only by polling;
2. finishes with ``review``, its callback delivered three times (a duplicate must publish once);
3. fails at the provider (never moderated: ``review`` by policy, or ``UNMODERATED_SUGGESTION``);
4. expires: the provider forgets it before it finishes (the same).

Huawei image batches have no callbacks, so theirs are found by polling. Every job is registered through
``POST /jobs`` as a platform would. The summary checks each finished job's stored verdict against the
expectation and that the relay published every block/review verdict exactly once and no pass verdict (one,
with ``PUBLISH_PASS_VERDICTS``: the summary judges by the functions' settings); jobs not
finished yet (the run was stopped early) are counted as unfinished, not as wrong. A verdict an operator sent
again (``verdict-relay republish --job``, its message marked ``republished``) is counted apart, as
``republished_by_operator``: a deliberate re-send, not a duplicate publish.

The simulator also knows :data:`EXAMPLE_JOBS`, finished jobs for the ``curl`` examples the runner prints; they
are not part of the scenario or its summary.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from verdict_relay.local.callback_signing import MnsSigner, huawei_callback_signature, mns_notification
from verdict_relay.local.simulator import (
    ProviderSimulator,
    alibaba_job,
    azure_job,
    huawei_audio_job,
    huawei_image_batch_job,
    huawei_video_job,
)
from verdict_relay.local.stack import is_republished
from verdict_relay.logic.policy import VerdictPolicy
from verdict_relay.models.verdict import PROVIDER_NAMES
from verdict_relay.providers.profiles import PROFILES
from verdict_relay.providers.registry import get_adapter

PROVIDERS = PROVIDER_NAMES
"""Every registered provider plays the scenario: one the functions below do not know fails ``make run`` (and
``tests/unit/test_local_runner.py``) instead of being left out of it."""
OUTCOMES = ("block-callback", "pass-poll", "review-duplicated", "failed", "expired")
HUAWEI_SEEDS = {"huawei-video": "local_simulation_video_seed", "huawei-audio": "local_simulation_audio_seed"}
"""A seed per Huawei v3 provider: the providers document refuses a callback secret two providers share."""
AZURE_TOKEN = "local-simulation-token-0001"  # noqa: S105 - a loopback demo value
STAGE_PATH = "/v1"
FINISHED = ("succeeded", "failed", "expired")

ALIBABA_EXAMPLE_JOB = "job-1"
AZURE_EXAMPLE_JOB = "2018014caceddebfe9446fab29056fd8d31ffe"
"""The ``JobId`` of ``events/providers/azure-review/job-callback.json``."""
EXAMPLE_JOBS = {("alibaba-mps", ALIBABA_EXAMPLE_JOB): "block", ("azure-review", AZURE_EXAMPLE_JOB): "review"}
"""(provider, job id) -> the suggestion its verdict will have."""

Outcome = Literal["block-callback", "pass-poll", "review-duplicated", "failed", "expired"]


@dataclass
class SimulatedJob:
    provider: str
    job_id: str
    outcome: Outcome
    finish_after_s: float

    @property
    def expected_status(self) -> str:
        return {"failed": "failed", "expired": "expired"}.get(self.outcome, "succeeded")

    @property
    def expected_suggestion(self) -> str:
        """The provider's suggestion (failed and expired jobs have none: the default policy's ``review``)."""
        return {"block-callback": "block", "pass-poll": "pass"}.get(self.outcome, "review")

    def expected(self, policy: VerdictPolicy) -> tuple[str, str, int]:
        """The stored status and suggestion, and how many publishes, under ``policy``: a failed or expired job
        gets its unmoderated suggestion, and a pass is published only when it publishes passes."""
        unmoderated = self.outcome in ("failed", "expired")
        suggestion = policy.unmoderated.value if unmoderated else self.expected_suggestion
        publishes = 1 if suggestion != "pass" or policy.publish_pass else 0
        return self.expected_status, suggestion, publishes

    @property
    def callbacks(self) -> int:
        if not get_adapter(self.provider).takes_callbacks:  # Huawei's image batches: found by polling
            return 0
        return {"block-callback": 1, "review-duplicated": 3}.get(self.outcome, 0)


def _not_simulated(provider: str) -> ValueError:
    return ValueError(f"the scenario does not simulate {provider!r}: add it to local/scenario.py")


def _running_body(provider: str, job_id: str) -> dict[str, Any]:
    bodies = {
        "huawei-video": lambda: huawei_video_job(job_id, "running"),
        "huawei-audio": lambda: huawei_audio_job(job_id, "running"),
        "huawei-image-batch": lambda: huawei_image_batch_job(job_id, "running"),
        "alibaba-mps": lambda: alibaba_job(job_id, "Analysing"),
        "azure-review": lambda: azure_job(job_id, "InProgress"),
    }
    if provider not in bodies:
        raise _not_simulated(provider)
    return bodies[provider]()


def _final_body(job: SimulatedJob) -> dict[str, Any]:
    suggestion = job.expected_suggestion
    failed = job.outcome == "failed"
    if job.provider == "huawei-video":
        return huawei_video_job(job.job_id, "failed" if failed else "succeeded", suggestion)  # type: ignore[arg-type]
    if job.provider == "huawei-audio":
        return huawei_audio_job(job.job_id, "failed" if failed else "succeeded", suggestion)  # type: ignore[arg-type]
    if job.provider == "huawei-image-batch":
        if failed:
            return huawei_image_batch_job(job.job_id, "failed")
        return huawei_image_batch_job(
            job.job_id,
            "finish",
            [
                (f"https://images.example/{job.job_id}/1.jpg", "pass"),
                (f"https://images.example/{job.job_id}/2.jpg", suggestion),
            ],
        )
    if job.provider == "alibaba-mps":
        return alibaba_job(job.job_id, "Fail" if failed else "Success", suggestion, timeline_entries=20)  # type: ignore[arg-type]
    if job.provider == "azure-review":
        scores = {"block": 0.95, "review": 0.6, "pass": 0.01}
        return azure_job(
            job.job_id, "Failed" if failed else "Complete", adult_score=scores[suggestion], racy_score=0.01
        )
    raise _not_simulated(job.provider)


class Scenario:
    def __init__(self, jobs_per_provider: int = 5, seed: int = 7, finish_within_s: float = 12.0) -> None:
        rng = random.Random(seed)  # noqa: S311 - a demo schedule
        self.jobs = [
            SimulatedJob(provider, f"{provider}-job-{i}", OUTCOMES[i % 5], rng.uniform(2.0, finish_within_s))  # type: ignore[arg-type]
            for provider in PROVIDERS
            for i in range(jobs_per_provider)
        ]
        # Each provider's API admits what its documented limit does (the relay's default rate_limit_per_s, which the
        # providers document below keeps): a request the relay sends over it is refused and counted, so the
        # summary's simulator_requests_over_rate_limit can tell.
        self.simulator = ProviderSimulator(rate_limits={p: PROFILES[p].rate_limit_per_s for p in PROVIDERS})
        self.mns = MnsSigner.generate()
        self._stop_certificate: Any = None
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self.policy = VerdictPolicy()
        """What the functions' settings make of the outcomes (``UNMODERATED_SUGGESTION``,
        ``PUBLISH_PASS_VERDICTS``): the runner sets it from the stack's settings, and the summary judges by it."""

    def start(self) -> Scenario:
        self.simulator.start()
        self._stop_certificate = self.mns.serve_certificate()
        self._put_example_jobs()
        return self

    def _put_example_jobs(self) -> None:
        # Created before the poller's discovery window looks: followed only once registered, as in the example.
        created = datetime.now(UTC) - timedelta(hours=2)
        self.simulator.put_job(
            "alibaba-mps",
            ALIBABA_EXAMPLE_JOB,
            alibaba_job(ALIBABA_EXAMPLE_JOB, "Success", "block", created=created),
        )
        # The sample callback's scores, so the fetch its callback triggers finds the same result.
        self.simulator.put_job(
            "azure-review",
            AZURE_EXAMPLE_JOB,
            azure_job(AZURE_EXAMPLE_JOB, "Complete", adult_score=0.682, racy_score=0.142),
        )

    def stop(self) -> None:
        self.simulator.stop()
        if self._stop_certificate:
            self._stop_certificate()

    def write_providers_document(self, path: Path) -> Path:
        document = {provider: self.simulator.provider_entry(provider) for provider in PROVIDERS}
        for provider, seed in HUAWEI_SEEDS.items():
            document[provider]["callback"] = {"seeds": [seed]}
        document["alibaba-mps"]["callback"] = {"certificate_hosts": ["127.0.0.1"]}
        document["azure-review"]["callback"] = {"tokens": [AZURE_TOKEN]}
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")
        return path

    # -- driving ------------------------------------------------------------------------------------------

    def run_against(self, base_url: str, stop: threading.Event) -> None:
        self._thread = threading.Thread(
            target=self._drive, args=(base_url, stop), name="scenario", daemon=True
        )
        self._thread.start()

    def join_driver(self, timeout: float = 15.0) -> None:
        """Wait for the driving thread to return once ``stop`` is set (at most the request it is sending, 10 s
        at worst): a request it sent to a stopped stack would be refused and counted as a simulator error."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _drive(self, base_url: str, stop: threading.Event) -> None:
        for job in self.jobs:
            if stop.is_set():
                return
            self.simulator.put_job(job.provider, job.job_id, _running_body(job.provider, job.job_id))
            self._post(
                base_url + "/jobs",
                json.dumps(
                    {
                        "provider": job.provider,
                        "job_id": job.job_id,
                        "metadata": {"content_id": f"content-{job.job_id}"},
                    }
                ).encode(),
                {"Content-Type": "application/json"},
            )
        started = time.monotonic()
        for job in sorted(self.jobs, key=lambda j: j.finish_after_s):
            if stop.wait(max(0.0, started + job.finish_after_s - time.monotonic())):
                return
            if job.outcome == "expired":
                self.simulator.remove_job(job.provider, job.job_id)
                continue
            body = _final_body(job)
            self.simulator.put_job(job.provider, job.job_id, body)
            for _ in range(job.callbacks):
                self._callback(base_url, job, body)

    def _callback(self, base_url: str, job: SimulatedJob, body: dict[str, Any]) -> None:
        if job.provider in ("huawei-video", "huawei-audio"):
            data = json.dumps(body).encode()
            headers = {
                "Content-Type": "application/json",
                "X-Auth-Signature": huawei_callback_signature(HUAWEI_SEEDS[job.provider], body),
            }
            self._post(f"{base_url}/callbacks/{job.provider}", data, headers)
        elif job.provider == "alibaba-mps":
            data = mns_notification(job.job_id, body["State"])
            path = f"{STAGE_PATH}/callbacks/alibaba-mps"
            self._post(base_url + path, data, self.mns.sign(path, data))
        elif job.provider == "azure-review":
            callback = {
                "JobId": job.job_id,
                "ReviewId": "",
                "WorkFlowId": "default",
                "Status": body["Status"],
                "ContentType": "Image",
                "ContentId": f"content-{job.job_id}",
                "CallBackType": "Job",
                "Metadata": {item["Key"].lower(): item["Value"] for item in body.get("ResultMetaData", [])},
            }
            self._post(
                f"{base_url}/callbacks/azure-review?token={AZURE_TOKEN}",
                json.dumps(callback).encode(),
                {"Content-Type": "application/json"},
            )
        else:
            raise _not_simulated(job.provider)

    def _post(self, url: str, data: bytes, headers: dict[str, str]) -> None:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                response.read()
        except urllib.error.HTTPError as exc:
            self.errors.append(f"POST {url.split('?')[0]} -> {exc.code} {exc.read()[:200]!r}")
        except OSError as exc:
            self.errors.append(f"POST {url.split('?')[0]} -> {exc}")

    # -- observing ----------------------------------------------------------------------------------------

    def _stored(self, stack: Any) -> dict[str, dict[str, Any]]:
        stored = {}
        for job in self.jobs:
            item = (
                stack.session.client("dynamodb")
                .get_item(
                    TableName=stack.resources.table_name,
                    Key={"pk": {"S": f"{job.provider}#{job.job_id}"}, "sk": {"S": "STATE"}},
                    ConsistentRead=True,
                )
                .get("Item", {})
            )
            stored[job.job_id] = {
                "status": item.get("status", {}).get("S"),
                "suggestion": item.get("suggestion", {}).get("S"),
            }
        return stored

    def finished(self, stack: Any) -> bool:
        stored = self._stored(stack)
        return all(stored[j.job_id]["status"] in FINISHED for j in self.jobs)

    def _publishes(self, published: list[dict[str, Any]], *, republished: bool = False) -> Counter[str]:
        """The relay's publishes per scenario job id, or with ``republished`` an operator's re-sends; the example
        jobs' are not the scenario's."""
        own = {(j.provider, j.job_id) for j in self.jobs}
        return Counter(
            m["verdict"]["job_id"]
            for m in published
            if (m["verdict"]["provider"], m["verdict"]["job_id"]) in own and is_republished(m) == republished
        )

    def live_view(self, stack: Any, published: list[dict[str, Any]]) -> str:
        stored = self._stored(stack)
        done = [s for s in stored.values() if s["status"] in FINISHED]
        by_suggestion = Counter(s["suggestion"] for s in done)
        by_provider = Counter(j.provider for j in self.jobs if stored[j.job_id]["status"] in FINISHED)
        providers = " ".join(f"{p}={by_provider[p]}" for p in PROVIDERS)
        return (
            f"jobs {len(self.jobs) - len(done)} pending / {len(done)} resolved | "
            f"pass {by_suggestion['pass']} review {by_suggestion['review']} block {by_suggestion['block']} | "
            f"published {sum(self._publishes(published).values())} | {providers}"
        )

    def summary(self, stack: Any, published: list[dict[str, Any]]) -> dict[str, Any]:
        return self.judge(self._stored(stack), published)

    def judge(self, stored: dict[str, dict[str, Any]], published: list[dict[str, Any]]) -> dict[str, Any]:
        """The summary of stored states (job id -> status, suggestion) and the messages published so far."""
        publishes = self._publishes(published)
        finished = [j for j in self.jobs if stored[j.job_id]["status"] in FINISHED]
        wrong = []
        for job in finished:
            got = stored[job.job_id]
            expected = job.expected(self.policy)
            if (got["status"], got["suggestion"], publishes[job.job_id]) != expected:
                wrong.append(
                    {
                        "provider": job.provider,
                        "job_id": job.job_id,
                        "outcome": job.outcome,
                        "expected": list(expected),
                        "got": [got["status"], got["suggestion"], publishes[job.job_id]],
                    }
                )
        duplicated = [j for j in finished if j.callbacks > 1]
        expired = [j for j in finished if j.outcome == "expired"]
        errors = list(self.errors)  # a copy: a request failing later must not change a summary already judged
        return {
            "ok": not wrong and not errors,
            "jobs": len(self.jobs),
            "resolved": len(finished),
            "unfinished": len(self.jobs) - len(finished),
            "published": sum(publishes.values()),
            "republished_by_operator": sum(self._publishes(published, republished=True).values()),
            "duplicated_jobs_published_once": all(publishes[j.job_id] == 1 for j in duplicated),
            "expired_published_as_unmoderated": all(
                stored[j.job_id]["suggestion"] == self.policy.unmoderated.value and publishes[j.job_id] == 1
                for j in expired
            ),
            "simulator_requests_over_rate_limit": sum(self.simulator.over_limit(p) for p in PROVIDERS),
            "mismatches": wrong,
            "errors": errors,
        }
