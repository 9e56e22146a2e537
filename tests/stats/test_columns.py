"""The columnar reader: every source gives exactly what the row reader gives, and the same
errors; the independent truth is ``columns_from_rows(read_table(...))``, which validates and
merges one row (one ArmStats) at a time."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from proving.errors import StatsInputError
from proving.stats.analyze import analyze
from proving.stats.columns import ArmColumns, columns_from_rows, read_columns
from proving.stats.sufficient import ArmStats
from proving.stats.table import read_table

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "stats.csv"


def _assert_same_columns(a: ArmColumns, b: ArmColumns) -> None:
    for f in dataclasses.fields(ArmColumns):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert list(x) == list(y), f.name


def _mixed_rows() -> list[dict]:
    rng = np.random.default_rng(3)
    rows = []
    for i, kind in enumerate(["mean", "proportion", "ratio", "cuped", "cuped-ratio"] * 3):
        for variant in ("control", " b "):  # whitespace is stripped on both paths
            y = rng.poisson(2.0, 50).astype(float)
            d = y + rng.poisson(3.0, 50) + 1.0
            x = {"pre": rng.normal(size=50), "flag": (rng.random(50) < 0.5).astype(float)}
            if kind == "proportion":
                stats = ArmStats.from_values((y > 2).astype(float))
            elif kind == "ratio":
                stats = ArmStats.from_values(y, denominators=d)
            elif kind == "cuped":
                stats = ArmStats.from_values(y, covariates=x)
            elif kind == "cuped-ratio":
                stats = ArmStats.from_values(y, denominators=d, covariates={"pre": x["pre"]})
            else:
                stats = ArmStats.from_values(y)
            row = {"variant": variant, "metric": f"{kind}-{i}", **stats.to_flat()}
            if kind == "proportion":
                row["kind"] = "proportion"
                del row["sum_squares"]
            if i % 2:
                row["experiment"], row["family"] = "exp", "secondary"
            rows.append(row)
    return rows


def _arrow(rows: list[dict]) -> pa.Table:
    """One column per field, null where a row has none (what a warehouse returns)."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({k: [r.get(k) for r in rows] for k in names})


def test_columnar_reader_equals_the_row_reader_on_every_source(tmp_path):
    rows = _mixed_rows()
    expected = columns_from_rows(read_table(rows))
    _assert_same_columns(read_columns(rows), expected)
    frame = pd.DataFrame(rows)
    _assert_same_columns(read_columns(frame), expected)
    _assert_same_columns(read_columns(pa.Table.from_pandas(frame, preserve_index=False)), expected)
    _assert_same_columns(read_columns(_arrow(rows)), expected)
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"rows": rows}))
    _assert_same_columns(read_columns(path), expected)
    _assert_same_columns(read_columns(EXAMPLE), columns_from_rows(read_table(EXAMPLE)))


def test_a_dict_of_numpy_columns_is_read_like_its_rows():
    rows = [r for r in _mixed_rows() if r["metric"].startswith("ratio")]
    names = list(dict.fromkeys(k for r in rows for k in r))
    text = ("variant", "metric", "experiment", "family")
    columns = {
        k: np.array([r.get(k) for r in rows], dtype=object if k in text else float) for k in names
    }
    assert columns["experiment"].tolist().count(None) == 4  # blank: the default ""
    _assert_same_columns(read_columns(columns), columns_from_rows(read_table(rows)))


def test_arrow_types_nulls_chunks_and_covariate_name_forms():
    rows = _mixed_rows()
    table = _arrow(rows)
    chunked = pa.concat_tables([table.slice(0, 7), table.slice(7)])
    assert chunked.column("n").num_chunks == 2
    expected = columns_from_rows(read_table(rows))
    _assert_same_columns(read_columns(chunked), expected)
    # Dictionary-encoded and large strings, integer counts, names as "a;b" strings.
    as_text = [
        {**r, "covariate_names": ";".join(r["covariate_names"])} if "covariate_names" in r else r
        for r in rows
    ]
    other = _arrow(as_text)
    other = other.set_column(
        other.schema.get_field_index("variant"), "variant", other["variant"].dictionary_encode()
    )
    other = other.set_column(
        other.schema.get_field_index("metric"), "metric", other["metric"].cast(pa.large_string())
    )
    _assert_same_columns(read_columns(other), expected)
    ints = pa.table({"variant": ["control", "b"], "metric": ["m", "m"],
                     "n": pa.array([10, 12], pa.int32()), "sum": [5, 7],
                     "sum_squares": [4, 6]})  # fmt: skip
    assert read_columns(ints).n.dtype == np.float64 and read_columns(ints).sum.tolist() == [5, 7]


def test_names_that_contain_the_join_separator_still_read_correctly():
    rows = [r for r in _mixed_rows() if r.get("covariate_names") == ["pre"]]
    for r in rows:
        r["covariate_names"] = ["pre\x1fperiod"]
    expected = columns_from_rows(read_table(rows))
    assert expected.covariate_names[0] == ("pre\x1fperiod",)
    _assert_same_columns(read_columns(_arrow(rows)), expected)


def test_text_cells_are_cleaned_like_the_row_reader():
    rows = [
        {"variant": " control", "metric": 7, "segment": "  ", "kind": "mean", "n": 3, "sum": 3.0,
         "sum_squares": 5.0, "family": ""},
        {"variant": "b ", "metric": 7, "segment": None, "kind": " ", "n": 4, "sum": 3.0,
         "sum_squares": 5.0, "family": "guardrail"},
        {"variant": "c", "metric": 7.0, "n": 4, "sum": 3.0, "sum_squares": 5.0},
    ]  # fmt: skip
    cols = read_columns(rows)
    _assert_same_columns(cols, columns_from_rows(read_table(rows)))
    assert cols.metric == ["7", "7", "7.0"] and cols.segment == ["all"] * 3
    codes, values = cols.codes("metric")
    assert [values[c] for c in codes] == cols.metric


def test_codes_index_the_values_for_every_text_column():
    cols = read_columns(_arrow(_mixed_rows()))
    for name in ("experiment", "metric", "segment", "variant", "kind", "family"):
        codes, values = cols.codes(name)
        assert [values[c] for c in codes.tolist()] == getattr(cols, name), name
    direct = columns_from_rows(read_table(_mixed_rows()))
    codes, values = direct.codes("variant")
    assert values == ["control", "b"] and codes.tolist() == [0, 1] * 15


def test_columns_pickle_and_compare_equal_after_lazy_text():
    cols = read_columns(_arrow(_mixed_rows()))
    back = pickle.loads(pickle.dumps(cols))
    _assert_same_columns(back, cols)
    assert back.variant[:2] == ["control", "b"]


def test_columnar_reader_merges_duplicates_and_reports_errors_like_read_table(tmp_path):
    day = {"variant": "control", "metric": "m", "n": 3, "sum": 6.0, "sum_squares": 14.0}
    merged = read_columns([day, dict(day)])
    assert merged.n.tolist() == [6.0] and merged.sum.tolist() == [12.0]
    days = _mixed_rows() + [{k: v for k, v in r.items() if k != "family"} for r in _mixed_rows()]
    _assert_same_columns(read_columns(days), columns_from_rows(read_table(days)))
    _assert_same_columns(read_columns(_arrow(days)), columns_from_rows(read_table(days)))
    mixed = [day, {**day, "covariate_1_sum": 1, "covariate_1_sum_squares": 1,
                   "covariate_1_sum_products": 1}]  # fmt: skip
    with pytest.raises(StatsInputError, match=r"rows\[1\]: cannot merge statistics"):
        read_columns(mixed)
    bad = tmp_path / "bad.csv"
    bad.write_text("variant,metric,n,sum,sum_squares\ncontrol,m,ten,5,5\n")
    with pytest.raises(StatsInputError, match=r"bad\.csv: line 2: field `n` must be a number"):
        read_columns(bad)
    with pytest.raises(StatsInputError, match=r"rows\[1\]: field `variant` is missing"):
        read_columns([day, {**day, "variant": None}])


@pytest.mark.parametrize(
    ("column", "values", "match"),
    [
        ("variant", ["control", None], r"table row 1: field `variant` is missing"),
        ("n", ["10", "ten"], r"table row 1: field `n` must be a number; got 'ten'"),
        ("kind", ["mean", "count"], r"table row 1: `kind` must be one of"),
        ("family", ["main", None], r"table row 0: `family` must be one of"),
    ],
)
def test_bad_arrow_tables_raise_the_row_readers_errors(column, values, match):
    data = {"variant": ["control", "b"], "metric": ["m", "m"], "n": [10, 12],
            "sum": [5.0, 7.0], "sum_squares": [4.0, 6.0], column: values}  # fmt: skip
    with pytest.raises(StatsInputError, match=match):
        read_columns(pa.table(data))
    with pytest.raises(StatsInputError, match=match):
        read_table(pa.table(data))


def test_bad_column_dicts_are_explained():
    with pytest.raises(StatsInputError, match=r"rows\[1\]: field `n` must be a number"):
        read_columns({"variant": ["control", "b"], "metric": ["m", "m"], "n": [1, "x"],
                      "sum": [1.0, 1.0], "sum_squares": [1.0, 1.0]})  # fmt: skip
    with pytest.raises(StatsInputError, match=r"lists or arrays of equal length"):
        read_columns({"variant": ["control", "b"], "metric": ["m"]})


def test_analysis_is_the_same_from_every_source():
    rows = _mixed_rows()
    expected = analyze(read_table(rows), control="b", effect="absolute").to_dict()
    for source in (rows, _arrow(rows), pd.DataFrame(rows), read_columns(rows)):
        assert analyze(source, control="b", effect="absolute").to_dict() == expected


def test_docstring_examples():
    import doctest
    import importlib

    for name in ("proving.stats.columns", "proving.stats.table"):
        assert doctest.testmod(importlib.import_module(name)).failed == 0, name


def test_arrow_whitespace_check_matches_str_strip():
    from proving.stats import table

    assert set(table.PYTHON_WHITESPACE) == {chr(i) for i in range(0x3001) if chr(i).isspace()}
    assert not any(chr(i).isspace() for i in range(0x3001, 0x110000, 7))
    rows = [
        {"variant": v, "metric": m, "n": 3, "sum": 1.0, "sum_squares": 1.0}
        for v, m in (("control", "a\x1f"), ("b\u3000", "a\x1f"), ("control", "x"), ("b", "x"))
    ]
    cols = read_columns(_arrow(rows))
    _assert_same_columns(cols, columns_from_rows(read_table(rows)))
    assert cols.metric == ["a", "a", "x", "x"] and cols.variant == ["control", "b"] * 2
