"""Alpha-spending functions: how much type I error a design may spend by each look.

A spending function ``alpha(t)`` increases from 0 at information fraction ``t = 0`` to
alpha at ``t = 1`` (Lan & DeMets 1983, Biometrika 70:659). ``alpha`` here is the error
spent on one side; a two-sided design at level alpha spends ``alpha / 2`` per side with
the same function (the convention of gsDesign and ldbounds).

==================  ============================================  ==================
name                alpha(t)                                      source
==================  ============================================  ==================
obrien_fleming      2 - 2 Phi(z_{1-alpha/2} / sqrt(t))            Lan & DeMets 1983
pocock              alpha log(1 + (e - 1) t)                      Lan & DeMets 1983
hwang_shih_decani   alpha (1 - e^{-g t}) / (1 - e^{-g})           Hwang et al. 1990
power               alpha t^rho                                   Kim & DeMets 1987
==================  ============================================  ==================

:mod:`proving.stats.group_sequential` turns the error spent between looks into
boundaries.

Example:
    >>> [round(float(a), 5) for a in alpha_spent([0.25, 0.5, 1.0], alpha=0.025)]
    [1e-05, 0.00153, 0.025]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import special

from proving._types import FloatArray
from proving.errors import StatsInputError
from proving.stats.sequential import _check_alpha

__all__ = ["DEFAULT_PARAMETER", "SPENDING_FUNCTIONS", "SpendingName", "alpha_spent"]

SpendingName = Literal["obrien_fleming", "pocock", "hwang_shih_decani", "power"]

SPENDING_FUNCTIONS: tuple[str, ...] = ("obrien_fleming", "pocock", "hwang_shih_decani", "power")
# gamma of hwang_shih_decani and rho of power when none is given.
DEFAULT_PARAMETER = {"hwang_shih_decani": -4.0, "power": 3.0}


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
    p = DEFAULT_PARAMETER.get(spending, 0.0) if parameter is None else float(parameter)
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
