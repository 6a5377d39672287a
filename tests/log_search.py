"""The search of every test's logs for secrets and signatures (``_no_secret_in_the_logs`` in tests/conftest.py).

Searched for: the secrets the suites configure (the callback seeds and tokens and the API credentials of the
shared providers document, tests/integration/conftest.py, and every credential the provider simulator accepts),
the private key of the MNS signer a test uses, every signature or token a test presented to the receiver (the
``X-Auth-Signature`` and ``Authorization`` headers of the callbacks ``ApiClient`` sent, wrong ones included), and
the credential header of every request the provider simulator received from the relay's clients (their request
signatures and tokens), and the signature inside it or inside the request's query. Not searched: what the end-to-end
tests' stacks log, in processes of their own (tests/e2e reads their output for what it checks).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from functools import cache
from typing import Any
from urllib.parse import unquote

IAM_USER_NAMES = frozenset({"user_name", "domain_name", "iam_endpoint"})
"""What a Huawei IAM user's ``credentials`` hold besides its password: names and an address, which logs may name."""
SIMULATOR_NAMES = frozenset(
    {"huawei_user", "huawei_domain", "huawei_project_id", "huawei_region", "alibaba_region", "azure_team"}
)
"""The simulator's account names and regions: every other value of SimulatorCredentials is a secret."""
SIGNATURE_HEADERS = frozenset({"x-auth-signature", "authorization"})
"""The callback headers that carry a signature (Huawei's, MNS's)."""
SIGNATURE_SHAPE = re.compile(r"[A-Za-z0-9+/=_-]{20,}")
"""What a presented or sent signature must look like to be searched for (hex or Base64, 20 characters or more):
a test's deliberately wrong one, such as ``"wrong"`` or arbitrary fuzzed text, could match any log line."""
SIGNATURE_PART = re.compile(r"Signature=([^,&\s]+)")
"""The signature inside a request's ``Authorization`` header (Huawei's AK/SK, Alibaba's ACS3) or query (Alibaba's
RPC v1): logged alone, it must be found too."""

presented: set[str] = set()
"""What the current test presented to the receiver as a signature (``ApiClient`` adds to it; emptied per test)."""


def document_secrets(document: dict[str, Any]) -> set[str]:
    """Every value of every ``credentials`` block of a providers document but the names and addresses of an IAM
    user (which logs may name), and its callback secrets of every kind (seeds, tokens)."""
    from verdict_relay.config import CallbackSettings

    secrets: set[str] = set()
    for entry in document.values():
        credentials = entry.get("credentials", {})
        secrets.update(str(value) for name, value in credentials.items() if name not in IAM_USER_NAMES)
        callback = entry.get("callback", {})
        for kind in CallbackSettings.secret_fields():
            secrets.update(callback.get(kind, []))
    return secrets


@cache
def suite_secrets() -> frozenset[str]:
    """The secrets the suites configure: those of the shared providers document and the simulator's."""
    from tests.integration.conftest import PROVIDERS_DOCUMENT
    from verdict_relay.local.simulator import SimulatorCredentials

    return frozenset(
        document_secrets(PROVIDERS_DOCUMENT)
        | {value for name, value in asdict(SimulatorCredentials()).items() if name not in SIMULATOR_NAMES}
    )


def signing_key_material(signer: Any) -> set[str]:
    """The lines of an MNS signer's private key as PEM (the relay only ever sees its certificate): any one of them
    in a log means the key went there, whatever escaping the log applied to the line breaks."""
    from cryptography.hazmat.primitives import serialization

    pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return {line for line in pem.splitlines() if line and not line.startswith("-----")}


def present(headers: dict[str, str]) -> None:
    """Note the signatures among a callback's headers (``ApiClient`` calls this for every callback it sends)."""
    presented.update(value for name, value in headers.items() if name.lower() in SIGNATURE_HEADERS)


def received_credentials(fixtures: dict[str, Any]) -> set[str]:
    """The credential header of every request a provider simulator among the test's fixtures (or a harness's)
    received: the relay clients' request signatures and tokens."""
    from verdict_relay.local.simulator import ProviderSimulator
    from verdict_relay.providers.registry import PROVIDER_NAMES

    simulators = {
        id(candidate): candidate
        for value in fixtures.values()
        for candidate in (value, getattr(value, "simulator", None))
        if isinstance(candidate, ProviderSimulator)
    }
    received = set()
    for simulator in simulators.values():
        for provider in PROVIDER_NAMES:
            for request in simulator.requests(provider):
                received.add(request.credential)
                # the signature alone, from the header or the query (URL-encoded there)
                for carrier in (request.credential, unquote(request.path)):
                    received.update(SIGNATURE_PART.findall(carrier))
    return received


def searched(values: set[str]) -> set[str]:
    """The values shaped as signatures (or headers holding one), whole: see ``SIGNATURE_SHAPE``."""
    return {value for value in values if SIGNATURE_SHAPE.search(value) and len(value.strip()) >= 20}
