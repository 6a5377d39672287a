"""Where counts go: under the stack's own service, and nowhere from the local stack, whose output is for the person
running it, never EMF records."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import emf_counts


def emitted(code: str, **environment: str) -> str:
    """What a fresh function process running ``code`` prints, its metrics enabled (as deployed)."""
    env = {**os.environ, **environment}
    env.pop("POWERTOOLS_METRICS_DISABLED", None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


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
    # When it counts an outcome
    stdout = emitted(COUNT_ONCE, POWERTOOLS_SERVICE_NAME="verdict-relay-staging")

    # Then the count is that stack's, for the service and for the provider, and never the other stack's
    assert emf_counts(stdout, service="verdict-relay-staging") == {"ProviderAuthFailed": 1}
    assert emf_counts(stdout, service="verdict-relay-staging", provider="azure-review") == {
        "ProviderAuthFailed": 1
    }
    assert emf_counts(stdout, service="verdict-relay") == {}


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
    stdout = emitted(COUNT_FROM_THREADS)

    # Then every count is written once, and no record holds more than the 100 values CloudWatch takes for a metric
    assert emf_counts(stdout, service="verdict-relay") == {"JobPolled": 24_000}
    assert emf_counts(stdout, service="verdict-relay", provider="huawei-video") == {"JobPolled": 12_000}
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert max(len(record["JobPolled"]) for record in records if isinstance(record["JobPolled"], list)) <= 100


COUNT_MANY_AT_ONCE = """
from verdict_relay.observability import count, flush_provider_metrics, metrics

count("JobOverdue", "huawei-audio", 3)
metrics.flush_metrics()
flush_provider_metrics()
"""


def test_a_count_of_several_jobs_at_once_is_counted_whole_for_the_service_and_the_provider() -> None:
    # Given a function counting 3 jobs in one call (the poller counts its overdue jobs of a provider so)
    # When it writes its counts out
    stdout = emitted(COUNT_MANY_AT_ONCE)

    # Then the service and the provider each count all 3, so a provider's graph adds up to the service's
    assert emf_counts(stdout, service="verdict-relay") == {"JobOverdue": 3}
    assert emf_counts(stdout, service="verdict-relay", provider="huawei-audio") == {"JobOverdue": 3}


INVOKE_TWICE = """
from types import SimpleNamespace
from verdict_relay.observability import log_metrics


@log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    return "done"


context = SimpleNamespace(function_name="verdict-relay-staging-PollerFunction")
print(handler({}, context), handler({}, context))
"""


def test_a_handler_that_asks_for_the_cold_start_metric_counts_its_first_invocation_only() -> None:
    # Given a handler decorated as the poller's and the poll worker's are, in a new container
    # When it is invoked twice
    stdout = emitted(INVOKE_TWICE, POWERTOOLS_SERVICE_NAME="verdict-relay-staging")

    # Then ColdStart is counted once, under the function's name (docs/architecture.md), and the handler answered
    assert "done done" in stdout
    assert emf_counts(
        stdout, service="verdict-relay-staging", function_name="verdict-relay-staging-PollerFunction"
    ) == {"ColdStart": 1}
