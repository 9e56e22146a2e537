"""Crossing probabilities of group-sequential boundaries, by recursive integration.

At information fractions ``0 < t_1 < ... < t_K <= 1`` the score statistic
``S_k = Z_k sqrt(t_k)`` has independent increments ``N(theta (t_k - t_{k-1}),
t_k - t_{k-1})``. The probability of first crossing a boundary at look k follows from
the sub-density of S_k on the continuation region, carried from look to look on a
Simpson grid: Armitage, McPherson & Rowe (1969, J. R. Stat. Soc. A 132:235), as laid
out in Jennison & Turnbull (2000), *Group Sequential Methods*, ch. 19. Six grid points
per standard deviation of the next increment (at most 1501 points) keep boundaries
within ~1e-6 of a 4x finer grid.

:func:`exit_probabilities` is the public entry point; :class:`Carry`,
:func:`start_carry`, :func:`cross` and :func:`advance` are the steps that
:mod:`proving.stats.group_sequential` also uses to solve boundaries look by look.

Example:
    >>> p_up, p_lo = exit_probabilities([1.96], [-1.96], [1.0])
    >>> round(float(p_up[0] + p_lo[0]), 4)
    0.05
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from proving._types import FloatArray
from proving.errors import StatsInputError

__all__ = [
    "TAIL",
    "Carry",
    "advance",
    "check_fractions",
    "cross",
    "exit_probabilities",
    "start_carry",
]

# Beyond 12 standard deviations the normal mass (< 1e-32) cannot change any boundary.
TAIL = 12.0
_MAX_GRID = 1501


def _ndtr(x: FloatArray | float) -> FloatArray:
    return np.asarray(special.ndtr(x), dtype=float)


def check_fractions(information_fractions: Sequence[float] | FloatArray) -> FloatArray:
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


@dataclass
class Carry:
    """Sub-density of the score S_k on the continuation region, on a Simpson grid."""

    t: float
    points: FloatArray
    mass: FloatArray  # Simpson weight times density at each point


def start_carry() -> Carry:
    # Before the first look S_0 = 0 with certainty: one point of mass 1.
    return Carry(t=0.0, points=np.zeros(1), mass=np.ones(1))


def cross(carry: Carry, t: float, bound: float, drift: float, upper: bool) -> float:
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


def advance(
    carry: Carry, t: float, lower: float, upper: float, drift: float, next_t: float
) -> Carry:
    """Carry the sub-density to look ``t`` restricted to ``lower < Z_t < upper``."""
    d = t - carry.t
    root = math.sqrt(t)
    lo = max(lower * root, drift * t - TAIL * root)
    hi = min(upper * root, drift * t + TAIL * root)
    if hi <= lo:
        return Carry(t=t, points=np.zeros(1), mass=np.zeros(1))
    # The next step's kernel has standard deviation sqrt(next_t - t): six grid points per
    # standard deviation keep boundaries within ~1e-6 of a 4x finer grid (checked).
    step = min(math.sqrt(max(next_t - t, 1e-12)), math.sqrt(d)) / 6.0
    points, weights = _simpson(lo, hi, step)
    scale = math.sqrt(d)
    z = (points[:, None] - carry.points[None, :] - drift * d) / scale
    density = np.exp(-0.5 * z * z) @ carry.mass / (scale * math.sqrt(2.0 * math.pi))
    return Carry(t=t, points=points, mass=weights * density)


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
    t = check_fractions(information_fractions)
    u = np.asarray(upper, dtype=float)
    lo = np.asarray(lower, dtype=float)
    if u.shape != t.shape or lo.shape != t.shape:
        raise StatsInputError(
            f"`upper` and `lower` need one boundary per look ({t.size}); got "
            f"{u.size} and {lo.size}."
        )
    p_up = np.zeros(t.size)
    p_lo = np.zeros(t.size)
    carry = start_carry()
    for k in range(t.size):
        tk = float(t[k])
        p_up[k] = cross(carry, tk, float(u[k]), drift, True) if np.isfinite(u[k]) else 0.0
        p_lo[k] = cross(carry, tk, float(lo[k]), drift, False) if np.isfinite(lo[k]) else 0.0
        if k + 1 < t.size:
            carry = advance(carry, tk, float(lo[k]), float(u[k]), drift, float(t[k + 1]))
    return p_up, p_lo
