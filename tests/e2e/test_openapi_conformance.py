"""schemathesis against docs/openapi.json on the local stack: no server errors, responses match the schema,
undeclared methods refused, schema-valid requests accepted.

The callback route is tried past its authentication: its provider and token are pinned (schemathesis.toml's
operation ``parameters``) to the stack's one callback provider and its token, so the generated requests reach
the parser rather than ending at 401 or 404; the run's HAR record shows they did.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = "300" if os.environ.get("RELIABILITY_PROFILE") == "soak" else "40"
TOKEN = "conformance-token-0001"
CONFIG = f"""
[[operations]]
include-path = "/callbacks/{{provider}}"
parameters = {{ "path.provider" = "azure-review", "query.token" = "{TOKEN}" }}
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "415", "422", "5xx"]
"""
"""The callback operation's provider and token pinned as the stack is configured (the rest stays generated), so
its requests are authenticated and reach the parser. The document declares the body only as a JSON object (or
an MNS push's text): a request schemathesis deems valid is rarely an Azure callback, and the parser refuses it
with 422 (or 400 when it is not JSON, 415 for the XML and text types only alibaba-mps takes). A schema-valid request answered otherwise (a 401, a 404) fails the run; a
5xx is left to the not_a_server_error check."""


def test_api_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    providers = tmp_path / "providers.json"
    providers.write_text(json.dumps({"azure-review": {"callback": {"tokens": [TOKEN]}}}))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    har = tmp_path / "run.har"
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
        # the stack logs every request: read its output throughout, or a full pipe would stall it mid-run
        output: list[str] = []
        threading.Thread(target=lambda: output.extend(stack.stdout), daemon=True).start()
        schemathesis = Path(sys.executable).with_name("schemathesis")
        result = subprocess.run(
            [
                str(schemathesis),
                "--config-file",
                str(config),
                "run",
                str(ROOT / "docs" / "openapi.json"),
                "--url",
                base_url,
                "--max-examples",
                MAX_EXAMPLES,
                "--seed",
                "2026",
                "--no-color",
                "--report",
                "har",
                "--report-har-path",
                str(har),
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
    # and callbacks got past authentication to the parser: answers other than 401 (token), 404 (provider) and
    # 405 (the methods the route does not take)
    callbacks = Counter(
        (entry["request"]["method"], entry["response"]["status"])
        for entry in json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]
        if urlsplit(entry["request"]["url"]).path.startswith("/callbacks/")
    )
    assert [status for (_, status) in callbacks.elements() if status not in (401, 404, 405)], callbacks
