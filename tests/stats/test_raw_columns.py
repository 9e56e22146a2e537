"""Raw columns: every source adapter agrees with a plain Python transpose; fallbacks."""

from __future__ import annotations

import csv
import doctest
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from proving.stats import raw_columns as raw_module
from proving.stats import table
from proving.stats.raw_columns import (
    PYTHON_WHITESPACE,
    FallbackError,
    RawColumns,
    factorize,
    numeric,
    raw_columns,
    text_codes,
)

ROWS: list[dict[str, Any]] = [
    {"experiment": "e", "variant": "control", "metric": "ctr", "n": 100, "sum": 10,
     "sum_squares": 10},
    {"experiment": "e", "variant": "b", "metric": "ctr", "n": 120, "sum": 18,
     "sum_squares": 18, "family": "guardrail"},
    {"experiment": "e", "variant": "control", "metric": "spc", "n": 50, "sum": 80.5,
     "sum_squares": 200.0, "denominator_sum": 150.0, "denominator_sum_squares": 500.0,
     "sum_products": 290.0},
    {"experiment": "e", "variant": "b", "metric": "spc", "n": 55, "sum": 81.0,
     "sum_squares": 210.0, "denominator_sum": 151.0, "denominator_sum_squares": 510.0,
     "sum_products": 292.0},
]  # fmt: skip
TEXT = ("experiment", "variant", "metric", "family")


def _decoded(raw: RawColumns) -> tuple[dict[str, list[Any]], dict[str, list[float | None]]]:
    """Text columns as values per row; numeric ones as floats (None where absent)."""
    texts = {k: [uniques[c] for c in codes.tolist()] for k, (codes, uniques) in raw.texts.items()}
    nums = {
        k: [float(v) if p else None for v, p in zip(values, present, strict=True)]
        for k, (values, present) in raw.nums.items()
    }
    return texts, nums


def _expected() -> tuple[dict[str, list[Any]], dict[str, list[float | None]]]:
    keys = list(dict.fromkeys(k for r in ROWS for k in r))
    texts = {k: [r.get(k) for r in ROWS] for k in keys if k in TEXT}
    nums = {
        k: [None if r.get(k) is None else float(r[k]) for r in ROWS] for k in keys if k not in TEXT
    }
    return texts, nums


def _csv(path: Path) -> Path:
    keys = list(dict.fromkeys(k for r in ROWS for k in r))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, keys)
        writer.writeheader()
        writer.writerows(ROWS)
    return path


def _sources(tmp_path: Path) -> dict[str, Any]:
    keys = list(dict.fromkeys(k for r in ROWS for k in r))
    columns = {k: [r.get(k) for r in ROWS] for k in keys}
    (tmp_path / "s.json").write_text(json.dumps({"rows": ROWS}))
    return {
        "list of dicts": ROWS,
        "tuple of dicts": tuple(ROWS),
        "rows object": {"rows": ROWS},
        "dict of columns": columns,
        "dict of arrays": {k: np.array(v, dtype=object) for k, v in columns.items()},
        "DataFrame": pd.DataFrame(ROWS),
        "pyarrow Table": pa.table(columns),
        "csv file": _csv(tmp_path / "s.csv"),
        "json file": tmp_path / "s.json",
    }


def test_every_source_gives_the_columns_of_a_plain_transpose(tmp_path):
    expected = _expected()
    for name, source in _sources(tmp_path).items():
        raw = raw_columns(source)
        assert raw.m == len(ROWS), name
        assert raw.nan is (name == "DataFrame"), name
        assert _decoded(raw) == expected, name
    assert raw_columns(pa.table({"variant": ["a", "b"]})).clean == {"variant"}


def test_arrow_clean_flag_uses_exactly_str_strip_whitespace():
    assert set(PYTHON_WHITESPACE) == {chr(i) for i in range(0x3001) if chr(i).isspace()}
    for value in ("a\u3000", " a", "", "a\x1f"):
        raw = raw_columns(pa.table({"variant": ["b", value]}))
        assert raw.clean == frozenset(), repr(value)
        assert raw.texts["variant"][1] == ["b", value]  # cleaning is the reader's job
    raw = raw_columns(pa.table({"variant": ["b", None]}))
    assert raw.clean == frozenset() and raw.texts["variant"][1] == ["b", None]


def test_covariate_name_lists_become_tuples_in_every_source():
    names = [["pre", "has_pre"], ["pre", "has_pre"], ["pre"], None]
    want = [("pre", "has_pre"), ("pre", "has_pre"), ("pre",), None]
    rows = [{"variant": "v", "covariate_names": n} for n in names]
    for source in (rows, {"covariate_names": names}, pa.table({"covariate_names": names})):
        codes, uniques = raw_columns(source).texts["covariate_names"]
        assert [uniques[c] for c in codes.tolist()] == want


def test_factorize_matches_pandas_and_text_codes_converts_cells():
    rng = np.random.default_rng(3)
    values = rng.choice(["a", "b", "c", "d"], size=500).tolist()
    codes, uniques = factorize(values)
    pd_codes, pd_uniques = pd.factorize(np.array(values, dtype=object))
    assert codes.tolist() == pd_codes.tolist() and uniques == pd_uniques.tolist()
    empty_codes, empty = factorize([])
    assert empty_codes.size == 0 and empty == []
    codes, uniques = text_codes([1, 1.0, True, " ", ["x"], float("nan")], nan=True)
    assert [uniques[c] for c in codes.tolist()] == ["1", "1.0", "True", None, ("x",), None]


def test_numeric_values_and_presence():
    values, present = numeric([1, None, "2.5", 3.0], nan_is_missing=False)
    assert present.tolist() == [True, False, True, True]
    assert values[[0, 2, 3]].tolist() == [1.0, 2.5, 3.0] and math.isnan(values[1])
    values, present = numeric([1.0, float("nan")], nan_is_missing=True)
    assert present.tolist() == [True, False]
    values, present = numeric([1.0, float("nan")], nan_is_missing=False)
    assert present.tolist() == [True, True]
    with pytest.raises(FallbackError):
        numeric([1.0, "x"], nan_is_missing=False)


def test_what_the_adapters_cannot_take_falls_back(tmp_path):
    ragged = tmp_path / "r.csv"
    ragged.write_text("variant,metric,n\ncontrol,m,1,2\n")
    bad_json = tmp_path / "b.json"
    bad_json.write_text("{nope")
    (tmp_path / "s.txt").write_text("x")
    for source in (
        ragged,
        bad_json,
        tmp_path / "s.txt",
        tmp_path / "missing.csv",
        [{"variant": "a", "n": "ten"}],
        [{"variant": {"not": "hashable"}}],
        {"variant": ["a", "b"], "metric": ["m"]},
        {"rows": "x"},
        3,
    ):
        with pytest.raises(FallbackError):
            raw_columns(source)


def test_names_stay_importable_from_table():
    for name in raw_module.__all__:
        assert getattr(table, name) is getattr(raw_module, name), name


def test_docstring_examples():
    assert doctest.testmod(raw_module).failed == 0
