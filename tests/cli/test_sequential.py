"""`proving monitor FILE`: replays looks through the sequential monitor, table and JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from proving.cli.app import app
from proving.stats.monitor import MonitorSpec, SequentialMonitor
from proving.stats.sufficient import ArmStats

runner = CliRunner()


def _write_looks(path: Path, lift: float, looks: int = 10, seed: int = 1) -> list[dict[str, float]]:
    """Cumulative per-look statistics of a mean metric, as a CSV with a `look` column."""
    rng = np.random.default_rng(seed)
    rows = []
    totals = {"control": ArmStats(n=0, sum=0.0, sum_squares=0.0)}
    totals["b"] = totals["control"]
    for look in range(1, looks + 1):
        for variant, mean in (("control", 10.0), ("b", 10.0 + lift)):
            totals[variant] = totals[variant] + ArmStats.from_values(rng.normal(mean, 5, 400))
            rows.append(
                {"look": look, "variant": variant, "metric": "revenue", **totals[variant].to_flat()}
            )
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_json_output_equals_the_library_monitor(tmp_path: Path) -> None:
    path = tmp_path / "looks.csv"
    rows = _write_looks(path, lift=0.6)
    result = runner.invoke(app, ["monitor", str(path), "--effect", "absolute", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert len(out) == 1 and out[0]["variant"] == "b"
    monitor = SequentialMonitor(MonitorSpec(metric="revenue", effect="absolute"))
    for look in range(0, len(rows), 2):
        c, t = (
            ArmStats.from_flat({k: v for k, v in r.items() if k != "look"})
            for r in rows[look : look + 2]
        )
        monitor.update(c, t)
    assert out[0]["history"] == json.loads(monitor.to_json())["history"]
    assert out[0]["decision"] == monitor.decision == "stop_for_effect"


def test_table_output_and_increments(tmp_path: Path) -> None:
    path = tmp_path / "looks.csv"
    _write_looks(path, lift=-0.8)
    cumulative = runner.invoke(
        app, ["monitor", str(path), "--effect", "absolute", "--method", "group_sequential",
              "--max-n", "8000", "--json"],
    )  # fmt: skip
    assert cumulative.exit_code == 0, cumulative.output
    assert json.loads(cumulative.output)[0]["decision"] == "stop_for_harm"
    shown = runner.invoke(
        app, ["monitor", str(path), "--effect", "absolute", "--lower-is-better", "revenue"]
    )
    assert shown.exit_code == 0, shown.output
    assert "stop_for_effect" in shown.output  # lower revenue counts as good here


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--method", "group_sequential"], "`max_n` is required"),
        (["--control", "ctrl"], "no arm named 'ctrl'"),
        (["--alpha", "2"], "`alpha` must be"),
    ],
)
def test_bad_input_exits_2_with_the_fix(tmp_path: Path, args: list[str], match: str) -> None:
    path = tmp_path / "looks.csv"
    _write_looks(path, lift=0.0, looks=2)
    result = runner.invoke(app, ["monitor", str(path), *args])
    assert result.exit_code == 2
    assert match in " ".join(result.output.split())


def test_bad_look_column_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("look,variant,metric,n,sum,sum_squares\nfirst,control,m,10,1,1\n")
    result = runner.invoke(app, ["monitor", str(path)])
    assert result.exit_code == 2
    assert "line 2: field `look` must be a whole number" in " ".join(result.output.split())
