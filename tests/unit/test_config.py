"""Configuration is validated once, at start, and a bad value is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verdict_relay.config import ProvidersConfig, Settings, load_providers_config
from verdict_relay.errors import ConfigurationError

ENV = {"TABLE_NAME": "jobs", "TOPIC_ARN": "arn:aws:sns:us-east-1:1:t", "RAW_PAYLOAD_BUCKET": "raw"}


def test_settings_have_documented_defaults() -> None:
    settings = Settings.from_env(ENV)

    assert settings.publish_pass_verdicts is False
    assert settings.unmoderated_suggestion == "review"
    assert settings.retention_days == 90


def test_missing_environment_variable_is_named() -> None:
    with pytest.raises(ConfigurationError, match="TABLE_NAME"):
        Settings.from_env({k: v for k, v in ENV.items() if k != "TABLE_NAME"})


def test_invalid_environment_value_is_named() -> None:
    with pytest.raises(ConfigurationError, match="UNMODERATED_SUGGESTION"):
        Settings.from_env({**ENV, "UNMODERATED_SUGGESTION": "pass"})


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"acme": {}}, "unknown provider(s) acme"),
        ({"azure-review": {"callback": {"tokens": ["short"]}}}, "azure-review.callback.tokens.0"),
        ({"huawei-video": {"callback": {"seeds": ["has space"]}}}, "huawei-video.callback.seeds.0"),
        ({"huawei-video": {"endpoint": "http://moderation.example.com"}}, "huawei-video.endpoint"),
        ({"alibaba-mps": {"credentials": {"access_key_id": "a"}}}, "alibaba-mps.credentials"),
        ({"huawei-audio": {"credentials": {"ak": "a", "sk": ""}}}, "huawei-audio.credentials"),
        (
            {"azure-review": {"policy": {"block_threshold": {"adult": 1.5}}}},
            "azure-review.policy.block_threshold",
        ),
        ({"azure-review": {"colour": "blue"}}, "azure-review.colour"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_malformed_providers_document_fails_naming_the_key(document: object, named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ProvidersConfig.from_document(document)

    assert named in raised.value.message


def test_loopback_http_endpoints_are_allowed_for_tests_and_the_local_stack() -> None:
    config = ProvidersConfig.from_document({"azure-review": {"endpoint": "http://127.0.0.1:8080/"}})

    entry = config.get("azure-review")
    assert entry is not None
    assert entry.endpoint == "http://127.0.0.1:8080"


def test_secrets_do_not_appear_in_the_configuration_repr() -> None:
    config = ProvidersConfig.from_document(
        {
            "huawei-video": {
                "credentials": {"ak": "AKVISIBLE", "sk": "SK-SECRET-VALUE"},
                "callback": {"seeds": ["seed_secret"]},
            },
            "azure-review": {"callback": {"tokens": ["token-secret-value-0001"]}},
        }
    )

    text = repr(config)
    for secret in ("SK-SECRET-VALUE", "seed_secret", "token-secret-value-0001"):
        assert secret not in text


def test_providers_file_is_read_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"azure-review": {"team": "moderators"}}))

    config = load_providers_config(Settings.from_env({**ENV, "PROVIDERS_FILE": str(path)}))

    entry = config.get("azure-review")
    assert entry is not None
    assert entry.team == "moderators"


def test_unreadable_providers_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "providers.json"
    path.write_text("{not json")

    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_providers_config(Settings.from_env({**ENV, "PROVIDERS_FILE": str(path)}))


def test_providers_document_is_read_from_secrets_manager(aws: object) -> None:
    import boto3

    boto3.client("secretsmanager").create_secret(
        Name="verdict-relay/providers", SecretString=json.dumps({"azure-review": {"team": "t1"}})
    )

    config = load_providers_config(
        Settings.from_env({**ENV, "PROVIDERS_SECRET_ID": "verdict-relay/providers"})
    )

    entry = config.get("azure-review")
    assert entry is not None
    assert entry.team == "t1"
