"""Where counts go: under the stack's own service, and nowhere from the local stack, whose output is for the person
running it, never EMF records."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import emf_counts

COUNT_MANY = """
from verdict_relay.local.stack import silence_metrics
from verdict_relay.observability import count, flush_provider_metrics, metrics

silence_metrics()
for _ in range(250):  # Powertools prints a set that reaches 100 values, flush or not
    count("VerdictRecorded", "huawei-video")
    count("ProvidersReloadFailed")
metrics.flush_metrics()
flush_provider_metrics()
print("counted")
"""


def test_the_local_stack_prints_no_metrics_however_many_it_counts() -> None:
    # Given the local stack's process (metrics disabled, as it runs them), counting past Powertools' 100 values
    env = {**os.environ, "POWERTOOLS_METRICS_DISABLED": "true"}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", COUNT_MANY],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then nothing but its own output reaches stdout, for the service's counts and each provider's alike
    assert result.returncode == 0, result.stderr
    assert result.stdout == "counted\n"


COUNT_ONCE = """
from verdict_relay.observability import count, flush_provider_metrics, metrics

count("ProviderAuthFailed", "azure-review")
metrics.flush_metrics()
flush_provider_metrics()
"""


def test_metrics_are_counted_under_the_service_the_environment_names() -> None:
    # Given a function of a second stack, named by its stack as template.yaml names it
    env = {**os.environ, "POWERTOOLS_SERVICE_NAME": "verdict-relay-staging"}
    env.pop("POWERTOOLS_METRICS_DISABLED", None)

    # When it counts an outcome
    done = subprocess.run(
        [sys.executable, "-c", COUNT_ONCE], env=env, capture_output=True, text=True, timeout=60, check=True
    )

    # Then the count is that stack's, for the service and for the provider, and never the other stack's
    assert emf_counts(done.stdout, service="verdict-relay-staging") == {"ProviderAuthFailed": 1}
    assert emf_counts(done.stdout, service="verdict-relay-staging", provider="azure-review") == {
        "ProviderAuthFailed": 1
    }
    assert emf_counts(done.stdout, service="verdict-relay") == {}


COUNT_FROM_THREADS = """
import sys
from concurrent.futures import ThreadPoolExecutor
from verdict_relay.observability import count, flush_provider_metrics, metrics

sys.setswitchinterval(1e-6)  # threads switch as often as they can, to meet in the middle of a count


def count_many(provider: str) -> None:
    for _ in range(3_000):
        count("JobPolled", provider)


with ThreadPoolExecutor(8) as pool:
    list(pool.map(count_many, ["huawei-video", "alibaba-mps"] * 4))
metrics.flush_metrics()
flush_provider_metrics()
"""


def test_counts_from_many_threads_are_each_written_once_in_records_cloudwatch_accepts() -> None:
    # Given the poller's threads, one per provider, counting at once
    env = {**os.environ}
    env.pop("POWERTOOLS_METRICS_DISABLED", None)
    done = subprocess.run(
        [sys.executable, "-c", COUNT_FROM_THREADS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    # Then every count is written once, and no record holds more than the 100 values CloudWatch takes for a metric
    assert emf_counts(done.stdout, service="verdict-relay") == {"JobPolled": 24_000}
    assert emf_counts(done.stdout, service="verdict-relay", provider="huawei-video") == {"JobPolled": 12_000}
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert max(len(record["JobPolled"]) for record in records if isinstance(record["JobPolled"], list)) <= 100
