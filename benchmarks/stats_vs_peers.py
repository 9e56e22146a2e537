"""proving's statistics engine against gbstats and spotify-confidence, side by side.

The same comparisons (metric x variant, from sufficient statistics) go through all three:
the peers run in their own venv (`make peers`) through scripts/peer_oracle.py, which also
writes the inputs; proving analyzes the same inputs here, twice: as a list of dicts and as a
pyarrow Table of the same rows (what the metrics layer returns from a warehouse; built
before timing). Printed: wall time per comparison (median of repeats for proving), the
ratios, and the largest absolute differences between the libraries' estimates and
intervals, where their conventions match.

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
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
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


def arrow_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The same rows as a pyarrow Table, one column per field (null where a row has none),
    as a warehouse query (Ibis ``to_pyarrow()``) hands them over."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({k: [r.get(k) for r in rows] for k in names})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--spotify-cases", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    console = Console(width=130)
    with console.status("running gbstats and spotify-confidence in .venv-peers ..."):
        peers = peer_run(args.cases, args.spotify_cases)
    cases = peers["cases"]
    rows = stats_rows(cases)
    # Built outside the timed region: a warehouse returns a columnar table, not dicts.
    inputs: dict[str, Any] = {"list of dicts": rows, "pyarrow Table": arrow_table(rows)}
    kinds = [c["kind"] for c in cases]
    ids = [c["id"] for c in cases]

    def ours(source: Any, **options: Any) -> list[tuple[float | None, ...]]:
        columns = analyze(source, **options).comparison_columns()
        by_metric = dict(
            zip(
                columns["metric"],
                zip(columns["estimate"], columns["ci_lower"], columns["ci_upper"], strict=True),
                strict=True,
            )
        )
        return [by_metric[i] for i in ids]

    n = len(cases)
    table = Table(title=f"{n:,} comparisons from sufficient statistics")
    for column in (
        "engine",
        "proving input",
        "proving µs/cmp",
        "peer",
        "peer µs/cmp",
        "speed-up",
        "max |diff|",
    ):
        table.add_column(column, justify="right")

    def add(label: str, source: str, seconds: float, peer: str, peer_seconds: float,
            count: int, diff: float) -> None:  # fmt: skip
        table.add_row(
            label,
            source,
            f"{seconds / count * 1e6:.2f}",
            peer,
            f"{peer_seconds / count * 1e6:.1f}",
            f"{peer_seconds / seconds:.0f}x",
            f"{diff:.2e}",
        )

    # gbstats frequentist: relative lift, Welch t, delta method. gbstats' CUPED uses a theta
    # from the pooled total covariance and divides the lift by the unadjusted control mean,
    # and its proportions use p(1 - p) without Bessel's correction: the differences are
    # printed for mean and ratio metrics, where the conventions match.
    options = {"effect": "relative", "method": "welch", "cuped": True}
    gb = peers["gbstats"]["two-sided"]
    same = [k in ("mean", "ratio") for k in kinds]
    for label, source in inputs.items():
        seconds = median_seconds(partial(analyze, source, **options), args.repeats)
        diff = largest_difference(ours(source, **options), gb["estimate_ci"], same)
        add("t-test, relative", label, seconds, "gbstats", gb["seconds"], n, diff)
    # analyze() returns the comparisons as columns; the 10,000 ComparisonResult objects are
    # created when `.comparisons` is first read. Timed here for a caller that wants them.
    seconds = median_seconds(
        lambda: analyze(inputs["pyarrow Table"], **options).comparisons, args.repeats
    )
    add("t-test, relative", "Table + objects", seconds, "gbstats", gb["seconds"], n, diff)

    # gbstats' sequential engine: the asymptotic confidence sequence with N* = 5000; and its
    # Bayesian engine: a normal prior N(0, 0.3^2) on the lift. proving's counterparts run on
    # top of the same fixed-sample analysis (and its result objects), so their time
    # includes it.
    sequential_options = {"effect": "relative", "method": "z", "cuped": True}

    # Both take the AnalysisResult itself (the vectorized path); result objects are built
    # when read, outside the timed region, like the t-test rows above.
    def sequential(source: Any) -> Any:
        return sequentialize(analyze(source, **sequential_options), tuning_n=5000.0)

    def bayesian(source: Any) -> Any:
        return bayesian_family(
            analyze(source, **sequential_options), prior=NormalPrior(mean=0.0, std=0.3)
        )

    engines: list[tuple[str, Callable[[Any], list[Any]], str, Callable[[Any], Any]]] = [
        ("sequential CS", sequential, "sequential", lambda r: (r.estimate, r.ci_lower, r.ci_upper)),
        ("Bayesian", bayesian, "bayesian-proper",
         lambda r: (r.posterior_mean, r.ci_lower, r.ci_upper)),
    ]  # fmt: skip
    for label, run, key, pick in engines:
        peer = peers["gbstats"][key]
        for source_label, source in inputs.items():
            seconds = median_seconds(partial(run, source), args.repeats)
            out = run(source)
            by_metric = {r.metric: pick(r) for r in getattr(out, "comparisons", out)}
            diff = largest_difference([by_metric[i] for i in ids], peer["estimate_ci"], same)
            add(label, source_label, seconds, "gbstats", peer["seconds"], n, diff)

    sp = peers["spotify"]
    chosen = set(sp["ids"])
    sub_rows = [r for r in rows if r["metric"] in chosen]
    sub_inputs = {"list of dicts": sub_rows, "pyarrow Table": arrow_table(sub_rows)}
    m = len(sp["ids"])
    abs_options = {"effect": "absolute", "method": "welch"}
    by_id = dict(zip(ids, ours(rows, **abs_options), strict=True))
    sp_kinds = dict(zip(ids, kinds, strict=True))
    diff = largest_difference(
        [by_id[i] for i in sp["ids"]],
        sp["estimate_ci"],
        [sp_kinds[i] == "mean" for i in sp["ids"]],
    )
    for label, source in sub_inputs.items():
        seconds = median_seconds(partial(analyze, source, **abs_options), args.repeats)
        add("t-test, absolute", label, seconds, "spotify-confidence", sp["seconds"], m, diff)
    console.print(table)


if __name__ == "__main__":
    main()
