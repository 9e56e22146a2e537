"""Regenerate the example input files in docs/examples/ that the README's commands read.

    .venv/bin/python scripts/make_examples.py

- looks.csv: cumulative per-day sufficient statistics of a simulated experiment (input of
  `proving monitor`), from proving.simulate with a fixed seed.
- judge-canary.csv: per-request latency and per-minute error counts of a baseline and a canary
  that is 20% slower (input of `proving judge`, with judge-canary.yaml as its spec).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from proving.simulate import simulate_experiment

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def write_looks() -> None:
    world = simulate_experiment(40_000, lifts={"revenue": 0.04}, days=10, seed=7)
    rows = []
    for metric in ("revenue", "conversion"):
        totals = None
        for day in range(world.days):
            today = world.arm_stats(metric, units=world.columns["day"] == day)
            totals = today if totals is None else {v: totals[v] + today[v] for v in totals}
            for variant, arm in totals.items():
                flat = arm.to_flat()
                flat["covariate_names"] = ";".join(flat.get("covariate_names", []))
                kind = "proportion" if metric == "conversion" else "mean"
                rows.append({"look": day + 1, "variant": variant, "metric": metric,
                             "kind": kind, **flat})  # fmt: skip
    with open(EXAMPLES / "looks.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_canary() -> None:
    rng = np.random.default_rng(11)
    rows: list[tuple[str, str, float]] = []
    for arm, slowdown in (("baseline", 1.0), ("canary", 1.2)):
        rows += [("latency_ms", arm, round(v, 2)) for v in rng.lognormal(4.4, 0.3, 400) * slowdown]
        rows += [("errors", arm, float(v)) for v in rng.poisson(2.0, 60)]
    with open(EXAMPLES / "judge-canary.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["metric", "arm", "value"])
        writer.writerows(rows)


if __name__ == "__main__":
    write_looks()
    write_canary()
