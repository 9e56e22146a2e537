"""One row of a table of per-arm sufficient statistics: its columns, validation and merging.

A row has the keys below, then the flat :class:`~proving.stats.sufficient.ArmStats`
columns (``n``, ``sum``, ``sum_squares``, ratio and covariate columns; see
``docs/stats/sufficient.md``).

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

:func:`parse_row` validates one row into an :class:`ArmRow` (unknown columns, a bad
``kind`` or ``family``, missing keys or statistics raise
:class:`~proving.errors.StatsInputError` naming the row); :func:`merge_rows` sums the rows
that share a key (sufficient statistics add), so one row per day gives the whole period.
The readers of files and tables are in :mod:`proving.stats.table`.

Example:
    >>> row = parse_row({"variant": "b", "metric": "ctr", "kind": "proportion", "n": 100,
    ...                  "sum": 14}, where="rows[1]")
    >>> row.key, row.stats.sum_squares
    (('', 'ctr', 'all', 'b'), 14.0)
    >>> (merged,) = merge_rows([("rows[1]", row), ("rows[2]", row)])
    >>> merged.stats.n
    200.0
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast, get_args

from proving.errors import StatsInputError
from proving.stats.results import Family, Kind
from proving.stats.sufficient import RATIO_FIELDS, ArmStats

__all__ = [
    "COVARIATE_COLUMN",
    "KEY_FIELDS",
    "STAT_FIELDS",
    "ArmRow",
    "is_blank",
    "merge_rows",
    "parse_row",
    "row_list",
]

KEY_FIELDS = ("experiment", "variant", "metric", "segment", "kind", "family")
STAT_FIELDS = {"n", "sum", "sum_squares", "covariate_names", *RATIO_FIELDS}
COVARIATE_COLUMN = re.compile(
    r"^covariate_\d+_(sum|sum_squares|sum_products|denominator_sum_products)$"
    r"|^covariate_\d+_\d+_sum_products$"
)


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
    """A missing cell: None, a blank string, or (with ``nan_is_missing``) a float NaN."""
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


def merge_rows(rows: Iterable[tuple[str, ArmRow]]) -> list[ArmRow]:
    """Sum rows with the same key, in first-seen order; each row comes with its ``where``."""
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


def row_list(data: Any, where: str) -> list[Any]:
    """The rows of parsed JSON: a list, or the ``rows`` list of an object; ``where`` names it."""
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
