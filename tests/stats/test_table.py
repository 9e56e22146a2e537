"""Reading per-arm sufficient statistics from files and tables, and the errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from proving.errors import StatsInputError
from proving.stats.sufficient import ArmStats
from proving.stats.table import ArmColumns, ArmRow, columns_from_rows, read_columns, read_table

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "stats.csv"

ROWS = [
    {"experiment": "e", "variant": "control", "metric": "ctr", "kind": "proportion", "n": 100,
     "sum": 10},
    {"experiment": "e", "variant": "b", "metric": "ctr", "kind": "proportion", "n": 120,
     "sum": 18, "family": "guardrail"},
    {"experiment": "e", "variant": "control", "metric": "spc", "n": 50, "sum": 80.0,
     "sum_squares": 200.0, "denominator_sum": 150.0, "denominator_sum_squares": 500.0,
     "sum_products": 290.0},
]  # fmt: skip


def test_example_file_reads_every_kind():
    rows = read_table(EXAMPLE)
    kinds = {(r.metric, r.kind) for r in rows}
    assert kinds == {
        ("conversion", "proportion"),
        ("revenue", "mean"),
        ("clicks_per_session", "ratio"),
    }
    revenue = next(r for r in rows if r.metric == "revenue" and r.variant == "control")
    assert revenue.stats.covariate_names == ("pre_revenue", "has_pre_period")
    assert revenue.experiment == "checkout" and revenue.family == "primary"


def test_list_of_dicts_infers_kind_and_defaults():
    rows = read_table(ROWS)
    assert [r.kind for r in rows] == ["proportion", "proportion", "ratio"]
    assert rows[0].stats.sum_squares == 10.0  # a proportion's y*y equals y
    assert rows[0].segment == "all" and rows[0].family is None
    assert rows[1].family == "guardrail"
    assert rows[2].stats.is_ratio


@pytest.mark.parametrize("wrap", [lambda r: r, lambda r: {"rows": r}])
def test_json_file_as_list_or_object(tmp_path, wrap):
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(wrap(ROWS)))
    assert read_table(path) == read_table(ROWS)
    assert read_table(str(path)) == read_table(ROWS)


def test_dataframe_and_arrow_table_give_the_same_rows():
    expected = read_table(ROWS)
    frame = pd.DataFrame(ROWS)  # the mean rows get NaN in the ratio columns
    assert read_table(frame) == expected
    assert read_table(pa.Table.from_pandas(frame, preserve_index=False)) == expected


def test_csv_round_trip_with_covariates(tmp_path):
    rng = np.random.default_rng(1)
    arm = ArmStats.from_values(
        rng.normal(size=20), covariates={"a": rng.normal(size=20), "b": rng.normal(size=20)}
    )
    flat = arm.to_flat()
    flat["covariate_names"] = ";".join(flat["covariate_names"])
    frame = pd.DataFrame([{"variant": "control", "metric": "m", **flat}])
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    (row,) = read_table(path)
    assert row.stats.covariate_names == ("a", "b")
    np.testing.assert_allclose(row.stats.moments()[2], arm.moments()[2], rtol=1e-12)


def test_list_of_arm_rows_is_accepted():
    row = ArmRow(variant="control", metric="m", stats=ArmStats(n=2, sum=1.0, sum_squares=1.0))
    assert read_table([row, row])[0].stats.n == 4


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("variant,metric,n,sum,sum_squares\ncontrol,m,10,5,5\n,m,10,5,5\n",
         r"s\.csv: line 3: field `variant` is missing"),
        ("variant,metric,n,sum,sum_squares\ncontrol,m,ten,5,5\n",
         r"line 2: field `n` must be a number; got 'ten'"),
        ("variant,metric,n,sum\ncontrol,m,10,5\n", r"line 2: field `sum_squares` is missing"),
        ("variant,metric,n,sum,sum_squares,colour\ncontrol,m,10,5,5,red\n",
         r"line 2: unknown column\(s\) \['colour'\]"),
        ("variant,metric,kind,n,sum,sum_squares\ncontrol,m,ratio,10,5,5\n",
         r"kind is 'ratio' but the denominator columns are missing"),
        ("variant,metric,kind,n,sum,sum_squares\ncontrol,m,count,10,5,5\n",
         r"`kind` must be one of mean, proportion, ratio; got 'count'"),
        ("variant,metric,family,n,sum,sum_squares\ncontrol,m,main,10,5,5\n",
         r"`family` must be one of primary, secondary, guardrail; got 'main'"),
        ("variant,metric,n,sum,sum_squares\ncontrol,m,10,5,5,9\n", r"more values than the header"),
        ("", r"the CSV file is empty"),
        ("variant,metric,n,sum,sum_squares\n", r"no rows"),
        ("variant,metric,kind,n,sum,sum_squares,denominator_sum\ncontrol,m,mean,1,1,1,1\n",
         r"kind is 'mean' but denominator columns are present"),
    ],
)  # fmt: skip
def test_malformed_csv_names_file_line_and_field(tmp_path, text, match):
    path = _write(tmp_path, "s.csv", text)
    with pytest.raises(StatsInputError, match=match):
        read_table(path)


def test_malformed_json_and_sources(tmp_path):
    with pytest.raises(StatsInputError, match=r"invalid JSON at line 1"):
        read_table(_write(tmp_path, "s.json", "{nope"))
    with pytest.raises(StatsInputError, match=r"an object with a `rows` list; got an object"):
        read_table(_write(tmp_path, "t.json", '{"data": []}'))
    with pytest.raises(StatsInputError, match=r"rows\[0\]: a row must be a mapping"):
        read_table(_write(tmp_path, "u.json", "[1]"))
    with pytest.raises(StatsInputError, match=r"unsupported file type '\.txt'"):
        read_table(_write(tmp_path, "s.txt", "x"))
    with pytest.raises(StatsInputError, match=r"no such file"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(StatsInputError, match=r"cannot read sufficient statistics from a int"):
        read_table(3)


def test_columnar_names_stay_importable_from_table():
    from proving.stats import columns, table

    assert ArmColumns is columns.ArmColumns
    assert read_columns is columns.read_columns and columns_from_rows is columns.columns_from_rows
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = table.nope
