"""Sequential canary judge: a rank test that stays valid however often you look.

A canary is judged after every interval, and the fixed-sample Mann-Whitney test of
:mod:`proving.stats.canary` (Kayenta's) inflates its false-alarm rate when it is repeated
(at 20 looks, several times alpha). This module replaces it by a *sequential sign test on
paired observations* whose false-alarm probability over all looks, forever, is at most
alpha.

Pair the i-th canary value with the i-th baseline value in arrival order (unpaired values
wait for the next look). For the "too high" test with tolerance ``tau_hi``, the pair gives
``z_i = sign(canary_i - baseline_i - tau_hi)``; ties (``z_i = 0``) are skipped. Under
H0 (the canary is stochastically no larger than the baseline shifted by ``tau_hi``) each
non-tied pair has ``P(z_i = +1) = p <= 1/2``. The mixture likelihood ratio against
``p = 1/2``, with a Beta(a, a) prior truncated to ``p > 1/2``,

    M_t = int_{1/2}^{1} (2p)^S (2(1 - p))^F  dBeta(a, a)(p) / P_Beta(p > 1/2)
        = 2^{S+F+1} B(a + S, a + F) I_{1/2}(a + F, a + S) / B(a, a),

(``S``, ``F`` the counts of +1 and -1, ``I`` the regularized incomplete beta) is a
nonnegative supermartingale under H0 with ``M_0 = 1``, so by Ville's inequality
``P(sup_t M_t >= 1/alpha) <= alpha`` (Ville 1939; Robbins 1970, "Statistical methods
related to the law of the iterated logarithm"; Howard, Ramdas, McAuliffe & Sekhon 2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist.). The
always-valid p-value is ``min(1, 1 / max_{s <= t} M_s)``; it is exact (no asymptotics),
distribution-free, and valid for discrete metrics with ties. The "too low" test is the
mirror image with ``tau_lo``. With ``direction="either"`` each side runs at ``alpha / 2``.

The estimate reported is the share of non-tied pairs in which the canary is higher:
``P(canary > baseline)`` in a random pair, 0.5 when the distributions agree (the same
quantity the Mann-Whitney test targets).

Example:
    >>> import numpy as np
    >>> from proving.stats.canary import CanaryMetricSpec
    >>> rng = np.random.default_rng(0)
    >>> test = SequentialCanaryTest(CanaryMetricSpec("latency", direction="increase"))
    >>> for look in range(20):
    ...     result = test.update(rng.normal(100, 10, 50), rng.normal(104, 10, 50))
    ...     if result.classification != "pass":
    ...         break
    >>> result.classification, result.look
    ('high', 8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import special

from proving._types import FloatArray
from proving.errors import StatsInputError
from proving.stats.canary import CanaryMetricSpec, Classification, Direction
from proving.stats.results import ResultBase

METHOD = "sequential sign test on arrival-order pairs (truncated beta-mixture martingale)"
_LOG2 = math.log(2.0)


def log_mixture_martingale(
    successes: npt.ArrayLike, failures: npt.ArrayLike, prior_strength: float
) -> FloatArray:
    """``log M`` of the one-sided beta-mixture martingale for ``S`` successes, ``F`` failures.

    Vectorized over any array shape; ``log M = 0`` at ``S = F = 0``.
    """
    s = np.asarray(successes, dtype=float)
    f = np.asarray(failures, dtype=float)
    a = prior_strength
    with np.errstate(divide="ignore"):
        upper = np.log(special.betainc(a + f, a + s, 0.5))
    return np.asarray(
        (s + f + 1.0) * _LOG2 + special.betaln(a + s, a + f) - special.betaln(a, a) + upper,
        dtype=float,
    )


@dataclass(frozen=True)
class SequentialCanaryResult(ResultBase):
    """State of the sequential judgement of one metric after a look.

    ``p_value_high``/``p_value_low`` are the always-valid p-values of the "too high" and
    "too low" tests (running minimum over all looks); ``alpha_high``/``alpha_low`` the
    levels they are compared with. A harmful classification is sticky (the canary should
    stop; ``stopped_at_look`` says when); a harmless one (``low`` on an increase-is-bad
    metric) is reported but gives way to a later harmful alarm. ``passed`` is None
    (``nodata``) before the first pair; pairs that are all tied (zero errors on both sides)
    pass with a warning.
    """

    metric: str
    direction: Direction
    alpha: float
    look: int
    n_pairs: int
    n_higher: int
    n_lower: int
    classification: Classification
    passed: bool | None
    estimate: float | None = None
    p_value_high: float = 1.0
    p_value_low: float = 1.0
    alpha_high: float = 0.05
    alpha_low: float = 0.05
    tolerance_lower: float = 0.0
    tolerance_upper: float = 0.0
    stopped_at_look: int | None = None
    method: str = METHOD
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())


class SequentialCanaryTest:
    """Look-after-look canary judgement of one metric, valid under continuous monitoring.

    Args:
        spec: the metric's direction and tolerances (as for the fixed-sample judge).
        alpha: the false-alarm probability over all looks.
        reference: the value the relative tolerances scale (e.g. the baseline median of a
            previous period); required when a tolerance is set, because a tolerance that
            moved with the data would break the guarantee.
        prior_strength: ``a`` of the Beta(a, a) mixing prior; larger values favour
            smaller shifts of ``P(canary > baseline)`` away from 1/2 (sd about
            ``1 / (2 sqrt(2a + 1))``).
    """

    def __init__(
        self,
        spec: CanaryMetricSpec,
        *,
        alpha: float = 0.05,
        reference: float | None = None,
        prior_strength: float = 10.0,
    ) -> None:
        where = f"sequential canary metric {spec.name!r}"
        if not 0.0 < alpha < 1.0:
            raise StatsInputError(f"{where}: `alpha` must be in (0, 1); got {alpha!r}.")
        if not (math.isfinite(prior_strength) and prior_strength > 0):
            raise StatsInputError(
                f"{where}: `prior_strength` must be a positive number such as 10; got "
                f"{prior_strength!r}."
            )
        tolerant = spec.allowed_increase > 0 or spec.allowed_decrease > 0
        if tolerant and (reference is None or not math.isfinite(reference)):
            raise StatsInputError(
                f"{where}: relative tolerances need a fixed `reference` value (such as the "
                f"baseline median of an earlier period); got {reference!r}."
            )
        scale = abs(reference) if reference is not None else 0.0
        self.spec = spec
        self.alpha = alpha
        self.prior_strength = prior_strength
        self.tolerance_upper = spec.allowed_increase * scale
        self.tolerance_lower = spec.allowed_decrease * scale
        two_sided = spec.direction == "either"
        self.alpha_high = alpha / 2 if two_sided else alpha
        self.alpha_low = alpha / 2 if two_sided else alpha
        self.look = 0
        self.n_pairs = 0
        self.n_higher = self.n_lower = 0  # canary above / below baseline (no tolerance)
        self._high = [0, 0]  # successes, failures of the "too high" test
        self._low = [0, 0]
        self._max_log_high = self._max_log_low = 0.0
        self._fired: dict[Classification, int] = {}  # side -> look its alarm first fired
        self._baseline_buffer = np.empty(0)
        self._canary_buffer = np.empty(0)

    def _pairs(
        self, baseline: Sequence[float] | FloatArray, canary: Sequence[float] | FloatArray
    ) -> tuple[FloatArray, FloatArray, int]:
        x = np.asarray(baseline, dtype=float)
        y = np.asarray(canary, dtype=float)
        if x.ndim != 1 or y.ndim != 1:
            raise StatsInputError(
                f"sequential canary metric {self.spec.name!r}: values must be 1-d; got shapes "
                f"{x.shape} and {y.shape}."
            )
        dropped = int((~np.isfinite(x)).sum() + (~np.isfinite(y)).sum())
        x = np.concatenate([self._baseline_buffer, x[np.isfinite(x)]])
        y = np.concatenate([self._canary_buffer, y[np.isfinite(y)]])
        k = min(x.size, y.size)
        self._baseline_buffer, self._canary_buffer = x[k:], y[k:]
        return x[:k], y[:k], dropped

    def _advance(self, counts: list[int], signs: FloatArray) -> float:
        """Add one side's signs (+1 success, -1 failure, 0 tie); return max log M seen."""
        s = counts[0] + np.cumsum(signs > 0)
        f = counts[1] + np.cumsum(signs < 0)
        counts[0], counts[1] = (int(s[-1]), int(f[-1])) if signs.size else tuple(counts)
        if not signs.size:
            return -math.inf
        return float(np.max(log_mixture_martingale(s, f, self.prior_strength)))

    def update(
        self, baseline: Sequence[float] | FloatArray, canary: Sequence[float] | FloatArray
    ) -> SequentialCanaryResult:
        """Add the values that arrived since the last look and judge again."""
        self.look += 1
        x, y, dropped = self._pairs(baseline, canary)
        diff = y - x
        self.n_pairs += diff.size
        self.n_higher += int((diff > 0).sum())
        self.n_lower += int((diff < 0).sum())
        log_high = self._advance(self._high, np.sign(diff - self.tolerance_upper))
        log_low = self._advance(self._low, -np.sign(diff + self.tolerance_lower))
        self._max_log_high = max(self._max_log_high, log_high)
        self._max_log_low = max(self._max_log_low, log_low)
        p_high = min(1.0, math.exp(-self._max_log_high))
        p_low = min(1.0, math.exp(-self._max_log_low))
        if p_high <= self.alpha_high:
            self._fired.setdefault("high", self.look)
        if p_low <= self.alpha_low:
            self._fired.setdefault("low", self.look)
        return self._result(p_high, p_low, dropped)

    def _result(self, p_high: float, p_low: float, dropped: int) -> SequentialCanaryResult:
        decided = self.n_higher + self.n_lower
        direction = self.spec.direction
        bad = {"high": direction != "decrease", "low": direction != "increase"}
        # A harmful alarm is final (the canary stops); a harmless one (a faster canary on an
        # increase-is-bad metric) is reported but never hides a later harmful one.
        harmful = sorted((look, side) for side, look in self._fired.items() if bad[side])
        harmless = sorted((look, side) for side, look in self._fired.items() if not bad[side])
        fired = harmful or harmless
        classification: Classification = fired[0][1] if fired else "pass"
        passed: bool | None = not harmful
        stopped_at = harmful[0][0] if harmful else None
        reason = None
        warnings = [f"dropped {dropped} NaN/inf values at this look"] if dropped else []
        if self.n_pairs == 0:
            classification, passed = "nodata", None
            reason = "no canary/baseline pairs yet"
        elif decided == 0:
            warnings.append(f"all {self.n_pairs} pairs are tied; no difference seen so far")
        return SequentialCanaryResult(
            metric=self.spec.name,
            direction=direction,
            alpha=self.alpha,
            look=self.look,
            n_pairs=self.n_pairs,
            n_higher=self.n_higher,
            n_lower=self.n_lower,
            classification=classification,
            passed=passed,
            estimate=self.n_higher / decided if decided else None,
            p_value_high=p_high,
            p_value_low=p_low,
            alpha_high=self.alpha_high,
            alpha_low=self.alpha_low,
            tolerance_lower=-self.tolerance_lower,
            tolerance_upper=self.tolerance_upper,
            stopped_at_look=stopped_at,
            reason=reason,
            warnings=tuple(warnings),
        )
