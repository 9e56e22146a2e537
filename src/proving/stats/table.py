"""Read a table of per-arm sufficient statistics from files and in-memory tables.

One row per (experiment, variant, metric, segment): the keys below, then the flat
:class:`~proving.stats.sufficient.ArmStats` columns (``n``, ``sum``, ``sum_squares``,
ratio and covariate columns; see ``docs/stats/sufficient.md``). Parsing and merging one
row is :mod:`proving.stats.rows`; the same sources as raw columns, for the columnar reader,
are :mod:`proving.stats.raw_columns`. Their names stay importable from here.

The key columns and their rules are listed in :mod:`proving.stats.rows`.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proving.errors import StatsInputError
from proving.stats.raw_columns import (
    PYTHON_WHITESPACE,
    FallbackError,
    RawColumns,
    Text,
    factorize,
    is_column_dict,
    numeric,
    raw_columns,
    text_codes,
)
from proving.stats.raw_columns import BoolArray as BoolArray
from proving.stats.raw_columns import FloatArray as FloatArray
from proving.stats.raw_columns import IntArray as IntArray
from proving.stats.rows import (
    COVARIATE_COLUMN,
    KEY_FIELDS,
    STAT_FIELDS,
    ArmRow,
    is_blank,
    merge_rows,
    parse_row,
    row_list,
)

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
    "Text",
    "columns_from_rows",
    "factorize",
    "is_blank",
    "is_column_dict",
    "merge_rows",
    "numeric",
    "parse_row",
    "raw_columns",
    "read_columns",
    "read_records",
    "read_table",
    "row_list",
    "text_codes",
]

TableSource = str | Path | Sequence[Mapping[str, Any]] | Mapping[str, Any] | Any


def read_records(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """Read a .csv or .json file of rows as raw records, each labelled for error messages.

    The label names the file and the CSV line (``stats.csv: line 3``) or the JSON index
    (``stats.json: rows[2]``). JSON holds a list of rows or an object with a ``rows`` list.
    Every command that reads a file of rows (``analyze``, ``monitor``, ``judge``) uses this.
    """
    path = Path(path)
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
    return [(f"{path}: rows[{i}]", record) for i, record in enumerate(row_list(data, str(path)))]


def _read_csv(path: Path) -> list[tuple[str, dict[str, Any]]]:
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
            out.append((where, dict(record)))
        return out


def _source_rows(source: TableSource) -> list[tuple[str, ArmRow]]:
    if isinstance(source, (str, Path)):
        return [(where, parse_row(r, where=where)) for where, r in read_records(source)]
    if hasattr(source, "to_pylist"):  # pyarrow.Table
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
        return merge_rows((f"rows[{i}]", r) for i, r in enumerate(source))
    rows = _source_rows(source)
    if not rows:
        raise StatsInputError(
            f"{source if isinstance(source, (str, Path)) else 'the table'}: no rows; give at "
            "least a control and one variant."
        )
    return merge_rows(rows)


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
