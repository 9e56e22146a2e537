"""`proving metrics compute|refresh|validate`: files `proving analyze` reads, --json equal
to the Python API, and clear errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from proving.cli.app import app
from proving.metrics import compute_metrics, connect, load_metrics_spec
from tests.metrics.conftest import make_events, to_arrow

runner = CliRunner(env={"COLUMNS": "200"})
SPEC = {
    "experiment": "checkout",
    "segments": ["platform"],
    "metrics": [
        {"name": "revenue", "event": "purchase", "family": "primary",
         "covariate": {"window": "2d"}},
        {"name": "converted", "kind": "proportion", "event": "purchase"},
        {
            "name": "order_value",
            "kind": "ratio",
            "numerator": {"event": "purchase"},
            "denominator": {"event": "purchase", "aggregation": "count"},
        },
        {"name": "latency_p90", "kind": "quantile", "source": "predictions",
         "value": "latency_ms", "quantile": {"p": 0.9}},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "events.duckdb"
    with duckdb.connect(str(path)) as con:
        for name, df in make_events().items():
            arrow = to_arrow(df)  # noqa: F841  (read by DuckDB's replacement scan)
            con.execute(f"create table {name} as select * from arrow")
    return path


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "metrics.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def test_json_equals_the_python_api(store: Path, spec_file: Path) -> None:
    args = ["metrics", "compute", "--spec", str(spec_file), "--store", f"duckdb://{store}"]
    result = runner.invoke(app, [*args, "--json", "--from", "2024-03-01", "--to", "2024-03-09"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    from datetime import UTC, datetime

    api = compute_metrics(
        connect(f"duckdb://{store}"),
        load_metrics_spec(spec_file),
        start=datetime(2024, 3, 1, tzinfo=UTC),
        end=datetime(2024, 3, 10, tzinfo=UTC),
    )
    expected = json.loads(json.dumps(api.to_dict()))
    # DuckDB sums in parallel, so the last bits of a float may differ between two runs.
    for key in ("rows", "quantile_rows"):
        assert len(data[key]) == len(expected[key])
        for got, want in zip(data[key], expected[key], strict=True):
            assert got.keys() == want.keys()
            for field, value in want.items():
                if isinstance(value, float):
                    assert got[field] == pytest.approx(value, rel=1e-12), field
                else:
                    assert got[field] == value, field
    assert {k: v for k, v in data.items() if k not in ("rows", "quantile_rows")} == {
        k: v for k, v in expected.items() if k not in ("rows", "quantile_rows")
    }
    assert data["end"] == "2024-03-10T00:00:00+00:00"


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_output_is_read_by_analyze(
    store: Path, spec_file: Path, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"stats{suffix}"
    args = ["metrics", "compute", "--spec", str(spec_file), "--store", f"duckdb://{store}"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "revenue" in result.output and "p90" in result.output and f"wrote {out}" in result.output
    if suffix == ".csv":
        assert (tmp_path / "stats.quantiles.csv").exists()
    analysed = runner.invoke(app, ["analyze", str(out), "--json"])
    assert analysed.exit_code == 0, analysed.output
    comparisons = json.loads(analysed.output)["comparisons"]
    seen = {(c["metric"], c["segment"]) for c in comparisons}
    assert ("revenue", "all") in seen and ("order_value", "platform=ios") in seen
    revenue = next(c for c in comparisons if c["metric"] == "revenue" and c["segment"] == "all")
    assert revenue["cuped"] is True


def test_refresh_then_statistics(tmp_path: Path, spec_file: Path) -> None:
    path = tmp_path / "events.duckdb"
    with duckdb.connect(str(path)) as con:
        for name, df in make_events().items():
            arrow = to_arrow(df)  # noqa: F841
            con.execute(f"create table {name} as select * from arrow")
    spec = dict(SPEC, metrics=SPEC["metrics"][:3])
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "daily.json"
    days = [f"2024-03-{d:02d}" for d in range(1, 11)]
    args = ["metrics", "refresh", "--spec", str(spec_file), "--store", f"duckdb://{path}"]
    result = runner.invoke(
        app, [*args, *[a for d in days for a in ("--day", d)], "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "2024-03-10:" in result.output
    full = compute_metrics(connect(f"duckdb://{path}"), load_metrics_spec(spec_file))
    daily = json.loads(out.read_text())["rows"]
    assert [r["n"] for r in daily] == [r["n"] for r in full.rows]
    assert [r["sum"] for r in daily] == pytest.approx([r["sum"] for r in full.rows], rel=1e-12)


def test_validate_lists_metrics(spec_file: Path) -> None:
    result = runner.invoke(app, ["metrics", "validate", "--spec", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert "pre_revenue" in result.output and "order_value" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--from", "March"], "--from: expected a date"),
        (["--out", "stats.parquet"], "use a .json or .csv"),
        (["--store", "mysql://x"], "unknown scheme 'mysql'"),
    ],
)
def test_bad_options(store: Path, spec_file: Path, extra: list[str], message: str) -> None:
    args = ["metrics", "compute", "--spec", str(spec_file), "--store", f"duckdb://{store}"]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_spec_names_the_field(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: checkout\nmetrics:\n  - name: r\n    kind: median\n")
    result = runner.invoke(
        app, ["metrics", "compute", "--spec", str(bad), "--store", f"duckdb://{store}"]
    )
    assert result.exit_code == 2
    assert "metrics[0] ('r').kind" in result.output and "median" in result.output


def test_missing_tables_is_a_clear_error(tmp_path: Path, spec_file: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    result = runner.invoke(
        app, ["metrics", "compute", "--spec", str(spec_file), "--store", f"duckdb://{empty}"]
    )
    assert result.exit_code == 2
    assert "no table 'exposures'" in result.output
