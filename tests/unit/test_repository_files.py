"""Generated files are in step with what they are generated from, and per-provider tables with the registry."""

from __future__ import annotations

import json
import runpy
import tomllib
from pathlib import Path

from verdict_relay.cli import verdict_schema

ROOT = Path(__file__).resolve().parents[2]


def test_published_verdict_schema_matches_the_model() -> None:
    published = json.loads((ROOT / "docs" / "verdict.schema.json").read_text())

    assert published == verdict_schema(), "docs/verdict.schema.json is stale: run `make schema`"


def test_published_openapi_document_matches_the_routes() -> None:
    from verdict_relay.handlers.callback import openapi_document

    published = (ROOT / "docs" / "openapi.json").read_text()

    assert json.loads(published) == json.loads(openapi_document()), (
        "docs/openapi.json is stale: run `make openapi`"
    )


def test_sample_api_events_match_the_provider_payloads() -> None:
    builder = runpy.run_path(str(ROOT / "tools" / "build_events.py"))
    expected = {f"{name}.json": builder["render"](event) for name, event in builder["build"]().items()}

    actual = {p.name: p.read_text() for p in (ROOT / "events" / "api").glob("*.json")}

    assert actual == expected, "events/api is stale: run `make events`"


def test_lambda_requirements_pin_the_runtime_dependencies_except_what_lambda_provides() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    provided_by_lambda = {"boto3", "botocore"}
    pinned = {d for d in project["dependencies"] if d.split("==")[0] not in provided_by_lambda}

    lines = (ROOT / "functions" / "requirements.txt").read_text().splitlines()
    bundled = {line.strip() for line in lines if line.strip() and not line.startswith("#")}

    assert bundled == pinned
    assert all("==" in d for d in project["dependencies"]), "runtime dependencies are pinned"


def test_every_alarm_on_our_metrics_names_a_metric_the_code_emits() -> None:
    import re

    from verdict_relay.local.resources import load_template, resources_of_type

    emitted = {
        name
        for source in (ROOT / "functions" / "verdict_relay").rglob("*.py")
        for name in re.findall(r'count\(\s*"(\w+)"', source.read_text(encoding="utf-8"))
    }
    alarms = resources_of_type(load_template(), "AWS::CloudWatch::Alarm")
    ours = {
        name: alarm["MetricName"]
        for name, alarm in alarms.items()
        if alarm.get("Namespace") == "VerdictRelay"  # metric-math alarms have none
    }

    assert ours  # the template has alarms on the project's own metrics
    assert {name: metric for name, metric in ours.items() if metric not in emitted} == {}


def test_alarms_on_our_metrics_select_this_stacks_service_as_the_functions_count_it() -> None:
    from verdict_relay.local.resources import load_template, resources_of_type

    template = load_template()
    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")

    # The functions count under their stack's name, so two stacks in one account never share a metric
    assert environment["POWERTOOLS_SERVICE_NAME"] == "AWS::StackName"  # !Ref AWS::StackName
    selected = {
        name: (alarm["Namespace"], alarm["Dimensions"])
        for name, alarm in alarms.items()
        if alarm.get("Namespace") is not None and not alarm["Namespace"].startswith("AWS/")
    }
    assert selected
    assert set(map(str, selected.values())) == {
        str((environment["POWERTOOLS_METRICS_NAMESPACE"], [{"Name": "service", "Value": "AWS::StackName"}]))
    }


def test_every_per_provider_table_names_exactly_the_registered_providers() -> None:
    # Given the providers the registry serves
    from verdict_relay import config
    from verdict_relay.clients import factory
    from verdict_relay.providers.registry import ADAPTERS

    registered = set(ADAPTERS)

    # When config's per-provider tables and the client factory's are read
    tables = {
        name: set(getattr(config, name))
        for name in ("CLIENT_NEEDS", "CREDENTIAL_SHAPES", "DEFAULT_RATE_LIMITS")
    }
    tables["clients/factory.py _BUILDERS"] = set(factory._BUILDERS)

    # Then each names every provider and nothing else: the providers document's checks index CLIENT_NEEDS and
    # CREDENTIAL_SHAPES for each entry, and a provider missing from one fails with a bare KeyError (or is skipped);
    # one missing from the factory's would have no client
    assert registered == set(config.PROVIDER_NAMES)
    assert tables == dict.fromkeys(tables, registered)
