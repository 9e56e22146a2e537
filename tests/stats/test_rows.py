"""One row of sufficient statistics: validation, defaults, and merging rows with one key."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from proving.errors import StatsInputError
from proving.stats import rows as rows_module
from proving.stats import table
from proving.stats.rows import ArmRow, is_blank, merge_rows, parse_row, row_list
from proving.stats.sufficient import ArmStats

ROWS = [
    {"experiment": "e", "variant": "control", "metric": "ctr", "kind": "proportion", "n": 100,
     "sum": 10},
    {"experiment": "e", "variant": "b", "metric": "ctr", "kind": "proportion", "n": 120,
     "sum": 18, "family": "guardrail"},
    {"experiment": "e", "variant": "control", "metric": "spc", "n": 50, "sum": 80.0,
     "sum_squares": 200.0, "denominator_sum": 150.0, "denominator_sum_squares": 500.0,
     "sum_products": 290.0},
]  # fmt: skip


def test_list_of_dicts_infers_kind_and_defaults():
    rows = [parse_row(r) for r in ROWS]
    assert [r.kind for r in rows] == ["proportion", "proportion", "ratio"]
    assert rows[0].stats.sum_squares == 10.0  # a proportion's y*y equals y
    assert rows[0].segment == "all" and rows[0].family is None
    assert rows[1].family == "guardrail"
    assert rows[2].stats.is_ratio
    assert rows[1].key == ("e", "ctr", "all", "b")


def test_rows_with_the_same_key_are_summed():
    day1 = ArmStats.from_values([1.0, 2.0, 3.0])
    day2 = ArmStats.from_values([4.0, 5.0])
    other = ArmStats.from_values([7.0])
    rows = [
        parse_row({"variant": "control", "metric": "m", **day1.to_flat()}),
        parse_row({"variant": "b", "metric": "m", **other.to_flat()}),
        parse_row({"variant": "control", "metric": "m", "family": "secondary", **day2.to_flat()}),
    ]
    merged = merge_rows((f"rows[{i}]", r) for i, r in enumerate(rows))
    assert [r.variant for r in merged] == ["control", "b"]  # first-seen order
    assert merged[0].stats == day1 + day2 == ArmStats.from_values([1.0, 2.0, 3.0, 4.0, 5.0])
    assert merged[0].family == "secondary"


def test_merging_rows_with_different_covariates_or_kinds_names_the_row():
    a = {"variant": "control", "metric": "m", "n": 2, "sum": 1, "sum_squares": 1}
    b = {**a, "covariate_1_sum": 1, "covariate_1_sum_squares": 1, "covariate_1_sum_products": 1}
    with pytest.raises(StatsInputError, match=r"rows\[1\]: cannot merge statistics"):
        merge_rows([("rows[0]", parse_row(a)), ("rows[1]", parse_row(b))])
    p = {**a, "kind": "proportion"}
    with pytest.raises(StatsInputError, match=r"line 3: metric 'm', variant 'control' appears "
                       r"before with kind 'mean' and here with 'proportion'"):  # fmt: skip
        merge_rows([("line 2", parse_row(a)), ("line 3", parse_row(p))])


def test_nan_in_a_dict_row_is_data_not_a_missing_field():
    row = parse_row({"variant": "b", "metric": "m", "n": 3, "sum": float("nan"),
                     "sum_squares": 1.0})  # fmt: skip
    assert np.isnan(row.stats.sum)
    # In a DataFrame NaN marks an empty cell: the ratio columns of a mean row are absent.
    frame_row = {"variant": "b", "metric": "m", "n": 3, "sum": 1.0, "sum_squares": 1.0,
                 "kind": float("nan"), "denominator_sum": float("nan")}  # fmt: skip
    assert parse_row(frame_row, nan_is_missing=True).kind == "mean"
    with pytest.raises(StatsInputError, match=r"`kind` must be one of .*got 'nan'"):
        parse_row(frame_row)
    with pytest.raises(StatsInputError, match=r"field `sum` is missing"):
        parse_row({"variant": "b", "metric": "m", "n": 3, "sum": float("nan"),
                   "sum_squares": 1.0}, where="DataFrame row 0", nan_is_missing=True)  # fmt: skip


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ([1, 2], r"rows\[4\]: a row must be a mapping of column to value; got list"),
        ({"variant": "b", "metric": "m", "n": 1, "sum": 1, "sum_squares": 1, "sum_square": 1},
         r"rows\[4\]: unknown column\(s\) \['sum_square'\]"),
        ({"variant": " ", "metric": "m", "n": 1, "sum": 1, "sum_squares": 1},
         r"rows\[4\]: field `variant` is missing"),
        ({"variant": "b", "metric": "m", "kind": "count", "n": 1, "sum": 1, "sum_squares": 1},
         r"`kind` must be one of mean, proportion, ratio; got 'count'"),
    ],
)  # fmt: skip
def test_bad_rows_name_the_row_and_field(row, match):
    with pytest.raises(StatsInputError, match=match):
        parse_row(row, where="rows[4]")


def test_blank_cells_and_json_row_lists():
    assert is_blank(None) and is_blank(" \t") and not is_blank(0) and not is_blank("x")
    assert not is_blank(float("nan")) and is_blank(float("nan"), nan_is_missing=True)
    assert row_list({"rows": ROWS}, "f.json") == ROWS == row_list(ROWS, "f.json")
    with pytest.raises(StatsInputError, match=r"f\.json: expected a list of rows or an object"):
        row_list({"data": []}, "f.json")
    with pytest.raises(StatsInputError, match=r"f\.json: `rows` must be a list; got str"):
        row_list({"rows": "x"}, "f.json")


def test_names_stay_importable_from_table():
    assert table.parse_row is parse_row and table.ArmRow is ArmRow
    assert table.merge_rows is merge_rows and table.KEY_FIELDS is rows_module.KEY_FIELDS


def test_docstring_examples():
    assert doctest.testmod(rows_module).failed == 0
