"""proving's statistics engine against gbstats and spotify-confidence, side by side.

The same comparisons (metric x variant, from sufficient statistics) go through all three:
the peers run in their own venv (`make peers`) through scripts/peer_oracle.py, which also
writes the inputs; proving analyzes the same inputs here. Printed: wall time per comparison
(median of repeats for proving), the ratios, and the largest absolute differences between the
libraries' estimates and intervals, where their conventions match.

    .venv/bin/python benchmarks/stats_vs_peers.py [--cases 10000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from proving.stats import analyze
from proving.stats.bayesian import NormalPrior, bayesian_family
from proving.stats.sequential import sequentialize

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"


def peer_run(cases: int, spotify_cases: int) -> dict[str, Any]:
    """Run the peers in their venv; returns the inputs and their timed outputs."""
    if not PEERS_PYTHON.exists():
        sys.exit("the peers venv is missing: run `make peers` first")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peers.json"
        subprocess.run(
            [
                str(PEERS_PYTHON),
                str(ROOT / "scripts" / "peer_oracle.py"),
                "--cases",
                str(cases),
                "--spotify-cases",
                str(spotify_cases),
                "--bench",
                "--out",
                str(out),
            ],
            check=True,
        )
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def stats_rows(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The peers' inputs as proving's flat sufficient-statistics table."""
    rows = []
    for case in cases:
        kind = "mean" if case["kind"] == "cuped" else case["kind"]
        for variant in ("control", "treatment"):
            rows.append({"metric": case["id"], "variant": variant, "kind": kind, **case[variant]})
    return rows


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def largest_difference(
    ours: list[tuple[float | None, ...]], theirs: list[list[float]], mask: list[bool]
) -> float:
    diffs = [
        abs(float(a) - float(b))
        for o, t, keep in zip(ours, theirs, mask, strict=True)
        if keep
        for a, b in zip(o, t, strict=True)
        if a is not None and b is not None and np.isfinite(a) and np.isfinite(b)
    ]
    return max(diffs, default=float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--spotify-cases", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    console = Console()
    with console.status("running gbstats and spotify-confidence in .venv-peers ..."):
        peers = peer_run(args.cases, args.spotify_cases)
    cases = peers["cases"]
    rows = stats_rows(cases)
    kinds = [c["kind"] for c in cases]

    def ours(**options: Any) -> list[tuple[float | None, ...]]:
        res = analyze(rows, **options)
        by_metric = {c.metric: c for c in res.comparisons}
        return [
            (by_metric[c["id"]].estimate, by_metric[c["id"]].ci_lower, by_metric[c["id"]].ci_upper)
            for c in cases
        ]

    n = len(cases)
    table = Table(title=f"{n:,} comparisons from sufficient statistics")
    for column in ("engine", "proving us/cmp", "peer", "peer us/cmp", "speed-up", "max |diff|"):
        table.add_column(column, justify="right")

    # gbstats frequentist: relative lift, Welch t, delta method. gbstats' CUPED uses a theta
    # from the pooled total covariance and divides the lift by the unadjusted control mean,
    # and its proportions use p(1 - p) without Bessel's correction: the differences are
    # printed for mean and ratio metrics, where the conventions match.
    options = {"effect": "relative", "method": "welch", "cuped": True}
    seconds = median_seconds(lambda: analyze(rows, **options), args.repeats)
    gb = peers["gbstats"]["two-sided"]
    same = [k in ("mean", "ratio") for k in kinds]
    diff = largest_difference(ours(**options), gb["estimate_ci"], same)
    table.add_row(
        "t-test, relative",
        f"{seconds / n * 1e6:.2f}",
        "gbstats",
        f"{gb['seconds'] / n * 1e6:.1f}",
        f"{gb['seconds'] / seconds:.0f}x",
        f"{diff:.2e}",
    )

    # gbstats' sequential engine: the asymptotic confidence sequence with N* = 5000; and its
    # Bayesian engine: a normal prior N(0, 0.3^2) on the lift. proving's counterparts run on
    # top of the same fixed-sample analysis, so their time includes it.
    sequential_options = {"effect": "relative", "method": "z", "cuped": True}

    def sequential() -> list[Any]:
        return sequentialize(analyze(rows, **sequential_options).comparisons, tuning_n=5000.0)

    def bayesian() -> list[Any]:
        comparisons = analyze(rows, **sequential_options).comparisons
        return bayesian_family(comparisons, prior=NormalPrior(mean=0.0, std=0.3))

    for label, run, key, pick in (
        ("sequential CS", sequential, "sequential", lambda r: (r.estimate, r.ci_lower, r.ci_upper)),
        (
            "Bayesian",
            bayesian,
            "bayesian-proper",
            lambda r: (r.posterior_mean, r.ci_lower, r.ci_upper),
        ),
    ):
        seconds = median_seconds(run, args.repeats)
        by_metric = {r.metric: pick(r) for r in run()}
        peer = peers["gbstats"][key]
        diff = largest_difference([by_metric[c["id"]] for c in cases], peer["estimate_ci"], same)
        table.add_row(
            label,
            f"{seconds / n * 1e6:.2f}",
            "gbstats",
            f"{peer['seconds'] / n * 1e6:.1f}",
            f"{peer['seconds'] / seconds:.0f}x",
            f"{diff:.2e}",
        )

    sp = peers["spotify"]
    ids = set(sp["ids"])
    sub_rows = [r for r in rows if r["metric"] in ids]
    m = len(sp["ids"])
    abs_options = {"effect": "absolute", "method": "welch"}
    seconds = median_seconds(lambda: analyze(sub_rows, **abs_options), args.repeats)
    by_id = dict(zip([c["id"] for c in cases], ours(**abs_options), strict=True))
    sp_kinds = {c["id"]: c["kind"] for c in cases}
    diff = largest_difference(
        [by_id[i] for i in sp["ids"]],
        sp["estimate_ci"],
        [sp_kinds[i] == "mean" for i in sp["ids"]],
    )
    table.add_row(
        "t-test, absolute",
        f"{seconds / m * 1e6:.2f}",
        "spotify-confidence",
        f"{sp['seconds'] / m * 1e6:.1f}",
        f"{sp['seconds'] / seconds:.0f}x",
        f"{diff:.2e}",
    )
    console.print(table)


if __name__ == "__main__":
    main()
