"""No secret, signature or payload body reaches a log line, whatever the request did.

The secrets looked for are every secret of every ``credentials`` block of the providers document the test
configures (keys, an IAM user's password), and every callback seed and token in it, as well as the signatures
sent, the credentials the poller's requests carried (request signatures, the IAM token it was issued) and a body's
text. Beside this scenario, the logs of every test in tests/reliability are searched for the secrets the suites
configure (``_no_secret_in_the_logs`` in tests/conftest.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.conftest import FakeAws
from tests.helpers import huawei_signature, load_payload
from tests.integration.conftest import ApiClient, configure_environment
from tests.integration.conftest import mns as mns
from tests.integration.conftest import simulator as simulator
from tests.integration.test_provider_clients import put_finished_job
from tests.log_search import document_secrets
from verdict_relay.handlers import dependencies as dependencies_module
from verdict_relay.local.callback_signing import MnsSigner, mns_notification
from verdict_relay.local.simulator import ProviderSimulator, huawei_video_job
from verdict_relay.models.jobs import DueJob
from verdict_relay.models.verdict import PROVIDER_NAMES

SEED = "logged_seed_must_not_appear"
TOKEN = "logged-token-must-not-appear-01"
MARKER_TEXT = "payload-body-text-must-not-appear"


def test_secrets_signatures_and_bodies_stay_out_of_the_logs(
    aws: FakeAws,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    simulator: ProviderSimulator,
    mns: MnsSigner,
) -> None:
    # Given providers configured with secrets, and API credentials at the simulator
    huawei = simulator.provider_entry("huawei-video")
    document = {
        "huawei-video": {**huawei, "callback": {"seeds": [SEED]}},
        "huawei-audio": simulator.provider_entry("huawei-audio", auth="iam"),
        "huawei-image-batch": simulator.provider_entry("huawei-image-batch"),
        "azure-review": {**simulator.provider_entry("azure-review"), "callback": {"tokens": [TOKEN]}},
        "alibaba-mps": {
            **simulator.provider_entry("alibaba-mps"),
            "callback": {"certificate_hosts": ["127.0.0.1"]},
        },
    }
    assert set(document) == set(PROVIDER_NAMES), "each provider's credentials are searched for: add its entry"
    configure_environment(monkeypatch, aws, tmp_path, document)
    secrets = document_secrets(document)
    keys = simulator.credentials
    assert secrets == {
        SEED,
        TOKEN,
        keys.huawei_ak,
        keys.huawei_sk,
        keys.huawei_password,
        keys.alibaba_access_key_id,
        keys.alibaba_access_key_secret,
        keys.azure_subscription_key,
    }
    api = ApiClient()
    payload = load_payload("huawei-video", "succeeded")
    payload["result"]["image_detail"][0]["ocr_text"] = MARKER_TEXT
    body = json.dumps(payload).encode()
    good = huawei_signature(SEED, body)
    simulator.put_job(
        "huawei-video", payload["job_id"], huawei_video_job(payload["job_id"], "succeeded", "block")
    )
    azure = load_payload("azure-review", "job-callback")
    mns_body = mns_notification("am-1")
    mns_headers = mns.sign("/v1/callbacks/alibaba-mps", mns_body)
    forged = dict(mns_headers, Authorization="Zm9yZ2Vk" + mns_headers["Authorization"][8:])

    # every record, the service's debug ones too (Powertools sets its logger's own level)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="verdict-relay")

    # When good and bad requests of every kind go through
    api.callback("huawei-video", body, headers={"X-Auth-Signature": good})
    api.callback("huawei-video", body, headers={"X-Auth-Signature": good[:-4] + "0000"})
    api.callback("azure-review", json.dumps(azure).encode(), query={"token": TOKEN})
    api.callback("azure-review", json.dumps(azure).encode(), query={"token": TOKEN[:-1] + "x"})
    for headers in (mns_headers, forged):
        api.callback("alibaba-mps", mns_body, headers={**headers})
    # and the poller asks each provider about a job with the document's credentials
    polls = {provider: f"{provider}-polled" for provider in PROVIDER_NAMES}
    polls.update({"huawei-video": payload["job_id"], "alibaba-mps": "am-1"})  # the callbacks' jobs
    for provider, job_id in polls.items():
        if provider != "huawei-video":  # its job is there already
            put_finished_job(simulator, provider, job_id)
    poller = dependencies_module.dependencies().poller()
    reports = {
        provider: poller.poll_jobs(provider, [DueJob(job_id)], lambda: 60.0)
        for provider, job_id in polls.items()
    }
    printed = capfd.readouterr()
    # every field of every log record (message and extra keys), plus whatever reached stdout/stderr
    records = "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    text = records + printed.out + printed.err

    # Then the logs say what happened (every poll reached its provider with the document's credentials), and
    # none of the secrets, signatures or body text
    assert "request rejected" in text
    assert "verdict ingested" in text
    assert {provider: (r.polled, r.failed_requests) for provider, r in reports.items()} == dict.fromkeys(
        polls, (1, 0)
    )
    sent = {provider: {r.credential for r in simulator.requests(provider)} for provider in polls}
    assert not [p for p, credentials in sent.items() if not credentials or "" in credentials], (
        f"requests without a credential the simulator saw: {sent} (a new provider's header goes in "
        "_CREDENTIAL_HEADERS of verdict_relay/local/simulator.py)"
    )
    for secret in (
        *sorted(secrets),
        good,
        good[:-4],
        forged["Authorization"],
        mns_headers["Authorization"],
        *sorted(set().union(*sent.values())),
        MARKER_TEXT,
    ):
        assert secret not in text, f"{secret[:12]}... leaked into the logs"
