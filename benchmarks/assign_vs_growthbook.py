"""proving's assignment against the GrowthBook Python SDK, side by side, same experiments.

Per evaluation: the same experiments (plain split, weights with coverage, a targeting
condition, a namespace, filters) for the same users go through the SDK
(``GrowthBook.run``) and through proving (``ExperimentPlan.run``); every assignment is
checked equal (variation, in-experiment, hash used, bucket) before any time is reported.
Two timings per engine, medians of several repeats:

* *evaluate*: the per-user object exists (an SDK ``GrowthBook``, a proving
  ``EvaluationContext``); one experiment evaluation is timed;
* *per request*: building the per-user object is included, as in a gateway that sees
  each user once per request.

Batch: ``hash_batch`` + ``choose_variation_batch`` over a column of unit ids (a numpy
string array), in units per second, checked against the scalar path on a sample.

    .venv/bin/python benchmarks/assign_vs_growthbook.py [--users 2000] [--repeats 9]
        [--batch 5000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from growthbook import Experiment, GrowthBook
from rich.console import Console
from rich.table import Table

from proving.assign.buckets import bucket_ranges, choose_variation, choose_variation_batch
from proving.assign.features import evaluate_feature
from proving.assign.growthbook import EvaluationContext, compile_experiment
from proving.assign.hashing import hash_batch, hash_value

EXPERIMENTS: list[dict[str, Any]] = [
    {"key": "plain-ab", "variations": ["control", "treatment"]},
    {
        "key": "weighted-ramp",
        "variations": ["control", "a", "b"],
        "weights": [0.5, 0.25, 0.25],
        "coverage": 0.8,
        "hashVersion": 2,
        "seed": "ramp-seed",
    },
    {
        "key": "targeted",
        "variations": ["control", "treatment"],
        "condition": {"country": {"$in": ["US", "CA"]}, "age": {"$gte": 18}},
        "hashVersion": 2,
    },
    {"key": "namespaced", "variations": [0, 1], "namespace": ("checkout", 0.0, 0.5)},
    {
        "key": "filtered",
        "variations": [0, 1],
        "filters": [{"seed": "layer-1", "ranges": [[0.0, 0.6]]}],
        "hashVersion": 2,
    },
]


FEATURES: dict[str, Any] = {
    "new-ranker": {
        "defaultValue": "v1",
        "rules": [
            {"condition": {"employee": True}, "force": "v2"},
            {
                "key": "ranker-test",
                "variations": ["v1", "v2"],
                "coverage": 0.9,
                "hashVersion": 2,
                "condition": {"country": {"$in": ["US", "CA"]}},
            },
        ],
    }
}


def users(count: int) -> list[dict[str, Any]]:
    """Deterministic users with the attributes the experiments target."""
    rng = np.random.default_rng(7)
    countries = ["US", "CA", "FR", "DE", "JP"]
    return [
        {
            "id": f"user-{i}",
            "country": countries[int(rng.integers(5))],
            "age": int(rng.integers(12, 80)),
        }
        for i in range(count)
    ]


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_pair(
    a: Callable[[], object], b: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Medians of one run of ``a`` and of ``b``, sampled alternately so that load on a
    shared machine falls on both alike; each sample loops its function long enough
    (>= 50 ms) that one preemption does not dominate it."""
    loops = [max(1, math.ceil(0.05 / max(timed(fn, 1), 1e-9))) for fn in (a, b)]
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(timed(lambda: [a() for _ in range(loops[0])], 1) / loops[0])
        times_b.append(timed(lambda: [b() for _ in range(loops[1])], 1) / loops[1])
    return statistics.median(times_a), statistics.median(times_b)


def check_equal(exp: dict[str, Any], people: list[dict[str, Any]]) -> int:
    """Assert proving and the SDK agree for every user; returns how many are in."""
    plan = compile_experiment(exp)
    sdk_exp = Experiment(**exp)
    inside = 0
    for attrs in people:
        ours = plan.run(EvaluationContext(attributes=attrs))
        theirs = GrowthBook(attributes=attrs).run(sdk_exp)
        got = (ours.variation_id, ours.in_experiment, ours.hash_used, ours.bucket)
        want = (theirs.variationId, theirs.inExperiment, theirs.hashUsed, theirs.bucket)
        if got != want:
            raise SystemExit(f"assignment mismatch in {exp['key']} for {attrs}: {got} != {want}")
        inside += ours.in_experiment
    return inside


def per_evaluation(people: list[dict[str, Any]], repeats: int) -> list[dict[str, Any]]:
    rows = []
    sdk_users = [GrowthBook(attributes=a) for a in people]
    contexts = [EvaluationContext(attributes=a) for a in people]
    n = len(people)
    for exp in EXPERIMENTS:
        inside = check_equal(exp, people)
        plan = compile_experiment(exp)
        sdk_exp = Experiment(**exp)
        sdk_eval = timed(lambda e=sdk_exp: [gb.run(e) for gb in sdk_users], repeats) / n
        our_eval = timed(lambda p=plan: [p.run(c) for c in contexts], repeats) / n
        sdk_req = (
            timed(lambda e=sdk_exp: [GrowthBook(attributes=a).run(e) for a in people], repeats) / n
        )
        our_req = (
            timed(lambda p=plan: [p.run(EvaluationContext(attributes=a)) for a in people], repeats)
            / n
        )
        rows.append(
            {
                "experiment": exp["key"],
                "in_experiment": inside / n,
                "sdk_evaluate_us": sdk_eval * 1e6,
                "proving_evaluate_us": our_eval * 1e6,
                "evaluate_speedup": sdk_eval / our_eval,
                "sdk_request_us": sdk_req * 1e6,
                "proving_request_us": our_req * 1e6,
                "request_speedup": sdk_req / our_req,
            }
        )
    rows.append(feature_row(people, repeats))
    return rows


def feature_row(people: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """A feature flag with a targeted force rule and an experiment rule."""
    n = len(people)
    sdk_users = [GrowthBook(attributes=a, features=FEATURES) for a in people]
    contexts = [EvaluationContext(attributes=a, features=FEATURES) for a in people]
    values = [evaluate_feature("new-ranker", c) for c in contexts]
    for ours, gb in zip(values, sdk_users, strict=True):
        theirs = gb.eval_feature("new-ranker")
        if (ours.value, ours.source) != (theirs.value, theirs.source):
            raise SystemExit(f"feature mismatch: {ours} != {theirs}")
    sdk_eval, our_eval = (
        t / n
        for t in timed_pair(
            lambda: [gb.eval_feature("new-ranker") for gb in sdk_users],
            lambda: [evaluate_feature("new-ranker", c) for c in contexts],
            repeats,
        )
    )
    sdk_req, our_req = (
        t / n
        for t in timed_pair(
            lambda: [
                GrowthBook(attributes=a, features=FEATURES).eval_feature("new-ranker")
                for a in people
            ],
            lambda: [
                evaluate_feature("new-ranker", EvaluationContext(attributes=a, features=FEATURES))
                for a in people
            ],
            repeats,
        )
    )
    return {
        "experiment": "feature flag",
        "in_experiment": sum(v.source == "experiment" for v in values) / n,
        "sdk_evaluate_us": sdk_eval * 1e6,
        "proving_evaluate_us": our_eval * 1e6,
        "evaluate_speedup": sdk_eval / our_eval,
        "sdk_request_us": sdk_req * 1e6,
        "proving_request_us": our_req * 1e6,
        "request_speedup": sdk_req / our_req,
    }


def batch(size: int, repeats: int) -> list[dict[str, Any]]:
    ids = np.char.add("user-", np.arange(size).astype(str))
    uuids = np.array([f"{i:08x}-7c1e-4b8a-9f2d-{i * 7919:012x}" for i in range(size // 10)])
    ranges = bucket_ranges(3, 0.8, [0.5, 0.25, 0.25])
    rows = []
    for name, column in (("sequential ids", ids), ("uuid-like ids", uuids)):
        for version in (1, 2):
            choice = choose_variation_batch(hash_batch("exp-seed", column, version), ranges)
            sample = np.random.default_rng(1).integers(0, column.shape[0], 5000)
            for i in sample:
                h = hash_value("exp-seed", str(column[i]), version)
                if h is None or choose_variation(h, ranges) != choice[i]:
                    raise SystemExit(f"batch != scalar for {column[i]!r}, version {version}")
            seconds = timed(
                lambda c=column, v=version: choose_variation_batch(
                    hash_batch("exp-seed", c, v), ranges
                ),
                repeats,
            )
            rows.append(
                {
                    "column": name,
                    "units": int(column.shape[0]),
                    "hash_version": version,
                    "seconds": seconds,
                    "units_per_second": column.shape[0] / seconds,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=5_000_000)
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the SDK logs every skipped experiment

    people = users(args.users)
    evaluation = per_evaluation(people, args.repeats)
    batches = batch(args.batch, max(3, args.repeats // 2))
    if args.json:
        print(json.dumps({"per_evaluation": evaluation, "batch": batches}, indent=2))
        return

    console = Console(width=120)
    load = os.getloadavg()[0]
    note = "a loaded machine inflates both sides"
    console.print(f"[dim]{os.cpu_count()} CPUs, load average {load:.1f} ({note})[/dim]")
    table = Table(
        title=f"Per evaluation, {args.users} users, median of {args.repeats} (assignments equal)"
    )
    for column in (
        "experiment",
        "in exp.",
        "SDK us",
        "proving us",
        "x",
        "SDK us/req",
        "proving us/req",
        "x/req",
    ):
        table.add_column(column, justify="left" if column == "experiment" else "right")
    for r in evaluation:
        table.add_row(
            r["experiment"],
            f"{r['in_experiment']:.0%}",
            f"{r['sdk_evaluate_us']:.2f}",
            f"{r['proving_evaluate_us']:.2f}",
            f"{r['evaluate_speedup']:.1f}",
            f"{r['sdk_request_us']:.2f}",
            f"{r['proving_request_us']:.2f}",
            f"{r['request_speedup']:.1f}",
        )
    console.print(table)
    batch_table = Table(title="Batch: hash_batch + choose_variation_batch (checked against scalar)")
    for column in ("column", "units", "hash v", "seconds", "M units/s"):
        batch_table.add_column(column, justify="left" if column == "column" else "right")
    for r in batches:
        batch_table.add_row(
            r["column"],
            f"{r['units']:,}",
            str(r["hash_version"]),
            f"{r['seconds']:.3f}",
            f"{r['units_per_second'] / 1e6:.1f}",
        )
    console.print(batch_table)


if __name__ == "__main__":
    main()
