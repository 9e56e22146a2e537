"""Quantile metrics: order statistics, bootstrap agreement and coverage by simulation."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from scipy import stats

import proving.stats.quantiles as quantiles_module
from proving.errors import StatsInputError
from proving.stats.quantiles import (
    QuantileResult,
    QuantileStats,
    compare_quantiles,
    quantile_levels,
    rank_bounds,
)
from proving.stats.sufficient import ArmStats


def test_docstring_examples_run() -> None:
    assert doctest.testmod(quantiles_module).failed == 0


def test_from_values_picks_the_documented_order_statistics() -> None:
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 30.0, 5_001)
    s = np.sort(x)
    for nu in (0.5, 0.9, 0.99):
        q = QuantileStats.from_values(x, nu)
        lo, hi = rank_bounds(x.size, nu)
        z = stats.norm.ppf(0.975)
        assert lo == math.floor(x.size * nu - z * math.sqrt(x.size * nu * (1 - nu)))
        assert hi == math.ceil(x.size * nu + z * math.sqrt(x.size * nu * (1 - nu)))
        assert q.quantile == np.quantile(x, nu, method="inverted_cdf")
        assert (q.lower, q.upper) == (s[lo - 1], s[hi - 1])


@pytest.mark.parametrize("method", ["linear", "inverted_cdf"])
def test_quantile_levels_hit_the_order_statistics_exactly(method: str) -> None:
    rng = np.random.default_rng(10)
    for n in (401, 5_000, 77_777):
        x = rng.lognormal(0, 1, n)
        s = np.sort(x)
        for nu in (0.5, 0.9, 0.99):
            lo, hi = rank_bounds(n, nu)
            levels = quantile_levels(n, nu, method=method)  # type: ignore[arg-type]
            got = np.quantile(x, levels, method=method)
            assert got.tolist() == pytest.approx([s[lo - 1], s[hi - 1]], rel=1e-12)


def test_from_flat_reads_a_metrics_layer_row() -> None:
    # The row the metrics layer computes in SQL, reproduced with numpy.
    rng = np.random.default_rng(11)
    events = rng.integers(1, 8, 500)
    ids = np.repeat(np.arange(500), events)
    x = rng.lognormal(0, 0.5, ids.size) * rng.lognormal(0, 0.5, 500)[ids]
    estimate = float(np.quantile(x, 0.9))
    s = np.bincount(ids, weights=(x <= estimate).astype(float))
    c = np.bincount(ids).astype(float)
    row = {
        "quantile": 0.9,
        "level": "event",
        "estimate": estimate,
        "n": 500,
        "n_events": ids.size,
        "sum": s.sum(),
        "sum_squares": s @ s,
        "denominator_sum": c.sum(),
        "denominator_sum_squares": c @ c,
        "sum_products": s @ c,
    }
    lo, hi = np.quantile(x, quantile_levels(ids.size, 0.9))
    from_row = QuantileStats.from_flat(row, lower=lo, upper=hi)
    direct = QuantileStats.from_values(x, 0.9, clusters=ids)
    assert from_row.std_err()[0] == pytest.approx(direct.std_err()[0], rel=0.05)
    unit_row = {**row, "level": "unit"}
    assert QuantileStats.from_flat(unit_row, lower=lo, upper=hi).clusters is None
    with pytest.raises(StatsInputError, match="field `sum_products` must be a number"):
        QuantileStats.from_flat({**row, "sum_products": "x"}, lower=lo, upper=hi, where="r1")
    with pytest.raises(StatsInputError, match="`n` must be at least 2"):
        quantile_levels(1, 0.5)


def test_standard_error_matches_asymptotic_theory() -> None:
    # Exponential(1): Q(nu) = -log(1 - nu), f(Q) = 1 - nu, se = sqrt(nu (1 - nu) / n) / f.
    rng = np.random.default_rng(1)
    n = 400_000
    x = rng.exponential(1.0, n)
    for nu in (0.5, 0.9, 0.99):
        se, reason = QuantileStats.from_values(x, nu).std_err()
        assert reason is None and se is not None
        assert se == pytest.approx(math.sqrt(nu * (1 - nu) / n) / (1 - nu), rel=0.08)


def _bootstrap_se(x: np.ndarray, y: np.ndarray, nu: float, rng: np.random.Generator) -> float:
    k = math.ceil(nu * x.size) - 1  # the same (inverted-cdf) sample quantile
    bx = np.partition(x[rng.integers(0, x.size, (600, x.size))], k, axis=1)[:, k]
    by = np.partition(y[rng.integers(0, y.size, (600, y.size))], k, axis=1)[:, k]
    return float(np.std(by - bx, ddof=1))


@pytest.mark.parametrize("nu", [0.5, 0.9, 0.99])
def test_agrees_with_bootstrap_within_a_few_percent(nu: float) -> None:
    rng = np.random.default_rng(2)
    ratios = []
    for _ in range(15):
        x, y = rng.lognormal(4, 0.6, 3_000), rng.lognormal(4.05, 0.6, 3_000)
        r = compare_quantiles(QuantileStats.from_values(x, nu), QuantileStats.from_values(y, nu))
        assert r.std_err is not None
        ratios.append(r.std_err / _bootstrap_se(x, y, nu, rng))
    # Each pair of estimates is noisy (both read the density from a few order statistics);
    # on average the order-statistic error and the bootstrap agree within a few percent.
    assert float(np.mean(ratios)) == pytest.approx(1.0, abs=0.05)
    assert min(ratios) > 0.7 and max(ratios) < 1.35


def _coverage(nu: float, effect: str, reps: int, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    lift = 1.1
    q_true = stats.lognorm(s=0.8).ppf(nu)
    truth = q_true * (lift - 1) if effect == "absolute" else lift - 1
    xs = np.sort(rng.lognormal(0, 0.8, (reps, n)), axis=1)
    ys = np.sort(rng.lognormal(0, 0.8, (reps, n)) * lift, axis=1)
    k = math.ceil(n * nu) - 1
    lo, hi = rank_bounds(n, nu)
    covered = 0
    for x, y in zip(xs, ys, strict=True):
        c = QuantileStats(nu, n, x[k], x[lo - 1], x[hi - 1])
        t = QuantileStats(nu, n, y[k], y[lo - 1], y[hi - 1])
        r = compare_quantiles(c, t, effect=effect)  # type: ignore[arg-type]
        assert r.ci_lower is not None and r.ci_upper is not None
        covered += r.ci_lower <= truth <= r.ci_upper
    return covered / reps


@pytest.mark.parametrize(
    ("nu", "effect"), [(0.5, "absolute"), (0.9, "relative"), (0.99, "absolute")]
)
def test_interval_coverage_by_simulation(nu: float, effect: str) -> None:
    assert 0.93 <= _coverage(nu, effect, reps=1_500, n=2_000, seed=3) <= 0.97


def _clustered_world(
    rng: np.random.Generator, users: int, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    events = rng.integers(1, 12, users)
    user_effect = rng.lognormal(0, 0.7, users)  # some users are always slow
    ids = np.repeat(np.arange(users), events)
    return rng.lognormal(0, 0.5, ids.size) * user_effect[ids] * scale, ids


def _cluster_bootstrap_se(
    x: np.ndarray, ids: np.ndarray, nu: float, rng: np.random.Generator, b: int = 400
) -> float:
    order = np.argsort(x)
    xs, owner = x[order], ids[order]
    users = ids.max() + 1
    counts = rng.multinomial(users, np.full(users, 1.0 / users), size=b)  # users drawn
    w = np.cumsum(counts[:, owner], axis=1)
    idx = np.argmax(w >= np.ceil(nu * w[:, -1:]), axis=1)
    return float(np.std(xs[idx], ddof=1))


def test_clustered_error_matches_cluster_bootstrap_and_iid_understates_it() -> None:
    rng = np.random.default_rng(4)
    ratios, iid_ratios = [], []
    for _ in range(8):
        x, ids = _clustered_world(rng, 1_500)
        clustered = QuantileStats.from_values(x, 0.9, clusters=ids)
        iid = QuantileStats.from_values(x, 0.9)
        boot = _cluster_bootstrap_se(x, ids, 0.9, rng)
        ratios.append((clustered.std_err()[0] or 0) / boot)
        iid_ratios.append((iid.std_err()[0] or 0) / boot)
    assert float(np.mean(ratios)) == pytest.approx(1.0, abs=0.08)
    assert float(np.mean(iid_ratios)) < 0.75  # ignoring the users is overconfident


def test_clustered_coverage_by_simulation() -> None:
    rng = np.random.default_rng(5)
    x_big, _ = _clustered_world(rng, 400_000)
    truth = float(np.quantile(x_big, 0.9)) * 0.1  # treatment is 10% slower everywhere
    covered_clustered = covered_iid = 0
    reps = 300
    for _ in range(reps):
        xc, ic = _clustered_world(rng, 600)
        xt, it = _clustered_world(rng, 600, scale=1.1)
        rc = compare_quantiles(
            QuantileStats.from_values(xc, 0.9, clusters=ic),
            QuantileStats.from_values(xt, 0.9, clusters=it),
        )
        ri = compare_quantiles(
            QuantileStats.from_values(xc, 0.9), QuantileStats.from_values(xt, 0.9)
        )
        assert rc.variant == "clustered" and ri.variant == "iid"
        covered_clustered += (rc.ci_lower or 0) <= truth <= (rc.ci_upper or 0)
        covered_iid += (ri.ci_lower or 0) <= truth <= (ri.ci_upper or 0)
    assert 0.92 <= covered_clustered / reps <= 0.98
    assert covered_iid / reps < 0.88


def test_relative_effect_and_one_sided() -> None:
    c = QuantileStats(nu=0.9, n=10_000, quantile=200.0, lower=195.0, upper=206.0)
    t = QuantileStats(nu=0.9, n=10_000, quantile=220.0, lower=214.0, upper=226.0)
    r = compare_quantiles(c, t, effect="relative")
    assert r.estimate == pytest.approx(0.1)
    se_c, se_t = c.std_err()[0] or 0, t.std_err()[0] or 0
    assert r.std_err == pytest.approx(math.sqrt(se_t**2 / 200**2 + 220**2 * se_c**2 / 200**4))
    log = compare_quantiles(c, t, effect="relative", relative_method="log")
    assert log.ci_lower is not None and log.ci_lower > -1
    greater = compare_quantiles(c, t, alternative="greater")
    assert greater.ci_upper == math.inf and greater.p_value is not None
    assert greater.p_value < 1e-6


def test_degenerate_data_gives_reasons() -> None:
    tiny = QuantileStats.from_values([1.0, 2.0, 3.0, 4.0, 5.0], 0.99)
    big = QuantileStats.from_values(np.arange(1_000.0), 0.99)
    r = compare_quantiles(tiny, big)
    assert r.estimate is None and r.p_value is None
    assert "control" in (r.reason or "") and "too few" in (r.reason or "")
    empty = QuantileStats.from_values([], 0.99)
    assert "at least 2" in (compare_quantiles(big, empty).reason or "")
    flat = QuantileStats.from_values(np.ones(500), 0.5)
    r = compare_quantiles(flat, flat)
    assert r.estimate is None and "zero variance" in (r.reason or "")
    half = compare_quantiles(flat, QuantileStats.from_values(np.arange(500.0), 0.5))
    assert half.estimate is not None and half.warnings
    lonely = QuantileStats.from_values(np.arange(1_000.0), 0.99, clusters=np.zeros(1_000))
    r = compare_quantiles(lonely, lonely)
    assert r.estimate is None and "clustered variance needs at least 2" in (r.reason or "")
    nan = QuantileStats(nu=0.99, n=1_000, quantile=math.nan, lower=1.0, upper=2.0)
    assert "NaN" in (compare_quantiles(nan, big).reason or "")


def test_result_round_trips_through_json() -> None:
    rng = np.random.default_rng(6)
    x, ids = _clustered_world(rng, 200)
    s = QuantileStats.from_values(x, 0.5, clusters=ids)
    r = compare_quantiles(s, s, metric="latency")
    assert QuantileResult.from_dict(json.loads(r.to_json())) == r


def test_bad_inputs_raise_with_a_message() -> None:
    with pytest.raises(StatsInputError, match="`nu` must be in"):
        QuantileStats.from_values([1.0, 2.0], 1.5)
    with pytest.raises(StatsInputError, match="`rank_alpha` must be in"):
        QuantileStats(nu=0.5, n=10, quantile=1, lower=0, upper=2, rank_alpha=0)
    with pytest.raises(StatsInputError, match="`clusters` must be a ratio ArmStats"):
        QuantileStats(0.5, 10, 1, 0, 2, clusters=ArmStats.from_values([1.0]))
    with pytest.raises(StatsInputError, match="NaN or infinite"):
        QuantileStats.from_values([1.0, math.nan], 0.5)
    with pytest.raises(StatsInputError, match="one unit id per value"):
        QuantileStats.from_values([1.0, 2.0], 0.5, clusters=[1])
    with pytest.raises(StatsInputError, match="must be 1-d"):
        QuantileStats.from_values([[1.0]], 0.5)
    a = QuantileStats.from_values(np.arange(100.0), 0.5)
    b = QuantileStats.from_values(np.arange(100.0), 0.9)
    with pytest.raises(StatsInputError, match="different quantiles"):
        compare_quantiles(a, b)
    clustered = QuantileStats.from_values(np.arange(100.0), 0.5, clusters=np.arange(100) // 5)
    with pytest.raises(StatsInputError, match="for both arms or for neither"):
        compare_quantiles(a, clustered)
    swapped = QuantileStats(nu=0.5, n=100, quantile=5.0, lower=6.0, upper=4.0)
    with pytest.raises(StatsInputError, match="is below `lower`"):
        compare_quantiles(swapped, a)
    with pytest.raises(StatsInputError, match="`alpha` must be"):
        compare_quantiles(a, a, alpha=0.9)
