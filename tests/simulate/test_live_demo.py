"""The live loop end to end: a real gateway subprocess, real HTTP, a real DuckDB store.

One small run (about 1,600 requests, a popularity champion so the injected difference is
large) is shared by the tests; each reads the kept event store on its own with DuckDB SQL,
independently of the metrics layer the demo used.
"""

from __future__ import annotations

import io
import json
import signal
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from proving.cli.demo import render
from proving.errors import StatsInputError
from proving.simulate.demo import run_demo
from proving.simulate.live_demo import CONTROL, DEPLOYMENT, TREATMENT, LiveDemoResult, run_live_demo
from proving.ui.report import write_demo_report

pytestmark = pytest.mark.slow  # a real gateway subprocess and ~1,600 HTTP requests


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("live")


@pytest.fixture(scope="module")
def live(workdir: Path) -> LiveDemoResult:
    return run_live_demo(
        1_600, seed=7, shadow_share=0.2, champion="popularity", n_history=6_000, workdir=workdir
    )


@pytest.fixture(scope="module")
def con(live: LiveDemoResult, workdir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(workdir / "events.duckdb"), read_only=True)


def _phase(live: LiveDemoResult, name: str) -> dict[str, int]:
    return next(t for t in live.traffic if t.phase == name).variants


def test_every_request_was_answered_and_the_gateway_stopped_cleanly(live: LiveDemoResult) -> None:
    for t in live.traffic:
        assert t.n_failed == 0 and t.n_ok == t.n_requests > 0, t.errors
        assert t.outcomes_accepted == t.outcomes_posted > 0
    assert set(_phase(live, "shadow")) == {CONTROL}
    assert set(_phase(live, "ab")) == {CONTROL, TREATMENT}
    assert live.gateway_exit_code in (0, -signal.SIGTERM)
    assert live.spec_versions == (1, 2) and "hot reload of spec version 2 (ab)" in live.switch
    assert live.warnings == ()


def test_exposures_predictions_and_outcomes_share_the_request_ids(
    live: LiveDemoResult, con: duckdb.DuckDBPyConnection
) -> None:
    served = con.sql(
        "select request_id, unit_id, variant from predictions where role = 'served'"
    ).fetchall()
    ids = [r[0] for r in served]
    assert len(ids) == len(set(ids)) == sum(t.n_requests for t in live.traffic)
    outcome_ids = {r[0] for r in con.sql("select request_id from outcomes").fetchall()}
    assert outcome_ids <= set(ids)
    assert len(outcome_ids) == sum(t.outcomes_accepted for t in live.traffic)
    # Every served unit was exposed to the variant that answered it (no fallbacks here).
    exposed = con.sql(
        f"select unit_id, variant from exposures where experiment = '{DEPLOYMENT}'"
    ).fetchall()
    assert {(u, v) for _, u, v in served} == set(exposed)
    assert live.stored.consistent
    assert live.stored.served_predictions == len(ids)


def test_shadow_predictions_were_logged_and_never_returned(
    live: LiveDemoResult, con: duckdb.DuckDBPyConnection
) -> None:
    pairs = con.sql(
        "select s.request_id, s.output, h.output, h.variant from predictions s "
        "join predictions h on s.request_id = h.request_id and h.role = 'shadow' "
        "where s.role = 'served'"
    ).fetchall()
    assert len(pairs) == live.shadow.n_pairs == _phase(live, "shadow")[CONTROL]
    assert {p[3] for p in pairs} == {TREATMENT}
    assert all(p[0].startswith("shadow-") for p in pairs)  # no shadow copies in the A/B phase
    differ = [p for p in pairs if json.loads(p[1]) != json.loads(p[2])]
    assert len(differ) == live.shadow.hidden_disagreements > 0
    assert live.shadow.returned_from_shadow == 0
    agreement = 1 - len(differ) / len(pairs)
    assert agreement == pytest.approx(live.shadow.agreement)
    assert live.shadow.covered  # the true agreement of the two models is in the interval


def test_the_ab_analysis_recovers_the_injected_difference(
    live: LiveDemoResult, con: duckdb.DuckDBPyConnection
) -> None:
    by_metric = {m.metric: m for m in live.ab}
    converted = by_metric["converted"]
    assert converted.recovered and converted.result.p_value is not None
    assert converted.result.p_value < 0.01
    assert by_metric["revenue"].covered
    assert by_metric["latency_ms"].true_lift is None and by_metric["latency_ms"].recovered is None
    # The metrics layer's arm means, recomputed here in plain SQL from the stored events.
    units = con.sql(
        "select e.variant, e.unit_id, max(o.unit_id is not null)::int as converted "
        "from exposures e left join outcomes o on o.unit_id = e.unit_id "
        "where e.unit_id like 'u-%' group by 1, 2"
    ).df()
    means = units.groupby("variant").converted.agg(["mean", "count"])
    r = converted.result
    assert r.n_control == means.loc[CONTROL, "count"]
    assert r.n_treatment == means.loc[TREATMENT, "count"]
    assert r.control_mean == pytest.approx(means.loc[CONTROL, "mean"])
    assert r.treatment_mean == pytest.approx(means.loc[TREATMENT, "mean"])
    # Welch's t-test on the unit values (scipy) gives the same absolute difference test.
    a = units[units.variant == TREATMENT].converted.to_numpy(dtype=float)
    b = units[units.variant == CONTROL].converted.to_numpy(dtype=float)
    assert stats.ttest_ind(a, b, equal_var=False).pvalue < 1e-3
    assert np.mean(a) > np.mean(b)


def test_the_demo_report_renders_the_live_section(live: LiveDemoResult, tmp_path: Path) -> None:
    report = replace(run_demo(20_000, seed=3), live=live)
    console = Console(file=io.StringIO(), width=150)
    render(report, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for title in ("Live traffic to the gateway", "Shadow phase", "A/B phase", "Event store"):
        assert title in text
    assert "converted" in text and "consistent" in text
    page = write_demo_report(report, tmp_path / "demo.html").read_text()
    assert page.count('class="plotly-graph-div"') == 3 and "Live loop" in page


def test_the_result_is_json(live: LiveDemoResult) -> None:
    data = json.loads(live.to_json())
    assert data["deployment"] == DEPLOYMENT
    assert {m["metric"] for m in data["ab"]} == {"converted", "revenue", "latency_ms"}
    assert data["truth"]["metrics"]["converted"]["treatment_mean"] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_requests": 10}, r"n_requests must be >= 100 .* got 10 and 0.2"),
        (
            {"n_requests": 500, "shadow_share": 1.0},
            r"shadow_share in \[0.05, 0.95\]; got 500 and 1.0",
        ),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(StatsInputError, match=message):
        run_live_demo(**kwargs)  # type: ignore[arg-type]
