"""Group-sequential designs: boundaries for a planned number of looks.

An experiment that is analysed at K planned looks, at information fractions
``0 < t_1 < ... < t_K <= 1`` (the share of the final sample, or of the final Fisher
information, seen so far), stops at the first look whose z-statistic crosses a boundary.
The boundaries are chosen so that the probability of ever crossing under the null is alpha.

Two families:

* **Alpha spending** (Lan & DeMets 1983, Biometrika 70:659): a function ``alpha(t)``,
  increasing from 0 to alpha, fixes how much type I error may be spent by information
  fraction t. The boundary at look k solves

      P(cross at look k, no crossing before | H0) = alpha(t_k) - alpha(t_{k-1}),

  which needs only the looks so far, so looks may be unequally spaced and unplanned.
  Spending functions (``alpha`` is the error spent on one side):

  ==================  ============================================  ==================
  name                alpha(t)                                      source
  ==================  ============================================  ==================
  obrien_fleming      2 - 2 Phi(z_{1-alpha/2} / sqrt(t))            Lan & DeMets 1983
  pocock              alpha log(1 + (e - 1) t)                      Lan & DeMets 1983
  hwang_shih_decani   alpha (1 - e^{-g t}) / (1 - e^{-g})           Hwang et al. 1990
  power               alpha t^rho                                   Kim & DeMets 1987
  ==================  ============================================  ==================

* **Wang-Tsiatis constant-shape boundaries** (Wang & Tsiatis 1987, Biometrics 43:193),
  ``c_k = C t_k^(delta - 1/2)``: delta = 1/2 is Pocock's constant boundary (Pocock 1977),
  delta = 0 O'Brien & Fleming's (1979). C is solved so that the total crossing
  probability is alpha.

A two-sided design at level alpha is symmetric: each side spends alpha/2 with the chosen
function (the convention of gsDesign and ldbounds), and the crossing probabilities count
both sides exactly.

Crossing probabilities come from the recursive numerical integration of Armitage,
McPherson & Rowe (1969) as laid out in Jennison & Turnbull (2000), *Group Sequential
Methods*, ch. 19: the score statistic S_k = Z_k sqrt(t_k) has independent increments
N(theta (t_k - t_{k-1}), t_k - t_{k-1}); its sub-density on the continuation region is
carried from look to look on a Simpson grid.

Example:
    >>> design = design_boundaries([0.25, 0.5, 0.75, 1.0], alpha=0.05)
    >>> [round(b, 3) for b in design.upper]
    [4.333, 2.963, 2.359, 2.014]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from proving.errors import StatsInputError

FloatArray = npt.NDArray[np.float64]
Alternative = Literal["two-sided", "greater", "less"]
SpendingName = Literal["obrien_fleming", "pocock", "hwang_shih_decani", "power"]

SPENDING_FUNCTIONS: tuple[str, ...] = ("obrien_fleming", "pocock", "hwang_shih_decani", "power")
_DEFAULT_PARAMETER = {"hwang_shih_decani": -4.0, "power": 3.0}
# Beyond 12 standard deviations the normal mass (< 1e-32) cannot change any boundary.
_TAIL = 12.0
_MAX_GRID = 1501


def _ndtr(x: FloatArray | float) -> FloatArray:
    return np.asarray(special.ndtr(x), dtype=float)


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise StatsInputError(
            f"`alpha` must be a number in (0, 1); got {alpha!r}. Use a value such as 0.05."
        )


def _check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "greater", "less"):
        raise StatsInputError(
            f"`alternative` must be 'two-sided', 'greater' or 'less'; got {alternative!r}."
        )


def _check_fractions(information_fractions: Sequence[float] | FloatArray) -> FloatArray:
    t = np.asarray(information_fractions, dtype=float)
    if t.ndim != 1 or t.size == 0:
        raise StatsInputError(
            "`information_fractions` must be a non-empty list of numbers in (0, 1]; "
            f"got {information_fractions!r}."
        )
    if not np.all(np.isfinite(t)) or np.any(t <= 0) or np.any(t > 1):
        raise StatsInputError(
            f"`information_fractions` must lie in (0, 1]; got {t.tolist()}. Divide the "
            "information (or sample size) at each look by the planned maximum."
        )
    if np.any(np.diff(t) <= 0):
        raise StatsInputError(
            f"`information_fractions` must be strictly increasing; got {t.tolist()}. "
            "Merge looks taken at the same information."
        )
    return t


def alpha_spent(
    information_fractions: Sequence[float] | FloatArray | float,
    *,
    alpha: float = 0.05,
    spending: SpendingName = "obrien_fleming",
    parameter: float | None = None,
) -> FloatArray:
    """Cumulative type I error that ``spending`` allows by each information fraction.

    Args:
        information_fractions: fractions t in [0, 1] (values above 1 count as 1).
        alpha: the error to spend in total (on one side; see the module docstring).
        spending: the spending function's name.
        parameter: gamma of ``hwang_shih_decani`` (default -4) or rho of ``power``
            (default 3); ignored by the others.

    Returns:
        alpha(t) for each t, an array.

    Example:
        >>> float(alpha_spent(1.0, alpha=0.025))
        0.025
    """
    _check_alpha(alpha)
    if spending not in SPENDING_FUNCTIONS:
        raise StatsInputError(
            f"`spending` must be one of {', '.join(SPENDING_FUNCTIONS)}; got {spending!r}."
        )
    t = np.clip(np.asarray(information_fractions, dtype=float), 0.0, 1.0)
    p = _DEFAULT_PARAMETER.get(spending, 0.0) if parameter is None else float(parameter)
    if spending == "obrien_fleming":
        z = special.ndtri(1.0 - alpha / 2.0)
        with np.errstate(divide="ignore"):
            out = 2.0 * special.ndtr(-z / np.sqrt(t))
    elif spending == "pocock":
        out = alpha * np.log1p((math.e - 1.0) * t)
    elif spending == "hwang_shih_decani":
        out = alpha * t if p == 0 else alpha * np.expm1(-p * t) / math.expm1(-p)
    else:
        if p <= 0:
            raise StatsInputError(
                f"`parameter` (rho) of the power spending function must be > 0; got {p}. "
                "Use 1 for Pocock-like, 3 for O'Brien-Fleming-like spending."
            )
        out = alpha * t**p
    return np.asarray(np.where(t >= 1.0, alpha, out), dtype=float)


@dataclass
class _Carry:
    """Sub-density of the score S_k on the continuation region, on a Simpson grid."""

    t: float
    points: FloatArray
    mass: FloatArray  # Simpson weight times density at each point


def _start() -> _Carry:
    # Before the first look S_0 = 0 with certainty: one point of mass 1.
    return _Carry(t=0.0, points=np.zeros(1), mass=np.ones(1))


def _cross(carry: _Carry, t: float, bound: float, drift: float, upper: bool) -> float:
    """P(no crossing before, S_t beyond ``bound`` (z-scale) at this look)."""
    d = t - carry.t
    c = bound * math.sqrt(t)
    scale = math.sqrt(d)
    if upper:
        tail = _ndtr((carry.points + drift * d - c) / scale)
    else:
        tail = _ndtr((c - carry.points - drift * d) / scale)
    return float(tail @ carry.mass)


def _simpson(lo: float, hi: float, step: float) -> tuple[FloatArray, FloatArray]:
    m = int(min(max(math.ceil((hi - lo) / step), 100), _MAX_GRID - 1))
    m += m % 2  # Simpson's rule needs an even number of intervals
    points = np.linspace(lo, hi, m + 1)
    weights = np.full(m + 1, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return points, weights * (hi - lo) / (3.0 * m)


def _advance(
    carry: _Carry, t: float, lower: float, upper: float, drift: float, next_t: float
) -> _Carry:
    """Carry the sub-density to look ``t`` restricted to ``lower < Z_t < upper``."""
    d = t - carry.t
    root = math.sqrt(t)
    lo = max(lower * root, drift * t - _TAIL * root)
    hi = min(upper * root, drift * t + _TAIL * root)
    if hi <= lo:
        return _Carry(t=t, points=np.zeros(1), mass=np.zeros(1))
    # The next step's kernel has standard deviation sqrt(next_t - t): six grid points per
    # standard deviation keep boundaries within ~1e-6 of a 4x finer grid (checked).
    step = min(math.sqrt(max(next_t - t, 1e-12)), math.sqrt(d)) / 6.0
    points, weights = _simpson(lo, hi, step)
    scale = math.sqrt(d)
    z = (points[:, None] - carry.points[None, :] - drift * d) / scale
    density = np.exp(-0.5 * z * z) @ carry.mass / (scale * math.sqrt(2.0 * math.pi))
    return _Carry(t=t, points=points, mass=weights * density)


def exit_probabilities(
    upper: Sequence[float] | FloatArray,
    lower: Sequence[float] | FloatArray,
    information_fractions: Sequence[float] | FloatArray,
    *,
    drift: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """Probability of stopping at each look across the upper and the lower boundary.

    Args:
        upper: upper z boundaries per look (``inf`` for none).
        lower: lower z boundaries per look (``-inf`` for none).
        information_fractions: t_k per look, strictly increasing in (0, 1].
        drift: the mean of the z-statistic at t = 1 (``effect / std_err`` of the final
            analysis); Z_k then has mean ``drift * sqrt(t_k)``. 0 is the null.

    Returns:
        ``(p_upper, p_lower)``: arrays of per-look crossing probabilities.
    """
    t = _check_fractions(information_fractions)
    u = np.asarray(upper, dtype=float)
    lo = np.asarray(lower, dtype=float)
    if u.shape != t.shape or lo.shape != t.shape:
        raise StatsInputError(
            f"`upper` and `lower` need one boundary per look ({t.size}); got "
            f"{u.size} and {lo.size}."
        )
    p_up = np.zeros(t.size)
    p_lo = np.zeros(t.size)
    carry = _start()
    for k in range(t.size):
        tk = float(t[k])
        p_up[k] = _cross(carry, tk, float(u[k]), drift, True) if np.isfinite(u[k]) else 0.0
        p_lo[k] = _cross(carry, tk, float(lo[k]), drift, False) if np.isfinite(lo[k]) else 0.0
        if k + 1 < t.size:
            carry = _advance(carry, tk, float(lo[k]), float(u[k]), drift, float(t[k + 1]))
    return p_up, p_lo


def _solve_bound(carry: _Carry, t: float, target: float, two_sided: bool) -> float:
    """The z boundary whose crossing probability under H0 is ``target``."""
    if target <= 0.0:
        return math.inf

    def excess(b: float) -> float:
        p = _cross(carry, t, b, 0.0, True)
        if two_sided:
            p += _cross(carry, t, -b, 0.0, False)
        return p - target

    lo_b = 0.0 if two_sided else -_TAIL
    if excess(lo_b) < 0.0:
        # Less continuation mass is left than the error to spend: the look rejects always.
        return lo_b
    hi_b = 40.0
    if excess(hi_b) > 0.0:
        return hi_b
    return float(optimize.brentq(excess, lo_b, hi_b, xtol=1e-10, rtol=1e-12))


@dataclass(frozen=True)
class GroupSequentialDesign:
    """Boundaries of a group-sequential design, on the z scale.

    Attributes:
        information_fractions: t_k of each look.
        alpha: overall type I error (two-sided designs split it evenly between sides).
        alternative: ``two-sided``, ``greater`` (stop when Z >= upper) or ``less``.
        method: ``spending`` or ``wang_tsiatis``.
        spending: spending function name (``spending`` method).
        parameter: gamma/rho of the spending function, or delta of Wang-Tsiatis.
        upper: upper z boundary per look (``inf`` where the side is not tested).
        lower: lower z boundary per look (``-inf`` where the side is not tested).
        cumulative_alpha: type I error spent by each look (both sides), exact.
        nominal_p_values: one-sided nominal p-value of each boundary, 1 - Phi(|b|).
    """

    information_fractions: tuple[float, ...]
    alpha: float
    alternative: Alternative
    method: Literal["spending", "wang_tsiatis"]
    spending: str | None
    parameter: float | None
    upper: tuple[float, ...]
    lower: tuple[float, ...]
    cumulative_alpha: tuple[float, ...]
    nominal_p_values: tuple[float, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; infinite boundaries become None."""
        out = asdict(self)
        for key in ("upper", "lower"):
            out[key] = [b if math.isfinite(b) else None for b in out[key]]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupSequentialDesign:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["upper"] = tuple(math.inf if b is None else float(b) for b in d["upper"])
        d["lower"] = tuple(-math.inf if b is None else float(b) for b in d["lower"])
        for key in ("information_fractions", "cumulative_alpha", "nominal_p_values"):
            d[key] = tuple(float(v) for v in d.get(key, ()))
        return cls(**d)

    def exit_probabilities(self, drift: float = 0.0) -> tuple[FloatArray, FloatArray]:
        """Per-look probabilities of crossing the upper and lower boundary at ``drift``."""
        return exit_probabilities(self.upper, self.lower, self.information_fractions, drift=drift)

    def drift_for_power(self, power: float = 0.8) -> float:
        """The drift (mean of Z at t = 1) at which the design has the given power.

        Divided by the drift a fixed-sample test needs, and squared, this is the
        inflation factor of the maximum sample size (Jennison & Turnbull 2000, ch. 2).
        """
        if not 0.0 < power < 1.0:
            raise StatsInputError(f"`power` must be in (0, 1); got {power!r}. Use e.g. 0.8.")
        sign = -1.0 if self.alternative == "less" else 1.0
        return sign * float(
            optimize.brentq(lambda d: self.power(sign * d) - power, 0.0, 40.0, xtol=1e-9)
        )

    def inflation_factor(self, power: float = 0.8) -> float:
        """Maximum sample size of this design over that of a fixed-sample test."""
        side = self.alpha / 2.0 if self.alternative == "two-sided" else self.alpha
        fixed = float(special.ndtri(1.0 - side) + special.ndtri(power))
        return (self.drift_for_power(power) / fixed) ** 2

    def power(self, drift: float) -> float:
        """Probability of crossing the boundary on the side of ``drift`` at any look."""
        p_up, p_lo = self.exit_probabilities(drift)
        if self.alternative == "greater":
            return float(p_up.sum())
        if self.alternative == "less":
            return float(p_lo.sum())
        return float(p_up.sum() if drift >= 0 else p_lo.sum())


def _finish(
    t: FloatArray,
    alpha: float,
    alternative: Alternative,
    method: Literal["spending", "wang_tsiatis"],
    spending: str | None,
    parameter: float | None,
    bounds: FloatArray,
) -> GroupSequentialDesign:
    inf = np.full(t.size, math.inf)
    if alternative == "two-sided":
        upper, lower = bounds, -bounds
    elif alternative == "greater":
        upper, lower = bounds, -inf
    else:
        upper, lower = inf, -bounds
    p_up, p_lo = exit_probabilities(upper, lower, t)
    return GroupSequentialDesign(
        information_fractions=tuple(float(v) for v in t),
        alpha=float(alpha),
        alternative=alternative,
        method=method,
        spending=spending,
        parameter=parameter,
        upper=tuple(float(v) for v in upper),
        lower=tuple(float(v) for v in lower),
        cumulative_alpha=tuple(float(v) for v in np.cumsum(p_up + p_lo)),
        nominal_p_values=tuple(float(v) for v in _ndtr(-np.abs(bounds))),
    )


def design_boundaries(
    information_fractions: Sequence[float] | FloatArray,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    spending: SpendingName = "obrien_fleming",
    parameter: float | None = None,
    final: bool = False,
) -> GroupSequentialDesign:
    """Lan-DeMets alpha-spending boundaries for looks at the given information fractions.

    Args:
        information_fractions: t_k of the looks taken so far (or planned), strictly
            increasing in (0, 1]. Unequal spacing is fine.
        alpha: overall type I error; a two-sided design spends alpha/2 per side.
        alternative: ``two-sided`` (symmetric boundaries), ``greater`` or ``less``.
        spending: ``obrien_fleming``, ``pocock``, ``hwang_shih_decani`` or ``power``.
        parameter: gamma of ``hwang_shih_decani`` (default -4) or rho of ``power``
            (default 3).
        final: the last look is the final analysis: spend all remaining alpha there even
            if its fraction is below 1 (the experiment ended short of its plan).

    Returns:
        A :class:`GroupSequentialDesign`.

    Example:
        >>> d = design_boundaries([0.3, 0.7, 1.0], alpha=0.025, alternative="greater")
        >>> round(d.cumulative_alpha[-1], 6)
        0.025
    """
    t = _check_fractions(information_fractions)
    plan = SpendingBoundaries(
        alpha=alpha, alternative=alternative, spending=spending, parameter=parameter
    )
    for k, tk in enumerate(t):
        plan.add_look(float(tk), final=final and k == t.size - 1)
    return plan.design()


class SpendingBoundaries:
    """Lan-DeMets spending boundaries computed look by look, for ongoing experiments.

    Boundaries of earlier looks never change when a look is added (the spending property),
    so each :meth:`add_look` costs one integration step whatever the number of looks so
    far. :func:`design_boundaries` is this class run over a list of fractions.

    Example:
        >>> plan = SpendingBoundaries(alpha=0.05)
        >>> round(plan.add_look(0.25), 3), round(plan.add_look(0.5), 3)
        (4.333, 2.963)
    """

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        alternative: Alternative = "two-sided",
        spending: SpendingName = "obrien_fleming",
        parameter: float | None = None,
    ) -> None:
        _check_alpha(alpha)
        _check_alternative(alternative)
        alpha_spent(1.0, alpha=alpha, spending=spending, parameter=parameter)  # validates
        self.alpha = float(alpha)
        self.alternative: Alternative = alternative
        self.spending: SpendingName = spending
        self.parameter = parameter
        self.fractions: list[float] = []
        self.bounds: list[float] = []  # |z| boundary on the tested side(s), per look
        self.cumulative_alpha = 0.0  # error spent so far, both sides, at the solved bounds
        self._carry = _start()  # sub-density just before the last look

    @property
    def _two_sided(self) -> bool:
        return self.alternative == "two-sided"

    def add_look(self, information_fraction: float, *, final: bool = False) -> float:
        """Add a look at ``information_fraction`` and return its boundary ``|z|``.

        Args:
            information_fraction: t of this look, above the previous one, at most 1.
            final: spend all remaining alpha here (the last analysis).
        """
        t = float(information_fraction)
        prev = self.fractions[-1] if self.fractions else 0.0
        if not (math.isfinite(t) and prev < t <= 1.0):
            raise StatsInputError(
                f"a new look's information fraction must be in ({prev:g}, 1] (after the "
                f"previous look); got {information_fraction!r}."
            )
        if self.fractions:
            # The grid of the previous look resolves the kernel of the step to t.
            b = self.bounds[-1]
            lo, hi = (-b, b) if self._two_sided else (-math.inf, b)
            self._carry = _advance(self._carry, prev, lo, hi, 0.0, t)
        side = self.alpha / 2.0 if self._two_sided else self.alpha
        kw = {"alpha": side, "spending": self.spending, "parameter": self.parameter}
        now = side if final else float(alpha_spent(t, **kw))  # type: ignore[arg-type]
        before = float(alpha_spent(prev, **kw)) if self.fractions else 0.0  # type: ignore[arg-type]
        factor = 2.0 if self._two_sided else 1.0
        bound = _solve_bound(self._carry, t, factor * (now - before), self._two_sided)
        crossed = _cross(self._carry, t, bound, 0.0, True) if math.isfinite(bound) else 0.0
        self.cumulative_alpha += factor * crossed
        self.fractions.append(t)
        self.bounds.append(bound)
        return bound

    def design(self) -> GroupSequentialDesign:
        """The design of the looks added so far (exact crossing probabilities)."""
        if not self.fractions:
            raise StatsInputError("no looks yet; call add_look(information_fraction) first.")
        used = (
            _DEFAULT_PARAMETER.get(self.spending)
            if self.parameter is None
            else float(self.parameter)
        )
        return _finish(
            np.array(self.fractions), self.alpha, self.alternative, "spending",
            self.spending, used, np.array(self.bounds),
        )  # fmt: skip


def wang_tsiatis_boundaries(
    information_fractions: Sequence[float] | FloatArray,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    delta: float = 0.5,
) -> GroupSequentialDesign:
    """Constant-shape boundaries ``c_k = C t_k^(delta - 1/2)`` with total error alpha.

    ``delta = 0.5`` gives Pocock's (1977) constant boundary, ``delta = 0`` O'Brien &
    Fleming's (1979). Unlike spending boundaries these need every look's fraction up front.

    Example:
        >>> d = wang_tsiatis_boundaries([0.25, 0.5, 0.75, 1.0], delta=0.5)
        >>> round(d.upper[0], 3)
        2.361
    """
    _check_alpha(alpha)
    _check_alternative(alternative)
    t = _check_fractions(information_fractions)
    shape = t ** (float(delta) - 0.5)
    inf = np.full(t.size, math.inf)

    def excess(c: float) -> float:
        b = c * shape
        if alternative == "two-sided":
            p_up, p_lo = exit_probabilities(b, -b, t)
        else:
            p_up, p_lo = exit_probabilities(b, -inf, t)
        return float(p_up.sum() + p_lo.sum()) - alpha

    c = float(optimize.brentq(excess, 0.0, 40.0, xtol=1e-10, rtol=1e-12))
    return _finish(t, alpha, alternative, "wang_tsiatis", None, float(delta), c * shape)


def pocock_constant(
    looks: int, *, alpha: float = 0.05, alternative: Alternative = "two-sided"
) -> float:
    """Pocock's (1977) constant |z| boundary for ``looks`` equally spaced looks.

    Example:
        >>> round(pocock_constant(4), 3)
        2.361
    """
    if not isinstance(looks, int) or isinstance(looks, bool) or looks < 1:
        raise StatsInputError(f"`looks` must be a positive integer; got {looks!r}.")
    t = np.arange(1, looks + 1) / looks
    design = wang_tsiatis_boundaries(t, alpha=alpha, alternative=alternative, delta=0.5)
    return design.upper[0] if alternative != "less" else -design.lower[0]


def stagewise_p_value(design: GroupSequentialDesign, z: float) -> float:
    """Stage-wise ordering p-value for stopping at the last look of ``design`` with ``z``.

    Jennison & Turnbull (2000), sec. 8.4: the probability under the null of stopping at
    an earlier look, plus that of reaching this look and being at least as extreme. Valid
    at the look where the experiment stops (or the final one).

    Example:
        >>> d = design_boundaries([0.5, 1.0], alpha=0.05)
        >>> round(stagewise_p_value(d, d.upper[-1]), 6)
        0.05
    """
    upper, lower = list(design.upper), list(design.lower)
    if design.alternative == "two-sided":
        upper[-1], lower[-1] = abs(z), -abs(z)
    elif design.alternative == "greater":
        upper[-1] = z
    else:
        lower[-1] = z
    p_up, p_lo = exit_probabilities(upper, lower, design.information_fractions)
    return float(min(1.0, p_up.sum() + p_lo.sum()))
