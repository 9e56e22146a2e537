"""Interleaving analysis: which of two rankers do users prefer?

Team-draft interleaving (Radlinski, Kurup & Joachims 2008, "How does clickthrough data
reflect retrieval quality?", CIKM) merges the result lists of rankers A and B into one list
and credits each click to the ranker that contributed the clicked item. Per user ``i`` the
serving layer records the credit ``c_Ai`` and ``c_Bi`` (clicks, or any graded credit). The
user *prefers* A when ``c_Ai > c_Bi``, B when ``c_Ai < c_Bi``, and neither on a tie.

Sufficient statistics are three counts, mergeable by addition: ``wins_a``, ``wins_b`` and
``ties`` (users with equal credit, including zero). The preference statistic is

    Delta_AB = (wins_a - wins_b) / n,       n = wins_a + wins_b + ties,

in [-1, 1]; positive means A wins (Chapelle, Joachims, Radlinski & Yue 2012, "Large-scale
validation and analysis of interleaved search evaluation", ACM TOIS 30(1), which writes
the equivalent ``(wins_a + ties / 2) / n - 1/2 = Delta_AB / 2``).

Tests:

- the sign test: under "no preference" every user with a preference picks A with
  probability 1/2, so ``wins_a ~ Binomial(wins_a + wins_b, 1/2)``
  (:func:`scipy.stats.binomtest`, exact);
- a user-level bootstrap interval for Delta_AB. Each user's preference takes one of three
  values, so resampling users with replacement is exactly drawing the three counts from
  ``Multinomial(n, (wins_a, ties, wins_b) / n)``: the bootstrap is vectorized and costs
  nothing per user (percentile interval, Efron & Tibshirani 1993, ch. 13).

Example:
    >>> counts = InterleavingCounts.from_credits([2, 0, 1, 0], [0, 0, 3, 1])
    >>> (counts.wins_a, counts.wins_b, counts.ties)
    (1, 2, 1)
    >>> result = analyze_interleaving(counts, seed=1)
    >>> result.estimate
    -0.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from proving.errors import StatsInputError
from proving.stats.results import ResultBase

Alternative = Literal["two-sided", "greater", "less"]

METHOD = "team-draft interleaving: sign test (exact binomial) and user-level bootstrap"


@dataclass(frozen=True)
class InterleavingCounts:
    """Per-user preferences of an interleaving experiment, reduced to three counts.

    Args:
        wins_a: users who gave more credit to ranker A.
        wins_b: users who gave more credit to ranker B.
        ties: users with equal credit (including users who clicked nothing).
    """

    wins_a: int
    wins_b: int
    ties: int = 0

    def __post_init__(self) -> None:
        for name in ("wins_a", "wins_b", "ties"):
            value = getattr(self, name)
            if isinstance(value, bool) or not float(value).is_integer() or value < 0:
                raise StatsInputError(
                    f"interleaving counts: `{name}` must be a non-negative whole number of "
                    f"users; got {value!r}."
                )
            object.__setattr__(self, name, int(value))

    @property
    def n(self) -> int:
        """All users, with or without a preference."""
        return self.wins_a + self.wins_b + self.ties

    def __add__(self, other: object) -> InterleavingCounts:
        if not isinstance(other, InterleavingCounts):
            return NotImplemented
        return InterleavingCounts(
            self.wins_a + other.wins_a, self.wins_b + other.wins_b, self.ties + other.ties
        )

    @classmethod
    def from_credits(
        cls,
        credit_a: Sequence[float] | npt.NDArray[np.float64],
        credit_b: Sequence[float] | npt.NDArray[np.float64],
    ) -> InterleavingCounts:
        """Count preferences from per-user credit (one entry per user in both arrays).

        Example:
            >>> InterleavingCounts.from_credits([1, 0], [0, 0])
            InterleavingCounts(wins_a=1, wins_b=0, ties=1)
        """
        a = np.asarray(credit_a, dtype=float)
        b = np.asarray(credit_b, dtype=float)
        if a.ndim != 1 or a.shape != b.shape:
            raise StatsInputError(
                f"interleaving credit: credit_a and credit_b must be 1-d with one entry per "
                f"user; got shapes {a.shape} and {b.shape}."
            )
        bad = ~(np.isfinite(a) & np.isfinite(b))
        if bad.any():
            raise StatsInputError(
                f"interleaving credit: {int(bad.sum())} user(s) have NaN or infinite credit "
                f"(first at index {int(np.argmax(bad))}); give finite credit (0 for no clicks)."
            )
        d = a - b
        return cls(int((d > 0).sum()), int((d < 0).sum()), int((d == 0).sum()))


@dataclass(frozen=True)
class InterleavingResult(ResultBase):
    """Preference of users for ranker A over ranker B.

    ``estimate`` is Delta_AB = (wins_a - wins_b) / n; ``ci_lower``/``ci_upper`` its
    bootstrap percentile interval; ``p_value`` the exact sign test on users with a
    preference; ``std_err`` the plug-in standard error of Delta_AB,
    ``sqrt((p_a + p_b - (p_a - p_b)^2) / n)``. ``preference_share`` is
    ``wins_a / (wins_a + wins_b)``, the share of deciding users who prefer A.
    """

    wins_a: int
    wins_b: int
    ties: int
    n: int
    alpha: float
    alternative: Alternative
    estimate: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    p_value: float | None = None
    std_err: float | None = None
    preference_share: float | None = None
    n_bootstrap: int = 0
    method: str = METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


def _check_parameters(alpha: float, n_bootstrap: int, alternative: str) -> None:
    if not 0.0 < alpha < 1.0:
        raise StatsInputError(
            f"interleaving: `alpha` must be in (0, 1); got {alpha!r}. Use e.g. 0.05."
        )
    if n_bootstrap < 100:
        raise StatsInputError(
            f"interleaving: `n_bootstrap` must be at least 100; got {n_bootstrap!r}. "
            "Use e.g. 10000."
        )
    if alternative not in ("two-sided", "greater", "less"):
        raise StatsInputError(
            f"interleaving: `alternative` must be 'two-sided', 'greater' or 'less'; "
            f"got {alternative!r}."
        )


def analyze_interleaving(
    counts: InterleavingCounts,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    n_bootstrap: int = 10_000,
    seed: int | None = 0,
) -> InterleavingResult:
    """Preference statistic, sign test and bootstrap interval for an interleaving test.

    Args:
        counts: the three preference counts (see :meth:`InterleavingCounts.from_credits`).
        alpha: one minus the interval's confidence level.
        alternative: ``"greater"`` tests that A is preferred, ``"less"`` that B is.
        n_bootstrap: bootstrap resamples of the users.
        seed: seed of the bootstrap (None for fresh entropy).

    Example:
        >>> r = analyze_interleaving(InterleavingCounts(wins_a=60, wins_b=40, ties=100))
        >>> r.estimate, round(r.p_value, 4)
        (0.1, 0.0569)
    """
    _check_parameters(alpha, n_bootstrap, alternative)
    make = partial(
        InterleavingResult,
        wins_a=counts.wins_a,
        wins_b=counts.wins_b,
        ties=counts.ties,
        n=counts.n,
        alpha=alpha,
        alternative=alternative,
    )
    deciding = counts.wins_a + counts.wins_b
    if counts.n == 0:
        return make(reason="no users: nothing to compare")
    if deciding == 0:
        return make(
            reason=f"none of the {counts.n} users preferred either ranker (all ties)",
        )
    n = counts.n
    p_a, p_b = counts.wins_a / n, counts.wins_b / n
    estimate = (counts.wins_a - counts.wins_b) / n
    p_value = float(stats.binomtest(counts.wins_a, deciding, 0.5, alternative=alternative).pvalue)
    # Resampling n users with replacement == one multinomial draw of the three counts.
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, [p_a, 1.0 - p_a - p_b, p_b], size=n_bootstrap)
    deltas = (draws[:, 0] - draws[:, 2]) / n
    if alternative == "two-sided":
        lo, hi = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    elif alternative == "greater":
        lo, hi = float(np.quantile(deltas, alpha)), math.inf
    else:
        lo, hi = -math.inf, float(np.quantile(deltas, 1 - alpha))
    warnings: list[str] = []
    if deciding < 20:
        warnings.append(
            f"only {deciding} users preferred a ranker; the bootstrap interval is coarse "
            "(the sign test is exact)"
        )
    return make(
        estimate=estimate,
        ci_lower=float(lo),
        ci_upper=float(hi),
        p_value=p_value,
        std_err=math.sqrt(max(p_a + p_b - estimate**2, 0.0) / n),
        preference_share=counts.wins_a / deciding,
        n_bootstrap=n_bootstrap,
        warnings=tuple(warnings),
    )
