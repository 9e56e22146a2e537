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
  The spending functions (O'Brien-Fleming-type, Pocock-type, Hwang-Shih-DeCani, power)
  are in :mod:`proving.stats.spending`.

* **Wang-Tsiatis constant-shape boundaries** (Wang & Tsiatis 1987, Biometrics 43:193),
  ``c_k = C t_k^(delta - 1/2)``: delta = 1/2 is Pocock's constant boundary (Pocock 1977),
  delta = 0 O'Brien & Fleming's (1979). C is solved so that the total crossing
  probability is alpha.

A two-sided design at level alpha is symmetric: each side spends alpha/2 with the chosen
function (the convention of gsDesign and ldbounds), and the crossing probabilities count
both sides exactly.

Crossing probabilities come from the recursive numerical integration of Armitage,
McPherson & Rowe (1969) in :mod:`proving.stats.crossing` (Jennison & Turnbull 2000,
*Group Sequential Methods*, ch. 19); this module solves boundaries with it and computes
a design's power and sample-size inflation.

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
from scipy import optimize, special

from proving._types import FloatArray
from proving.errors import StatsInputError
from proving.stats.crossing import (
    TAIL,
    Carry,
    advance,
    check_fractions,
    cross,
    exit_probabilities,
    start_carry,
)
from proving.stats.sequential import _check_alpha, _check_alternative
from proving.stats.spending import (
    DEFAULT_PARAMETER,
    SPENDING_FUNCTIONS,
    SpendingName,
    alpha_spent,
)

# The spending functions and the crossing probabilities live in their own modules; they
# stay importable from here.
__all__ = [
    "SPENDING_FUNCTIONS",
    "GroupSequentialDesign",
    "SpendingBoundaries",
    "SpendingName",
    "alpha_spent",
    "design_boundaries",
    "exit_probabilities",
    "pocock_constant",
    "stagewise_p_value",
    "wang_tsiatis_boundaries",
]

Alternative = Literal["two-sided", "greater", "less"]


def _solve_bound(carry: Carry, t: float, target: float, two_sided: bool) -> float:
    """The z boundary whose crossing probability under H0 is ``target``."""
    if target <= 0.0:
        return math.inf

    def excess(b: float) -> float:
        p = cross(carry, t, b, 0.0, True)
        if two_sided:
            p += cross(carry, t, -b, 0.0, False)
        return p - target

    lo_b = 0.0 if two_sided else -TAIL
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
        nominal_p_values=tuple(float(v) for v in special.ndtr(-np.abs(bounds))),
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
    t = check_fractions(information_fractions)
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
        self._carry = start_carry()  # sub-density just before the last look

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
            self._carry = advance(self._carry, prev, lo, hi, 0.0, t)
        side = self.alpha / 2.0 if self._two_sided else self.alpha
        kw = {"alpha": side, "spending": self.spending, "parameter": self.parameter}
        now = side if final else float(alpha_spent(t, **kw))  # type: ignore[arg-type]
        before = float(alpha_spent(prev, **kw)) if self.fractions else 0.0  # type: ignore[arg-type]
        factor = 2.0 if self._two_sided else 1.0
        bound = _solve_bound(self._carry, t, factor * (now - before), self._two_sided)
        crossed = cross(self._carry, t, bound, 0.0, True) if math.isfinite(bound) else 0.0
        self.cumulative_alpha += factor * crossed
        self.fractions.append(t)
        self.bounds.append(bound)
        return bound

    def design(self) -> GroupSequentialDesign:
        """The design of the looks added so far (exact crossing probabilities)."""
        if not self.fractions:
            raise StatsInputError("no looks yet; call add_look(information_fraction) first.")
        used = (
            DEFAULT_PARAMETER.get(self.spending)
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
    t = check_fractions(information_fractions)
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
