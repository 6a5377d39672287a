"""The local stack's quiet metrics: its output is for the person running it, never EMF records."""

from __future__ import annotations

import os
import subprocess
import sys

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
