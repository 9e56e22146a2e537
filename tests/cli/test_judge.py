"""`proving judge`: the canary judge from files, as a table, as JSON and as a pipeline gate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from proving.cli.app import app
from proving.stats.canary import CanaryMetricSpec, judge
from proving.stats.canary_sequential import SequentialCanaryTest

runner = CliRunner()

SPEC = """
alpha: 0.05
group_weights: {latency: 2}
metrics:
  - {name: latency_ms, direction: increase, allowed_increase: 0.1, group: latency}
  - {name: errors, direction: increase, critical: true}
"""


def _write(
    path: Path, error_rate: float, seed: int = 0
) -> dict[str, tuple[list[float], list[float]]]:
    rng = np.random.default_rng(seed)
    data = {
        "latency_ms": (rng.gamma(2, 50, 300).tolist(), rng.gamma(2, 52, 300).tolist()),
        "errors": (rng.poisson(2.0, 300).astype(float).tolist(),
                   rng.poisson(error_rate, 300).astype(float).tolist()),
    }  # fmt: skip
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["metric", "arm", "value"])
        for metric, (base, canary) in data.items():
            writer.writerows([metric, "baseline", v] for v in base)
            writer.writerows([metric, "canary", v] for v in canary)
    return data


def test_json_output_equals_the_library(tmp_path: Path) -> None:
    data = _write(tmp_path / "canary.csv", error_rate=2.0)
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = runner.invoke(
        app,
        ["judge", str(tmp_path / "canary.csv"), "--spec", str(tmp_path / "spec.yaml"), "--json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    specs = [
        CanaryMetricSpec("latency_ms", "increase", allowed_increase=0.1, group="latency"),
        CanaryMetricSpec("errors", "increase", critical=True),
    ]
    expected = judge(data, specs, group_weights={"latency": 2.0})
    assert out == json.loads(expected.to_json())
    assert out["decision"] == "pass"


def test_table_output_and_exit_code_gate(tmp_path: Path) -> None:
    _write(tmp_path / "canary.csv", error_rate=4.0)
    (tmp_path / "spec.yaml").write_text(SPEC)
    args = ["judge", str(tmp_path / "canary.csv"), "--spec", str(tmp_path / "spec.yaml")]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "errors" in table.output and "fail" in table.output and "critical" in table.output
    gate = runner.invoke(app, [*args, "--exit-code"])
    assert gate.exit_code == 1


def test_without_a_spec_every_metric_is_judged_either_way(tmp_path: Path) -> None:
    _write(tmp_path / "canary.csv", error_rate=2.0)
    result = runner.invoke(app, ["judge", str(tmp_path / "canary.csv"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {m["metric"] for m in out["metrics"]} == {"latency_ms", "errors"}
    assert all(m["direction"] == "either" for m in out["metrics"])


def _write_looks(path: Path, slowdown: float, looks: int = 12, seed: int = 2) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["look", "metric", "arm", "value"])
        for look in range(1, looks + 1):
            writer.writerows([look, "latency_ms", "baseline", v] for v in rng.gamma(2, 50, 40))
            writer.writerows(
                [look, "latency_ms", "canary", v] for v in rng.gamma(2, 50, 40) * slowdown
            )


SEQUENTIAL_SPEC = """
metrics:
  - {name: latency_ms, direction: increase, allowed_increase: 0.05, reference: 100}
"""


def test_sequential_mode_equals_the_library_replayed_look_by_look(tmp_path: Path) -> None:
    _write_looks(tmp_path / "looks.csv", slowdown=1.6)
    (tmp_path / "spec.yaml").write_text(SEQUENTIAL_SPEC)
    args = ["judge", str(tmp_path / "looks.csv"), "--spec", str(tmp_path / "spec.yaml")]
    result = runner.invoke(app, [*args, "--sequential", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["decision"] == "fail"
    test = SequentialCanaryTest(
        CanaryMetricSpec("latency_ms", "increase", allowed_increase=0.05), reference=100.0
    )
    with (tmp_path / "looks.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    expected = []
    for look in range(1, 13):
        sel = [r for r in rows if int(r["look"]) == look]
        base = [float(r["value"]) for r in sel if r["arm"] == "baseline"]
        canary = [float(r["value"]) for r in sel if r["arm"] == "canary"]
        expected.append(json.loads(test.update(base, canary).to_json()))
    assert out["metrics"][0]["looks"] == expected
    table = runner.invoke(app, [*args, "--sequential", "--exit-code"])
    assert table.exit_code == 1 and "fail: a metric regressed" in _flat(table.output)
    calm_path = tmp_path / "calm.csv"
    _write_looks(calm_path, slowdown=1.0)
    calm = runner.invoke(app, ["judge", str(calm_path), "--spec", str(tmp_path / "spec.yaml"),
                               "--sequential", "--exit-code"])  # fmt: skip
    assert calm.exit_code == 0 and "no alarm so far" in _flat(calm.output)


def test_sequential_tolerance_without_reference_is_a_user_error(tmp_path: Path) -> None:
    _write_looks(tmp_path / "looks.csv", slowdown=1.0)
    spec = tmp_path / "spec.yaml"
    spec.write_text("metrics:\n  - {name: latency_ms, allowed_increase: 0.1}\n")
    r = runner.invoke(app, ["judge", str(tmp_path / "looks.csv"), "--spec", str(spec),
                            "--sequential"])  # fmt: skip
    assert r.exit_code == 2 and "fixed `reference`" in _flat(r.output)


def _flat(text: str) -> str:
    """Rich wraps long messages to the terminal width; compare without line breaks."""
    return " ".join(text.split())


def test_user_errors_name_the_field_and_exit_2(tmp_path: Path) -> None:
    _write(tmp_path / "canary.csv", error_rate=2.0)
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text("metrics:\n  - {name: errors, direction: up}\n")
    r = runner.invoke(app, ["judge", str(tmp_path / "canary.csv"), "--spec", str(bad_spec)])
    assert r.exit_code == 2 and "metrics.0.direction" in _flat(r.output)
    partial = tmp_path / "partial.yaml"
    partial.write_text("metrics:\n  - {name: errors}\n")
    r = runner.invoke(app, ["judge", str(tmp_path / "canary.csv"), "--spec", str(partial)])
    assert r.exit_code == 2 and "latency_ms" in _flat(r.output) and "no entry" in _flat(r.output)
    rows = tmp_path / "rows.csv"
    rows.write_text("metric,arm,value\nerrors,treatment,1\n")
    r = runner.invoke(app, ["judge", str(rows)])
    assert r.exit_code == 2 and "`arm` must be 'baseline' or 'canary'" in _flat(r.output)
    r = runner.invoke(app, ["judge", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "no such file" in _flat(r.output)
    assert "Traceback" not in r.output
