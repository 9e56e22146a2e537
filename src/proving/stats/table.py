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
from dataclasses import dataclass, fields
from operator import itemgetter
from pathlib import Path
from typing import Any, cast, get_args

import numpy as np
import numpy.typing as npt

from proving.errors import StatsInputError
from proving.stats.results import Family, Kind
from proving.stats.sufficient import RATIO_FIELDS, ArmStats

KEY_FIELDS = ("experiment", "variant", "metric", "segment", "kind", "family")
_STAT_FIELDS = {"n", "sum", "sum_squares", "covariate_names", *RATIO_FIELDS}
_COVARIATE = re.compile(
    r"^covariate_\d+_(sum|sum_squares|sum_products|denominator_sum_products)$"
    r"|^covariate_\d+_\d+_sum_products$"
)

TableSource = str | Path | Sequence[Mapping[str, Any]] | Mapping[str, Any] | Any
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


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


def _blank(value: Any, nan_is_missing: bool = False) -> bool:
    if value is None:
        return True
    if nan_is_missing and isinstance(value, float) and value != value:
        return True  # pandas marks a missing cell with NaN
    return isinstance(value, str) and value.strip() == ""


def _text(row: Mapping[str, Any], key: str, where: str, default: str | None) -> str:
    value = row.get(key)
    if _blank(value):
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
        row = {k: v for k, v in row.items() if not _blank(v, nan_is_missing=True)}
    if not isinstance(row, Mapping):
        raise StatsInputError(
            f"{where}: a row must be a mapping of column to value; got {type(row).__name__}."
        )
    unknown = sorted(
        k for k in row if k not in KEY_FIELDS and k not in _STAT_FIELDS and not _COVARIATE.match(k)
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
    has_ratio = any(not _blank(row.get(f)) for f in RATIO_FIELDS)
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
    flat = {k: v for k, v in row.items() if k not in KEY_FIELDS and not _blank(v)}
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


def _records(data: Any, where: str) -> list[Any]:
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
        records, label = _records(data, str(path)), f"{path}: rows[{{}}]"
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
            _records(list(source) if isinstance(source, tuple) else source, "rows"),
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
# Columnar form: what analyze() works on. Reading straight into columns avoids building one
# Python object per row, which is what makes 10,000 comparisons take milliseconds. Any input
# the fast reader does not accept as-is (a malformed row, rows that cannot merge) goes through
# read_table(), which either raises the precise error or returns rows to convert.


@dataclass(frozen=True)
class ArmColumns:
    """Per-arm sufficient statistics as columns, one entry per arm (unique keys).

    Covariate arrays are padded to the largest covariate count ``K`` in the table; a row
    with ``k < K`` covariates has zeros beyond ``k`` (see ``covariate_names``).
    """

    experiment: list[str]
    metric: list[str]
    segment: list[str]
    variant: list[str]
    kind: list[str]
    family: list[str | None]
    covariate_names: list[tuple[str, ...]]
    n: FloatArray
    sum: FloatArray
    sum_squares: FloatArray
    denominator_sum: FloatArray
    denominator_sum_squares: FloatArray
    sum_products: FloatArray
    covariate_sums: FloatArray  # (m, K)
    covariate_cross_products: FloatArray  # (m, K, K)
    covariate_sum_products: FloatArray  # (m, K)
    covariate_denominator_sum_products: FloatArray  # (m, K)

    def __len__(self) -> int:
        return len(self.variant)

    def moments(self, idx: IntArray, *, ratio: bool, k: int) -> tuple[FloatArray, ...]:
        """Stacked ``(n, sums, cross)`` of the rows ``idx`` over ``(y, [d], x_1..x_k)``."""
        o = 2 if ratio else 1
        p = o + k
        sums = np.empty((idx.size, p))
        cross = np.empty((idx.size, p, p))
        sums[:, 0] = self.sum[idx]
        cross[:, 0, 0] = self.sum_squares[idx]
        if ratio:
            sums[:, 1] = self.denominator_sum[idx]
            cross[:, 1, 1] = self.denominator_sum_squares[idx]
            cross[:, 0, 1] = cross[:, 1, 0] = self.sum_products[idx]
        if k:
            sums[:, o:] = self.covariate_sums[idx, :k]
            cross[:, o:, o:] = self.covariate_cross_products[idx, :k, :k]
            cross[:, 0, o:] = cross[:, o:, 0] = self.covariate_sum_products[idx, :k]
            if ratio:
                d_x = self.covariate_denominator_sum_products[idx, :k]
                cross[:, 1, o:] = cross[:, o:, 1] = d_x
        return self.n[idx], sums, cross


def columns_from_rows(rows: Sequence[ArmRow]) -> ArmColumns:
    """Columnar form of (merged) :class:`ArmRow` objects."""
    m = len(rows)
    big_k = max((len(r.stats.covariate_names) for r in rows), default=0)
    x_sum, x_y, x_d = np.zeros((m, big_k)), np.zeros((m, big_k)), np.zeros((m, big_k))
    x_x = np.zeros((m, big_k, big_k))
    for i, r in enumerate(rows):
        k = len(r.stats.covariate_names)
        if k:
            x_sum[i, :k] = r.stats.covariate_sums
            x_y[i, :k] = r.stats.covariate_sum_products
            x_x[i, :k, :k] = r.stats.covariate_cross_products
            if r.stats.is_ratio:
                x_d[i, :k] = r.stats.covariate_denominator_sum_products

    def col(name: str) -> FloatArray:
        return np.array([getattr(r.stats, name) or 0.0 for r in rows], dtype=float)

    return ArmColumns(
        experiment=[r.experiment for r in rows],
        metric=[r.metric for r in rows],
        segment=[r.segment for r in rows],
        variant=[r.variant for r in rows],
        kind=[r.kind for r in rows],
        family=[r.family for r in rows],
        covariate_names=[r.stats.covariate_names for r in rows],
        n=np.array([r.stats.n for r in rows], dtype=float),
        sum=np.array([r.stats.sum for r in rows], dtype=float),
        sum_squares=np.array([r.stats.sum_squares for r in rows], dtype=float),
        denominator_sum=col("denominator_sum"),
        denominator_sum_squares=col("denominator_sum_squares"),
        sum_products=col("sum_products"),
        covariate_sums=x_sum,
        covariate_cross_products=x_x,
        covariate_sum_products=x_y,
        covariate_denominator_sum_products=x_d,
    )


class _FallbackError(Exception):
    """The fast reader declines; read_table() will explain or handle the input."""


def _raw_columns(source: TableSource) -> tuple[dict[str, list[Any]], bool]:
    """Columns of the source as lists, and whether NaN marks a missing cell (pandas)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file() or path.suffix.lower() not in (".csv", ".json"):
            raise _FallbackError
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                lines = list(csv.reader(fh))
            if len(lines) < 2 or any(len(line) != len(lines[0]) for line in lines):
                raise _FallbackError
            return {h: [v or None for v in c] for h, *c in zip(*lines, strict=True)}, False
        try:
            source = _records(json.loads(path.read_text(encoding="utf-8")), str(path))
        except (json.JSONDecodeError, StatsInputError):
            raise _FallbackError from None
    if hasattr(source, "to_pydict"):  # pyarrow.Table
        return dict(source.to_pydict()), False
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # pandas.DataFrame
        return {str(c): source[c].tolist() for c in source.columns}, True
    if isinstance(source, Mapping):
        source = source.get("rows")
    if not isinstance(source, (list, tuple)):
        raise _FallbackError
    return _dict_columns(source), False


def _dict_columns(records: Sequence[Any]) -> dict[str, list[Any]]:
    """Transpose a list of mappings, a batch of rows with the same keys at a time.

    ``itemgetter`` over the rows that share a key set runs in C; a ``.get`` per cell is
    ~10x slower on 10,000-comparison tables.
    """
    if set(map(type, records)) != {dict} and not all(isinstance(r, Mapping) for r in records):
        raise _FallbackError
    batches: dict[tuple[str, ...], list[int]] = {}
    for i, signature in enumerate(map(tuple, records)):
        batches.setdefault(signature, []).append(i)
    names = dict.fromkeys(k for signature in batches for k in signature)
    if len(batches) == 1:
        ((signature, _),) = batches.items()
        rows = list(map(itemgetter(*signature), records)) if signature else []
        values = [(v,) for v in rows] if len(signature) == 1 else rows
        return {k: list(col) for k, col in zip(signature, zip(*values, strict=True), strict=True)}
    m = len(records)
    out = {k: np.full(m, None, dtype=object) for k in names}
    for signature, idx in batches.items():
        if not signature:
            continue
        rows = list(map(itemgetter(*signature), (records[i] for i in idx)))
        values = [(v,) for v in rows] if len(signature) == 1 else rows
        for k, col in zip(signature, zip(*values, strict=True), strict=True):
            # fromiter keeps list cells (covariate_names) as single objects.
            out[k][idx] = np.fromiter(col, dtype=object, count=len(idx))
    return {k: v.tolist() for k, v in out.items()}


def _numeric(values: list[Any], nan_is_missing: bool) -> tuple[FloatArray, BoolArray]:
    """Float values (NaN where missing) and the presence mask; _FallbackError on a bad cell."""
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
        present &= np.array([not _blank(v, True) for v in values], dtype=bool)
    out = np.full(len(values), np.nan)
    try:
        out[present] = cells[present].astype(float)
    except (TypeError, ValueError):
        raise _FallbackError from None
    return out, present


def _texts(cols: dict[str, list[Any]], key: str, default: str | None, nan: bool) -> list[str]:
    values = cols.get(key)
    if values is None:
        if default is None:
            raise _FallbackError
        return [default] * len(next(iter(cols.values())))
    if set(map(type, values)) == {str}:  # the common case, without a call per cell
        distinct = set(values)
        if all(v and v == v.strip() for v in distinct):
            return cast(list[str], values)  # clean already: no copy, no strip per cell
        out: list[str | None] = [v.strip() or default for v in values]
    else:
        out = [default if _blank(v, nan) else str(v).strip() for v in values]
    if default is None and None in out:
        raise _FallbackError
    return cast(list[str], out)


def _covariate_names(cols: dict[str, list[Any]], k: IntArray, nan: bool) -> list[tuple[str, ...]]:
    raw = cols.get("covariate_names")
    counts = k.tolist()
    if raw is None:
        defaults = [
            tuple(f"covariate_{j}" for j in range(1, ki + 1)) for ki in range(max(counts) + 1)
        ]
        return [defaults[ki] for ki in counts]
    out: list[tuple[str, ...]] = []
    cache: dict[tuple[Any, int], tuple[str, ...]] = {}
    for value, ki in zip(raw, counts, strict=True):
        if isinstance(value, (list, tuple)):
            value = tuple(value)
        elif not isinstance(value, (str, float, int, type(None))):
            raise _FallbackError
        key = (value, ki)
        names = cache.get(key)
        if names is None:
            if _blank(value, nan):
                names = tuple(f"covariate_{j}" for j in range(1, ki + 1))
            elif isinstance(value, str):
                names = tuple(s.strip() for s in value.split(";") if s.strip())
            else:
                names = tuple(str(s) for s in value)
            if len(names) != ki:
                raise _FallbackError
            cache[key] = names
        out.append(names)
    return out


def _covariate_columns(
    num: dict[str, tuple[FloatArray, BoolArray]], ratio: BoolArray, m: int
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Covariate count per row and the padded covariate arrays; _FallbackError on gaps."""
    present = {c: num[c][1] for c in num if _COVARIATE.match(c)}
    k = np.zeros(m, dtype=np.intp)
    while f"covariate_{k.max() + 1}_sum" in present:
        nxt = int(k.max()) + 1
        k = np.where(present[f"covariate_{nxt}_sum"] & (k == nxt - 1), nxt, k)
    big_k = int(k.max())
    # Every covariate column must be present exactly where its index is <= the row's k.
    for c, mask in present.items():
        idx = [int(s) for s in re.findall(r"_(\d+)", c)]
        if c.endswith("_denominator_sum_products"):
            expected = (k >= idx[0]) & ratio
        else:
            expected = k >= max(idx)
        if not np.array_equal(mask, expected):
            raise _FallbackError
    x_sum, x_y, x_d = np.zeros((m, big_k)), np.zeros((m, big_k)), np.zeros((m, big_k))
    x_x = np.zeros((m, big_k, big_k))

    def get(c: str) -> FloatArray:
        return np.where(present[c], num[c][0], 0.0) if c in num else np.zeros(m)

    for i in range(1, big_k + 1):
        x_sum[:, i - 1] = get(f"covariate_{i}_sum")
        x_y[:, i - 1] = get(f"covariate_{i}_sum_products")
        x_d[:, i - 1] = get(f"covariate_{i}_denominator_sum_products")
        x_x[:, i - 1, i - 1] = get(f"covariate_{i}_sum_squares")
        for j in range(i + 1, big_k + 1):
            x_x[:, i - 1, j - 1] = x_x[:, j - 1, i - 1] = get(f"covariate_{i}_{j}_sum_products")
    return k, x_sum, x_x, x_y, x_d


def _fast_columns(cols: dict[str, list[Any]], nan: bool) -> ArmColumns:
    """Validate and convert raw columns; _FallbackError on anything read_table must explain."""
    if not cols or any(k not in KEY_FIELDS and k not in _STAT_FIELDS and not _COVARIATE.match(k)
                       for k in cols):  # fmt: skip
        raise _FallbackError
    m = len(next(iter(cols.values())))
    defaults = {"experiment": "", "metric": None, "segment": "all", "variant": None}
    keys = {k: _texts(cols, k, d, nan) for k, d in defaults.items()}
    if m == 0:
        raise _FallbackError
    num: dict[str, tuple[FloatArray, BoolArray]] = {
        k: _numeric(v, nan)
        for k, v in cols.items()
        if k not in KEY_FIELDS and k != "covariate_names"
    }
    missing = (np.full(m, np.nan), np.zeros(m, dtype=bool))
    ratio = num.get("denominator_sum", missing)[1]
    for f in ("n", "sum", *RATIO_FIELDS):
        if not np.array_equal(num.get(f, missing)[1], ratio if f in RATIO_FIELDS else ~missing[1]):
            raise _FallbackError
    kind = _texts(cols, "kind", "", nan)
    kinds = [kd or ("ratio" if r else "mean") for kd, r in zip(kind, ratio.tolist(), strict=True)]
    families = _texts(cols, "family", "", nan)
    if not set(kinds) <= set(get_args(Kind)) or not set(families) <= {"", *get_args(Family)}:
        raise _FallbackError
    is_ratio_kind = np.array([kd == "ratio" for kd in kinds])
    if not np.array_equal(is_ratio_kind, ratio):
        raise _FallbackError
    sum_squares, ss_present = num.get("sum_squares", missing)
    proportion = np.array([kd == "proportion" for kd in kinds])
    sum_squares = np.where(~ss_present & proportion, num["sum"][0], sum_squares)
    if not np.all(ss_present | proportion):
        raise _FallbackError
    k, x_sum, x_x, x_y, x_d = _covariate_columns(num, ratio, m)
    return _merge_columns(
        ArmColumns(
            experiment=keys["experiment"],
            metric=keys["metric"],
            segment=keys["segment"],
            variant=keys["variant"],
            kind=kinds,
            family=[f or None for f in families],
            covariate_names=_covariate_names(cols, k, nan),
            n=num["n"][0],
            sum=num["sum"][0],
            sum_squares=sum_squares,
            denominator_sum=np.where(ratio, num.get("denominator_sum", missing)[0], 0.0),
            denominator_sum_squares=np.where(
                ratio, num.get("denominator_sum_squares", missing)[0], 0.0
            ),
            sum_products=np.where(ratio, num.get("sum_products", missing)[0], 0.0),
            covariate_sums=x_sum,
            covariate_cross_products=x_x,
            covariate_sum_products=x_y,
            covariate_denominator_sum_products=x_d,
        )
    )


def _merge_columns(cols: ArmColumns) -> ArmColumns:
    """Sum the rows that share (experiment, metric, segment, variant), e.g. one per day."""
    index: dict[tuple[str, str, str, str], int] = {}
    keys = zip(cols.experiment, cols.metric, cols.segment, cols.variant, strict=True)
    codes = np.array([index.setdefault(key, len(index)) for key in keys], dtype=np.intp)
    u = len(index)
    if u == len(cols):
        return cols
    first = np.full(u, len(cols), dtype=np.intp)
    np.minimum.at(first, codes, np.arange(len(cols)))
    shape = list(zip(cols.kind, cols.covariate_names, strict=True))
    if any(shape[i] != shape[f] for i, f in enumerate(first[codes].tolist())):
        raise _FallbackError  # read_table names the rows that cannot be merged
    family: list[str | None] = [None] * u
    for code, fam in zip(codes.tolist(), cols.family, strict=True):
        family[code] = family[code] or fam

    def total(values: FloatArray) -> FloatArray:
        out = np.zeros((u, *values.shape[1:]))
        np.add.at(out, codes, values)
        return out

    pick = first.tolist()
    return ArmColumns(
        experiment=[cols.experiment[i] for i in pick],
        metric=[cols.metric[i] for i in pick],
        segment=[cols.segment[i] for i in pick],
        variant=[cols.variant[i] for i in pick],
        kind=[cols.kind[i] for i in pick],
        family=family,
        covariate_names=[cols.covariate_names[i] for i in pick],
        **{
            f.name: total(getattr(cols, f.name))
            for f in fields(ArmColumns)
            if isinstance(getattr(cols, f.name), np.ndarray)
        },
    )


def read_columns(source: TableSource | Sequence[ArmRow]) -> ArmColumns:
    """Read per-arm sufficient statistics straight into columns (see :func:`read_table`).

    Same sources, same validation and the same result as
    ``columns_from_rows(read_table(source))``, without a Python object per row for
    well-formed input; malformed input raises the same StatsInputError as read_table.
    """
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], ArmRow):
        return columns_from_rows(read_table(source))
    try:
        return _fast_columns(*_raw_columns(source))
    except _FallbackError:
        return columns_from_rows(read_table(source))
