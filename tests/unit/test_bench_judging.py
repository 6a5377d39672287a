"""``make bench`` judges each figure against its target and exits 1 when one is missed; the figures it judges are
counted as the benchmarks claim. Each benchmark's judging is run here on given figures (its measurement replaced,
never its judge), and its counting on real clients, real moto and real fresh processes: no timing is asserted."""

from __future__ import annotations

import importlib
import runpy
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from verdict_relay.providers.registry import get_adapter

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
MODULES = ("cold_start", "normalize", "aws_calls", "poller_throughput", "callback_latency")


def bench(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def row(ok: bool) -> dict[str, object]:
    return {"benchmark": "b", "measured": "m", "target": "t", "ok": ok}


@pytest.fixture
def run_py(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/run.py, with every benchmark's counts put back after a test (``--smoke`` lowers them)."""
    run = bench("run")
    for module, counts in run.SMOKE.items():
        for name in counts:
            monkeypatch.setattr(module, name, getattr(module, name))
    return run


def given_benchmarks(monkeypatch: pytest.MonkeyPatch, rows: dict[str, list[dict[str, object]]]) -> None:
    for name in MODULES:
        monkeypatch.setattr(bench(name), "main", lambda name=name: rows.get(name, [row(True)]))


# --- bench/run.py ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", MODULES)
def test_make_bench_exits_1_when_any_benchmark_misses_a_target(
    run_py: ModuleType, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    # Given every benchmark's targets met but one figure of one benchmark
    given_benchmarks(monkeypatch, {missing: [row(True), row(False)]})
    monkeypatch.setattr(sys, "argv", ["bench/run.py"])

    # When make bench runs bench/run.py
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(BENCH / "run.py"), run_name="__main__")

    # Then it exits 1
    assert exited.value.code == 1


@pytest.mark.parametrize("smoke", [False, True])
@pytest.mark.parametrize("silent", MODULES)
def test_make_bench_exits_1_when_a_benchmark_produces_no_figures(
    run_py: ModuleType, monkeypatch: pytest.MonkeyPatch, silent: str, smoke: bool
) -> None:
    # Given one benchmark that ran and measured nothing (its payloads or lives emptied by an edit)
    given_benchmarks(monkeypatch, {silent: []})

    # When make bench, or its smoke profile, judges the rows, then it fails
    assert run_py.main(smoke=smoke) == 1


def test_make_bench_exits_0_when_every_target_is_met(
    run_py: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    given_benchmarks(monkeypatch, {})

    assert run_py.main() == 0
    assert f"{len(MODULES)} met, 0 missed" in capsys.readouterr().out


def test_the_smoke_profile_ignores_figures_but_lowers_every_count_it_names(
    run_py: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a missed figure (smoke figures mean nothing)
    given_benchmarks(monkeypatch, {"normalize": [row(False)]})

    # When the smoke profile runs, it passes, with the counts lowered
    assert run_py.main(smoke=True) == 0
    assert run_py.SMOKE[bench("normalize")]["ROUNDS"] == bench("normalize").ROUNDS


# --- bench/aws_calls.py ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calls", "block_met", "pass_met"),
    [
        ({"dynamodb:UpdateItem": 3, "sns:Publish": 1}, True, False),
        ({"dynamodb:UpdateItem": 3}, False, True),
        ({"dynamodb:UpdateItem": 4, "sns:Publish": 1}, False, False),
        ({"dynamodb:UpdateItem": 4}, False, False),
        ({"dynamodb:PutItem": 2, "dynamodb:DeleteItem": 2}, False, False),
        ({"dynamodb:BatchWriteItem": 2, "dynamodb:TransactWriteItems": 2}, False, False),
        ({"dynamodb:UpdateItem": 1, "dynamodb:Scan": 1, "sns:Publish": 1}, False, False),
        ({"dynamodb:UpdateItem": 1, "dynamodb:Scan": 1}, False, False),
        ({"dynamodb:UpdateItem": 3, "sns:Publish": 2}, False, False),
    ],
)
def test_aws_calls_rows_judge_writes_scans_and_publishes(
    monkeypatch: pytest.MonkeyPatch, calls: dict[str, int], block_met: bool, pass_met: bool
) -> None:
    # Given every job's life making these calls
    aws_calls = bench("aws_calls")
    units = SimpleNamespace(write_units=1.0, read_units=1.0)
    monkeypatch.setattr(aws_calls, "life_of_a_job", lambda *_: (Counter(calls), units))

    # When the benchmark judges them
    rows = {r["benchmark"]: r["ok"] for r in aws_calls.main()}

    # Then each block/review life is met only with no Scan, at most 3 writes and exactly 1 publish, and the
    # pass life with no Scan, at most 3 writes and no publish at all
    assert rows.pop("AWS calls, one pass job's life") is pass_met
    assert set(rows.values()) == {block_met}


@pytest.mark.parametrize(("score", "publishes"), [(0.95, 1), (0.01, 0)])
def test_aws_calls_counts_every_dynamodb_write_and_sns_publish_of_a_real_life(
    monkeypatch: pytest.MonkeyPatch, score: float, publishes: int
) -> None:
    # Given an Azure job's life on moto and the simulator, as the benchmark runs it
    aws_calls = bench("aws_calls")
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from verdict_relay.local.simulator import azure_job

    # When the benchmark counts its calls
    calls, capacity = aws_calls.life_of_a_job(
        "azure-review",
        azure_job("job-1", "InProgress"),
        azure_job("job-1", "Complete", adult_score=score),
    )

    # Then the registration and the stored verdict are counted as writes, with their units, and the
    # publish (made through the SNS client created on first use) only for a block verdict
    assert calls["dynamodb:UpdateItem"] >= 2
    assert calls["sns:Publish"] == publishes
    assert calls["dynamodb:Query"] >= 1
    assert capacity.write_units >= calls["dynamodb:UpdateItem"]
    assert capacity.read_units > 0


def test_capacity_units_follow_dynamodbs_sizing_rules() -> None:
    # Given the table of the template on moto, an item 1,500 bytes long in no index, and one as long in the
    # keys-only "unpublished" index
    aws_calls = bench("aws_calls")
    from verdict_relay.local.resources import create_resources

    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        table = create_resources(session, prefix="units").table_name
        raw = session.client("dynamodb")
        capacity = aws_calls.Capacity(raw)
        item = {"pk": {"S": "p"}, "sk": {"S": "s"}, "blob": {"S": "x" * (1500 - 10)}}
        assert aws_calls.item_size(item) == 1500
        indexed = {
            **item,
            "pk": {"S": "q"},
            "unpublished_provider": {"S": "azure-review"},
            "completed_epoch": {"N": "1700000000"},
        }
        units = []

        def write(operation: str, params: dict[str, Any]) -> None:
            capacity.before(operation, params)
            getattr(raw, {"PutItem": "put_item", "DeleteItem": "delete_item"}[operation])(**params)
            capacity.after(operation, params, {})
            units.append(capacity.write_units - sum(units))

        # When each is put, and the first deleted, then both read back strongly and queried
        write("PutItem", {"TableName": table, "Item": item})
        write("PutItem", {"TableName": table, "Item": indexed})
        write("DeleteItem", {"TableName": table, "Key": {"pk": item["pk"], "sk": item["sk"]}})
        big = {**item, "blob": {"S": "x" * (5000 - 10)}}
        bigger = {**item, "blob": {"S": "x" * (9000 - 10)}}
        capacity.after("GetItem", {}, {"Item": big})
        capacity.after("Query", {}, {"Items": [big]})
        capacity.after("Query", {"ConsistentRead": True}, {"Items": [bigger]})

    # Then a write costs a unit per started KB of the larger of the item before and after it, plus a unit per
    # started KB of each index entry it writes, a keys-only entry being the keys alone; a strong read costs a
    # unit per started 4 KB, an eventually consistent one half as much
    assert units == [2, 2 + 1, 2]
    assert capacity.read_units == 2 + 1 + 3


# --- bench/normalize.py ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ratio", "met"), [(2.9, True), (3.0, True), (3.01, False), (30.0, False)])
def test_normalize_rows_are_met_up_to_three_times_json_loads(
    monkeypatch: pytest.MonkeyPatch, ratio: float, met: bool
) -> None:
    normalize = bench("normalize")
    monkeypatch.setattr(normalize, "interleaved", lambda *_: (0.001, 0.001 * ratio, ratio))

    rows = normalize.main()

    assert len(rows) == len(normalize.PAYLOADS)
    assert {r["ok"] for r in rows} == {met}


def test_normalize_times_both_sides_on_the_same_bytes_with_caches_emptied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the benchmark's pairs of timed functions, kept instead of timed
    normalize = bench("normalize")
    pairs: list[tuple[Any, Any]] = []
    monkeypatch.setattr(normalize, "interleaved", lambda b, m: (pairs.append((b, m)), (1.0, 1.0, 1.0))[1])
    normalize.main()

    for (label, (provider, _)), (baseline, measured) in zip(normalize.PAYLOADS.items(), pairs, strict=True):
        # Then json.loads reads the bytes the adapter normalizes
        assert get_adapter(provider).parse(baseline()) == measured()[1], label
    # And each parse of the Alibaba timeline starts with its adapter's caches empty: every parse finds in them
    # what the first found, never what an earlier parse left
    alibaba = sys.modules["verdict_relay.providers.alibaba_mps"]
    caches = [v for v in vars(alibaba).values() if hasattr(v, "cache_info")]
    measured = pairs[list(normalize.PAYLOADS).index("alibaba-mps")][1]
    found = []
    for _ in range(2):
        measured()
        found.append([(c.cache_info().hits, c.cache_info().misses, c.cache_info().currsize) for c in caches])
    assert found[0] == found[1]
    assert sum(misses for _, misses, _ in found[0]) > 0


def test_interleaved_reports_measured_over_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a clock on which json.loads takes 1 unit a call and normalizing 4, but for one fast and one slow round
    normalize = bench("normalize")
    clock = [0.0]
    monkeypatch.setattr(normalize.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(normalize, "ROUNDS", 5)

    def costs(*units: float) -> Any:
        each = iter(units)
        return lambda: clock.__setitem__(0, clock[0] + next(each))

    # When the sides are measured (one call each to size a batch, then a call a round), then the figure is the
    # median of the rounds' ratios normalize / json.loads
    baseline = costs(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert normalize.interleaved(baseline, costs(4.0, 1.0, 4.0, 4.0, 4.0, 10.0)) == (1.0, 4.0, 4.0)


# --- bench/poller_throughput.py -------------------------------------------------------------------------------


def throughput(rate_share: float, over_limit: int) -> dict[str, Any]:
    providers = ("huawei-video", "huawei-audio", "huawei-image-batch", "azure-review", "alibaba-mps")
    ceilings = dict(zip(providers, (5.0, 5.0, 10.0, 10.0, 500.0), strict=True))
    return {
        "elapsed": 60.0,
        "cycles": 1,
        "rates": {p: c * rate_share for p, c in ceilings.items()},
        "ceilings": ceilings,
        "resolved": 1000,
        "over_limit": {p: over_limit if p == "azure-review" else 0 for p in providers},
        "requests": dict.fromkeys(providers, 100),
        "cpu": {"poller": 0.5, "aws": 0.9, "simulator": 0.1},
        "poller_ms_per_job": 5.0,
        "store_timeouts": 0,
    }


@pytest.mark.parametrize(
    ("share", "over", "met"),
    [(0.95, 0, (True, True)), (0.9, 0, (True, True)), (0.89, 0, (False, True)), (1.0, 1, (True, False))],
)
def test_poller_throughput_rows_judge_the_share_of_the_ceiling_and_requests_over_the_limit(
    monkeypatch: pytest.MonkeyPatch, share: float, over: int, met: tuple[bool, bool]
) -> None:
    poller_throughput = bench("poller_throughput")
    monkeypatch.setattr(poller_throughput, "measure", lambda: throughput(share, over))

    rows = poller_throughput.main()

    assert tuple(r["ok"] for r in rows) == met


DOCUMENTED_CEILINGS = {
    # PROVIDERS.md: Huawei's video and audio 10 requests/s per account (5 each), one job a request; image
    # batches and Azure 10/s, one job a request; Alibaba QueryMediaCensorJobList 50/s, 10 jobs a request
    "huawei-video": 5.0,
    "huawei-audio": 5.0,
    "huawei-image-batch": 10.0,
    "azure-review": 10.0,
    "alibaba-mps": 50.0 * 10,
}


def test_poller_throughput_ceiling_is_the_documented_rate_limits_times_jobs_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the throughput benchmark run on a tiny backlog, in its own processes, for a second
    poller_throughput = bench("poller_throughput")
    monkeypatch.setattr(poller_throughput, "WINDOW_S", 1.0)
    monkeypatch.setattr(poller_throughput, "JOBS_PER_PROVIDER", 2)

    # When it measures
    result = poller_throughput.measure()

    # Then the ceiling it judges against is what the providers document, and the simulator counted every
    # request it refused
    assert result["ceilings"] == DOCUMENTED_CEILINGS
    assert result["over_limit"] == dict.fromkeys(DOCUMENTED_CEILINGS, 0)
    assert 0 < result["resolved"] <= len(DOCUMENTED_CEILINGS) * 2


# --- bench/cold_start.py --------------------------------------------------------------------------------------


def test_cold_start_judges_each_handler_against_the_floor_the_issue_defines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given measured seconds: the floor 1, the references 1.2, the poller at 1.3 x the floor, the callback 1.31 x
    cold_start = bench("cold_start")
    measured: dict[str, tuple[str, dict[str, str]]] = {}

    def seconds(python: str, codes: dict[str, tuple[str, dict[str, str]]]) -> dict[str, float]:
        measured.update(codes)
        handlers = {"verdict_relay.handlers.callback": 1.31, "verdict_relay.handlers.poller": 1.3}
        return {name: handlers.get(name, 1.2 if name.startswith("reference") else 1.0) for name in codes}

    monkeypatch.setattr(cold_start, "build_artifact", lambda python, target: None)
    monkeypatch.setattr(cold_start, "measure", seconds)
    monkeypatch.setattr(cold_start, "imports", lambda *_: [])
    monkeypatch.setattr(cold_start, "IMPORTTIME_RUNS", 1)

    # When the rows are judged
    rows = {r["benchmark"]: r["ok"] for r in cold_start.measure_on(sys.executable, {})}

    # Then a handler is met up to 1.3 x the floor
    assert rows["cold start callback"] is False
    assert rows["cold start poller"] is True
    assert rows["cold start poll_worker"] is True
    # And the floor is import boto3 + the DynamoDB and SNS clients + import pydantic, with no bytecode written
    floor, _ = measured["floor"]
    for part in ("import boto3", 'boto3.client("dynamodb")', 'boto3.client("sns")', "import pydantic"):
        assert part in floor
    assert all(env["PYTHONDONTWRITEBYTECODE"] == "1" for _, env in measured.values())


def test_cold_start_takes_the_median_of_fresh_processes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given code that prints how many processes ran it before, kept in a file
    cold_start = bench("cold_start")
    monkeypatch.setattr(cold_start, "RUNS", 5)
    count = tmp_path / "count"
    count.write_text("0")
    code = f"import pathlib; p = pathlib.Path({str(count)!r}); n = int(p.read_text()); p.write_text(str(n + 1)); print(n * n)"

    # When it is measured, then each round ran it in a new process and the figure is the median
    assert cold_start.measure(sys.executable, {"c": (code, {})}) == {"c": 4}


# --- bench/callback_latency.py --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "slow_ms", "met"),
    [("alibaba-mps", 4999.0, True), ("alibaba-mps", 5001.0, False), ("huawei-video", 3001.0, False)],
)
def test_callback_latency_rows_miss_only_when_p99_exceeds_the_deadline(
    monkeypatch: pytest.MonkeyPatch, provider: str, slow_ms: float, met: bool
) -> None:
    # Given a provider's callbacks answered in 1 ms but for its 2 slowest in 100
    callback_latency = bench("callback_latency")
    latencies = [1.0] * 98 + [slow_ms] * 2
    monkeypatch.setattr(callback_latency, "RUNS", 100)
    monkeypatch.setattr(callback_latency, "series", lambda port, build, runs, expected: latencies[:runs])
    aws = SimpleNamespace(cpu_seconds=lambda: 0.0)

    # When its row is judged
    [judged] = callback_latency.latency_rows(aws, 0, {provider: (lambda: None, 200, "signed")})

    # Then it is missed only when p99 is past the provider's acknowledgement deadline
    assert judged["ok"] is met


def test_callback_latency_stops_on_an_unexpected_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    callback_latency = bench("callback_latency")
    monkeypatch.setattr(callback_latency, "send", lambda port, request: (500, 0.001))

    with pytest.raises(RuntimeError, match="500"):
        callback_latency.series(0, lambda: ("/", b"", {}), 3, 200)


def test_poller_throughput_rates_count_the_window_while_a_backlog_lasted_and_up_to_its_last_job_once_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a backlog of 4 jobs a provider; one provider resolved 2 in a 10 s window, another all 4 within 2 s
    poller_throughput = bench("poller_throughput")
    monkeypatch.setattr(poller_throughput, "JOBS_PER_PROVIDER", 4)
    started = datetime(2026, 1, 1, tzinfo=UTC)
    at = [started + timedelta(seconds=s) for s in (0.5, 1.0, 1.5, 2.0)]

    # When their rates are worked out
    rates = poller_throughput.provider_rates({"slow": at[:2], "done": at}, started, 10.0)

    # Then the first is judged over the whole window, the second up to its last job (the rest was idle)
    assert rates == {"slow": 0.2, "done": 2.0}


def test_poller_throughput_counts_only_the_jobs_the_table_holds_finished() -> None:
    # Given the template's table on moto with the benchmark's backlog of one provider, one job finished, one
    # still running and one never polled
    poller_throughput = bench("poller_throughput")
    from verdict_relay.dal.archive import PayloadArchive
    from verdict_relay.dal.store import JobStore, NextPoll
    from verdict_relay.local.resources import create_resources
    from verdict_relay.models.verdict import JobStatus, Suggestion, Verdict

    now = datetime.now(UTC)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        resources = create_resources(session, prefix="resolved")
        table, dynamodb = resources.table_name, session.client("dynamodb")
        store = JobStore(table, dynamodb, PayloadArchive(resources.bucket, lambda: session.client("s3")))
        for job_id in ("done", "running", "waiting"):
            store.register("azure-review", job_id, {}, now, first_poll_at=now)

        def observed(provider: str, job_id: str, status: JobStatus) -> Verdict:
            return Verdict(provider=provider, job_id=job_id, status=status, suggestion=Suggestion.PASS)  # type: ignore[call-arg]

        store.record(observed("azure-review", "done", JobStatus.SUCCEEDED), None, now, publish=False)
        store.record(
            observed("azure-review", "running", JobStatus.RUNNING),
            None,
            now,
            publish=False,
            next_poll=NextPoll(now + timedelta(minutes=1), 1),
        )

        # When the benchmark reads back what was resolved
        found = poller_throughput.resolutions(dynamodb, table)

    # Then it counts the finished job alone, at the time it was stored
    assert {provider: len(times) for provider, times in found.items() if times} == {"azure-review": 1}
    assert found["azure-review"][0].timestamp() == pytest.approx(now.timestamp(), abs=1)
