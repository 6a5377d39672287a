"""No secret, signature or payload body reaches a log line, whatever the request did."""

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
from verdict_relay.local.callback_signing import MnsSigner, mns_notification
from verdict_relay.local.simulator import ProviderSimulator, huawei_video_job

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
        "azure-review": {"callback": {"tokens": [TOKEN]}},
        "alibaba-mps": {
            **simulator.provider_entry("alibaba-mps"),
            "callback": {"certificate_hosts": ["127.0.0.1"]},
        },
    }
    configure_environment(monkeypatch, aws, tmp_path, document)
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

    caplog.set_level(logging.DEBUG)

    # When good and bad requests of every kind go through
    api.callback("huawei-video", body, headers={"X-Auth-Signature": good})
    api.callback("huawei-video", body, headers={"X-Auth-Signature": good[:-4] + "0000"})
    api.callback("azure-review", json.dumps(azure).encode(), query={"token": TOKEN})
    api.callback("azure-review", json.dumps(azure).encode(), query={"token": TOKEN[:-1] + "x"})
    for headers in (mns_headers, forged):
        api.callback("alibaba-mps", mns_body, headers={**headers})
    printed = capfd.readouterr()
    # every field of every log record (message and extra keys), plus whatever reached stdout/stderr
    records = "\n".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    text = records + printed.out + printed.err

    # Then the logs say what happened, and none of the secrets, signatures or body text
    assert "request rejected" in text
    assert "verdict ingested" in text
    credentials = huawei["credentials"]
    for secret in (
        SEED,
        TOKEN,
        good,
        good[:-4],
        forged["Authorization"],
        mns_headers["Authorization"],
        credentials["sk"],
        MARKER_TEXT,
    ):
        assert secret not in text, f"{secret[:12]}... leaked into the logs"
