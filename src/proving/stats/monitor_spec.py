"""What a sequential monitor watches (:class:`MonitorSpec`) and what one look gives back
(:class:`MonitorLook`).

The spec fixes the metric, the method (``confidence_sequence``, ``msprt`` or
``group_sequential``), the effect scale, the error rate over all looks, the metric's
direction, the planned maximum sample and the minimum per arm before any decision, and
validates them all up front, with messages that name the field and the fix. A look is a
frozen, JSON-ready record: estimate, always-valid interval (and its running
intersection), p-value, statistic against threshold, information fraction and alpha
spent, the optional Bayesian summary, and the decision with its reason.
:class:`proving.stats.monitor.SequentialMonitor` runs the looks.

Example:
    >>> spec = MonitorSpec(metric="revenue", method="group_sequential", max_n=20000)
    >>> MonitorSpec.from_dict(spec.to_dict()) == spec
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

from proving.errors import StatsInputError
from proving.stats.effects import validate_options
from proving.stats.priors import NormalPrior
from proving.stats.results import Alternative, Effect, Kind, RelativeMethod, ResultBase
from proving.stats.sequential import DEFAULT_TUNING_N, tuning_rho_squared
from proving.stats.spending import SPENDING_FUNCTIONS

__all__ = ["STOPS", "Decision", "MonitorLook", "MonitorMethod", "MonitorSpec"]

Decision = Literal[
    "need_more_data", "continue", "stop_for_effect", "stop_for_harm", "stop_inconclusive"
]
MonitorMethod = Literal["confidence_sequence", "msprt", "group_sequential"]
STOPS = ("stop_for_effect", "stop_for_harm", "stop_inconclusive")


def _fail(field_name: str, rule: str, value: object, fix: str) -> StatsInputError:
    return StatsInputError(f"monitor `{field_name}` {rule}; got {value!r}. {fix}")


@dataclass(frozen=True)
class MonitorSpec(ResultBase):
    """What a :class:`SequentialMonitor` watches and how it decides.

    Attributes:
        metric: metric name (for reasons and reports).
        method: ``confidence_sequence``, ``msprt`` or ``group_sequential``.
        kind: ``mean``, ``proportion`` or ``ratio`` (how ``update`` reads ArmStats).
        effect: ``absolute`` or ``relative``.
        relative_method: ``delta`` or ``log`` for relative effects.
        alternative: ``two-sided`` watches both directions; ``greater``/``less`` only the
            treatment being above/below control (e.g. ``less`` on a higher-is-better
            guardrail watches for harm only).
        alpha: error allowed over all looks together.
        higher_is_better: direction of the metric: which crossing is effect, which harm.
        tuning_n: N* of the confidence sequence (total units where it is tightest).
        mixture_variance: fixed tau^2 of the mixture instead of N* tuning.
        max_n: planned total units (both arms); required for ``group_sequential``; for the
            other methods, reaching it without a crossing stops as inconclusive.
        spending: spending function of ``group_sequential``.
        spending_parameter: its gamma/rho where it has one.
        min_n: units per arm before any decision (the asymptotic methods need the central
            limit theorem to have set in; 100 by default).
        cuped: use covariates in the statistics for CUPED when present.
        prior: report the normal-normal posterior (:mod:`proving.stats.bayesian`) beside
            each look: posterior mean, chance to win, expected loss of shipping. It does
            not change the decision (see docs/stats/bayesian.md on peeking).
    """

    metric: str = "metric"
    method: MonitorMethod = "confidence_sequence"
    kind: Kind = "mean"
    effect: Effect = "relative"
    relative_method: RelativeMethod = "delta"
    alternative: Alternative = "two-sided"
    alpha: float = 0.05
    higher_is_better: bool = True
    tuning_n: float = DEFAULT_TUNING_N
    mixture_variance: float | None = None
    max_n: float | None = None
    spending: str = "obrien_fleming"
    spending_parameter: float | None = None
    min_n: float = 100.0
    cuped: bool = True
    prior: NormalPrior | None = None

    def __post_init__(self) -> None:
        validate_options(
            alpha=self.alpha,
            effect=self.effect,
            relative_method=self.relative_method,
            alternative=self.alternative,
        )
        if self.method not in get_args(MonitorMethod):
            raise _fail(
                "method",
                f"must be one of {', '.join(get_args(MonitorMethod))}",
                self.method,
                "Use 'confidence_sequence' to watch continuously.",
            )
        if self.kind not in get_args(Kind):
            raise _fail("kind", f"must be one of {', '.join(get_args(Kind))}", self.kind, "")
        if self.spending not in SPENDING_FUNCTIONS:
            raise _fail(
                "spending", f"must be one of {', '.join(SPENDING_FUNCTIONS)}", self.spending, ""
            )
        if self.max_n is not None and not (math.isfinite(self.max_n) and self.max_n > 0):
            raise _fail(
                "max_n", "must be a positive number", self.max_n, "Give the planned total units."
            )
        if self.method == "group_sequential" and self.max_n is None:
            raise _fail(
                "max_n",
                "is required by method 'group_sequential' (information fractions are n / max_n)",
                None,
                "Give the planned total units of both arms, e.g. max_n=20000 (CLI: --max-n 20000).",
            )
        tuning_rho_squared(self.alpha, self.tuning_n)  # validates tuning_n
        if self.mixture_variance is not None and not (
            math.isfinite(self.mixture_variance) and self.mixture_variance > 0
        ):
            raise _fail(
                "mixture_variance",
                "must be a positive number (tau^2, the variance of plausible effects)",
                self.mixture_variance,
                "Omit it to tune the mixture by `tuning_n`.",
            )
        if not (math.isfinite(self.min_n) and self.min_n >= 2):
            raise _fail("min_n", "must be a number >= 2", self.min_n, "Use e.g. 100.")
        if self.prior is not None and self.effect == "relative" and self.relative_method == "log":
            raise _fail(
                "prior",
                "needs relative_method 'delta' (the prior is on the lift)",
                "relative_method='log'",
                "Use relative_method='delta' or drop the prior.",
            )


@dataclass(frozen=True)
class MonitorLook(ResultBase):
    """One look: the estimate, the always-valid interval and the decision with its reason.

    ``ci_lower``/``ci_upper`` are this look's always-valid interval (repeated confidence
    interval for group-sequential); ``running_ci_*`` their intersection over looks.
    ``statistic`` is ``estimate / std_err`` (on the log scale for ``relative_method='log'``)
    and ``threshold`` the critical value it is compared with at this look.
    """

    look: int
    decision: Decision
    reason: str
    metric: str
    method: str
    n_control: float
    n_treatment: float
    estimate: float | None = None
    std_err: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    running_ci_lower: float | None = None
    running_ci_upper: float | None = None
    p_value: float | None = None
    statistic: float | None = None
    threshold: float | None = None
    information_fraction: float | None = None
    alpha_spent: float | None = None
    posterior_mean: float | None = None
    chance_to_win: float | None = None
    expected_loss_treatment: float | None = None
    cuped: bool = False
    warnings: tuple[str, ...] = field(default=())
