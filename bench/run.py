"""``make bench``: every benchmark, one table, each figure against its target; exit 1 if a target is missed.

Ratios are measured side by side in one run, so they hold on a noisy machine. Not part of `make test`:
benchmarks measure, tests assert behaviour.

``--smoke`` (``make bench-smoke``, run by CI) runs every benchmark with a few rounds each (:data:`SMOKE`), to
show they still run against the code and settings they measure: its figures mean nothing, and it exits 0
whatever they are, 1 only when a benchmark fails to run.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aws_calls
import callback_latency
import cold_start
import normalize
import poller_throughput

SMOKE: dict[Any, dict[str, Any]] = {
    cold_start: {"RUNS": 1, "IMPORTTIME_RUNS": 1},
    normalize: {"ROUNDS": 3},
    poller_throughput: {"WINDOW_S": 3.0, "JOBS_PER_PROVIDER": 20},
    callback_latency: {"RUNS": 3, "WARMUP": 1, "SCALING_RUNS": 2},
}
"""Module -> the counts ``--smoke`` gives it in place of its own."""


def main(smoke: bool = False) -> int:
    if smoke:
        for module, counts in SMOKE.items():
            for name, value in counts.items():
                if not hasattr(module, name):
                    raise AttributeError(f"{module.__name__} has no {name} for --smoke to set")
                setattr(module, name, value)
    rows: list[dict[str, object]] = []
    silent = []
    for module in (cold_start, normalize, aws_calls, poller_throughput, callback_latency):
        produced = module.main()
        if not produced:  # a benchmark that measured nothing has met no target
            silent.append(module.__name__)
            produced = [
                {"benchmark": module.__name__, "measured": "no figures", "target": "its figures", "ok": False}
            ]
        rows += produced
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, {platform.platform()}"
    )
    width = max(len(str(r["benchmark"])) for r in rows)
    for row in rows:
        mark = "ok  " if row["ok"] else "MISS"
        print(f"{mark}  {row['benchmark']!s:<{width}}  {row['measured']}   (target {row['target']})")
    missed = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(missed)} met, {len(missed)} missed")
    if smoke:
        if silent:
            print(f"smoke run: {', '.join(silent)} produced no figures")
            return 1
        print(f"smoke run: every benchmark ran ({len(rows)} rows); its figures mean nothing")
        return 0
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(smoke=sys.argv[1:] == ["--smoke"]))
