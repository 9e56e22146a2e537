"""Always-valid math: closed forms, duality, peer formulas, peeking simulations with known truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats

from proving.errors import StatsInputError
from proving.stats.always_valid import (
    always_valid_compare,
    always_valid_interval,
    confidence_sequence_halfwidth,
    log_mixture_ratio,
    tuning_rho_squared,
)
from proving.stats.effects import compare, mean_moments, proportion_moments
from proving.stats.monitor import pair_estimates
from proving.stats.ratio import ratio_moments
from proving.stats.sufficient import ArmStats

ALPHA = 0.05


def _binomial_tolerance(rate: float, sims: int) -> float:
    return 3.0 * math.sqrt(rate * (1.0 - rate) / sims)


def test_tuning_rho_is_waudby_smith_eq_161() -> None:
    a = 0.05
    expected = (-2 * math.log(a) + math.log(-2 * math.log(a) + 1)) / 5000
    assert tuning_rho_squared(a, 5000) == pytest.approx(expected, rel=1e-15)


def test_two_sided_halfwidth_is_howard_normal_mixture_boundary() -> None:
    # Howard et al. (2021) eq. (14) on the sum scale: |S_t| <= sqrt((V + r) log((V + r) /
    # (r alpha^2))) with V = N sigma^2 and mixing precision r = sigma^2 / rho^2.
    sigma2, n = 3.7, 8000.0
    rho2 = tuning_rho_squared(ALPHA, 5000)
    v, r = n * sigma2, sigma2 / rho2
    boundary_sum = math.sqrt((v + r) * math.log((v + r) / (r * ALPHA**2)))
    se = math.sqrt(sigma2 / n)
    tau2 = n * se**2 * rho2
    ours = confidence_sequence_halfwidth([se], [tau2], alpha=ALPHA)[0]
    assert ours == pytest.approx(boundary_sum / n, rel=1e-12)


def test_mixture_ratio_is_the_bayes_factor_of_a_normal_prior() -> None:
    # Lambda = N(d; 0, se^2 + tau^2) / N(d; 0, se^2): the marginal likelihood ratio.
    d, se, tau2 = 0.31, 0.12, 0.05
    bf = stats.norm.pdf(d, 0, math.sqrt(se**2 + tau2)) / stats.norm.pdf(d, 0, se)
    assert math.exp(log_mixture_ratio([d], [se], [tau2])[0]) == pytest.approx(bf, rel=1e-12)
    # One-sided: the prior is a half-normal on theta > 0 (twice the density on the half line).
    marginal = optimize_quad(
        lambda th: stats.norm.pdf(d, th, se) * 2 * stats.norm.pdf(th, 0, math.sqrt(tau2))
    )
    bf1 = marginal / stats.norm.pdf(d, 0, se)
    one = math.exp(log_mixture_ratio([d], [se], [tau2], alternative="greater")[0])
    assert one == pytest.approx(bf1, rel=1e-8)


def optimize_quad(f: object) -> float:
    from scipy import integrate

    value, _ = integrate.quad(f, 0, np.inf, epsabs=1e-13, epsrel=1e-11)  # type: ignore[call-overload]
    return float(value)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_interval_is_the_set_where_the_p_value_exceeds_alpha(alternative: str) -> None:
    d, se, n = 0.42, 0.2, 3000
    lo, hi, _, _, tau2 = always_valid_interval([d], [se], [n], alternative=alternative)  # type: ignore[arg-type]
    for bound in (lo[0], hi[0]):
        if math.isfinite(bound):
            p = always_valid_interval([d], [se], [n], alternative=alternative, null=bound)[2]  # type: ignore[arg-type]
            assert p[0] == pytest.approx(ALPHA, rel=1e-9)
    if alternative == "greater":
        # Independent root finding of the one-sided boundary.
        root = optimize.brentq(
            lambda x: (
                log_mixture_ratio([d], [se], tau2, null=d - x, alternative="greater")[0]
                + math.log(ALPHA)
            ),
            0.0,
            10.0,
            xtol=1e-14,
        )
        assert d - lo[0] == pytest.approx(root, rel=1e-9)


def test_matches_growthbook_sequential_formula_for_a_mean() -> None:
    rng = np.random.default_rng(3)
    c, t = rng.normal(10, 3, 4000), rng.normal(10.2, 3, 4100)
    mc, vc = mean_moments(c.size, c.sum(), (c * c).sum())
    mt, vt = mean_moments(t.size, t.sum(), (t * t).sum())
    out = always_valid_compare(mc, vc, c.size, mt, vt, t.size, effect="absolute")
    # gbstats 0.8 SequentialTwoSidedTTest.confidence_interval, written out (Waudby-Smith
    # et al. 2023 eq. 9 with s2 = variance * N).
    big_n = c.size + t.size
    s2 = (vc + vt) * big_n
    rho2 = (-2 * math.log(ALPHA) + math.log(-2 * math.log(ALPHA) + 1)) / 5000
    width = math.sqrt(s2) * math.sqrt(
        2 * (big_n * rho2 + 1) * math.log(math.sqrt(big_n * rho2 + 1) / ALPHA) / (big_n**2 * rho2)
    )
    assert out.ci_upper[0] - out.estimate[0] == pytest.approx(width, rel=1e-12)
    st2 = (mt - mc) ** 2 * big_n / (vc + vt)
    evalue = math.exp(rho2 * st2 / (2 * (big_n * rho2 + 1))) / math.sqrt(big_n * rho2 + 1)
    assert out.p_value[0] == pytest.approx(min(1.0, 1.0 / evalue), rel=1e-10)


def test_sequence_is_wider_than_the_fixed_interval_and_tightest_near_tuning_n() -> None:
    sigma2 = 4.0
    n = np.array([500.0, 2000.0, 5000.0, 20000.0, 100000.0])
    se = np.sqrt(sigma2 / n)
    tau2 = n * se**2 * tuning_rho_squared(ALPHA, 5000)
    ratio = confidence_sequence_halfwidth(se, tau2) / (stats.norm.ppf(0.975) * se)
    assert np.all(ratio > 1.0)
    assert int(np.argmin(ratio)) == 2  # closest to the fixed interval at N* = 5000


def _normal_looks(
    rng: np.random.Generator, sims: int, looks: int, batch: int, mean: float, sd: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact cumulative (n, sum, sum_squares) of normal data at every look, without units:
    a batch's sum is N(b mu, b sigma^2), its centered sum of squares sigma^2 chi2(b - 1)."""
    sums = rng.normal(batch * mean, sd * math.sqrt(batch), (sims, looks))
    centered = sd**2 * rng.chisquare(batch - 1, (sims, looks))
    squares = centered + sums**2 / batch
    n = batch * np.arange(1, looks + 1, dtype=float)
    return np.broadcast_to(n, (sims, looks)), np.cumsum(sums, 1), np.cumsum(squares, 1)


def test_aa_peeking_always_valid_stays_below_alpha_while_t_test_does_not() -> None:
    rng = np.random.default_rng(11)
    sims, looks, batch = 4000, 40, 250
    n, s_c, q_c = _normal_looks(rng, sims, looks, batch, 5.0, 2.0)
    _, s_t, q_t = _normal_looks(rng, sims, looks, batch, 5.0, 2.0)
    mc, vc = mean_moments(n.ravel(), s_c.ravel(), q_c.ravel())
    mt, vt = mean_moments(n.ravel(), s_t.ravel(), q_t.ravel())
    seq = always_valid_compare(mc, vc, n.ravel(), mt, vt, n.ravel(), effect="relative")
    naive = compare(mc, vc, n.ravel(), mt, vt, n.ravel(), effect="relative")
    always_valid = np.any((seq.p_value <= ALPHA).reshape(sims, looks), axis=1).mean()
    cs_excludes = np.any(
        ((seq.ci_lower > 0) | (seq.ci_upper < 0)).reshape(sims, looks), axis=1
    ).mean()
    peeked = np.any((naive.p_value < ALPHA).reshape(sims, looks), axis=1).mean()
    print(f"A/A, {looks} looks: always-valid FWER {always_valid:.4f}, peeked t-test {peeked:.4f}")
    assert always_valid <= ALPHA + _binomial_tolerance(ALPHA, sims)
    assert cs_excludes == pytest.approx(always_valid, abs=1.0 / sims)
    assert peeked > 2.5 * ALPHA


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_aa_peeking_one_sided_stays_below_alpha(alternative: str) -> None:
    rng = np.random.default_rng(12 if alternative == "greater" else 13)
    sims, looks, batch = 3000, 30, 400
    n = batch * np.arange(1, looks + 1, dtype=float)
    k_c = np.cumsum(rng.binomial(batch, 0.1, (sims, looks)), 1).ravel()
    k_t = np.cumsum(rng.binomial(batch, 0.1, (sims, looks)), 1).ravel()
    nn = np.broadcast_to(n, (sims, looks)).ravel()
    pc, vc = proportion_moments(nn, k_c)
    pt, vt = proportion_moments(nn, k_t)
    # Absolute effect: the delta-method *relative* lift of small proportions is skewed
    # (its variance shrinks with the treatment mean), which tilts one-sided error rates.
    seq = always_valid_compare(
        pc,
        vc,
        nn,
        pt,
        vt,
        nn,
        effect="absolute",
        alternative=alternative,
        alpha=ALPHA,  # type: ignore[arg-type]
    )
    fwer = np.any((seq.p_value <= ALPHA).reshape(sims, looks), axis=1).mean()
    print(f"A/A one-sided ({alternative}) always-valid FWER {fwer:.4f}")
    assert fwer <= ALPHA + _binomial_tolerance(ALPHA, sims)


def test_aa_ratio_metric_with_units_stays_below_alpha() -> None:
    rng = np.random.default_rng(21)
    sims, looks, batch = 600, 15, 200
    hits = 0
    peek_hits = 0
    for _ in range(sims // 100):
        shape = (100, looks * batch)
        d = {a: rng.poisson(3.0, shape) + 1.0 for a in ("c", "t")}
        y = {a: rng.binomial(d[a].astype(int), 0.3).astype(float) for a in ("c", "t")}
        moments = {}
        for a in ("c", "t"):
            cum = lambda v: np.cumsum(v.reshape(100, looks, batch).sum(2), 1).ravel()  # noqa: E731
            nn = np.broadcast_to(batch * np.arange(1, looks + 1.0), (100, looks)).ravel()
            moments[a] = (
                *ratio_moments(
                    nn, cum(y[a]), cum(y[a] ** 2), cum(d[a]), cum(d[a] ** 2), cum(y[a] * d[a])
                ),
                nn,
            )
        (rc, vc, nc), (rt, vt, nt) = moments["c"], moments["t"]
        seq = always_valid_compare(rc, vc, nc, rt, vt, nt, effect="absolute")
        hits += int(np.any((seq.p_value <= ALPHA).reshape(100, looks), axis=1).sum())
        naive = compare(rc, vc, nc, rt, vt, nt, effect="absolute")
        peek_hits += int(np.any((naive.p_value < ALPHA).reshape(100, looks), axis=1).sum())
    print(f"A/A ratio: always-valid FWER {hits / sims:.4f}, peeked {peek_hits / sims:.4f}")
    assert hits / sims <= ALPHA + _binomial_tolerance(ALPHA, sims)
    assert peek_hits / sims > 2 * ALPHA


def test_power_the_sequence_stops_under_a_real_effect() -> None:
    rng = np.random.default_rng(17)
    sims, looks, batch = 1000, 40, 250
    n, s_c, q_c = _normal_looks(rng, sims, looks, batch, 5.0, 2.0)
    _, s_t, q_t = _normal_looks(rng, sims, looks, batch, 5.15, 2.0)
    mc, vc = mean_moments(n.ravel(), s_c.ravel(), q_c.ravel())
    mt, vt = mean_moments(n.ravel(), s_t.ravel(), q_t.ravel())
    seq = always_valid_compare(mc, vc, n.ravel(), mt, vt, n.ravel(), effect="absolute")
    stopped = (seq.ci_lower > 0).reshape(sims, looks)
    power = stopped.any(axis=1).mean()
    first = np.argmax(stopped, axis=1)[stopped.any(axis=1)]
    print(f"power {power:.3f}, median stopping look {np.median(first) + 1:.0f} of {looks}")
    assert power > 0.9
    assert np.median(first) < looks / 2
    # Always-valid intervals still cover the true effect at every look (coverage >= 95 %).
    covered = ((seq.ci_lower <= 0.15) & (seq.ci_upper >= 0.15)).reshape(sims, looks)
    assert covered.all(axis=1).mean() >= 1 - ALPHA - _binomial_tolerance(ALPHA, sims)


def test_relative_log_sequence_maps_back_to_the_lift_scale() -> None:
    out = always_valid_compare(
        [10.0], [0.01], [4000], [11.0], [0.012], [4000], relative_method="log"
    )
    assert out.estimate[0] == pytest.approx(0.1)
    assert out.ci_lower[0] > -1.0
    # On the log scale the interval is symmetric around log(1.1).
    mid = 0.5 * (math.log1p(out.ci_lower[0]) + math.log1p(out.ci_upper[0]))
    assert mid == pytest.approx(math.log(1.1), rel=1e-12)


def test_fixed_mixture_variance_is_used_as_given() -> None:
    lo, hi, _, e, tau2 = always_valid_interval([0.0], [0.1], [100], mixture_variance=0.04)
    assert lo[0] == pytest.approx(-hi[0])
    assert tau2[0] == 0.04
    half = 0.1 * math.sqrt((0.01 + 0.04) / 0.04 * 2 * math.log(math.sqrt(5.0) / ALPHA))
    assert hi[0] == pytest.approx(half, rel=1e-12)
    assert e[0] == pytest.approx(1 / math.sqrt(5.0), rel=1e-12)


def test_degenerate_data_is_explained_not_answered() -> None:
    out = always_valid_compare(
        [1.0, 1.0, 1.0],
        [0.0, 0.01, np.nan],
        [50, 0, 50],
        [1.0, 1.1, 1.2],
        [0.0, 0.01, 0.01],
        [50, 40, 50],
        effect="absolute",
    )
    assert out.reason[0] is not None and "zero variance" in out.reason[0]
    assert out.reason[1] is not None and "empty" in out.reason[1]
    assert out.reason[2] is not None and "NaN" in out.reason[2]
    assert np.all(np.isnan(out.ci_lower)) and np.all(np.isnan(out.p_value))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, r"`alpha` must be a number in \(0, "),
        ({"tuning_n": -5.0}, r"`tuning_n` \(N\*"),
        ({"mixture_variance": 0.0}, "`mixture_variance`"),
        ({"alternative": "bigger"}, "`alternative` must be"),
    ],
)
def test_bad_parameters_raise_with_the_fix(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        always_valid_interval([0.1], [0.05], [100], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match=match.replace(r"\(0, ", "")):
        always_valid_compare(1.0, 0.01, 100, 1.1, 0.01, 100, **kwargs)  # type: ignore[arg-type]


GOLDEN = Path(__file__).resolve().parents[1] / "vectors" / "peers" / "golden.json"


@pytest.mark.parametrize("effect", ["relative", "absolute"])
def test_matches_gbstats_sequential_on_golden_vectors(effect: str) -> None:
    """gbstats 0.8.0's SequentialTwoSidedTTest (N* = 5000) on seeded cases, recorded by
    scripts/peer_oracle.py. CUPED cases are left out: gbstats adjusts per arm and divides a
    relative lift by the unadjusted control mean, a different estimator."""
    if not GOLDEN.is_file():
        pytest.skip(f"{GOLDEN} is missing; regenerate it with `make golden`")
    cases = [c for c in json.loads(GOLDEN.read_text())["cases"] if c["kind"] != "cuped"]
    checked = 0
    for case in cases:
        ref = case["gbstats"][f"{effect}/sequential"]
        if ref["error"]:
            continue
        c, t = ArmStats.from_flat(case["control"]), ArmStats.from_flat(case["treatment"])
        kind = "proportion" if case["kind"] == "proportion" else "mean"
        est, var, _, _ = pair_estimates(c, t, kind, use_cuped=False)
        out = always_valid_compare(
            est[0],
            var[0],
            c.n,
            est[1],
            var[1],
            t.n,
            effect=effect,  # type: ignore[arg-type]
        )
        assert out.ci_lower[0] == pytest.approx(ref["ci_lower"], rel=1e-9), case["id"]
        assert out.ci_upper[0] == pytest.approx(ref["ci_upper"], rel=1e-9), case["id"]
        assert out.p_value[0] == pytest.approx(ref["p_value"], rel=1e-9), case["id"]
        checked += 1
    assert checked >= 40
