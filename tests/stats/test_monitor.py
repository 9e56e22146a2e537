"""The sequential monitor: decisions, reasons, history, JSON, and agreement with the engine."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from proving.errors import StatsInputError
from proving.stats.analyze import analyze
from proving.stats.effects import mean_moments
from proving.stats.group_sequential import design_boundaries
from proving.stats.monitor import MonitorLook, MonitorSpec, SequentialMonitor
from proving.stats.sequential import always_valid_compare
from proving.stats.sufficient import ArmStats

EMPTY = ArmStats(n=0, sum=0.0, sum_squares=0.0)


def _feed(
    monitor: SequentialMonitor,
    rng: np.random.Generator,
    looks: int,
    batch: int,
    mean_c: float,
    mean_t: float,
    sd: float = 10.0,
) -> list[MonitorLook]:
    c = t = EMPTY
    out = []
    for _ in range(looks):
        c = c + ArmStats.from_values(rng.normal(mean_c, sd, batch))
        t = t + ArmStats.from_values(rng.normal(mean_t, sd, batch))
        out.append(monitor.update(c, t))
    return out


def test_no_data_is_need_more_data_not_pass_or_fail() -> None:
    m = SequentialMonitor(metric="ctr", effect="absolute")
    assert m.decision == "need_more_data"
    look = m.update(EMPTY, EMPTY)
    assert look.decision == "need_more_data"
    assert "min_n = 100" in look.reason
    assert look.estimate is None and look.p_value is None
    # Enough units but zero variance: still no decision, and the reason says why.
    flat = ArmStats.from_values(np.full(200, 3.0))
    look = m.update(flat, flat)
    assert look.decision == "need_more_data"
    assert "zero variance" in look.reason


def test_confidence_sequence_stops_for_harm_with_the_reason() -> None:
    m = SequentialMonitor(metric="latency", effect="absolute", higher_is_better=False)
    _feed(m, np.random.default_rng(1), 30, 500, 100.0, 102.0)
    stop = m.stopped_at
    assert stop is not None and stop.decision == "stop_for_harm"
    assert stop.running_ci_lower is not None and stop.running_ci_lower > 0
    for text in ("metric 'latency'", "confidence sequence", "N* = 5000", "n = ", "excludes 0"):
        assert text in stop.reason
    assert stop.statistic is not None and stop.threshold is not None
    assert abs(stop.statistic) >= stop.threshold
    # The decision sticks; later looks still record the data.
    assert m.history[-1].decision == "stop_for_harm"
    assert m.history[-1].reason.startswith(f"stopped at look {stop.look}")
    assert m.history[-1].n_control > stop.n_control


def test_monitor_agrees_with_the_vectorized_engine() -> None:
    rng = np.random.default_rng(2)
    m = SequentialMonitor(metric="m", effect="relative", method="msprt")
    looks = _feed(m, rng, 8, 300, 50.0, 50.5)
    c = t = EMPTY
    rng = np.random.default_rng(2)
    running = 1.0
    for look in looks:
        c = c + ArmStats.from_values(rng.normal(50.0, 10.0, 300))
        t = t + ArmStats.from_values(rng.normal(50.5, 10.0, 300))
        mc, vc = mean_moments(c.n, c.sum, c.sum_squares)
        mt, vt = mean_moments(t.n, t.sum, t.sum_squares)
        av = always_valid_compare(mc, vc, c.n, mt, vt, t.n)
        running = min(running, float(av.p_value[0]))
        assert look.estimate == pytest.approx(float(av.estimate[0]), rel=1e-12)
        assert look.ci_lower == pytest.approx(float(av.ci_lower[0]), rel=1e-12)
        assert look.p_value == pytest.approx(running, rel=1e-12)


def test_ratio_and_cuped_statistics_match_analyze() -> None:
    rng = np.random.default_rng(3)
    arms = {}
    for name, lift in (("control", 0.0), ("b", 0.05)):
        pre = rng.gamma(2.0, 2.0, 3000)
        sessions = rng.poisson(3.0, 3000) + 1.0
        clicks = rng.binomial(sessions.astype(int), 0.2 + lift) + 0.3 * pre
        arms[name] = ArmStats.from_values(clicks, denominators=sessions, covariates={"pre": pre})
    m = SequentialMonitor(metric="cps", kind="ratio", effect="absolute")
    look = m.update(arms["control"], arms["b"])
    rows = [
        {"variant": v, "metric": "cps", "kind": "ratio", **a.to_flat()} for v, a in arms.items()
    ]
    ref = analyze(rows, effect="absolute", method="z").comparisons[0]
    assert look.cuped and ref.cuped
    assert look.estimate == pytest.approx(ref.estimate, rel=1e-10)
    assert look.std_err == pytest.approx(ref.std_err, rel=1e-10)
    no_cuped = SequentialMonitor(metric="cps", kind="ratio", effect="absolute", cuped=False)
    plain = no_cuped.update(arms["control"], arms["b"])
    assert not plain.cuped
    assert look.std_err is not None and plain.std_err is not None
    assert look.std_err < plain.std_err


def test_aa_monitor_false_stops_stay_below_alpha() -> None:
    rng = np.random.default_rng(4)
    sims, looks = 300, 15
    stops = 0
    for _ in range(sims):
        m = SequentialMonitor(metric="m", effect="absolute", min_n=100)
        # Exact cumulative normal statistics per batch (see test_sequential).
        c = t = EMPTY
        for _ in range(looks):
            parts = []
            for _arm in range(2):
                s = rng.normal(0.0, math.sqrt(200.0))
                q = rng.chisquare(199) + s * s / 200.0
                parts.append(ArmStats(n=200, sum=s, sum_squares=q))
            c, t = c + parts[0], t + parts[1]
            m.update(c, t)
        stops += m.stopped_at is not None
    rate = stops / sims
    print(f"A/A monitor false stop rate {rate:.3f} over {looks} looks (alpha 0.05)")
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)


def test_group_sequential_uses_the_spending_boundaries_and_stops() -> None:
    spec = MonitorSpec(
        metric="m", method="group_sequential", effect="absolute", max_n=8000, min_n=2
    )
    m = SequentialMonitor(spec)
    published = [4.333, 2.963, 2.359, 2.014]
    se = 0.1
    zs = [1.0, 2.5, 2.4]  # crosses at look 3 (2.4 >= 2.359)
    for k, z in enumerate(zs):
        n = 1000.0 * (k + 1)
        look = m.observe(0.0, se**2 / 2, n, z * se, se**2 / 2, n)
        assert look.information_fraction == pytest.approx((k + 1) / 4)
        assert look.threshold == pytest.approx(published[k], abs=1e-3)
        assert look.ci_lower == pytest.approx(z * se - look.threshold * se)
    assert [h.decision for h in m.history] == ["continue", "continue", "stop_for_effect"]
    assert m.history[0].p_value is None
    # Stage-wise p-value at the stopping look, by scipy's multivariate normal.
    t = np.array([0.25, 0.5, 0.75])
    corr = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    stay = stats.multivariate_normal(np.zeros(3), corr, seed=3).cdf(
        np.array([published[0], published[1], 2.4]),
        lower_limit=-np.array([published[0], published[1], 2.4]),
    )
    assert m.history[-1].p_value == pytest.approx(1 - stay, abs=2e-4)
    assert m.history[-1].p_value is not None and m.history[-1].p_value <= 0.05


def test_group_sequential_final_look_without_crossing_is_inconclusive() -> None:
    m = SequentialMonitor(
        metric="m", method="group_sequential", effect="absolute", max_n=4000, min_n=2
    )
    m.observe(0.0, 0.005, 1000, 0.05, 0.005, 1000)
    m.observe(0.0, 0.0025, 2500, 0.05, 0.0025, 2500)  # beyond max_n: final, spends the rest
    assert m.decision == "stop_inconclusive"
    assert m.history[-1].alpha_spent == pytest.approx(0.05, abs=1e-8)
    assert m.history[-1].p_value is not None and m.history[-1].p_value > 0.05


def test_repeated_looks_without_new_units_spend_nothing() -> None:
    m = SequentialMonitor(
        metric="m", method="group_sequential", effect="absolute", max_n=10000, min_n=2
    )
    m.observe(0.0, 0.01, 1000, 0.1, 0.01, 1000)
    look = m.observe(0.0, 0.01, 1000, 0.1, 0.01, 1000)
    assert look.information_fraction is None and "no alpha spent" in look.reason
    expected = design_boundaries([0.2, 0.5]).upper[1]
    assert m.observe(0.0, 0.01, 2500, 0.1, 0.01, 2500).threshold == pytest.approx(expected)


def test_one_sided_guardrail_watches_harm_only() -> None:
    m = SequentialMonitor(metric="ctr", effect="absolute", alternative="less")
    _feed(m, np.random.default_rng(5), 20, 500, 10.0, 12.0)  # better, not watched
    assert m.stopped_at is None
    g = SequentialMonitor(metric="ctr", effect="absolute", alternative="less")
    _feed(g, np.random.default_rng(5), 20, 500, 10.0, 8.0)
    assert g.decision == "stop_for_harm"
    assert g.history[-1].ci_lower is None  # one-sided: no lower bound


def test_cs_with_max_n_stops_inconclusive() -> None:
    m = SequentialMonitor(metric="m", effect="absolute", max_n=4000)
    _feed(m, np.random.default_rng(6), 5, 500, 10.0, 10.0)
    assert m.decision == "stop_inconclusive"
    assert "max_n = 4000" in m.history[3].reason


@pytest.mark.parametrize("method", ["confidence_sequence", "group_sequential"])
def test_history_round_trips_through_json(method: str) -> None:
    m = SequentialMonitor(metric="m", effect="relative", method=method, max_n=20000)  # type: ignore[arg-type]
    _feed(m, np.random.default_rng(7), 6, 400, 10.0, 11.0)
    back = SequentialMonitor.from_json(m.to_json())
    assert back.to_dict() == m.to_dict()
    assert json.loads(m.to_json())["spec"]["method"] == method
    # A reloaded monitor continues where it left off.
    rng = np.random.default_rng(8)
    c = ArmStats.from_values(rng.normal(10, 10, 5000))
    t = ArmStats.from_values(rng.normal(11, 10, 5000))
    assert back.update(c, t).look == len(m.history) + 1


def test_mismatched_statistics_raise() -> None:
    m = SequentialMonitor(metric="m")
    ratio = ArmStats.from_values([1.0, 2.0], denominators=[1.0, 1.0])
    with pytest.raises(StatsInputError, match="different variables"):
        m.update(EMPTY, ratio)
    with pytest.raises(StatsInputError, match="monitor kind is 'mean' but the statistics have"):
        m.update(ratio, ratio)
    with pytest.raises(StatsInputError, match="either a MonitorSpec or keyword"):
        SequentialMonitor(MonitorSpec(), metric="x")
    with pytest.raises(StatsInputError, match="`spec` and `history`"):
        SequentialMonitor.from_dict({"history": []})


def test_prior_reports_the_posterior_beside_each_look() -> None:
    from proving.stats.bayesian import NormalPrior, bayesian_compare

    prior = NormalPrior(std=0.05)
    m = SequentialMonitor(metric="m", effect="relative", prior=prior)
    looks = _feed(m, np.random.default_rng(9), 4, 300, 50.0, 51.0)
    c = t = EMPTY
    rng = np.random.default_rng(9)
    for look in looks:
        c = c + ArmStats.from_values(rng.normal(50.0, 10.0, 300))
        t = t + ArmStats.from_values(rng.normal(51.0, 10.0, 300))
        mc, vc = mean_moments(c.n, c.sum, c.sum_squares)
        mt, vt = mean_moments(t.n, t.sum, t.sum_squares)
        ref = bayesian_compare(mc, vc, c.n, mt, vt, t.n, prior=prior)
        assert look.chance_to_win == pytest.approx(float(ref.chance_to_win[0]), rel=1e-12)
        assert look.posterior_mean == pytest.approx(float(ref.posterior_mean[0]), rel=1e-12)
    back = SequentialMonitor.from_json(m.to_json())
    assert back.spec.prior == prior
    with pytest.raises(StatsInputError, match="monitor `prior` needs relative_method 'delta'"):
        MonitorSpec(prior=prior, relative_method="log")
