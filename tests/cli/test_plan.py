"""`proving plan`: the command's answers equal the library's; bad flags exit 2 with a message."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from proving.cli.app import app
from proving.stats.power import (
    PlanMetric,
    achieved_power,
    minimum_detectable_effect,
    sample_size,
)
from proving.stats.sufficient import ArmStats

runner = CliRunner()


def plan(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["plan", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.output)
    return data


def test_sample_size_of_a_proportion_equals_the_library() -> None:
    out = plan(
        "--kind", "proportion", "--baseline", "0.1", "--effect-size", "0.05",
        "--daily-traffic", "8000", "--variants", "2", "--metrics", "2",
    )  # fmt: skip
    ref = sample_size(
        PlanMetric.proportion(0.1), 0.05, relative=True, daily_traffic=8000, variants=2, metrics=2
    )
    assert out == json.loads(ref.to_json())
    assert out["solve_for"] == "sample_size" and out["comparisons"] == 4


def test_mde_from_days_with_cuped_and_weights() -> None:
    out = plan(
        "--baseline", "42", "--std", "30", "--days", "14", "--daily-traffic", "5000",
        "--weights", "50,25,25", "--cuped-correlation", "0.5", "--effect", "absolute",
    )  # fmt: skip
    ref = minimum_detectable_effect(
        PlanMetric.mean_metric(42, 30),
        days=14,
        daily_traffic=5000,
        weights=[50, 25, 25],
        cuped_correlation=0.5,
    )
    assert out == json.loads(ref.to_json())
    assert out["solve_for"] == "mde" and out["effect_type"] == "absolute"


def test_power_of_a_ratio_metric() -> None:
    out = plan(
        "--kind", "ratio", "--numerator-mean", "1.2", "--denominator-mean", "4",
        "--numerator-std", "1.5", "--denominator-std", "2.5", "--correlation", "0.6",
        "--effect-size", "0.03", "--n-total", "200000", "--alternative", "greater",
    )  # fmt: skip
    ref = achieved_power(
        PlanMetric.ratio(1.2, 4, 1.5, 2.5, 0.6),
        0.03,
        n_total=200_000,
        relative=True,
        alternative="greater",
    )
    assert out == json.loads(ref.to_json())
    assert out["solve_for"] == "power"


def test_baseline_from_a_history_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pre = rng.gamma(2, 10, 3000)
    revenue = pre + rng.normal(0, 8, 3000)
    rows = []
    for day in range(3):
        part = slice(day * 1000, (day + 1) * 1000)
        stats = ArmStats.from_values(revenue[part], covariates={"pre": pre[part]})
        rows.append({"variant": "control", "metric": "revenue", **stats.to_flat()})
    rows.append({"variant": "control", "metric": "other", "n": 10, "sum": 5, "sum_squares": 5})
    path = tmp_path / "history.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    out = plan("--history", str(path), "--metric", "revenue", "--effect-size", "0.02")
    metric = PlanMetric.from_arm(
        ArmStats.from_values(revenue, covariates={"pre": pre}), name="revenue"
    )
    ref = sample_size(metric, 0.02, relative=True)
    assert out["n_control_exact"] == pytest.approx(ref.n_control_exact, rel=1e-9)
    assert out["variance_reduction"] == pytest.approx(metric.r_squared, rel=1e-9)
    assert out["metric"] == "revenue"


def test_rich_output_shows_the_answer_and_the_mde_by_duration() -> None:
    result = runner.invoke(
        app,
        ["plan", "--kind", "proportion", "--baseline", "0.2", "--effect-size", "0.04",
         "--daily-traffic", "2000"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ref = sample_size(PlanMetric.proportion(0.2), 0.04, relative=True, daily_traffic=2000)
    assert ref.n_per_arm is not None
    assert f"{ref.n_per_arm[0]}, {ref.n_per_arm[1]}" in result.output
    assert "Minimum detectable effect by duration" in result.output
    assert "days" in result.output and str(ref.days) in result.output


def test_unreachable_mde_is_explained() -> None:
    result = runner.invoke(
        app, ["plan", "--baseline", "1", "--std", "5", "--n-total", "20", "--power", "0.99"]
    )
    assert result.exit_code == 0, result.output
    assert "no answer" in result.output and "no effect size" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "1", "--std", "1", "--effect-size", "0.1", "--alpha", "0.7"],
         "`alpha` (--alpha) must be in (0, 0.5]; got 0.7"),
        (["--baseline", "1", "--std", "1", "--effect-size", "0.1", "--power", "1.5"],
         "`power` (--power) must be in"),
        (["--baseline", "1", "--std", "1", "--effect-size", "0.1", "--daily-traffic", "-5"],
         "`daily_traffic` (--daily-traffic) must be a positive number"),
        (["--baseline", "1", "--effect-size", "0.1"], "a mean metric needs --std"),
        (["--baseline", "1", "--std", "1"], "nothing to solve for"),
        (["--baseline", "1", "--std", "1", "--effect-size", "0.1", "--weights", "a,b"],
         "`weights` (--weights) must be comma-separated numbers"),
        (["--kind", "median", "--effect-size", "0.1"], "`kind` (--kind) must be one of"),
        (["--kind", "proportion", "--baseline", "1.2", "--effect-size", "0.1"],
         "(--baseline) must be in (0, 1)"),
        (["--baseline", "1", "--std", "1", "--effect-size", "0.1", "--effect", "lift"],
         "`effect type` (--effect) must be relative or absolute"),
    ],
)  # fmt: skip
def test_bad_flags_exit_2_with_a_message(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert message in text, text
    assert "Traceback" not in result.output


def test_history_without_the_metric_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text(json.dumps([{"variant": "control", "metric": "a", "n": 5, "sum": 1,
                                 "sum_squares": 1}]))  # fmt: skip
    result = runner.invoke(app, ["plan", "--history", str(path), "--metric", "b", "--days", "3"])
    assert result.exit_code == 2
    assert "no rows for metric 'b'" in " ".join(result.output.split())
