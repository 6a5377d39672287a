"""Generated files are in step with what they are generated from, per-provider tables with the registry, and the
template's alarms with the metrics the code counts and with the docs."""

from __future__ import annotations

import ast
import json
import re
import runpy
import tomllib
from pathlib import Path
from typing import Any

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


def alarmed_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads (``Namespace``, ``MetricName``, ``Dimensions``): its own, or those of its
    metric-math expression."""
    if "MetricName" in alarm:
        return [alarm]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


def our_alarmed_metrics() -> dict[str, list[dict[str, Any]]]:
    """Each alarm's metrics in the project's own namespace (not ``AWS/...``), by alarm."""
    from verdict_relay.local.resources import load_template, resources_of_type

    alarms = resources_of_type(load_template(), "AWS::CloudWatch::Alarm")
    return {
        name: ours
        for name, alarm in alarms.items()
        if (ours := [m for m in alarmed_metrics(alarm) if not m["Namespace"].startswith("AWS/")])
    }


def emitted_metrics() -> set[str]:
    from verdict_relay import errors
    from verdict_relay.local.resources import load_template, resources_of_type

    # The API's refusals are counted as Rejected<status> (handlers/http_errors.py), one per client error's status
    refusals = {
        f"Rejected{error.status_code}"
        for error in vars(errors).values()
        if isinstance(error, type) and issubclass(error, errors.ClientError)
    }
    # and API Gateway's own refusals that the template counts from its access log (AWS::Logs::MetricFilter)
    from_logs = {
        transformation["MetricName"]
        for metric_filter in resources_of_type(load_template(), "AWS::Logs::MetricFilter").values()
        for transformation in metric_filter["MetricTransformations"]
    }
    return (
        refusals
        | from_logs
        | {
            name
            for source in (ROOT / "functions" / "verdict_relay").rglob("*.py")
            for name in re.findall(r'count\(\s*"(\w+)"', source.read_text(encoding="utf-8"))
        }
    )


def test_every_alarm_on_our_metrics_names_a_metric_the_code_emits() -> None:
    emitted = emitted_metrics()
    ours = {name: [m["MetricName"] for m in metrics] for name, metrics in our_alarmed_metrics().items()}

    assert ours  # the template has alarms on the project's own metrics
    assert "ProviderRequestsFailingAlarm" in ours  # a metric-math alarm's metrics are read too
    assert {name: metrics for name, metrics in ours.items() if set(metrics) - emitted} == {}


def test_alarms_on_our_metrics_select_this_stacks_service_as_the_functions_count_it() -> None:
    from verdict_relay.local.resources import load_template

    template = load_template()
    environment = template["Globals"]["Function"]["Environment"]["Variables"]

    # The functions count under their stack's name, so two stacks in one account never share a metric
    assert environment["POWERTOOLS_SERVICE_NAME"] == "AWS::StackName"  # !Ref AWS::StackName
    selected = {
        str((metric["Namespace"], metric["Dimensions"]))
        for metrics in our_alarmed_metrics().values()
        for metric in metrics
    }
    assert selected == {
        str((environment["POWERTOOLS_METRICS_NAMESPACE"], [{"Name": "service", "Value": "AWS::StackName"}]))
    }


def test_every_failure_the_functions_only_count_is_watched_by_an_alarm() -> None:
    # Failures a function survives without an error (so no Lambda Errors alarm sees them): only their counts
    # can tell an operator that something stopped working
    only_counted = {
        "PublishFailed",
        "CallbackUnreadable",
        "OwedPublishUnreadable",
        "ProviderAuthFailed",
        "ProviderRequestFailed",
        "ProviderSkippedCircuitOpen",
        "DiscoveryFailed",
        "JobUnanswered",
        "JobOverdue",
        "JobOutOfTime",
        "FanOutFailed",
        "StalePollBatches",
        "PollerStorageFailed",
        "ProvidersReloadFailed",
    }
    assert only_counted <= emitted_metrics()

    alarmed = {m["MetricName"] for metrics in our_alarmed_metrics().values() for m in metrics}

    assert only_counted - alarmed == set()


def test_requests_the_api_throttled_are_counted_from_its_access_log_for_this_stack() -> None:
    from verdict_relay.local.resources import load_template, resources_of_type

    template = load_template()
    (api,) = resources_of_type(template, "AWS::Serverless::Api").values()
    (metric_filter,) = resources_of_type(template, "AWS::Logs::MetricFilter").values()
    (transformation,) = metric_filter["MetricTransformations"]
    # Given the access log line of a request API Gateway throttled, in stack "relay"
    line = re.sub(
        r"\$context\.[\w.]+",
        lambda m: "429" if m.group() == "$context.status" else "-",
        api["AccessLogSetting"]["Format"].replace("${AWS::StackName}", "relay"),
    )
    record = json.loads(line)

    # Then the filter on the access log matches it, and counts it as ApiThrottled of service "relay"
    assert metric_filter["LogGroupName"] == api["AccessLogSetting"]["DestinationArn"].removesuffix(".Arn")
    pattern = re.fullmatch(r'\{ \$\.(\w+) = "(\w+)" \}', metric_filter["FilterPattern"])
    assert pattern is not None
    field, value = pattern.groups()
    assert record[field] == value
    assert (transformation["MetricName"], transformation["MetricNamespace"]) == (
        "ApiThrottled",
        "VerdictRelay",
    )
    (dimension,) = transformation["Dimensions"]
    assert (dimension["Key"], record[dimension["Value"].removeprefix("$.")]) == ("service", "relay")


def test_the_documented_alarms_are_the_templates() -> None:
    from verdict_relay.local.resources import load_template, resources_of_type

    alarms = set(resources_of_type(load_template(), "AWS::CloudWatch::Alarm"))
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")

    documented = set(re.findall(r"^\| `(\w+Alarm)` \|", architecture, re.MULTILINE))

    assert documented == alarms


def assigned_value(path: Path, name: str) -> ast.expr:
    """The expression a module assigns to ``name`` at its top level, annotated or not, read without running the
    module (a benchmark imports and starts what it measures)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return node.value
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name and node.value:
            return node.value
    raise AssertionError(f"{path.name} assigns no {name}")


def assigned_literal(path: Path, name: str) -> Any:
    """The literal a module assigns to ``name`` at its top level (:func:`assigned_value`)."""
    return ast.literal_eval(assigned_value(path, name))


def normalized_providers() -> set[str]:
    """The providers of ``bench/normalize.py``'s ``PAYLOADS``: label -> (provider, the function building it)."""
    payloads = assigned_value(ROOT / "bench" / "normalize.py", "PAYLOADS")
    assert isinstance(payloads, ast.Dict)
    return {ast.literal_eval(value.elts[0]) for value in payloads.values if isinstance(value, ast.Tuple)}


def test_every_per_provider_table_names_exactly_the_registered_providers() -> None:
    # Given the providers the registry serves
    from verdict_relay import config
    from verdict_relay.clients import factory
    from verdict_relay.local import simulator
    from verdict_relay.providers.profiles import PROFILES
    from verdict_relay.providers.registry import ADAPTERS

    registered = set(ADAPTERS)

    # When the profiles, config's credential shapes and the client factory's table are read
    tables = {
        "providers/profiles.py PROFILES": set(PROFILES),
        "config.py CREDENTIAL_SHAPES": set(config.CREDENTIAL_SHAPES),
    }
    tables["clients/factory.py _BUILDERS"] = set(factory._BUILDERS)
    tables["local/simulator.py PROVIDERS"] = set(simulator.PROVIDERS)
    for bench in ("cold_start.py", "poller_throughput.py"):
        tables[f"bench/{bench} PROVIDERS"] = set(assigned_literal(ROOT / "bench" / bench, "PROVIDERS"))
    tables["bench/poller_throughput.py SHORT"] = set(
        assigned_literal(ROOT / "bench" / "poller_throughput.py", "SHORT")
    )
    tables["bench/normalize.py PAYLOADS"] = normalized_providers()

    # Then each names every provider and nothing else: the providers document's checks index PROFILES and
    # CREDENTIAL_SHAPES for each entry, and a provider missing from one fails with a bare KeyError (or is skipped);
    # one missing from the factory's would have no client, from the simulator's no client tests and no local
    # simulation, from a benchmark's no figures
    assert registered == set(config.PROVIDER_NAMES)
    wrong = {name: sorted(names ^ registered) for name, names in tables.items() if names != registered}
    assert not wrong, f"each table, and the providers it lacks or should not name: {wrong}"


def test_the_callback_latency_benchmark_measures_exactly_the_providers_that_call_back() -> None:
    # Given the providers that call back (their profiles agree with their adapters: tests/unit/providers)
    from verdict_relay.providers.profiles import PROFILES

    calling_back = {name for name, profile in PROFILES.items() if profile.calls_back}

    # When the callback-latency benchmark's per-provider tables are read
    tables = {
        name: set(assigned_literal(ROOT / "bench" / "callback_latency.py", name))
        for name in ("DEADLINE_S", "DEADLINE_NOTE")
    }

    # Then each names every one of them (one missing would have no latency figure) and no other provider
    assert tables == dict.fromkeys(tables, calling_back)


def test_every_alarm_notifies_the_alarm_topic_when_it_fires_and_when_it_clears() -> None:
    from verdict_relay.local.resources import load_template, resources_of_type

    alarms = resources_of_type(load_template(), "AWS::CloudWatch::Alarm")

    # so the on-call woken by one learns without looking that it is over
    assert len(alarms) == 25
    assert {name: (p["AlarmActions"], p["OKActions"]) for name, p in alarms.items()} == dict.fromkeys(
        alarms, (["AlarmTopic"], ["AlarmTopic"])
    )


def test_a_poller_that_stops_running_raises_an_alarm_though_it_reports_nothing() -> None:
    from verdict_relay.local.resources import load_template, resources_of_type

    # A disabled schedule leaves the poller with no invocation, no error and no count: only missing data shows it
    alarms = resources_of_type(load_template(), "AWS::CloudWatch::Alarm")
    watching = [
        p
        for p in alarms.values()
        if p.get("Namespace") == "AWS/Lambda"
        and p.get("MetricName") == "Invocations"
        and p.get("Dimensions") == [{"Name": "FunctionName", "Value": "PollerFunction"}]
    ]

    assert len(watching) == 1
    alarm = watching[0]
    # three 5-minute periods: longer than the README's poll --once procedure keeps the schedule disabled
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 300, 3)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["AlarmActions"] == ["AlarmTopic"]  # the loader reads !Ref as the logical name


def test_the_callback_latency_benchmark_gives_its_fetching_providers_a_rate_the_stack_takes() -> None:
    # Given the rate the benchmark gives the providers whose jobs its callbacks fetch
    from verdict_relay.config import ProviderSettings

    rate = assigned_literal(ROOT / "bench" / "callback_latency.py", "MPS_RATE_PER_S")

    # When the stack reads it, Then it takes it: a providers document it refuses answers every callback 500
    # (a configuration error), and the benchmark stops at its first request
    assert ProviderSettings(rate_limit_per_s=rate).rate_limit_per_s == rate
