"""The code that picks a provider's behaviour by its name (the simulator's answers, the scenario of ``make run``, the
sample events, the poller benchmark) names the providers it knows: one it does not know, such as a provider added
to the registry and not yet to it, is refused with a ValueError naming it, never played as another provider."""

from __future__ import annotations

import runpy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from verdict_relay.local.scenario import Scenario, SimulatedJob, _final_body, _running_body
from verdict_relay.local.simulator import Fault, ProviderSimulator, _Incoming

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = "acme-video"


@pytest.mark.parametrize(
    "fault", [None, "slow:0", "malformed", "error:503", "throttle:1", "auth", "not-found"]
)
def test_the_simulator_answers_for_no_provider_it_does_not_play_not_even_as_huawei(fault: str | None) -> None:
    # Given a request that reached the simulator for a provider it has no answers of (none is routed there today:
    # the answers are what a new provider's route would get)
    simulator = ProviderSimulator()
    request = _Incoming("GET", "/", "/", "", {}, frozenset(), b"")

    # When it answers, normally or with a fault, then it refuses to, naming the provider
    with pytest.raises(ValueError, match=UNKNOWN):
        simulator._faulted(UNKNOWN, request, Fault.parse(fault) if fault else None)


def test_the_scenario_plays_no_provider_it_does_not_simulate_as_another() -> None:
    scenario = Scenario(jobs_per_provider=1)
    job = SimulatedJob(UNKNOWN, f"{UNKNOWN}-job-0", "block-callback", 1.0)

    with pytest.raises(ValueError, match=UNKNOWN):
        _running_body(UNKNOWN, job.job_id)
    with pytest.raises(ValueError, match=UNKNOWN):
        _final_body(job)  # not an Azure job's body
    with pytest.raises(ValueError, match=UNKNOWN):
        scenario._callback("http://127.0.0.1:9", job, {})  # not silently no callback at all
    assert scenario.errors == []  # nothing was sent


@pytest.mark.parametrize(("provider", "payload"), [(UNKNOWN, "succeeded"), ("huawei-image-batch", "finish")])
def test_no_sample_callback_is_built_for_a_provider_the_builder_does_not_know_how_to_sign(
    provider: str, payload: str
) -> None:
    # huawei-image-batch calls back for nothing: its name starting with "huawei" does not make it Huawei v3's
    callback_event = runpy.run_path(str(ROOT / "tools" / "build_events.py"))["_callback_event"]

    with pytest.raises(ValueError, match=provider):
        callback_event(provider, payload)  # not an MNS push, nor a Huawei-signed one


def test_the_poller_benchmark_has_no_finished_job_for_a_provider_it_does_not_know() -> None:
    job_body = runpy.run_path(str(ROOT / "bench" / "poller_throughput.py"))["job_body"]

    with pytest.raises(ValueError, match=UNKNOWN):
        job_body(UNKNOWN, "job-1", "block", datetime.now(UTC))  # not an Alibaba job
