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
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args

from proving.errors import StatsInputError
from proving.stats.results import Family, Kind
from proving.stats.sufficient import RATIO_FIELDS, ArmStats

if TYPE_CHECKING:  # the columnar reader lives in columns.py; re-exported below
    from proving.stats.columns import ArmColumns, columns_from_rows, read_columns

__all__ = [
    "COVARIATE_COLUMN",
    "KEY_FIELDS",
    "STAT_FIELDS",
    "ArmColumns",
    "ArmRow",
    "TableSource",
    "columns_from_rows",
    "is_blank",
    "parse_row",
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
