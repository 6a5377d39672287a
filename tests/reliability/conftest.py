"""Reliability profiles: ``fast`` in `make test`, ``soak`` in `make soak` (RELIABILITY_PROFILE=soak for the
delivery suites, HYPOTHESIS_PROFILE=soak for the properties). And, for every test here, a search of its logs for
the secrets the suites configure.

The number of examples a property tries is the profile's, never the test's: a ``max_examples`` in a test's
``@settings`` would override the soak profile too.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator, Iterator
from dataclasses import asdict
from typing import Any

import pytest
from hypothesis import settings

from tests.integration.conftest import PROVIDERS_DOCUMENT
from verdict_relay.config import CallbackSettings
from verdict_relay.local.simulator import SimulatorCredentials
from verdict_relay.observability import SERVICE

SOAK = os.environ.get("RELIABILITY_PROFILE", "fast") == "soak"
DELIVERIES = 1000
JOBS = 10 if SOAK else 1
"""Jobs given DELIVERIES each, one after another."""

settings.register_profile("fast", max_examples=60, deadline=None)
settings.register_profile("soak", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

IAM_USER_NAMES = frozenset({"user_name", "domain_name", "iam_endpoint"})
"""What a Huawei IAM user's ``credentials`` hold besides its password: names and an address, which logs may name."""
SIMULATOR_NAMES = frozenset(
    {"huawei_user", "huawei_domain", "huawei_project_id", "huawei_region", "alibaba_region", "azure_team"}
)
"""The simulator's account names and regions: every other value of SimulatorCredentials is a secret."""


def document_secrets(document: dict[str, Any]) -> set[str]:
    """Every value of every ``credentials`` block of a providers document but the names and addresses of an IAM
    user (which logs may name), and its callback secrets of every kind (seeds, tokens)."""
    secrets: set[str] = set()
    for entry in document.values():
        credentials = entry.get("credentials", {})
        secrets.update(str(value) for name, value in credentials.items() if name not in IAM_USER_NAMES)
        callback = entry.get("callback", {})
        for kind in CallbackSettings.secret_fields():
            secrets.update(callback.get(kind, []))
    return secrets


SUITE_SECRETS = frozenset(
    document_secrets(PROVIDERS_DOCUMENT)
    | {value for name, value in asdict(SimulatorCredentials()).items() if name not in SIMULATOR_NAMES}
)
"""The secrets the suites configure: the callback seeds and tokens and the API credentials of the shared
providers document (tests/integration/conftest.py), and every credential the provider simulator accepts."""


def signing_key_material(signer: Any) -> set[str]:
    """The lines of an MNS signer's private key as PEM (the relay only ever sees its certificate): any one of them
    in a log means the key went there, whatever escaping the log applied to the line breaks."""
    from cryptography.hazmat.primitives import serialization

    pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return {line for line in pem.splitlines() if line and not line.startswith("-----")}


_CAPTURED_OUTPUT = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Keep what the test printed to stdout and stderr (its setup's and its call's), for the search below."""
    report = yield
    if call.when == "call":
        item.stash[_CAPTURED_OUTPUT] = report.capstdout + report.capstderr
    return report


@pytest.fixture(autouse=True)
def _no_secret_in_the_logs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Fail the test whose logs hold a secret the suites configure (``SUITE_SECRETS``, and the private key of the
    MNS signer it uses): every field of every log record of its setup and call, the service's debug ones
    included, and whatever it printed to stdout and stderr (what a test reads through ``capsys`` or ``capfd`` is
    that test's to search)."""
    caplog.set_level(logging.DEBUG, logger=SERVICE)
    secrets = set(SUITE_SECRETS)
    if "mns" in request.fixturenames:
        secrets |= signing_key_material(request.getfixturevalue("mns"))
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    text = "\n".join(json.dumps(record.__dict__, default=str) for record in records)
    text += request.node.stash.get(_CAPTURED_OUTPUT, "")
    leaked = sorted(secret[:12] + "..." for secret in secrets if secret in text)
    if leaked:
        pytest.fail(f"secrets in the logs of {request.node.nodeid}: {', '.join(leaked)}", pytrace=False)
