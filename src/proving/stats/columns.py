"""Per-arm sufficient statistics as columns: the form :func:`~proving.stats.analyze` works on.

:func:`read_columns` reads the same sources as :func:`~proving.stats.table.read_table` (a
.csv/.json path, a list of row mappings, ``{"rows": [...]}``, a pandas DataFrame, a pyarrow
Table) straight into :class:`ArmColumns`, validating whole columns at once instead of
building a Python object per row:

- numeric columns become float arrays plus a presence mask (one ``np.asarray`` per column;
  a pyarrow column converts without leaving C);
- text columns (keys, ``kind``, ``family``, ``covariate_names``) are factorized to integer
  codes; whitespace, blanks and allowed values are checked on the distinct values only
  (a pyarrow column is dictionary-encoded by Arrow itself);
- rows sharing (experiment, metric, segment, variant) are summed with ``np.add.at``.

Any input this reader does not accept as-is (a malformed cell, rows that cannot merge) is
handed to ``read_table``, which raises the precise error naming the row and field (or
returns rows to convert), so both readers accept exactly the same inputs and give the same
columns. :meth:`ArmColumns.codes` exposes the factorized keys that the analysis groups by.

Example:
    >>> cols = read_columns([
    ...     {"variant": "control", "metric": "ctr", "kind": "proportion", "n": 100, "sum": 10},
    ...     {"variant": "b", "metric": "ctr", "kind": "proportion", "n": 100, "sum": 14},
    ... ])
    >>> cols.variant, cols.sum_squares.tolist()
    (['control', 'b'], [10.0, 14.0])
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, get_args

import numpy as np
import numpy.typing as npt

from proving.errors import StatsInputError
from proving.stats.results import Family, Kind
from proving.stats.sufficient import RATIO_FIELDS
from proving.stats.table import (
    COVARIATE_COLUMN,
    KEY_FIELDS,
    STAT_FIELDS,
    ArmRow,
    BoolArray,
    FallbackError,
    FloatArray,
    IntArray,
    RawColumns,
    TableSource,
    Text,
    factorize,
    is_blank,
    is_column_dict,
    raw_columns,
    read_table,
)

__all__ = ["ArmColumns", "columns_from_rows", "read_columns"]

_KEYS = ("experiment", "metric", "segment", "variant")


def first_appearance(keys: npt.NDArray[np.int64]) -> tuple[IntArray, IntArray]:
    """Integer keys renumbered by first appearance, and the first row of each."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    by_first = np.argsort(first, kind="stable")
    rank = np.empty(first.size, dtype=np.intp)
    rank[by_first] = np.arange(first.size)
    return rank[inverse.reshape(-1)], first[by_first].astype(np.intp)


def expand(codes: IntArray, values: list[Any]) -> list[Any]:
    """The column as a list: ``values[codes[i]]`` for every row, by numpy indexing."""
    table = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # element-wise: tuples must stay single cells
        table[i] = v
    return table[codes].tolist() if len(values) else [None] * codes.size


def clean_text(text: Text, default: str | None, nan: bool) -> Text:
    """Strip the distinct values and replace blanks by ``default`` (None: required)."""
    codes, uniques = text
    if uniques and set(map(type, uniques)) == {str}:
        # The common case, in C: nothing to strip, nothing blank (numpy strips the
        # characters str.strip() does).
        values = np.array(uniques, dtype=np.dtypes.StringDType())
        stripped = np.strings.strip(values)
        if np.all(stripped == values) and not np.any(stripped == ""):
            return text
    if any(isinstance(v, tuple) for v in uniques):
        raise FallbackError
    cleaned = [default if is_blank(v, nan) else str(v).strip() for v in uniques]
    if default is None and None in cleaned:
        raise FallbackError
    remap, distinct = factorize(cleaned)
    return (remap[codes] if len(distinct) < len(cleaned) else codes), distinct


def covariate_columns(
    num: dict[str, tuple[FloatArray, BoolArray]], ratio: BoolArray, m: int
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Covariate count per row and the padded covariate arrays; FallbackError on gaps."""
    present = {c: num[c][1] for c in num if COVARIATE_COLUMN.match(c)}
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
            raise FallbackError
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


def covariate_names(raw: Text | None, k: IntArray, nan: bool) -> Text:
    """Names per row, checked against the covariate count; defaults ``covariate_<i>``."""
    codes, values = raw if raw is not None else (np.zeros(k.size, dtype=np.intp), [None])
    pair, first = first_appearance(codes.astype(np.int64) * (int(k.max()) + 1) + k)
    names: list[tuple[str, ...]] = []
    for row in first.tolist():
        value, ki = values[codes[row]], int(k[row])
        if is_blank(value, nan):
            found = tuple(f"covariate_{j}" for j in range(1, ki + 1))
        elif isinstance(value, str):
            found = tuple(s.strip() for s in value.split(";") if s.strip())
        elif isinstance(value, tuple):
            found = tuple(str(s) for s in value)
        else:
            raise FallbackError
        if len(found) != ki:
            raise FallbackError
        names.append(found)
    remap, distinct = factorize(names)  # "a;b" and ["a", "b"] are the same names
    return remap[pair], distinct


class _TextColumn:
    """A text column of :class:`ArmColumns`: a list, built from the codes on first read.

    The reader factorizes text columns while validating them, and the analysis groups by
    the codes; the lists are only needed for labels, so they are not built until read.
    Installed on the class after ``@dataclass`` ran, so the fields stay plain and required.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            raise AttributeError(self.name)
        state = obj.__dict__
        values = state.get(self.name)
        if values is None:
            values = state[self.name] = expand(*state["_codes"][self.name])
        return values

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value


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
        return int(self.n.shape[0])

    @classmethod
    def _from_codes(cls, codes: dict[str, Text], **arrays: FloatArray) -> ArmColumns:
        """Columns whose text fields are given as codes (expanded when read)."""
        out = cls.__new__(cls)
        out.__dict__.update(arrays, _codes=codes)
        return out

    def codes(self, name: str) -> tuple[IntArray, list[Any]]:
        """Integer codes and distinct values of a text column (``kind``, ``variant``, ...).

        ``values[codes[i]] == getattr(self, name)[i]``. Computed once and cached (the
        reader fills the cache from what it factorized while validating).
        """
        cache: dict[str, tuple[IntArray, list[Any]]] = self.__dict__.setdefault("_codes", {})
        if name not in cache:
            cache[name] = factorize(getattr(self, name))
        return cache[name]

    def text(self, name: str, row: int) -> Any:
        """``getattr(self, name)[row]``, from the codes (without building the whole list)."""
        if name in self.__dict__:
            return self.__dict__[name][row]
        codes, values = self.codes(name)
        return values[int(codes[row])]

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


_TEXT_FIELDS = ("experiment", "metric", "segment", "variant", "kind", "family", "covariate_names")
for _name in _TEXT_FIELDS:  # after @dataclass: the fields stay plain, required ones
    _column = _TextColumn()
    _column.__set_name__(ArmColumns, _name)
    setattr(ArmColumns, _name, _column)


def columns_from_rows(rows: Sequence[ArmRow]) -> ArmColumns:
    """Columnar form of (merged) :class:`~proving.stats.table.ArmRow` objects."""
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


def _key_text(
    raw: RawColumns, key: str, default: str | None, vocabulary: Sequence[str] = ()
) -> Text:
    """Cleaned codes of a key column (``default`` where blank; FallbackError if required)."""
    text = raw.texts.get(key)
    if text is None:
        if default is None:
            raise FallbackError
        return np.zeros(raw.m, dtype=np.intp), [default]
    codes, uniques = text if key in raw.clean else clean_text(text, default, raw.nan)
    if vocabulary and not set(uniques) <= {"", *vocabulary}:
        raise FallbackError
    return codes, uniques


def _fast_columns(raw: RawColumns) -> ArmColumns:
    """Validate and convert whole columns; FallbackError on anything read_table must explain."""
    names = [*raw.texts, *raw.nums]
    if not names or raw.m == 0:
        raise FallbackError
    if any(k not in KEY_FIELDS and k not in STAT_FIELDS and not COVARIATE_COLUMN.match(k)
           for k in names):  # fmt: skip
        raise FallbackError
    m, num = raw.m, raw.nums
    if any(k in num for k in KEY_FIELDS) or "covariate_names" in num:
        raise FallbackError
    defaults = {"experiment": "", "metric": None, "segment": "all", "variant": None}
    keys = {k: _key_text(raw, k, d) for k, d in defaults.items()}
    missing = (np.full(m, np.nan), np.zeros(m, dtype=bool))
    ratio = num.get("denominator_sum", missing)[1]
    for f in ("n", "sum", *RATIO_FIELDS):
        if not np.array_equal(num.get(f, missing)[1], ratio if f in RATIO_FIELDS else ~missing[1]):
            raise FallbackError
    kind_codes, kind_values = _key_text(raw, "kind", "", get_args(Kind))
    vocabulary = ["mean", "proportion", "ratio"]
    lut = np.array([vocabulary.index(v) if v else -1 for v in kind_values], dtype=np.intp)
    kind = lut[kind_codes]
    kind = np.where(kind < 0, np.where(ratio, 2, 0), kind)
    if not np.array_equal(kind == 2, ratio):
        raise FallbackError
    proportion = kind == 1
    sum_squares, ss_present = num.get("sum_squares", missing)
    if not np.all(ss_present | proportion):
        raise FallbackError
    sum_squares = np.where(~ss_present & proportion, num["sum"][0], sum_squares)
    family = _key_text(raw, "family", "", get_args(Family))
    k, x_sum, x_x, x_y, x_d = covariate_columns(num, ratio, m)
    names_codes, names_values = covariate_names(raw.texts.get("covariate_names"), k, raw.nan)
    codes: dict[str, tuple[IntArray, list[Any]]] = {
        **keys,
        "kind": (kind, vocabulary),
        "family": (family[0], [v or None for v in family[1]]),
        "covariate_names": (names_codes, names_values),
    }
    cols = ArmColumns._from_codes(
        codes,
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
    return _merge_columns(cols)


def _merge_columns(cols: ArmColumns) -> ArmColumns:
    """Sum the rows that share (experiment, metric, segment, variant), e.g. one per day."""
    key = np.zeros(len(cols), dtype=np.int64)
    for name in _KEYS:
        c, values = cols.codes(name)
        key = key * len(values) + c
    codes, first = first_appearance(key)
    u = first.size
    if u == len(cols):
        return cols
    kind, cov = cols.codes("kind")[0], cols.codes("covariate_names")[0]
    if np.any(kind != kind[first][codes]) or np.any(cov != cov[first][codes]):
        raise FallbackError  # read_table names the rows that cannot be merged

    def total(values: FloatArray) -> FloatArray:
        out = np.zeros((u, *values.shape[1:]))
        np.add.at(out, codes, values)
        return out

    text = {name: (c[first], values) for name, (c, values) in cols.__dict__["_codes"].items()}
    family_values: list[str | None] = [None] * u
    for code, fam in zip(codes.tolist(), cols.family, strict=True):
        family_values[code] = family_values[code] or fam
    text["family"] = factorize(family_values)
    merged = ArmColumns._from_codes(
        text,
        **{f.name: total(getattr(cols, f.name)) for f in fields(ArmColumns) if f.name not in text},
    )
    return merged


def read_columns(source: TableSource | Sequence[ArmRow]) -> ArmColumns:
    """Read per-arm sufficient statistics straight into columns (see the module docstring).

    Same sources, same validation and the same result as
    ``columns_from_rows(read_table(source))``; also a dict of equal-length columns (lists
    or numpy arrays), as a warehouse query returns them. Malformed input raises the same
    :class:`~proving.errors.StatsInputError` as read_table.

    Example:
        >>> import pyarrow as pa
        >>> table = pa.table({"variant": ["control", "b"], "metric": ["m", "m"],
        ...                   "n": [10, 12], "sum": [5.0, 7.0], "sum_squares": [4.0, 6.0]})
        >>> read_columns(table).n.tolist()
        [10.0, 12.0]
    """
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], ArmRow):
        return columns_from_rows(read_table(source))
    try:
        return _fast_columns(raw_columns(source))
    except FallbackError:
        if is_column_dict(source):
            source = _dict_rows(source)
        return columns_from_rows(read_table(source))


def _dict_rows(columns: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """A dict of columns as rows, so that read_table explains what is wrong with it."""
    try:
        names = [str(k) for k in columns]
        rows = list(zip(*(list(v) for v in columns.values()), strict=True))
    except (TypeError, ValueError):
        raise StatsInputError(
            "a dict of columns needs lists or arrays of equal length; got "
            f"{ {str(k): type(v).__name__ for k, v in columns.items()} }."
        ) from None
    return [dict(zip(names, r, strict=True)) for r in rows]
