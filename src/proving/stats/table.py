"""Read a table of per-arm sufficient statistics from files and in-memory tables.

One row per (experiment, variant, metric, segment): the keys below, then the flat
:class:`~proving.stats.sufficient.ArmStats` columns (``n``, ``sum``, ``sum_squares``,
ratio and covariate columns; see ``docs/stats/sufficient.md``).

==============  ========  ====================================================================
key             required  meaning
==============  ========  ====================================================================
``experiment``  no        experiment name (default ``""``)
``variant``     yes       arm name; the control is chosen at analysis time
``metric``      yes       metric name
``segment``     no        segment name (default ``"all"``)
``kind``        no        ``mean``, ``proportion`` or ``ratio`` (ratio is inferred from the
                          denominator columns; default ``mean``). A proportion may omit
                          ``sum_squares`` (it equals ``sum`` for 0/1 values).
``family``      no        ``primary``, ``secondary`` or ``guardrail`` (multiple comparisons)
==============  ========  ====================================================================

Rows with the same key are summed (sufficient statistics add), so a file with one row per
day analyses the whole period. Sources: a path to a ``.json`` file (a list of rows or
``{"rows": [...]}``) or a ``.csv`` file, a list of mappings, a mapping with ``rows``, a
pandas DataFrame or a pyarrow Table. Malformed input raises
:class:`~proving.errors.StatsInputError` naming the file, the row (or CSV line) and the
field.

Example:
    >>> rows = read_table([
    ...     {"variant": "control", "metric": "ctr", "kind": "proportion", "n": 100, "sum": 10},
    ...     {"variant": "b", "metric": "ctr", "kind": "proportion", "n": 100, "sum": 14},
    ... ])
    >>> [(r.variant, r.stats.sum_squares) for r in rows]
    [('control', 10.0), ('b', 14.0)]
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, cast, get_args

import numpy as np
import numpy.typing as npt

from proving.errors import StatsInputError
from proving.stats.results import Family, Kind
from proving.stats.sufficient import RATIO_FIELDS, ArmStats

if TYPE_CHECKING:  # the columnar reader lives in columns.py; re-exported below
    from proving.stats.columns import ArmColumns, columns_from_rows, read_columns

__all__ = [
    "COVARIATE_COLUMN",
    "KEY_FIELDS",
    "PYTHON_WHITESPACE",
    "STAT_FIELDS",
    "ArmColumns",
    "ArmRow",
    "FallbackError",
    "RawColumns",
    "TableSource",
    "columns_from_rows",
    "factorize",
    "is_blank",
    "is_column_dict",
    "parse_row",
    "raw_columns",
    "read_columns",
    "read_table",
    "row_list",
]

KEY_FIELDS = ("experiment", "variant", "metric", "segment", "kind", "family")
STAT_FIELDS = {"n", "sum", "sum_squares", "covariate_names", *RATIO_FIELDS}
COVARIATE_COLUMN = re.compile(
    r"^covariate_\d+_(sum|sum_squares|sum_products|denominator_sum_products)$"
    r"|^covariate_\d+_\d+_sum_products$"
)

TableSource = str | Path | Sequence[Mapping[str, Any]] | Mapping[str, Any] | Any


@dataclass(frozen=True)
class ArmRow:
    """One arm of one metric: its keys and its sufficient statistics."""

    variant: str
    metric: str
    stats: ArmStats
    experiment: str = ""
    segment: str = "all"
    kind: Kind = "mean"
    family: Family | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """``(experiment, metric, segment, variant)``."""
        return (self.experiment, self.metric, self.segment, self.variant)


def is_blank(value: Any, nan_is_missing: bool = False) -> bool:
    if value is None:
        return True
    if nan_is_missing and isinstance(value, float) and value != value:
        return True  # pandas marks a missing cell with NaN
    return isinstance(value, str) and value.strip() == ""


def _text(row: Mapping[str, Any], key: str, where: str, default: str | None) -> str:
    value = row.get(key)
    if is_blank(value):
        if default is None:
            raise StatsInputError(
                f"{where}: field `{key}` is missing; every row needs `variant` and `metric` "
                "(see docs/stats/table.md)."
            )
        return default
    return str(value).strip()


def parse_row(
    row: Mapping[str, Any], *, where: str = "row", nan_is_missing: bool = False
) -> ArmRow:
    """Validate one row and build an :class:`ArmRow`; ``where`` names it in errors.

    A NaN statistic is degenerate data (explained by the analysis), except with
    ``nan_is_missing`` (pandas DataFrames, which mark empty cells with NaN).
    """
    if nan_is_missing:
        row = {k: v for k, v in row.items() if not is_blank(v, nan_is_missing=True)}
    if not isinstance(row, Mapping):
        raise StatsInputError(
            f"{where}: a row must be a mapping of column to value; got {type(row).__name__}."
        )
    unknown = sorted(
        k
        for k in row
        if k not in KEY_FIELDS and k not in STAT_FIELDS and not COVARIATE_COLUMN.match(k)
    )
    if unknown:
        raise StatsInputError(
            f"{where}: unknown column(s) {unknown}. Allowed: {', '.join(KEY_FIELDS)}, "
            "n, sum, sum_squares, the ratio columns "
            f"({', '.join(RATIO_FIELDS)}), covariate_names and covariate_<i>_... columns "
            "(docs/stats/sufficient.md). Remove or rename them."
        )
    kind = _text(row, "kind", where, "")
    family = _text(row, "family", where, "")
    has_ratio = any(not is_blank(row.get(f)) for f in RATIO_FIELDS)
    if kind and kind not in get_args(Kind):
        raise StatsInputError(
            f"{where}: `kind` must be one of {', '.join(get_args(Kind))}; got {kind!r}."
        )
    if family and family not in get_args(Family):
        raise StatsInputError(
            f"{where}: `family` must be one of {', '.join(get_args(Family))}; got {family!r}."
        )
    kind = kind or ("ratio" if has_ratio else "mean")
    if kind == "ratio" and not has_ratio:
        raise StatsInputError(
            f"{where}: kind is 'ratio' but the denominator columns are missing; give "
            f"{', '.join(RATIO_FIELDS)}."
        )
    if kind != "ratio" and has_ratio:
        raise StatsInputError(
            f"{where}: kind is {kind!r} but denominator columns are present; set kind to "
            "'ratio' or drop them."
        )
    flat = {k: v for k, v in row.items() if k not in KEY_FIELDS and not is_blank(v)}
    if kind == "proportion" and "sum_squares" not in flat and "sum" in flat:
        flat["sum_squares"] = flat["sum"]  # y*y == y for 0/1 values
    return ArmRow(
        experiment=_text(row, "experiment", where, ""),
        variant=_text(row, "variant", where, None),
        metric=_text(row, "metric", where, None),
        segment=_text(row, "segment", where, "all"),
        kind=cast(Kind, kind),
        family=cast(Family, family) if family else None,
        stats=ArmStats.from_flat(flat, where=where),
    )


def _merge(rows: Iterable[tuple[str, ArmRow]]) -> list[ArmRow]:
    """Sum rows with the same key; first-seen order."""
    merged: dict[tuple[str, str, str, str], ArmRow] = {}
    for where, row in rows:
        old = merged.get(row.key)
        if old is None:
            merged[row.key] = row
            continue
        if old.kind != row.kind:
            raise StatsInputError(
                f"{where}: metric {row.metric!r}, variant {row.variant!r} appears before with "
                f"kind {old.kind!r} and here with {row.kind!r}; use one kind per metric."
            )
        try:
            stats = old.stats + row.stats
        except StatsInputError as exc:
            raise StatsInputError(f"{where}: {exc}") from None
        merged[row.key] = ArmRow(
            variant=row.variant,
            metric=row.metric,
            stats=stats,
            experiment=row.experiment,
            segment=row.segment,
            kind=row.kind,
            family=old.family or row.family,
        )
    return list(merged.values())


def _read_csv(path: Path) -> list[tuple[str, ArmRow]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise StatsInputError(f"{path}: the CSV file is empty; it needs a header row.")
        out = []
        for i, record in enumerate(reader):
            where = f"{path}: line {i + 2}"
            if None in record:
                raise StatsInputError(
                    f"{where}: the row has more values than the header has columns."
                )
            out.append((where, parse_row(record, where=where)))
        return out


def row_list(data: Any, where: str) -> list[Any]:
    if isinstance(data, Mapping):
        if "rows" not in data:
            raise StatsInputError(
                f"{where}: expected a list of rows or an object with a `rows` list; got an "
                f"object with keys {sorted(data)[:8]}."
            )
        data = data["rows"]
    if not isinstance(data, list):
        raise StatsInputError(f"{where}: `rows` must be a list; got {type(data).__name__}.")
    return data


def _source_rows(source: TableSource) -> list[tuple[str, ArmRow]]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise StatsInputError(f"{path}: no such file; give the path of a .json or .csv file.")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return _read_csv(path)
        if suffix != ".json":
            raise StatsInputError(
                f"{path}: unsupported file type {suffix!r}; use a .json or .csv file."
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise StatsInputError(
                f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
            ) from None
        records, label = row_list(data, str(path)), f"{path}: rows[{{}}]"
    elif hasattr(source, "to_pylist"):  # pyarrow.Table
        records, label = source.to_pylist(), "table row {}"
    elif hasattr(source, "to_dict") and hasattr(source, "columns"):  # pandas.DataFrame
        records, label = source.to_dict(orient="records"), "DataFrame row {}"
        return [
            (label.format(i), parse_row(r, where=label.format(i), nan_is_missing=True))
            for i, r in enumerate(records)
        ]
    elif isinstance(source, (Mapping, list, tuple)):
        records, label = (
            row_list(list(source) if isinstance(source, tuple) else source, "rows"),
            "rows[{}]",
        )
    else:
        raise StatsInputError(
            f"cannot read sufficient statistics from a {type(source).__name__}; give a .json "
            "or .csv path, a list of rows, a pandas DataFrame or a pyarrow Table."
        )
    return [(label.format(i), parse_row(r, where=label.format(i))) for i, r in enumerate(records)]


def read_table(source: TableSource) -> list[ArmRow]:
    """Read, validate and merge per-arm sufficient statistics (see the module docstring).

    Args:
        source: a .json/.csv path, a list of row mappings, ``{"rows": [...]}``, a pandas
            DataFrame, a pyarrow Table, or a list of :class:`ArmRow` (returned merged).

    Returns:
        One ArmRow per (experiment, metric, segment, variant), rows with the same key summed.

    Raises:
        StatsInputError: naming the file, row or line, and field.
    """
    if isinstance(source, (list, tuple)) and source and all(isinstance(r, ArmRow) for r in source):
        return _merge((f"rows[{i}]", r) for i, r in enumerate(source))
    rows = _source_rows(source)
    if not rows:
        raise StatsInputError(
            f"{source if isinstance(source, (str, Path)) else 'the table'}: no rows; give at "
            "least a control and one variant."
        )
    return _merge(rows)


# ---------------------------------------------------------------------------------------
# The same sources as raw columns, for the columnar reader (proving.stats.columns): one
# adapter per source, each returning text columns factorized and numeric columns as
# (values, present) arrays, without a Python object per row where the source allows it.
# Anything an adapter cannot take as-is raises FallbackError, and read_table explains it.

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]
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


_COLUMNAR = ("ArmColumns", "columns_from_rows", "read_columns")


def __getattr__(name: str) -> Any:
    """Keep ``from proving.stats.table import ArmColumns, read_columns`` working.

    The columnar reader moved to :mod:`proving.stats.columns`, which imports this module;
    a lazy re-export avoids the import cycle.
    """
    if name in _COLUMNAR:
        from proving.stats import columns

        return getattr(columns, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
