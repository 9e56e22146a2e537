"""Sufficient statistics: the contract between the data layer and the statistics engine.

One :class:`ArmStats` holds, for one metric in one arm (and one segment), every sum an
estimator needs. Per unit ``i`` the engine sees a vector of variables

    v_i = (y_i, [d_i], x_i1, ..., x_ik)

where ``y`` is the metric value (or a ratio metric's numerator), ``d`` the ratio metric's
denominator (absent for mean and proportion metrics) and ``x_1..x_k`` pre-exposure
covariates (CUPED, CUPAC). The statistics are ``n``, the sums of every variable and the
sums of every pairwise product. They merge by addition, so daily, per-segment and
incremental analysis is ``+``.

Flat names (one column each, used by CSV, JSON, the metrics layer and the CLI):

=========================================  ===========================================
column                                     sum over units of
=========================================  ===========================================
``n``                                      1
``sum``, ``sum_squares``                   y, y*y
``denominator_sum``                        d                    (ratio metrics)
``denominator_sum_squares``                d*d                  (ratio metrics)
``sum_products``                           y*d                  (ratio metrics)
``covariate_<i>_sum``                      x_i                  (i = 1..k)
``covariate_<i>_sum_squares``              x_i*x_i
``covariate_<i>_sum_products``             y*x_i
``covariate_<i>_denominator_sum_products`` d*x_i                (ratio metrics)
``covariate_<i>_<j>_sum_products``         x_i*x_j              (i < j)
=========================================  ===========================================

Example:
    >>> a = ArmStats(n=2, sum=3.0, sum_squares=5.0)
    >>> b = ArmStats(n=1, sum=4.0, sum_squares=16.0)
    >>> (a + b).n, (a + b).sum
    (3, 7.0)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proving._types import FloatArray
from proving.errors import StatsInputError

_COVARIATE_COLUMN = re.compile(
    r"^covariate_(\d+)_(sum|sum_squares|sum_products|denominator_sum_products)$"
)
_COVARIATE_PAIR_COLUMN = re.compile(r"^covariate_(\d+)_(\d+)_sum_products$")
RATIO_FIELDS = ("denominator_sum", "denominator_sum_squares", "sum_products")


def _tuple_of_floats(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one metric in one arm.

    Args:
        n: number of units.
        sum: sum of the metric value (a ratio metric's numerator) over units.
        sum_squares: sum of its squares.
        denominator_sum: ratio metrics only: sum of the denominator.
        denominator_sum_squares: ratio metrics only: sum of the squared denominator.
        sum_products: ratio metrics only: sum of numerator times denominator.
        covariate_names: names of the pre-exposure covariates x_1..x_k, in order.
        covariate_sums: sum of each covariate (length k).
        covariate_cross_products: k x k matrix of sums of x_i * x_j (diagonal: squares).
        covariate_sum_products: sum of y * x_i (length k).
        covariate_denominator_sum_products: ratio metrics only: sum of d * x_i (length k).

    Construction checks shapes, not values: NaN, negative counts and empty arms are legal
    here and are explained by the analysis as degenerate data.
    """

    n: float
    sum: float
    sum_squares: float
    denominator_sum: float | None = None
    denominator_sum_squares: float | None = None
    sum_products: float | None = None
    covariate_names: tuple[str, ...] = ()
    covariate_sums: tuple[float, ...] = ()
    covariate_cross_products: tuple[tuple[float, ...], ...] = ()
    covariate_sum_products: tuple[float, ...] = ()
    covariate_denominator_sum_products: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        ratio = [getattr(self, f) is None for f in RATIO_FIELDS]
        if any(ratio) and not all(ratio):
            missing = [f for f, m in zip(RATIO_FIELDS, ratio, strict=True) if m]
            raise StatsInputError(
                f"ratio metric statistics need all of {', '.join(RATIO_FIELDS)}; "
                f"missing {', '.join(missing)}. Give all three, or none for a mean metric."
            )
        k = len(self.covariate_names)
        object.__setattr__(self, "covariate_names", tuple(str(c) for c in self.covariate_names))
        object.__setattr__(self, "covariate_sums", _tuple_of_floats(self.covariate_sums))
        object.__setattr__(
            self, "covariate_sum_products", _tuple_of_floats(self.covariate_sum_products)
        )
        object.__setattr__(
            self,
            "covariate_denominator_sum_products",
            _tuple_of_floats(self.covariate_denominator_sum_products),
        )
        object.__setattr__(
            self,
            "covariate_cross_products",
            tuple(_tuple_of_floats(row) for row in self.covariate_cross_products),
        )
        checks = {
            "covariate_sums": len(self.covariate_sums),
            "covariate_sum_products": len(self.covariate_sum_products),
            "covariate_cross_products": len(self.covariate_cross_products),
        }
        if self.is_ratio:
            checks["covariate_denominator_sum_products"] = len(
                self.covariate_denominator_sum_products
            )
        elif self.covariate_denominator_sum_products:
            raise StatsInputError(
                "covariate_denominator_sum_products is given but the metric has no "
                "denominator; drop it or give the ratio fields "
                f"({', '.join(RATIO_FIELDS)})."
            )
        for name, length in checks.items():
            if length != k:
                raise StatsInputError(
                    f"{name} has {length} entries but there are {k} covariates "
                    f"({list(self.covariate_names)}); give one entry per covariate."
                )
        for i, row in enumerate(self.covariate_cross_products):
            if len(row) != k:
                raise StatsInputError(
                    f"covariate_cross_products row {i} has {len(row)} entries; "
                    f"it must be a {k} x {k} matrix."
                )

    @property
    def is_ratio(self) -> bool:
        """True for a ratio metric (numerator and denominator)."""
        return self.denominator_sum is not None

    @property
    def variable_names(self) -> tuple[str, ...]:
        """Names of the per-unit variables, in the order of :meth:`moments`."""
        base = ("y", "d") if self.is_ratio else ("y",)
        return base + self.covariate_names

    def moments(self) -> tuple[float, FloatArray, FloatArray]:
        """Return ``(n, sums, cross)``: the count, the sums vector and the matrix of sums
        of products over the variables in :attr:`variable_names`."""
        names = self.variable_names
        p = len(names)
        k = len(self.covariate_names)
        o = p - k  # offset of the first covariate
        sums = np.empty(p)
        cross = np.empty((p, p))
        sums[0] = self.sum
        cross[0, 0] = self.sum_squares
        if self.is_ratio:
            sums[1] = self.denominator_sum
            cross[1, 1] = self.denominator_sum_squares
            cross[0, 1] = cross[1, 0] = self.sum_products
        if k:
            sums[o:] = self.covariate_sums
            cross[o:, o:] = np.asarray(self.covariate_cross_products, dtype=float)
            cross[0, o:] = cross[o:, 0] = self.covariate_sum_products
            if self.is_ratio:
                cross[1, o:] = cross[o:, 1] = self.covariate_denominator_sum_products
        return float(self.n), sums, cross

    @classmethod
    def from_moments(
        cls,
        n: float,
        sums: Sequence[float] | FloatArray,
        cross: Sequence[Sequence[float]] | FloatArray,
        *,
        ratio: bool = False,
        covariate_names: Sequence[str] = (),
    ) -> ArmStats:
        """Build from the count, sums vector and cross-product matrix (see :meth:`moments`)."""
        s = np.asarray(sums, dtype=float)
        c = np.asarray(cross, dtype=float)
        o = 2 if ratio else 1
        k = len(covariate_names)
        if s.shape != (o + k,) or c.shape != (o + k, o + k):
            raise StatsInputError(
                f"moments have shapes {s.shape} and {c.shape}; expected ({o + k},) and "
                f"({o + k}, {o + k}) for {'a ratio' if ratio else 'a mean'} metric with "
                f"{k} covariates."
            )
        return cls(
            n=float(n),
            sum=float(s[0]),
            sum_squares=float(c[0, 0]),
            denominator_sum=float(s[1]) if ratio else None,
            denominator_sum_squares=float(c[1, 1]) if ratio else None,
            sum_products=float(c[0, 1]) if ratio else None,
            covariate_names=tuple(covariate_names),
            covariate_sums=tuple(s[o:]),
            covariate_cross_products=tuple(tuple(row) for row in c[o:, o:]),
            covariate_sum_products=tuple(c[0, o:]),
            covariate_denominator_sum_products=tuple(c[1, o:]) if ratio else (),
        )

    @classmethod
    def from_values(
        cls,
        values: Sequence[float] | FloatArray,
        *,
        denominators: Sequence[float] | FloatArray | None = None,
        covariates: Mapping[str, Sequence[float] | FloatArray] | None = None,
    ) -> ArmStats:
        """Reduce unit-level values to sufficient statistics (for tests and simulations).

        Example:
            >>> ArmStats.from_values([1.0, 2.0, 3.0]).sum_squares
            14.0
        """
        y = np.asarray(values, dtype=float)
        columns = [y]
        if denominators is not None:
            columns.append(np.asarray(denominators, dtype=float))
        names = tuple(covariates or {})
        columns += [np.asarray(covariates[c], dtype=float) for c in names] if covariates else []
        lengths = {len(c) for c in columns}
        if len(lengths) > 1:
            raise StatsInputError(
                f"unit-level columns have different lengths {sorted(lengths)}; "
                "give one value per unit in every column."
            )
        v = np.column_stack(columns) if columns[0].size else np.zeros((0, len(columns)))
        return cls.from_moments(
            len(y), v.sum(axis=0), v.T @ v, ratio=denominators is not None, covariate_names=names
        )

    def __add__(self, other: object) -> ArmStats:
        if not isinstance(other, ArmStats):
            return NotImplemented
        if self.variable_names != other.variable_names:
            raise StatsInputError(
                f"cannot merge statistics over variables {self.variable_names} and "
                f"{other.variable_names}; merge only the same metric with the same covariates."
            )
        n1, s1, c1 = self.moments()
        n2, s2, c2 = other.moments()
        return ArmStats.from_moments(
            n1 + n2, s1 + s2, c1 + c2, ratio=self.is_ratio, covariate_names=self.covariate_names
        )

    def to_flat(self) -> dict[str, Any]:
        """Flat column form (see the module docstring). Covariate names go in
        ``covariate_names`` as a list."""
        out: dict[str, Any] = {"n": self.n, "sum": self.sum, "sum_squares": self.sum_squares}
        if self.is_ratio:
            for f in RATIO_FIELDS:
                out[f] = getattr(self, f)
        if self.covariate_names:
            out["covariate_names"] = list(self.covariate_names)
        for i in range(len(self.covariate_names)):
            c = f"covariate_{i + 1}"
            out[f"{c}_sum"] = self.covariate_sums[i]
            out[f"{c}_sum_squares"] = self.covariate_cross_products[i][i]
            out[f"{c}_sum_products"] = self.covariate_sum_products[i]
            if self.is_ratio:
                out[f"{c}_denominator_sum_products"] = self.covariate_denominator_sum_products[i]
            for j in range(i + 1, len(self.covariate_names)):
                out[f"covariate_{i + 1}_{j + 1}_sum_products"] = self.covariate_cross_products[i][j]
        return out

    @classmethod
    def from_flat(cls, row: Mapping[str, Any], *, where: str = "row") -> ArmStats:
        """Parse the flat column form; ``where`` names the row in error messages.

        Covariate names come from ``covariate_names`` (a list, or a string separated by
        ``;``); without it the covariates are named ``covariate_1``, ``covariate_2``, ...
        """

        def number(key: str) -> float:
            value = row.get(key)
            if value is None or value == "":
                raise StatsInputError(
                    f"{where}: field `{key}` is missing; every arm needs n, sum and "
                    "sum_squares (see docs/stats/sufficient.md)."
                )
            try:
                return float(value)
            except (TypeError, ValueError):
                raise StatsInputError(
                    f"{where}: field `{key}` must be a number; got {value!r}."
                ) from None

        present = {k for k, v in row.items() if v is not None and v != ""}
        indices: set[int] = set()
        for key in present:
            m = _COVARIATE_COLUMN.match(key)
            if m:
                indices.add(int(m.group(1)))
        k = max(indices, default=0)
        if indices != set(range(1, k + 1)):
            raise StatsInputError(
                f"{where}: covariate columns are numbered {sorted(indices)}; number them "
                "1, 2, ... without gaps."
            )
        raw_names = row.get("covariate_names")
        if isinstance(raw_names, str):
            names = [s.strip() for s in raw_names.split(";") if s.strip()]
        elif raw_names:
            names = [str(s) for s in raw_names]
        else:
            names = [f"covariate_{i}" for i in range(1, k + 1)]
        if len(names) != k:
            raise StatsInputError(
                f"{where}: covariate_names lists {len(names)} names but there are {k} "
                "covariate columns; give one name per covariate."
            )
        ratio = any(f in present for f in RATIO_FIELDS)
        cross = [[0.0] * k for _ in range(k)]
        for i in range(k):
            cross[i][i] = number(f"covariate_{i + 1}_sum_squares")
            for j in range(i + 1, k):
                cross[i][j] = cross[j][i] = number(f"covariate_{i + 1}_{j + 1}_sum_products")
        return cls(
            n=number("n"),
            sum=number("sum"),
            sum_squares=number("sum_squares"),
            denominator_sum=number("denominator_sum") if ratio else None,
            denominator_sum_squares=number("denominator_sum_squares") if ratio else None,
            sum_products=number("sum_products") if ratio else None,
            covariate_names=tuple(names),
            covariate_sums=tuple(number(f"covariate_{i}_sum") for i in range(1, k + 1)),
            covariate_cross_products=tuple(tuple(r) for r in cross),
            covariate_sum_products=tuple(
                number(f"covariate_{i}_sum_products") for i in range(1, k + 1)
            ),
            covariate_denominator_sum_products=tuple(
                number(f"covariate_{i}_denominator_sum_products") for i in range(1, k + 1)
            )
            if ratio
            else (),
        )


def stack(arms: Sequence[ArmStats]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Stack arms with the same variables into arrays for vectorized math.

    Returns ``(n, sums, cross)`` with shapes ``(m,)``, ``(m, p)`` and ``(m, p, p)``.
    """
    if not arms:
        raise StatsInputError("no arms to stack; give at least one ArmStats.")
    names = arms[0].variable_names
    for a in arms[1:]:
        if a.variable_names != names:
            raise StatsInputError(
                f"cannot stack arms over variables {names} and {a.variable_names}; "
                "stack only arms of the same metric with the same covariates."
            )
    parts = [a.moments() for a in arms]
    return (
        np.array([p[0] for p in parts]),
        np.stack([p[1] for p in parts]),
        np.stack([p[2] for p in parts]),
    )


def is_finite_number(value: float | None) -> bool:
    """True if ``value`` is a finite float (not None, NaN or infinite)."""
    return value is not None and math.isfinite(value)
