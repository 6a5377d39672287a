"""``make bench``: every benchmark, one table, each figure against its target; exit 1 if a target is missed.

Ratios are measured side by side in one run, so they hold on a noisy machine. Not part of `make test`:
benchmarks measure, tests assert behaviour.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aws_calls
import callback_latency
import cold_start
import normalize
import poller_throughput


def main() -> int:
    rows = [
        *cold_start.main(),
        *normalize.main(),
        *aws_calls.main(),
        *poller_throughput.main(),
        *callback_latency.main(),
    ]
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, {platform.platform()}"
    )
    width = max(len(str(r["benchmark"])) for r in rows)
    for row in rows:
        mark = "ok  " if row["ok"] else "MISS"
        print(f"{mark}  {row['benchmark']!s:<{width}}  {row['measured']}   (target {row['target']})")
    missed = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(missed)} met, {len(missed)} missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
