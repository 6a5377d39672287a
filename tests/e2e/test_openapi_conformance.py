"""schemathesis against docs/openapi.json on the local stack: no server errors, responses match the schema,
undeclared methods refused, schema-valid requests accepted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = "300" if os.environ.get("RELIABILITY_PROFILE") == "soak" else "40"


def test_api_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    providers = tmp_path / "providers.json"
    providers.write_text(json.dumps({"azure-review": {"callback": {"tokens": ["conformance-token-0001"]}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    stack = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "verdict_relay.cli",
            "local",
            "--providers",
            str(providers),
            "--port",
            "0",
            "--duration",
            "180",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert stack.stdout is not None
        first = stack.stdout.readline()
        assert first.startswith("Verdict Relay local stack: "), first
        base_url = first.split(": ", 1)[1].strip()
        schemathesis = Path(sys.executable).with_name("schemathesis")
        result = subprocess.run(
            [
                str(schemathesis),
                "run",
                str(ROOT / "docs" / "openapi.json"),
                "--url",
                base_url,
                "--max-examples",
                MAX_EXAMPLES,
                "--seed",
                "2026",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
            cwd=tmp_path,
        )
    finally:
        stack.terminate()
        stack.wait(timeout=30)

    assert result.returncode == 0, result.stdout[-4000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts is not None, result.stdout[-2000:]
    assert int(counts.group(1)) == int(counts.group(2)) > 0
