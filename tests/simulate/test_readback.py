"""Reading the live loop back: shadow pairs, the clustered agreement interval, store checks.

Events are written to a real DuckDB store by hand, with a known agreement and known
faults, and read back through the metrics layer's engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from proving.metrics import MetricsEngine, connect
from proving.simulate.readback import LatencyStats, compare_shadow, count_stored
from proving.simulate.traffic import PhaseRun, ServedRecord
from proving.telemetry.duckdb_store import DuckDBStore
from proving.telemetry.events import Event, ExposureEvent, OutcomeEvent, PredictionEvent


def _prediction(rid: str, unit: str, role: str, variant: str, output: int) -> PredictionEvent:
    return PredictionEvent(
        request_id=rid, unit_id=unit, deployment="rec", experiment="rec", variant=variant,
        model=variant, model_version="1", role=role, output=output, score=float(output),
        latency_ms=1.0 if role == "served" else 3.0,
    )  # fmt: skip


def _store(path: Path, events: list[Event]) -> MetricsEngine:
    store = DuckDBStore(str(path))
    store.write_events(events)
    store.close()
    return connect(f"duckdb:///{path}")


def _world(n_units: int, seed: int) -> tuple[list[Event], list[ServedRecord], np.ndarray]:
    """Users with 1-4 requests each; a user's requests agree or not together, mostly."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    records: list[ServedRecord] = []
    agree: list[float] = []
    units: list[int] = []
    for u in range(n_units):
        unit = f"u-{u}"
        events.append(ExposureEvent(experiment="rec", variant="champion", unit_id=unit))
        same = rng.random() < 0.6
        for k in range(int(rng.integers(1, 5))):
            rid = f"r-{u}-{k}"
            match = same if rng.random() < 0.9 else not same
            events.append(_prediction(rid, unit, "served", "champion", 1))
            events.append(_prediction(rid, unit, "shadow", "challenger", 1 if match else 2))
            records.append(ServedRecord(len(records), rid, unit, 200, 5.0, "champion", 1))
            agree.append(float(match))
            units.append(u)
    return events, records, np.column_stack([agree, units])


def _run(records: list[ServedRecord], accepted: int = 0) -> PhaseRun:
    return PhaseRun("shadow", "rec", tuple(records), accepted, accepted, 1.0, 4)


def test_agreement_and_its_clustered_interval_match_statsmodels(tmp_path: Path) -> None:
    events, records, data = _world(150, seed=3)
    engine = _store(tmp_path / "e.duckdb", events)
    result = compare_shadow(engine, _run(records), 0.6, "champion", "challenger")
    assert result.n_pairs == len(records) and result.n_units == 150
    assert result.agreement == pytest.approx(data[:, 0].mean())
    # OLS of the agreement indicator on a constant with cluster-robust (by user) errors:
    # its correction G/(G-1) * (N-1)/(N-K) with K=1 is the delta-method ratio variance.
    fit = sm.OLS(data[:, 0], np.ones(len(data))).fit(
        cov_type="cluster", cov_kwds={"groups": data[:, 1].astype(int)}, use_t=False
    )
    lo, hi = fit.conf_int(alpha=0.05)[0]
    assert result.ci_lower == pytest.approx(lo, rel=1e-9)
    assert result.ci_upper == pytest.approx(hi, rel=1e-9)
    assert result.returned_from_shadow == 0
    assert result.hidden_disagreements == int(len(data) - data[:, 0].sum())
    assert result.served_latency.p50 == 1.0 and result.shadow_latency.p50 == 3.0


def test_an_answer_from_the_shadow_is_caught(tmp_path: Path) -> None:
    events, records, _ = _world(20, seed=4)
    # The caller got the challenger's item for one request: a leak of the shadow.
    leaked = records[0]
    records[0] = ServedRecord(0, leaked.request_id, leaked.unit_id, 200, 5.0, "champion", 2)
    engine = _store(tmp_path / "e.duckdb", events)
    result = compare_shadow(engine, _run(records), 0.6, "champion", "challenger")
    assert result.returned_from_shadow == 1


def test_one_user_gives_an_explained_null(tmp_path: Path) -> None:
    events: list[Event] = [
        ExposureEvent(experiment="rec", variant="champion", unit_id="u1"),
        _prediction("r1", "u1", "served", "champion", 1),
        _prediction("r1", "u1", "shadow", "challenger", 1),
    ]
    records = [ServedRecord(0, "r1", "u1", 200, 1.0, "champion", 1)]
    engine = _store(tmp_path / "e.duckdb", events)
    result = compare_shadow(engine, _run(records), 0.5, "champion", "challenger")
    assert result.agreement is None and result.ci_lower is None
    assert result.reason is not None and "1 user(s)" in result.reason
    assert not result.covered


def test_store_checks_count_every_fault(tmp_path: Path) -> None:
    events: list[Event] = [
        ExposureEvent(experiment="rec", variant="champion", unit_id="u1"),
        _prediction("r1", "u1", "served", "champion", 1),
        _prediction("r2", "u2", "served", "champion", 1),  # u2 was never exposed
        _prediction("r9", "u9", "served", "champion", 1),  # nobody got this answer
        OutcomeEvent(unit_id="u1", request_id="r1", name="purchase", value=3.0),
        OutcomeEvent(unit_id="u5", request_id="r5", name="purchase", value=3.0),  # unjoined
    ]
    records = [
        ServedRecord(0, "r1", "u1", 200, 1.0, "champion", 1),
        ServedRecord(1, "r2", "u2", 200, 1.0, "champion", 1),
        ServedRecord(2, "r3", "u1", 200, 1.0, "champion", 1),  # answered, never logged
    ]
    engine = _store(tmp_path / "e.duckdb", events)
    counts = count_stored(engine, [_run(records, accepted=3)], "rec")
    assert (counts.served_missing, counts.served_extra) == (1, 1)
    assert counts.exposures_missing == 1
    assert counts.outcomes_unjoined == 1
    assert counts.outcomes_missing == 1  # 3 acknowledged, 2 stored
    assert not counts.consistent


def test_latency_stats_use_numpy_percentiles() -> None:
    values = np.random.default_rng(0).exponential(2.0, 1001)
    stats = LatencyStats.of("served", "champion", values)
    assert stats.n == 1001 and stats.mean == pytest.approx(values.mean())
    assert (stats.p50, stats.p90, stats.p99) == tuple(np.percentile(values, [50, 90, 99]))
    assert LatencyStats.of("shadow", "challenger", []).p50 is None
