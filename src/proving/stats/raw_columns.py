"""A table's source as raw columns: one adapter per source, for the columnar reader.

:func:`raw_columns` turns each source :func:`~proving.stats.table.read_table` accepts (a
.csv or .json path, a list of mappings, ``{"rows": [...]}``, a dict of equal-length
columns, a pandas DataFrame, a pyarrow Table) into :class:`RawColumns`: text columns
factorized (integer codes and the distinct values), numeric columns as (values, present)
arrays, without a Python object per row where the source allows it (Arrow's
``dictionary_encode``, pandas' numeric dtypes, ``itemgetter`` over batches of dicts).
:mod:`proving.stats.columns` validates and converts them.

Anything an adapter cannot take as-is raises :class:`FallbackError`, and the columnar
reader then falls back to :func:`~proving.stats.table.read_table`, which reads or explains
the input row by row.

Example:
    >>> raw = raw_columns([
    ...     {"variant": "control", "metric": "m", "n": 3, "sum": 1.0},
    ...     {"variant": "b", "metric": "m", "n": 4, "sum": 2.0},
    ... ])
    >>> raw.texts["variant"][0].tolist(), raw.texts["variant"][1], raw.nums["n"][0].tolist()
    ([0, 1], ['control', 'b'], [3.0, 4.0])
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import numpy.typing as npt

from proving._types import BoolArray, FloatArray, IntArray
from proving.errors import StatsInputError
from proving.stats.rows import KEY_FIELDS, is_blank, row_list

if TYPE_CHECKING:  # table.py re-exports this module's names, so only for type checking
    from proving.stats.table import TableSource

__all__ = [
    "PYTHON_WHITESPACE",
    "BoolArray",
    "FallbackError",
    "FloatArray",
    "IntArray",
    "RawColumns",
    "Text",
    "factorize",
    "is_column_dict",
    "numeric",
    "raw_columns",
    "text_codes",
]

Text = tuple[IntArray, list[Any]]  # integer codes and the distinct values they index
_SEPARATOR = "\x1f"  # ASCII unit separator: joins covariate names inside Arrow
# The characters str.isspace() accepts (str.strip() removes them), as an RE2 class.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PYTHON_WHITESPACE) + "]"
_UNCLEAN = f"^$|^{_SPACE_CLASS}|{_SPACE_CLASS}$"


class FallbackError(Exception):
    """The fast reader declines; read_table() will explain or handle the input."""


def factorize(values: Sequence[Any]) -> Text:
    """Codes in order of first appearance and the distinct values (dict work done in C)."""
    uniques = list(dict.fromkeys(values))
    if len(uniques) <= 1:
        return np.zeros(len(values), dtype=np.intp), uniques
    index = dict(zip(uniques, range(len(uniques)), strict=True))
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))
    return codes, uniques


def text_codes(values: Sequence[Any], nan: bool = False) -> Text:
    """Factorize a text column: lists become tuples, other non-text cells their ``str()``.

    Blank cells (None, whitespace, NaN where NaN marks a missing cell) become None; the
    distinct values are then all str, tuple or None, so cleaning them (:func:`clean_text`)
    is the same as cleaning every cell. (``1``, ``1.0`` and ``True`` are one dict key but
    three different texts, hence the conversion before factorizing.)
    """
    cells = list(values)
    if list in set(map(type, cells)):
        cells = [tuple(v) if isinstance(v, list) else v for v in cells]
    try:
        codes, uniques = factorize(cells)
    except TypeError:  # an unhashable cell: read_table explains
        raise FallbackError from None
    if set(map(type, uniques)) <= {str, tuple, type(None)}:
        return codes, uniques
    cells = [
        None if is_blank(v, nan) else v if isinstance(v, (str, tuple)) else str(v) for v in cells
    ]
    return factorize(cells)


def numeric(values: Sequence[Any], nan_is_missing: bool) -> tuple[FloatArray, BoolArray]:
    """Float values (NaN where missing) and the presence mask; FallbackError on a bad cell."""
    if None not in values:  # numpy would turn None into NaN silently
        try:
            out = np.asarray(values, dtype=float)
            present = ~np.isnan(out) if nan_is_missing else np.ones(out.shape, dtype=bool)
            return out, present
        except (TypeError, ValueError):
            pass
    cells = np.fromiter(values, dtype=object, count=len(values))
    present = cells != None  # noqa: E711 (elementwise, on an object array)
    if nan_is_missing:
        present &= np.array([not is_blank(v, True) for v in values], dtype=bool)
    out = np.full(len(values), np.nan)
    try:
        out[present] = cells[present].astype(float)
    except (TypeError, ValueError):
        raise FallbackError from None
    return out, present


@dataclass
class RawColumns:
    """A source's columns: text columns factorized, numeric ones as (values, present)."""

    m: int
    nan: bool  # NaN marks a missing cell (pandas)
    texts: dict[str, Text]
    nums: dict[str, tuple[FloatArray, BoolArray]]
    clean: frozenset[str] = frozenset()  # text columns known stripped and never blank


def _text_or_numeric(name: str) -> bool:
    return name in KEY_FIELDS or name == "covariate_names"


def _raw_from_lists(cols: dict[str, list[Any]], nan: bool) -> RawColumns:
    m = len(next(iter(cols.values()))) if cols else 0
    texts = {k: text_codes(v, nan) for k, v in cols.items() if _text_or_numeric(k)}
    nums = {k: numeric(v, nan) for k, v in cols.items() if not _text_or_numeric(k)}
    return RawColumns(m, nan, texts, nums)


def _raw_from_records(records: Sequence[Any]) -> RawColumns:
    """A list of mappings, transposed a batch of rows with the same keys at a time.

    ``itemgetter`` over the rows that share a key set, ``zip`` and ``np.fromiter`` run in
    C; a ``.get`` per cell is ~10x slower on 10,000-comparison tables. Numeric cells go
    straight into float arrays, text cells into object arrays to factorize.
    """
    if set(map(type, records)) != {dict} and not all(isinstance(r, Mapping) for r in records):
        raise FallbackError
    m = len(records)
    batch, signatures = factorize(list(map(tuple, records)))
    cells: dict[str, npt.NDArray[np.object_]] = {}
    nums: dict[str, tuple[FloatArray, BoolArray]] = {}
    for j, signature in enumerate(signatures):
        if not signature:
            continue
        idx: Any = slice(None)
        chosen: Any = records
        if len(signatures) > 1:
            idx = np.flatnonzero(batch == j)
            chosen = map(records.__getitem__, idx.tolist())
        rows = list(map(itemgetter(*signature), chosen))
        values = [(v,) for v in rows] if len(signature) == 1 else rows
        for k, col in zip(signature, zip(*values, strict=True), strict=True):
            if _text_or_numeric(k):
                types = set(map(type, col))
                if types == {list}:  # covariate_names as lists: tuples are hashable
                    col = tuple(map(tuple, col))
                elif list in types:
                    col = tuple(tuple(v) if isinstance(v, list) else v for v in col)
                if k not in cells:
                    cells[k] = np.full(m, None, dtype=object)
                cells[k][idx] = np.fromiter(col, dtype=object, count=len(col))
            else:
                if k not in nums:
                    nums[k] = (np.full(m, np.nan), np.zeros(m, dtype=bool))
                nums[k][0][idx], nums[k][1][idx] = numeric(col, False)
    texts = {k: text_codes(v.tolist()) for k, v in cells.items()}
    return RawColumns(m, False, texts, nums)


def _raw_from_arrow(table: Any) -> RawColumns:
    """Arrow columns without a Python object per cell where the type allows it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts: dict[str, Text] = {}
    nums: dict[str, tuple[FloatArray, BoolArray]] = {}
    clean: set[str] = set()
    m = int(table.num_rows)
    for name in table.column_names:
        col = table.column(name)
        kind = col.type
        if _text_or_numeric(name):
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                codes, uniques, is_clean = _arrow_text(col)
                texts[name] = (codes, uniques)
                if is_clean:
                    clean.add(name)
            elif name == "covariate_names" and pa.types.is_list(kind):
                # Join each list with a separator so that Arrow factorizes them too; a
                # name containing it splits into too many names and the count check
                # sends the table to read_table.
                codes, joined, _ = _arrow_text(pc.binary_join(col, _SEPARATOR))
                split = [
                    v if v is None else tuple(v.split(_SEPARATOR)) if v else () for v in joined
                ]
                texts[name] = (codes, split)
            else:
                texts[name] = text_codes(col.to_pylist())
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
            values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
            if col.null_count:
                present = col.is_valid().to_numpy(zero_copy_only=False)
                values = np.where(present, values, np.nan)
            else:
                present = np.ones(m, dtype=bool)
            nums[name] = (np.asarray(values, dtype=float), np.asarray(present, dtype=bool))
        else:
            nums[name] = numeric(col.to_pylist(), False)
    return RawColumns(m, False, texts, nums, frozenset(clean))


def _arrow_text(col: Any) -> tuple[IntArray, list[Any], bool]:
    """Codes and distinct values of an Arrow string column, factorized by Arrow, and
    whether the values are clean already (no nulls, blanks or surrounding whitespace)."""
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(col).combine_chunks()
    distinct = enc.dictionary
    uniques = distinct.to_pylist()
    idx = enc.indices
    nulls = bool(idx.null_count)
    if nulls:
        uniques.append(None)
        idx = idx.fill_null(len(uniques) - 1)
    codes = np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.intp)
    # Checked inside Arrow: no value is empty or starts or ends with what str.strip() strips.
    padded = pc.any(pc.match_substring_regex(distinct, _UNCLEAN)).as_py()
    return codes, uniques, not padded and not nulls


def _raw_from_frame(frame: Any) -> RawColumns:
    """pandas columns: numeric dtypes in bulk, NaN marking a missing cell."""
    texts: dict[str, Text] = {}
    nums: dict[str, tuple[FloatArray, BoolArray]] = {}
    for c in frame.columns:
        name, series = str(c), frame[c]
        if not _text_or_numeric(name) and series.dtype.kind in "iuf":
            values = series.to_numpy(dtype=float, na_value=np.nan)
            nums[name] = (values, ~np.isnan(values))
        elif _text_or_numeric(name):
            texts[name] = text_codes(series.tolist(), True)
        else:
            nums[name] = numeric(series.tolist(), True)
    return RawColumns(len(frame), True, texts, nums)


def raw_columns(source: TableSource) -> RawColumns:
    """The source's columns; FallbackError for what read_table must read or explain."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file() or path.suffix.lower() not in (".csv", ".json"):
            raise FallbackError
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                lines = list(csv.reader(fh))
            if len(lines) < 2 or any(len(line) != len(lines[0]) for line in lines):
                raise FallbackError
            cols = {h: [v or None for v in c] for h, *c in zip(*lines, strict=True)}
            return _raw_from_lists(cols, False)
        try:
            source = row_list(json.loads(path.read_text(encoding="utf-8")), str(path))
        except (json.JSONDecodeError, StatsInputError):
            raise FallbackError from None
    if hasattr(source, "column_names") and hasattr(source, "num_rows"):  # pyarrow.Table
        return _raw_from_arrow(source)
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # pandas.DataFrame
        return _raw_from_frame(source)
    if is_column_dict(source):
        if len({len(v) for v in source.values()}) != 1:
            raise FallbackError
        return _raw_from_lists(
            {
                str(k): v.tolist() if isinstance(v, np.ndarray) else list(v)
                for k, v in source.items()
            },
            False,
        )
    if isinstance(source, Mapping):
        source = source.get("rows")
    if not isinstance(source, (list, tuple)):
        raise FallbackError
    return _raw_from_records(source)


def is_column_dict(source: Any) -> TypeGuard[Mapping[Any, Any]]:
    """A mapping of column name to list/array (what a query returns), not ``{"rows": ...}``."""
    return (
        isinstance(source, Mapping)
        and "rows" not in source
        and bool(source)
        and all(isinstance(v, (list, tuple, np.ndarray)) for v in source.values())
    )
