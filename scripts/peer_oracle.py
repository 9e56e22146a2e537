"""Run the peer libraries (gbstats 0.8.0, spotify-confidence 4.1.0) on seeded comparisons.

Runs in the peers venv (`make peers`), never in proving's own: gbstats pins numpy<2 and
pandas<2. It does not import proving. It writes, for every comparison, the per-arm
sufficient statistics (in proving's flat column names) and what each peer computed, so that
tests (golden values) and benchmarks (timings) feed proving exactly the same inputs.

    .venv-peers/bin/python scripts/peer_oracle.py --cases 80 --out tests/vectors/peers/golden.json
    .venv-peers/bin/python scripts/peer_oracle.py --cases 10000 --bench --out /tmp/peers.json

`make golden` regenerates the committed golden file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import time
import warnings
from importlib.metadata import version
from typing import Any

import numpy as np

KINDS = ("mean", "proportion", "ratio", "cuped")
TUNING = 5000.0  # gbstats' default sequential tuning parameter N*
PRIOR_SD = 0.3  # the proper prior used for gbstats' Bayesian engine: N(0, 0.3^2) on the lift


def _arm(rng: np.random.Generator, kind: str, n: int, lift: float) -> dict[str, Any]:
    """Unit-level data of one arm, reduced to proving's flat sufficient statistics."""
    if kind == "proportion":
        y = (rng.random(n) < 0.2 * (1 + lift)).astype(float)
        return {"n": n, "sum": y.sum(), "sum_squares": (y * y).sum()}
    if kind == "ratio":
        d = 1.0 + rng.poisson(3.0, n)
        y = rng.binomial(d.astype(np.int64), 0.15 * (1 + lift)).astype(float)
        return {
            "n": n,
            "sum": y.sum(),
            "sum_squares": (y * y).sum(),
            "denominator_sum": d.sum(),
            "denominator_sum_squares": (d * d).sum(),
            "sum_products": (y * d).sum(),
        }
    u = rng.lognormal(0.0, 0.5, n)
    y = 10.0 * u * rng.gamma(4.0, 0.25, n) * (1 + lift)
    out = {"n": n, "sum": y.sum(), "sum_squares": (y * y).sum()}
    if kind == "cuped":
        x = 10.0 * u * rng.gamma(4.0, 0.25, n)
        out.update(
            {
                "covariate_names": ["pre"],
                "covariate_1_sum": x.sum(),
                "covariate_1_sum_squares": (x * x).sum(),
                "covariate_1_sum_products": (x * y).sum(),
            }
        )
    return out


def make_cases(count: int, seed: int) -> list[dict[str, Any]]:
    """Seeded comparisons of every kind with various sizes and lifts."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        n_c, n_t = (int(v) for v in rng.integers(30, 4000, 2))
        lift = float(rng.choice([0.0, 0.02, 0.05, -0.03]))
        cases.append(
            {
                "id": f"{kind}-{i}",
                "kind": kind,
                "control": _arm(rng, kind, n_c, 0.0),
                "treatment": _arm(rng, kind, n_t, lift),
            }
        )
    return cases


def _gb_statistic(arm: dict[str, Any], kind: str) -> Any:
    from gbstats.models.statistics import (
        ProportionStatistic,
        RatioStatistic,
        RegressionAdjustedStatistic,
        SampleMeanStatistic,
    )

    n = int(arm["n"])
    if kind == "proportion":
        return ProportionStatistic(n=n, sum=arm["sum"])
    post = SampleMeanStatistic(n=n, sum=arm["sum"], sum_squares=arm["sum_squares"])
    if kind == "ratio":
        den = SampleMeanStatistic(
            n=n, sum=arm["denominator_sum"], sum_squares=arm["denominator_sum_squares"]
        )
        return RatioStatistic(
            n=n, m_statistic=post, d_statistic=den, m_d_sum_of_products=arm["sum_products"]
        )
    if kind == "cuped":
        pre = SampleMeanStatistic(
            n=n, sum=arm["covariate_1_sum"], sum_squares=arm["covariate_1_sum_squares"]
        )
        return RegressionAdjustedStatistic(
            n=n,
            post_statistic=post,
            pre_statistic=pre,
            post_pre_sum_of_products=arm["covariate_1_sum_products"],
            theta=0,
        )
    return post


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def run_gbstats(case: dict[str, Any]) -> dict[str, Any]:
    """gbstats' frequentist (two- and one-sided), sequential and Bayesian results."""
    from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
    from gbstats.frequentist.tests import (
        FrequentistConfig,
        OneSidedTreatmentGreaterTTest,
        OneSidedTreatmentLesserTTest,
        SequentialConfig,
        SequentialTwoSidedTTest,
        TwoSidedTTest,
    )

    kind = case["kind"]
    out: dict[str, Any] = {}
    for effect in ("relative", "absolute"):

        def stats() -> tuple[Any, Any]:
            # gbstats mutates theta on its statistics: build fresh ones for every test.
            return _gb_statistic(case["control"], kind), _gb_statistic(case["treatment"], kind)

        tests = {
            "two-sided": TwoSidedTTest(*stats(), FrequentistConfig(difference_type=effect)),
            "greater": OneSidedTreatmentGreaterTTest(
                *stats(), FrequentistConfig(difference_type=effect)
            ),
            "less": OneSidedTreatmentLesserTTest(
                *stats(), FrequentistConfig(difference_type=effect)
            ),
            "sequential": SequentialTwoSidedTTest(
                *stats(),
                SequentialConfig(difference_type=effect, sequential_tuning_parameter=TUNING),
            ),
        }
        for name, test in tests.items():
            r = test.compute_result()
            out[f"{effect}/{name}"] = {
                "estimate": _finite(r.expected),
                "ci_lower": _finite(r.ci[0]),
                "ci_upper": _finite(r.ci[1]),
                "p_value": _finite(r.p_value),
                "std_err": _finite(r.uplift.stddev),
                "error": r.error_message,
            }
        priors = {
            "flat": GaussianPrior(mean=0, variance=1, proper=False),
            "proper": GaussianPrior(mean=0, variance=PRIOR_SD**2, proper=True),
        }
        for prior_name, prior in priors.items():
            cfg = EffectBayesianConfig(
                difference_type=effect, prior_effect=prior, prior_type="relative"
            )
            r = EffectBayesianABTest(*stats(), cfg).compute_result()
            out[f"{effect}/bayesian-{prior_name}"] = {
                "estimate": _finite(r.expected),
                "ci_lower": _finite(r.ci[0]),
                "ci_upper": _finite(r.ci[1]),
                "std_err": _finite(r.uplift.stddev),
                "chance_to_win": _finite(r.chance_to_win),
                "risk_control": _finite(r.risk[0]),
                "risk_treatment": _finite(r.risk[1]),
                "error": r.error_message,
            }
    return out


def run_spotify(case: dict[str, Any]) -> dict[str, Any]:
    """spotify-confidence's Welch t and z tests (mean and proportion metrics only)."""
    import pandas as pd
    import spotify_confidence as sc

    if case["kind"] not in ("mean", "proportion"):
        return {}
    c, t = case["control"], case["treatment"]
    frame = pd.DataFrame(
        {
            "group": ["control", "treatment"],
            "sum": [c["sum"], t["sum"]],
            "sum_squares": [c["sum_squares"], t["sum_squares"]],
            "n": [c["n"], t["n"]],
        }
    )
    out = {}
    for name, cls in (("welch", sc.StudentsTTest), ("z", sc.ZTest)):
        experiment = cls(frame, "sum", "sum_squares", "n", "group", interval_size=0.95)
        for effect, absolute in (("absolute", True), ("relative", False)):
            row = experiment.difference("control", "treatment", absolute=absolute).iloc[0]
            out[f"{effect}/{name}"] = {
                "estimate": _finite(row["difference"]),
                "ci_lower": _finite(row["ci_lower"]),
                "ci_upper": _finite(row["ci_upper"]),
                "p_value": _finite(row["p-value"]),
            }
    return out


def bench_gbstats(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Time gbstats per engine over all cases (relative effect), keeping its outputs."""
    from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
    from gbstats.frequentist.tests import (
        FrequentistConfig,
        SequentialConfig,
        SequentialTwoSidedTTest,
        TwoSidedTTest,
    )

    engines = {
        "two-sided": lambda a, b: TwoSidedTTest(a, b, FrequentistConfig()),
        "sequential": lambda a, b: SequentialTwoSidedTTest(
            a, b, SequentialConfig(sequential_tuning_parameter=TUNING)
        ),
        "bayesian-proper": lambda a, b: EffectBayesianABTest(
            a,
            b,
            EffectBayesianConfig(
                prior_effect=GaussianPrior(mean=0, variance=PRIOR_SD**2, proper=True)
            ),
        ),
    }
    out: dict[str, Any] = {}
    for name, make in engines.items():
        results = []
        start = time.perf_counter()
        for case in cases:
            a = _gb_statistic(case["control"], case["kind"])
            b = _gb_statistic(case["treatment"], case["kind"])
            r = make(a, b).compute_result()
            results.append((r.expected, r.ci[0], r.ci[1]))
        elapsed = time.perf_counter() - start
        out[name] = {"seconds": elapsed, "estimate_ci": results}
    return out


def bench_spotify(cases: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """Time spotify-confidence's Welch test on up to ``limit`` mean/proportion cases in one
    call (it takes about 20 ms a comparison, so all 10,000 would take minutes)."""
    import pandas as pd
    import spotify_confidence as sc

    chosen = [c for c in cases if c["kind"] in ("mean", "proportion")][:limit]
    rows = []
    for c in chosen:
        for group in ("control", "treatment"):
            arm = c[group]
            rows.append(
                {
                    "metric": c["id"],
                    "group": group,
                    "sum": arm["sum"],
                    "sum_squares": arm["sum_squares"],
                    "n": arm["n"],
                }
            )
    frame = pd.DataFrame(rows)
    start = time.perf_counter()
    experiment = sc.StudentsTTest(
        frame, "sum", "sum_squares", "n", "group", interval_size=0.95, metric_column="metric"
    )
    table = experiment.difference("control", "treatment", absolute=True, groupby="metric")
    elapsed = time.perf_counter() - start
    by_metric = {
        str(r["metric"]): (r["difference"], r["ci_lower"], r["ci_upper"])
        for _, r in table.reset_index().iterrows()
    }
    return {
        "seconds": elapsed,
        "ids": [c["id"] for c in chosen],
        "estimate_ci": [by_metric[c["id"]] for c in chosen],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=80)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--bench", action="store_true", help="time each engine over all cases instead"
    )
    parser.add_argument("--spotify-cases", type=int, default=1000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    cases = make_cases(args.cases, args.seed)
    doc: dict[str, Any] = {
        "provenance": {
            "generator": "scripts/peer_oracle.py",
            "command": f"peer_oracle.py --cases {args.cases} --seed {args.seed}",
            "date": dt.date.today().isoformat(),
            "gbstats": version("gbstats"),
            "spotify-confidence": version("spotify-confidence"),
            "sequential_tuning": TUNING,
            "proper_prior_sd": PRIOR_SD,
        },
        "cases": cases,
    }
    if args.bench:
        doc["gbstats"] = bench_gbstats(cases)
        doc["spotify"] = bench_spotify(cases, args.spotify_cases)
    else:
        for case in cases:
            case["gbstats"] = run_gbstats(case)
            case["spotify"] = run_spotify(case)
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=None if args.bench else 1, default=float)


if __name__ == "__main__":
    main()
