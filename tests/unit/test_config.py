"""Configuration is validated once, at start, and a bad value is named."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from tests.helpers import load_payload
from verdict_relay.clients.factory import build_client
from verdict_relay.config import (
    CREDENTIAL_SHAPES,
    PROVIDER_SPECIFIC_SETTINGS,
    SETTINGS_READ_BY,
    CallbackSettings,
    ProvidersConfig,
    ProviderSettings,
    Settings,
    load_providers_config,
)
from verdict_relay.errors import ConfigurationError
from verdict_relay.models.verdict import PROVIDER_NAMES, Suggestion
from verdict_relay.providers.profiles import PROFILES
from verdict_relay.providers.registry import get_adapter

ENV = {"TABLE_NAME": "jobs", "TOPIC_ARN": "arn:aws:sns:us-east-1:1:t", "RAW_PAYLOAD_BUCKET": "raw"}


def readme_defaults() -> dict[str, str]:
    """The defaults the README's configuration table gives, by variable: those given as values."""
    table = Path(__file__).parents[2].joinpath("README.md").read_text().split("## Configuration", 1)[1]
    defaults: dict[str, str] = {}
    for names, values in re.findall(r"^\| ((?:`[A-Z_]+`(?:, )?)+) \| ((?:`[^`]+`(?:, )?)+) \|", table, re.M):
        defaults.update(zip(re.findall(r"`([A-Z_]+)`", names), re.findall(r"`([^`]+)`", values), strict=True))
    return defaults


def test_every_default_the_readme_documents_is_the_one_the_functions_use() -> None:
    # Given the settings the template leaves unset: the code's defaults are what a deployed stack runs with
    documented = readme_defaults()
    assert {
        "PUBLISH_PASS_VERDICTS",
        "UNMODERATED_SUGGESTION",
        "RETENTION_DAYS",
        "PUBLISH_CLAIM_SECONDS",
        "UNKNOWN_JOB_GRACE_SECONDS",
        "POLL_MIN_INTERVAL_SECONDS",
    } <= set(documented)

    # When the functions read an environment that sets none of them
    settings = Settings.from_env(ENV).model_dump(by_alias=True)

    # Then each is the README's: a claim that outlasts the receiver, a grace before a denied job is expired, ...
    for variable, default in documented.items():
        used = settings[variable]
        if isinstance(used, bool | str):
            assert str(used).lower() == default, variable
        else:
            assert float(used) == float(default), variable


@pytest.mark.parametrize(
    ("variable", "accepted", "refused"),
    [
        ("MAX_BODY_BYTES", ["1024"], ["1023"]),
        ("PUBLISH_CLAIM_SECONDS", ["60", "900"], ["59.9", "901"]),
        ("POLL_WORKER_BUDGET_SECONDS", ["890"], ["0", "891"]),
        ("UNKNOWN_JOB_GRACE_SECONDS", ["0", "86400"], ["-1", "86401"]),
        ("JOB_OVERDUE_HOURS", ["0.5", "8760"], ["0", "8761"]),
        ("POLL_JOBS_PER_SECOND", ["0.5"], ["0"]),
        ("PROVIDERS_CACHE_SECONDS", ["0"], ["-1"]),
        ("POLL_MIN_INTERVAL_SECONDS", ["0", "900"], ["-1", "900.5"]),
        ("POLL_BASE_INTERVAL_SECONDS", ["900"], ["0", "900.5"]),
    ],
)
def test_each_setting_takes_exactly_the_range_the_readme_documents(
    variable: str, accepted: list[str], refused: list[str]
) -> None:
    # A value at a documented bound starts the functions (a base or minimum equal to the maximum is not above
    # it); one just past it is refused at start, naming the variable
    for value in accepted:
        assert float(
            Settings.from_env({**ENV, variable: value}).model_dump(by_alias=True)[variable]
        ) == float(value)
    for value in refused:
        with pytest.raises(ConfigurationError, match=variable):
            Settings.from_env({**ENV, variable: value})


@pytest.mark.parametrize(
    ("value", "used"),
    [
        ("1024", 1024),
        ("4194304", 4194304),
        (
            "4194305",
            4194304,
        ),  # allowed by earlier versions (up to 5 MiB): read as 4 MiB, so a stack keeps working
        ("5242880", 4194304),
        ("5242881", None),
        ("6291456", None),
    ],
)
def test_a_body_limit_an_api_gateway_event_could_not_carry_to_the_function_is_refused_or_lowered(
    value: str, used: int | None
) -> None:
    if used is not None:
        assert Settings.from_env({**ENV, "MAX_BODY_BYTES": value}).max_body_bytes == used
        return
    with pytest.raises(ConfigurationError, match="MAX_BODY_BYTES"):
        Settings.from_env({**ENV, "MAX_BODY_BYTES": value})


@pytest.mark.parametrize(
    ("value", "used"),
    [
        ("900", 900.0),
        ("1800", 1800.0),
        ("1800.5", 1800.0),  # allowed by earlier versions: read as 30 minutes, so a stack keeps working
        ("86400", 1800.0),
    ],
)
def test_a_poll_interval_the_hourly_job_alarms_would_not_see_is_lowered_to_half_an_hour(
    value: str, used: float, caplog: pytest.LogCaptureFixture
) -> None:
    assert Settings.from_env({**ENV, "POLL_MAX_INTERVAL_SECONDS": value}).poll_max_interval_seconds == used
    assert ("1800.0 is used" in caplog.text) is (used != float(value))


def test_the_templates_retention_parameter_allows_only_the_whole_days_the_functions_take() -> None:
    from verdict_relay.local.resources import load_template

    parameter = load_template()["Parameters"]["RetentionDays"]
    allowed = re.compile(parameter["AllowedPattern"])

    # CloudFormation's Number type would take 7.5, which RETENTION_DAYS and S3's lifecycle rules refuse
    assert [days for days in map(str, range(4000)) if allowed.fullmatch(days)] == list(
        map(str, range(1, 3651))
    )
    assert not [value for value in ("7.5", "90.0", "1e2", "-1", "090", " 90", "") if allowed.search(value)]
    for days in ("1", parameter["Default"], "3650"):
        assert Settings.from_env({**ENV, "RETENTION_DAYS": days}).retention_days == int(days)
    for days in ("0", "3651", "7.5"):
        with pytest.raises(ConfigurationError, match="RETENTION_DAYS"):
            Settings.from_env({**ENV, "RETENTION_DAYS": days})


@pytest.mark.parametrize("quotes", [0.2, 0.45])
def test_a_provider_json_body_at_the_largest_body_limit_fits_the_event_lambda_takes(quotes: float) -> None:
    from verdict_relay.local.apigw import api_event

    # Given a callback body of ordinary JSON (text values; a fifth, then nearly half, of its bytes quotes) at the
    # largest MAX_BODY_BYTES accepted
    limit = Settings.from_env({**ENV, "MAX_BODY_BYTES": "5242880"}).max_body_bytes  # the most any value gives
    value = "x" * round(4 / quotes - 7)  # each entry, '"k":"<value>",', has 4 quotes in 7 bytes and the value
    entry = f'"k":"{value}",'
    body = ("{" + entry * (limit // len(entry)))[: limit - 1].rsplit(",", 1)[0] + "}"
    assert abs(body.count('"') / len(body) - quotes) < 0.05

    # When API Gateway puts it in the function's event, with headers as a provider sends them
    headers = {"Content-Type": "application/json", "X-Auth-Signature": "a" * 64, "User-Agent": "provider/1.0"}
    event = api_event(
        "POST", "/callbacks/huawei-video", resource="/callbacks/huawei-video", body=body, headers=headers
    )

    # Then the event is within Lambda's 6 MB (6,291,456 bytes) with room for the rest of a real request context
    assert len(json.dumps(event).encode()) < 6_291_456 - 64 * 1024


def test_missing_environment_variable_is_named() -> None:
    with pytest.raises(ConfigurationError, match="TABLE_NAME"):
        Settings.from_env({k: v for k, v in ENV.items() if k != "TABLE_NAME"})


def test_invalid_environment_value_is_named() -> None:
    with pytest.raises(ConfigurationError, match="UNMODERATED_SUGGESTION"):
        Settings.from_env({**ENV, "UNMODERATED_SUGGESTION": "pass"})


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "POLL_MIN_INTERVAL_SECONDS",
            "POLL_MIN_INTERVAL_SECONDS (1000) is above POLL_MAX_INTERVAL_SECONDS (900)",
        ),
        (
            "POLL_BASE_INTERVAL_SECONDS",
            "POLL_BASE_INTERVAL_SECONDS (1000) is above POLL_MAX_INTERVAL_SECONDS (900)",
        ),
    ],
)
def test_a_poll_interval_above_the_maximum_is_refused_naming_both(setting: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({**ENV, setting: "1000"})
    assert raised.value.message == f"invalid environment: {message}"


def test_a_worker_budget_beyond_a_lambdas_longest_timeout_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match="POLL_WORKER_BUDGET_SECONDS: Input should be less than or equal"
    ):
        Settings.from_env({**ENV, "POLL_WORKER_BUDGET_SECONDS": "100000"})
    assert Settings.from_env({**ENV, "POLL_WORKER_BUDGET_SECONDS": "840"}).poll_worker_budget_seconds == 840


def test_a_publish_claim_the_sweep_could_overtake_a_publishing_writer_within_is_refused() -> None:
    # Shorter than the callback function's timeout, the sweep could send a verdict a receiver still publishes
    with pytest.raises(ConfigurationError, match="PUBLISH_CLAIM_SECONDS"):
        Settings.from_env({**ENV, "PUBLISH_CLAIM_SECONDS": "30"})
    assert Settings.from_env({**ENV, "PUBLISH_CLAIM_SECONDS": "60"}).publish_claim_seconds == 60


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"acme": {}}, "unknown provider(s) acme"),
        ({"azure-review": {"callback": {"tokens": ["short"]}}}, "azure-review.callback.tokens.0"),
        ({"huawei-video": {"callback": {"seeds": ["has space"]}}}, "huawei-video.callback.seeds.0"),
        ({"huawei-video": {"endpoint": "http://moderation.example.com"}}, "huawei-video.endpoint"),
        # plain http to a private address is not loopback: signed requests and keys would cross a network in clear
        ({"huawei-video": {"endpoint": "http://10.0.0.5:8080"}}, "huawei-video.endpoint"),
        ({"azure-review": {"endpoint": "http://192.168.1.20"}}, "azure-review.endpoint"),
        ({"alibaba-mps": {"credentials": {"access_key_id": "a"}}}, "alibaba-mps.credentials"),
        ({"huawei-audio": {"credentials": {"ak": "a", "sk": ""}}}, "huawei-audio.credentials"),
        (
            {"azure-review": {"policy": {"block_threshold": {"adult": 1.5}}}},
            "azure-review.policy.block_threshold",
        ),
        ({"azure-review": {"colour": "blue"}}, "azure-review.colour"),
        (
            {"azure-review": {"endpoint": "https:/westus.api.cognitive.microsoft.com"}},
            "azure-review.endpoint",
        ),
        ({"alibaba-mps": {"region": "cn-shanghai "}}, "alibaba-mps.region"),
        (
            {"azure-review": {"callback": {"first_poll_after_seconds": 86401}}},
            "azure-review.callback.first_poll_after_seconds",
        ),
        (
            {"huawei-video": {"callback": {"first_poll_after_seconds": -1}}},
            "huawei-video.callback.first_poll_after_seconds",
        ),
        ({"huawei-video": {"project_id": "p/../../x"}}, "huawei-video.project_id"),
        # endpoints a request path cannot be appended to: every request would fail, not the document
        ({"huawei-video": {"endpoint": "https://moderation.example.com:99999"}}, "huawei-video.endpoint"),
        ({"huawei-video": {"endpoint": "https://moderation.example.com:abc"}}, "huawei-video.endpoint"),
        ({"azure-review": {"endpoint": "https://westus.example.com "}}, "azure-review.endpoint"),
        ({"azure-review": {"endpoint": "https://westus.example.com/?x=1"}}, "azure-review.endpoint"),
        ({"azure-review": {"endpoint": "https://westus.example.com#f"}}, "azure-review.endpoint"),
        ({"azure-review": {"endpoint": "https://user@westus.example.com"}}, "azure-review.endpoint"),
        # a value the credentials' shape refuses is named, not taken for a key the shape lacks
        (
            {
                "alibaba-mps": {
                    "credentials": {"access_key_id": "a", "access_key_secret": "s", "signature": "sha1"}
                }
            },
            "alibaba-mps.credentials': signature: Input should be 'ACS3-HMAC-SHA256' or 'HMAC-SHA1'",
        ),
        # certificate hosts that could never match the certificate URL's host: every MNS push would be refused
        (
            {
                "alibaba-mps": {
                    "callback": {"certificate_hosts": ["https://mnstest.oss-cn-hangzhou.aliyuncs.com/"]}
                }
            },
            "alibaba-mps.callback.certificate_hosts.0",
        ),
        (
            {"alibaba-mps": {"callback": {"certificate_hosts": ["*.oss-cn-hangzhou.aliyuncs.com"]}}},
            "alibaba-mps.callback.certificate_hosts.0",
        ),
        (
            {"alibaba-mps": {"callback": {"certificate_hosts": ["mnstest.aliyuncs.com:443"]}}},
            "alibaba-mps.callback.certificate_hosts.0",
        ),
        ({"alibaba-mps": {"callback": {"certificate_hosts": []}}}, "alibaba-mps.callback.certificate_hosts"),
        # an infinite rate (JSON's 1e999) would make a provider's Retry-After hold nothing back
        ({"azure-review": {"rate_limit_per_s": float("inf")}}, "azure-review.rate_limit_per_s"),
        ({"azure-review": {"rate_limit_per_s": 1001}}, "azure-review.rate_limit_per_s"),
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


@pytest.mark.parametrize("endpoint", ["http://localhost:8080", "http://[::1]:8080", "http://127.0.0.2:8080"])
def test_every_loopback_host_the_readme_allows_plain_http_for_is_accepted(endpoint: str) -> None:
    # Given a local stack or simulator reached over plain http on a loopback address ("localhost" is one)
    document = {"azure-review": {"endpoint": endpoint + "/"}}

    # When the document is read
    config = ProvidersConfig.from_document(document)

    # Then it starts, with the endpoint a request path is appended to
    entry = config.get("azure-review")
    assert entry is not None
    assert entry.endpoint == endpoint


def test_every_provider_setting_default_the_readme_documents_is_the_one_used() -> None:
    # Given an entry that sets nothing: what a provider runs with is the README's table's defaults
    entry = ProvidersConfig.from_document({"azure-review": {}}).get("azure-review")
    assert entry is not None

    # Then requests in flight, the MNS Date window and the first poll's wait are the documented ones
    assert entry.max_concurrency == 4
    assert entry.callback.max_age_seconds == 900
    assert entry.callback.first_poll_after_seconds == 0
    assert entry.callback.certificate_hosts == ["mnstest.oss-cn-hangzhou.aliyuncs.com"]


@pytest.mark.parametrize(
    ("provider", "key", "accepted", "refused"),
    [
        ("azure-review", ("callback", "tokens"), ["t" * 16, "a-Z_0.9~" * 32], ["t" * 15, "t" * 257]),
        # a base64 token's '+', '/' or '=' would not survive the callback URL's query as it is
        ("azure-review", ("callback", "tokens"), ["Ab0._~-" * 3], ["Ab0+" * 5, "Ab0/" * 5, "Ab0=" * 5]),
        ("huawei-video", ("callback", "seeds"), ["s" * 64], ["s" * 65, "seed-with-hyphens"]),
        ("alibaba-mps", ("callback", "max_age_seconds"), [30, 3600], [29, 3601]),
        ("azure-review", ("rate_limit_per_s",), [0.01, 1000], [0, -1]),
        ("azure-review", ("max_concurrency",), [1, 64], [0, 65]),
        ("alibaba-mps", ("batch_size",), [1, 100], [0, 101]),
    ],
    ids=[
        "token-length",
        "token-characters",
        "seed-length-and-characters",
        "max-age",
        "rate-limit",
        "max-concurrency",
        "batch-size",
    ],
)
def test_each_provider_setting_takes_exactly_the_range_the_readme_documents(
    provider: str, key: tuple[str, ...], accepted: list[object], refused: list[object]
) -> None:
    def document(value: object) -> dict[str, object]:
        entry: dict[str, object] = {key[0]: [value] if key[-1] in ("tokens", "seeds") else value}
        if len(key) == 2:
            entry = {key[0]: {key[1]: entry[key[0]]}}
        return {provider: _with_credentials(provider, entry)}

    # A value at a documented bound starts the functions; one just past it is refused at start, naming the key
    for value in accepted:
        ProvidersConfig.from_document(document(value))
    for value in refused:
        with pytest.raises(ConfigurationError, match=re.escape(f"'{provider}.{'.'.join(key)}")):
            ProvidersConfig.from_document(document(value))


def test_the_azure_policy_a_document_sets_is_the_one_azures_verdicts_are_judged_by() -> None:
    # Given a document raising Azure's block thresholds above the scores of an adult and racy image (0.934, 0.971)
    config = ProvidersConfig.from_document(
        {"azure-review": {"policy": {"block_threshold": {"adult": 0.95, "racy": 0.99}}}}
    )
    job = load_payload("azure-review", "job-get-adult")

    # When that job is read with the document, and without one
    (judged,) = get_adapter("azure-review", config).parse(job)
    (by_default,) = get_adapter("azure-review").parse(job)

    # Then the document's thresholds decide: review, where the defaults block it
    assert (judged.suggestion, by_default.suggestion) == (Suggestion.REVIEW, Suggestion.BLOCK)


@pytest.mark.parametrize("trust", ["body", "fetch"])
def test_trust_in_the_alibaba_entry_fails_the_start_as_alibaba_always_fetches(trust: str) -> None:
    # Given an alibaba-mps entry setting trust: its MNS notices carry no result, so every verdict is fetched
    # whatever it says, and a "body" an operator believed in would be ignored silently
    document = {"alibaba-mps": _with_credentials("alibaba-mps", {"trust": trust})}

    # When the document is read
    with pytest.raises(ConfigurationError) as raised:
        ProvidersConfig.from_document(document)

    # Then the start fails naming the key and the providers that read it (README: "trust Huawei v3's and Azure's")
    assert raised.value.message.startswith(
        "providers document: 'alibaba-mps.trust': alibaba-mps does not read it"
    )
    assert "azure-review, huawei-audio, huawei-video do" in raised.value.message


def test_secrets_do_not_appear_in_the_configuration_repr() -> None:
    config = ProvidersConfig.from_document(
        {
            "huawei-video": {
                "region": "ap-southeast-1",
                "project_id": "0123456789abcdef",
                "credentials": {"ak": "AKVISIBLE", "sk": "SK-SECRET-VALUE"},
                "callback": {"seeds": ["seed_secret_value"]},
            },
            "azure-review": {"callback": {"tokens": ["token-secret-value-0001"]}},
        }
    )

    text = repr(config)
    for secret in ("SK-SECRET-VALUE", "seed_secret_value", "token-secret-value-0001"):
        assert secret not in text


def test_a_callback_secret_two_providers_share_is_accepted_and_named_by_key_for_a_warning() -> None:
    # A seed both Huawei entries list must stay accepted while jobs created with it can still call back: refusing
    # the document would leave no way to rotate it out without refusing their callbacks
    config = ProvidersConfig.from_document(
        {
            "huawei-audio": {"callback": {"seeds": ["audio_seed_of_new_jobs", "one_seed_for_every_job"]}},
            "azure-review": {"callback": {"tokens": ["one-token-for-two-routes"]}},
            "huawei-video": {
                "callback": {"seeds": ["one_seed_for_every_job"], "tokens": ["one-token-for-two-routes"]}
            },
        }
    )

    shared = config.shared_callback_secrets()
    assert shared == [
        "huawei-video.callback.tokens.0 (also azure-review's)",
        "huawei-video.callback.seeds.0 (also huawei-audio's)",
    ]
    assert not any(
        secret in repr(shared) for secret in ("one_seed_for_every_job", "one-token-for-two-routes")
    )


def test_a_secret_listed_twice_by_one_provider_is_not_shared() -> None:
    config = ProvidersConfig.from_document(
        {"huawei-video": {"callback": {"seeds": ["seed_of_new_jobs"], "tokens": ["seed_of_new_jobs"]}}}
    )

    assert config.shared_callback_secrets() == []


def test_a_new_kind_of_callback_secret_is_redacted_and_checked_for_sharing_as_a_field_alone() -> None:
    # Given a new kind of callback secret, added as the provider guide says: a list field with repr=False
    class WithKeys(CallbackSettings):
        signing_keys: list[str] = Field(default_factory=list, repr=False)

    class Entry(ProviderSettings):
        callback: WithKeys = Field(default_factory=WithKeys)

    entry = Entry.model_validate(
        {"callback": {"signing_keys": ["key-of-a-new-kind"], "tokens": ["a-token-of-16-chars"]}}
    )
    config = ProvidersConfig.model_construct(providers={"azure-review": entry, "huawei-video": entry})

    # Then nothing else needs to list it: it is a secret to redact and to keep to one provider
    assert CallbackSettings.secret_fields() == ("tokens", "seeds")
    assert WithKeys.secret_fields() == ("tokens", "seeds", "signing_keys")
    assert config.callback_secrets("azure-review") == ["a-token-of-16-chars", "key-of-a-new-kind"]
    assert config.shared_callback_secrets() == [
        "huawei-video.callback.tokens.0 (also azure-review's)",
        "huawei-video.callback.signing_keys.0 (also azure-review's)",
    ]


def test_providers_file_is_read_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"azure-review": {"team": "moderators"}}))

    config = load_providers_config(Settings.from_env({**ENV, "PROVIDERS_FILE": str(path)}))

    entry = config.get("azure-review")
    assert entry is not None
    assert entry.team == "moderators"


@pytest.mark.parametrize(
    ("wait", "grace", "accepted"),
    [(3599, "3600", True), (3600, "3600", False), (60, "0", False), (0, "0", True)],
)
def test_a_first_poll_wait_must_end_within_the_unknown_job_grace(
    tmp_path: Path, wait: int, grace: str, accepted: bool
) -> None:
    # A job first polled after the grace would be expired at its first poll if its provider denied it: a wrong
    # region would publish every registered job as expired, for good, before anyone could correct it
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"azure-review": {"callback": {"first_poll_after_seconds": wait}}}))
    settings = Settings.from_env({**ENV, "PROVIDERS_FILE": str(path), "UNKNOWN_JOB_GRACE_SECONDS": grace})

    if accepted:
        assert (
            load_providers_config(settings).providers["azure-review"].callback.first_poll_after_seconds
            == wait
        )
    else:
        with pytest.raises(
            ConfigurationError, match=r"'azure-review\.callback\.first_poll_after_seconds'.*GRACE"
        ):
            load_providers_config(settings)


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


# --- entries that would only fail later: checked at start, where the document is read ----------------------------

HUAWEI_AKSK = {"ak": "AK-VALUE", "sk": "SK-SECRET-VALUE"}
HUAWEI_IAM_USER = {"user_name": "u", "password": "PASSWORD-SECRET-VALUE", "domain_name": "d"}
ALIBABA_KEYS = {"access_key_id": "AKID", "access_key_secret": "ALIBABA-SECRET-VALUE"}
AZURE_KEY = {"subscription_key": "AZURE-SECRET-VALUE"}
SECRETS = ("SK-SECRET-VALUE", "PASSWORD-SECRET-VALUE", "ALIBABA-SECRET-VALUE", "AZURE-SECRET-VALUE")


@pytest.mark.parametrize(
    ("document", "key", "says"),
    [
        (
            # Incomplete credentials: only the keys a shape requires are named (an Alibaba signature is optional)
            {"alibaba-mps": {"region": "cn-shanghai", "credentials": {"access_key_id": "AKID"}}},
            "alibaba-mps.credentials",
            "expected {access_key_id, access_key_secret}; got keys {access_key_id}",
        ),
        (
            {"azure-review": {"team": "moderators", "credentials": AZURE_KEY}},
            "azure-review.endpoint",
            "Azure Content Moderator has no default endpoint; add your resource's endpoint",
        ),
        (
            {
                "azure-review": {
                    "endpoint": "https://westus.api.cognitive.microsoft.com",
                    "credentials": AZURE_KEY,
                }
            },
            "azure-review.team",
            "add the name of the review team",
        ),
        (
            {"huawei-video": {"region": "ap-southeast-1", "credentials": HUAWEI_AKSK}},
            "huawei-video.project_id",
            "add the Huawei project id",
        ),
        (
            {"huawei-audio": {"endpoint": "https://moderation.example.com", "credentials": {"token": "t"}}},
            "huawei-audio.project_id",
            "add the Huawei project id",
        ),
        (
            {"huawei-image-batch": {"credentials": HUAWEI_AKSK}},
            "huawei-image-batch.region",
            "add region (e.g. ap-southeast-1) for the provider's regional endpoint, or endpoint",
        ),
        (
            {"alibaba-mps": {"credentials": ALIBABA_KEYS}},
            "alibaba-mps.region",
            "add region (e.g. cn-shanghai) for the provider's regional endpoint, or endpoint",
        ),
        (
            {
                "huawei-image-batch": {
                    "endpoint": "https://moderation.example.com",
                    "project_id": "p",
                    "credentials": HUAWEI_IAM_USER,
                }
            },
            "huawei-image-batch.credentials.iam_endpoint",
            "add credentials.iam_endpoint, or region",
        ),
        (
            {
                "huawei-image-batch": {
                    "endpoint": "https://moderation.example.com",
                    "credentials": {**HUAWEI_IAM_USER, "iam_endpoint": "https://iam.example.com"},
                }
            },
            "huawei-image-batch.region",
            "required with IAM user credentials unless project_id is set",
        ),
        (
            {
                "huawei-image-batch": {
                    "region": "ap-southeast-1",
                    "credentials": {**HUAWEI_IAM_USER, "iam_endpoint": "http://iam.example.com"},
                }
            },
            "huawei-image-batch.credentials.iam_endpoint",
            "must be an https:// URL",
        ),
    ],
)
def test_credentials_without_what_the_providers_api_client_needs_fail_at_start_naming_the_key(
    document: dict[str, object], key: str, says: str
) -> None:
    # Given an entry with API credentials, so a client will be built for it, lacking a setting the client needs
    # When the document is read
    with pytest.raises(ConfigurationError) as raised:
        ProvidersConfig.from_document(document)

    # Then it fails there, naming the key and saying what to add, and showing no secret
    message = raised.value.message
    assert f"'{key}': " in message
    assert says in message
    assert not any(secret in message for secret in SECRETS)


@pytest.mark.parametrize(
    "document",
    [
        {"azure-review": {"callback": {"tokens": ["a-long-random-url-token-1"]}}},
        {"huawei-video": {"callback": {"seeds": ["seed_of_new_jobs"]}}},
        {"huawei-audio": {"trust": "body"}},
        {"huawei-image-batch": {}},
    ],
)
def test_entries_without_credentials_need_no_client_settings(document: dict[str, object]) -> None:
    # Callbacks only: no client is built, so neither endpoint, region, team nor project_id is needed
    config = ProvidersConfig.from_document(document)

    assert set(config.providers) == set(document)


def test_entries_with_credentials_and_what_their_clients_need_are_accepted() -> None:
    config = ProvidersConfig.from_document(
        {
            "huawei-video": {"region": "ap-southeast-1", "project_id": "p", "credentials": HUAWEI_AKSK},
            "huawei-audio": {
                "endpoint": "https://moderation.example.com",
                "project_id": "p",
                "trust": "fetch",
                "credentials": {**HUAWEI_IAM_USER, "iam_endpoint": "https://iam.example.com"},
            },
            "huawei-image-batch": {"region": "ap-southeast-1", "credentials": HUAWEI_IAM_USER},
            "alibaba-mps": {"endpoint": "http://127.0.0.1:8080", "credentials": ALIBABA_KEYS},
            "azure-review": {
                "endpoint": "https://westus.api.cognitive.microsoft.com",
                "team": "moderators",
                "credentials": AZURE_KEY,
            },
        }
    )

    assert len(config.providers) == 5


def test_alibaba_mps_without_credentials_fails_at_start_as_nothing_could_fetch_its_verdicts() -> None:
    # Given an alibaba-mps entry without API credentials: its MNS notices name a job, never its result (and it
    # takes no trust setting that could say otherwise: test_a_setting_the_provider_does_not_read_fails_...)
    entry: dict[str, object] = {"callback": {"certificate_hosts": ["mnstest.oss-cn-hangzhou.aliyuncs.com"]}}

    # When the document is read
    with pytest.raises(ConfigurationError) as raised:
        ProvidersConfig.from_document({"alibaba-mps": entry})

    # Then it fails there instead of storing pending jobs nothing ever fetches
    assert raised.value.message == (
        "providers document: 'alibaba-mps.credentials': required: an MNS notice names the job but never "
        "carries its result, so every verdict is fetched from the provider's API; add credentials "
        "{access_key_id, access_key_secret}, with region (or endpoint)"
    )


@pytest.mark.parametrize(
    ("provider", "credentials", "needs"),
    [
        (
            "huawei-video",
            "{ak, sk} or {token} or {user_name, password, domain_name}",
            "region (or endpoint) and project_id",
        ),
        ("azure-review", "{subscription_key}", "endpoint and team"),
    ],
)
def test_trust_fetch_without_credentials_fails_at_start_naming_the_credentials(
    provider: str, credentials: str, needs: str
) -> None:
    # Given an entry whose verdicts may only come from the provider's API, but no API credentials
    # When the document is read
    with pytest.raises(ConfigurationError) as raised:
        ProvidersConfig.from_document({provider: {"trust": "fetch"}})

    # Then it fails, naming the key and both ways out
    assert raised.value.message == (
        f"providers document: '{provider}.credentials': required with trust 'fetch', which takes every verdict "
        f"from the provider's API; add credentials {credentials}, with {needs}, or set trust to 'body'"
    )


def test_the_first_unmet_requirement_in_document_order_is_the_one_named() -> None:
    document = {
        "huawei-video": {"region": "ap-southeast-1", "project_id": "p", "credentials": HUAWEI_AKSK},
        "azure-review": {"credentials": AZURE_KEY},
        "alibaba-mps": {},
    }

    with pytest.raises(ConfigurationError, match=r"'azure-review\.endpoint'"):
        ProvidersConfig.from_document(document)


@pytest.mark.parametrize("seed", ["q", "seed_15_chars_x"], ids=["one-character", "fifteen-characters"])
def test_a_huawei_seed_shorter_than_16_characters_fails_the_start_naming_it(seed: str) -> None:
    # A seed is the HMAC key of Huawei's callback signature: a short one could be found by trying each in turn
    # against the receiver's 401/200 answers, then used to sign any callback
    document = {"huawei-video": {"callback": {"seeds": ["seed_of_new_jobs", seed]}}}

    with pytest.raises(ConfigurationError) as raised:
        ProvidersConfig.from_document(document)

    assert "huawei-video.callback.seeds.1" in raised.value.message
    assert "at least 16 characters" in raised.value.message
    assert "seed_15_chars_x" not in raised.value.message  # a secret, even a refused one, is not echoed


@pytest.mark.parametrize("seed", ["s" * 16, "Seed_0123456789_" * 4], ids=["16-characters", "64-characters"])
def test_a_huawei_seed_of_16_to_64_characters_is_accepted(seed: str) -> None:
    config = ProvidersConfig.from_document({"huawei-video": {"callback": {"seeds": [seed]}}})

    entry = config.get("huawei-video")
    assert entry is not None
    assert entry.callback.seeds == [seed]


def _credential_example(shape: type[BaseModel]) -> dict[str, str]:
    return {key: "x" * 16 for key, field in shape.model_fields.items() if field.is_required()}


CLIENT_KEYS = {
    "region": "ap-southeast-1",
    "endpoint": "https://moderation.example.com",
    "project_id": "0123456789abcdef",
    "team": "moderators",
}


@pytest.mark.parametrize(
    ("provider", "shape"),
    [(provider, shape) for provider, shapes in CREDENTIAL_SHAPES.items() for shape in shapes],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_an_entry_passes_the_start_checks_exactly_when_its_client_can_be_built(
    provider: str, shape: type[BaseModel]
) -> None:
    # Given every combination of the settings a client may need that the provider reads (a setting it does not
    # read is refused: test_a_setting_the_provider_does_not_read_fails_the_start_naming_it), with its credentials
    read = [key for key in CLIENT_KEYS if provider in SETTINGS_READ_BY.get((key,), {provider})]
    for size in range(len(read) + 1):
        for keys in itertools.combinations(read, size):
            entry = {"credentials": _credential_example(shape), **{key: CLIENT_KEYS[key] for key in keys}}

            # When the start checks read it, and the factory builds its client
            try:
                ProvidersConfig.from_document({provider: entry})
                accepted = True
            except ConfigurationError:
                accepted = False
            try:
                client = build_client(provider, ProviderSettings.model_validate(entry))
                built = client is not None
                if client is not None:
                    client.close()
            except ConfigurationError:
                built = False

            # Then the two agree: no entry starts the functions and then fails the poller's first cycle
            assert (provider, keys, accepted) == (provider, keys, built), (
                f"{provider} with {keys or 'none'} of {sorted(CLIENT_KEYS)}: the start checks "
                f"({'accept' if accepted else 'refuse'} it: its profile, _unmet_requirements in config.py) and the "
                f"client factory ({'builds' if built else 'cannot build'} its client: _BUILDERS in clients/factory.py) "
                "disagree"
            )


SETTING_EXAMPLES: dict[tuple[str, ...], object] = {
    ("region",): "cn-shanghai",
    ("project_id",): "0123456789abcdef",
    ("team",): "moderators",
    ("policy",): {},
    ("batch_size",): 10,
    ("trust",): "body",
    ("callback",): {},
    ("callback", "seeds"): ["SEED_SECRET_VALUE_0001"],
    ("callback", "certificate_hosts"): ["mnstest.oss-cn-hangzhou.aliyuncs.com"],
    ("callback", "max_age_seconds"): 900,
}


def _entry_with(key: tuple[str, ...]) -> dict[str, object]:
    value = SETTING_EXAMPLES[key]
    return {key[0]: value} if len(key) == 1 else {key[0]: {key[1]: value}}


def _with_credentials(provider: str, entry: dict[str, object]) -> dict[str, object]:
    """The entry, plus what alibaba-mps always needs (API credentials and a region), so that only ``entry``'s key
    can be what is wrong with it."""
    if provider != "alibaba-mps":
        return entry
    return {"region": "cn-shanghai", "credentials": ALIBABA_KEYS, **entry}


def test_every_provider_specific_setting_has_an_example() -> None:
    assert set(SETTING_EXAMPLES) == set(SETTINGS_READ_BY)


def test_every_setting_a_profile_reads_is_one_only_some_providers_read() -> None:
    # A path missing from PROVIDER_SPECIFIC_SETTINGS (or misspelt) would be read by nobody: refused in the entry of
    # the provider that reads it, if it is one of them, and accepted in every other
    for profile in PROFILES.values():
        assert profile.reads <= set(PROVIDER_SPECIFIC_SETTINGS), profile.name
        assert {"callback", "trust"}.isdisjoint(profile.reads), f"{profile.name}: set calls_back / fetch_only"


@pytest.mark.parametrize(
    ("key", "provider"),
    [
        (key, provider)
        for key, readers in SETTINGS_READ_BY.items()
        for provider in PROVIDER_NAMES
        if provider not in readers
    ],
    ids=lambda value: ".".join(value) if isinstance(value, tuple) else value,
)
def test_a_setting_the_provider_does_not_read_fails_the_start_naming_it(
    key: tuple[str, ...], provider: str
) -> None:
    # Given an entry holding a setting only other providers read (a team meant for azure-review, a Huawei seed in
    # the alibaba-mps entry, callback settings for a provider that never calls back): ignored, it would leave the
    # provider it was meant for without it, and nothing would say so
    document = {provider: _with_credentials(provider, _entry_with(key))}

    # When the document is read
    with pytest.raises(ConfigurationError) as raised:
        ProvidersConfig.from_document(document)

    # Then the start fails naming the key (or its whole callback block, for a provider that reads none of it), and
    # who reads it, and shows no secret
    named = key if provider in SETTINGS_READ_BY.get(key[:1], {provider}) else key[:1]
    message = raised.value.message
    assert message.startswith(
        f"providers document: '{provider}.{'.'.join(named)}': {provider} does not read it"
    )
    assert all(reader in message for reader in SETTINGS_READ_BY[named])
    assert "SEED_SECRET_VALUE_0001" not in message


@pytest.mark.parametrize(
    ("key", "provider"),
    [(key, provider) for key, readers in SETTINGS_READ_BY.items() for provider in sorted(readers)],
    ids=lambda value: ".".join(value) if isinstance(value, tuple) else value,
)
def test_a_provider_specific_setting_is_accepted_in_the_entry_of_a_provider_that_reads_it(
    key: tuple[str, ...], provider: str
) -> None:
    config = ProvidersConfig.from_document({provider: _with_credentials(provider, _entry_with(key))})

    assert set(config.providers) == {provider}
