"""A sequential monitor: cumulative statistics in, look after look; a decision out each time.

:class:`SequentialMonitor` watches one metric of one treatment against control. Feed it
the *cumulative* sufficient statistics of both arms at every look (``update``), or an
effect estimate and its standard error from any estimator (``observe``); at each look it
answers

* ``need_more_data``: an arm is below ``min_n`` units, or the data are degenerate (the
  reason says which); nothing is spent, no look is counted;
* ``continue``: no boundary crossed;
* ``stop_for_effect`` / ``stop_for_harm``: a boundary crossed, in the good or the bad
  direction of the metric (``higher_is_better``);
* ``stop_inconclusive``: the planned maximum sample (``max_n``) is reached with no crossing.

Once stopped the decision sticks; later looks are still recorded (for plots) with the same
decision. Every look carries the reason: metric, method, statistic, threshold and n.

Methods:

* ``confidence_sequence``: the normal-mixture always-valid interval
  (:mod:`proving.stats.sequential`); stop when it excludes 0. The monitor keeps the running
  intersection of the intervals (still valid: every interval covers at all times at once).
* ``msprt``: the same mixture as a test: stop when the running minimum of the always-valid
  p-value ``min(1, 1/Lambda)`` is <= alpha (Johari et al. 2022). Dual to the confidence
  sequence, so both stop at the same look; they differ in what they report.
* ``group_sequential``: Lan-DeMets alpha spending (:mod:`proving.stats.group_sequential`)
  at information fraction ``(n_control + n_treatment) / max_n``; boundaries are recomputed
  with the fractions actually observed, so looks need not be planned. The interval is the
  repeated confidence interval ``estimate +- b_k se`` (Jennison & Turnbull 2000, ch. 9);
  the p-value, reported at the stopping look only, is the stage-wise ordering p-value
  (ch. 8.4).

Example:
    >>> from proving.stats.sufficient import ArmStats
    >>> m = SequentialMonitor(MonitorSpec(metric="revenue", effect="absolute", min_n=2))
    >>> m.update(ArmStats(n=0, sum=0, sum_squares=0), ArmStats(n=0, sum=0, sum_squares=0)).decision
    'need_more_data'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from proving.errors import StatsInputError
from proving.stats.bayesian import bayesian_compare
from proving.stats.cuped import cuped_adjust
from proving.stats.effects import compare
from proving.stats.group_sequential import SpendingBoundaries, stagewise_p_value
from proving.stats.monitor_spec import STOPS, Decision, MonitorLook, MonitorMethod, MonitorSpec
from proving.stats.ratio import linearize
from proving.stats.results import finite_or_none
from proving.stats.sequential import (
    SequentialArrays,
    always_valid_compare,
    confidence_sequence_halfwidth,
)
from proving.stats.sufficient import ArmStats, stack

# The spec and look types live in monitor_spec; they stay importable from here.
__all__ = [
    "STOPS",
    "Decision",
    "MonitorLook",
    "MonitorMethod",
    "MonitorSpec",
    "SequentialMonitor",
    "pair_estimates",
]


def pair_estimates(
    control: ArmStats, treatment: ArmStats, kind: str, use_cuped: bool
) -> tuple[np.ndarray, np.ndarray, bool, tuple[str, ...]]:
    """Per-arm estimates and their variances (control, treatment), CUPED when possible."""
    ratio = control.is_ratio
    with np.errstate(all="ignore"):
        lin = linearize(
            *stack([control, treatment]), ratio=ratio, ddof=0 if kind == "proportion" else 1
        )
        if use_cuped and control.covariate_names:
            cup = cuped_adjust(lin, [0, 0], names=control.covariate_names)
            if bool(cup.adjusted[0]):
                return cup.estimate, cup.variance, True, tuple(cup.warnings[0])
            return lin.estimate, lin.variance, False, tuple(cup.warnings[0])
    return lin.estimate, lin.variance, False, ()


class SequentialMonitor:
    """Decide at every look whether to continue, stop for effect or stop for harm.

    Args:
        spec: a :class:`MonitorSpec`; keyword arguments build one instead.

    Example:
        >>> import numpy as np
        >>> from proving.stats.sufficient import ArmStats
        >>> rng = np.random.default_rng(0)
        >>> m = SequentialMonitor(metric="latency", effect="absolute", higher_is_better=False)
        >>> c = t = ArmStats(n=0, sum=0.0, sum_squares=0.0)
        >>> for _ in range(20):
        ...     c = c + ArmStats.from_values(rng.normal(100, 10, 500))
        ...     t = t + ArmStats.from_values(rng.normal(103, 10, 500))
        ...     look = m.update(c, t)
        >>> m.decision, m.stopped_at.look <= 5
        ('stop_for_harm', True)
    """

    def __init__(self, spec: MonitorSpec | None = None, **kwargs: Any) -> None:
        if spec is not None and kwargs:
            raise StatsInputError("give either a MonitorSpec or keyword arguments, not both.")
        self.spec = spec if spec is not None else MonitorSpec(**kwargs)
        self.history: list[MonitorLook] = []
        self._plan: SpendingBoundaries | None = None  # cache; rebuilt from history on reload
        self._stop: MonitorLook | None = None

    # -- state -----------------------------------------------------------------------------
    @property
    def decision(self) -> Decision:
        """The current decision (``need_more_data`` before any look)."""
        return self.history[-1].decision if self.history else "need_more_data"

    @property
    def stopped_at(self) -> MonitorLook | None:
        """The look that stopped the experiment, or None."""
        return self._stop

    def _fractions(self) -> list[float]:
        return [h.information_fraction for h in self.history if h.information_fraction is not None]

    def _spending_plan(self, fractions: list[float]) -> SpendingBoundaries:
        """The spending state through the looks so far (replayed once after a reload)."""
        plan = self._plan
        if plan is None or plan.fractions != fractions:
            s = self.spec
            plan = SpendingBoundaries(
                alpha=s.alpha,
                alternative=s.alternative,
                spending=s.spending,  # type: ignore[arg-type]  # checked by MonitorSpec
                parameter=s.spending_parameter,
            )
            for f in fractions:
                plan.add_look(f)
            self._plan = plan
        return plan

    def _last_answered(self) -> MonitorLook | None:
        for h in reversed(self.history):
            if h.estimate is not None:
                return h
        return None

    # -- feeding ---------------------------------------------------------------------------
    def update(self, control: ArmStats, treatment: ArmStats) -> MonitorLook:
        """Take the cumulative statistics of both arms at this look and decide.

        Args:
            control: cumulative control statistics (mean, proportion, ratio; covariates
                are used for CUPED when ``spec.cuped``).
            treatment: cumulative treatment statistics over the same variables.

        Returns:
            The :class:`MonitorLook` appended to :attr:`history`.
        """
        if control.variable_names != treatment.variable_names:
            raise StatsInputError(
                f"control and treatment statistics have different variables "
                f"({control.variable_names} vs {treatment.variable_names}); give the same "
                "metric with the same covariates for both arms."
            )
        if (self.spec.kind == "ratio") != control.is_ratio:
            raise StatsInputError(
                f"monitor kind is {self.spec.kind!r} but the statistics "
                f"{'have' if control.is_ratio else 'lack'} ratio denominator columns; set "
                "`kind` to match the metric."
            )
        est, var, used, warns = pair_estimates(control, treatment, self.spec.kind, self.spec.cuped)
        return self._decide(
            est, var, float(control.n), float(treatment.n), cuped=used, warnings=warns
        )

    def observe(
        self,
        control_estimate: float,
        control_variance: float,
        n_control: float,
        treatment_estimate: float,
        treatment_variance: float,
        n_treatment: float,
    ) -> MonitorLook:
        """Take per-arm estimates and the variances of those estimates (any estimator)."""
        est = np.array([control_estimate, treatment_estimate], dtype=float)
        var = np.array([control_variance, treatment_variance], dtype=float)
        return self._decide(est, var, float(n_control), float(n_treatment))

    # -- deciding --------------------------------------------------------------------------
    def _record(self, **kwargs: Any) -> MonitorLook:
        s = self.spec
        look = MonitorLook(look=len(self.history) + 1, metric=s.metric, method=s.method, **kwargs)
        stop = self.stopped_at
        if stop is not None:
            look = replace(
                look,
                decision=stop.decision,
                reason=f"stopped at look {stop.look}: {stop.reason}",
                information_fraction=None,
            )
        self.history.append(look)
        if self._stop is None and look.decision in STOPS:
            self._stop = look
        return look

    def _decide(
        self,
        est: np.ndarray,
        var: np.ndarray,
        n_c: float,
        n_t: float,
        *,
        cuped: bool = False,
        warnings: tuple[str, ...] = (),
    ) -> MonitorLook:
        s = self.spec
        base: dict[str, Any] = {"n_control": n_c, "n_treatment": n_t, "cuped": cuped}
        base["warnings"] = warnings
        if not (n_c >= s.min_n and n_t >= s.min_n):
            return self._record(
                decision="need_more_data",
                reason=(
                    f"metric {s.metric!r}: {n_c:g} control and {n_t:g} treatment units; each "
                    f"arm needs at least min_n = {s.min_n:g} before a decision"
                ),
                **base,
            )
        z = compare(
            est[0], var[0], n_c, est[1], var[1], n_t, effect=s.effect,
            relative_method=s.relative_method, method="z", alternative=s.alternative,
            alpha=s.alpha,
        )  # fmt: skip
        if z.reason[0] is not None:
            return self._record(
                decision="need_more_data",
                reason=f"metric {s.metric!r}: no estimate yet: {z.reason[0]}",
                **base,
            )
        if s.prior is not None:
            post = bayesian_compare(
                est[0], var[0], n_c, est[1], var[1], n_t, effect=s.effect, prior=s.prior,
                alpha=s.alpha, higher_is_better=s.higher_is_better,
            )  # fmt: skip
            base["posterior_mean"] = finite_or_none(post.posterior_mean[0])
            base["chance_to_win"] = finite_or_none(post.chance_to_win[0])
            base["expected_loss_treatment"] = finite_or_none(post.expected_loss_treatment[0])
        if s.method == "group_sequential":
            return self._group_sequential(z.estimate[0], z.std_err[0], z.statistic[0], base)
        return self._always_valid(est, var, n_c, n_t, float(z.statistic[0]), base)

    def _direction(self, positive: bool) -> Decision:
        return "stop_for_effect" if positive == self.spec.higher_is_better else "stop_for_harm"

    def _always_valid(
        self,
        est: np.ndarray,
        var: np.ndarray,
        n_c: float,
        n_t: float,
        statistic: float,
        base: dict[str, Any],
    ) -> MonitorLook:
        s = self.spec
        av = always_valid_compare(
            est[0], var[0], n_c, est[1], var[1], n_t, effect=s.effect,
            relative_method=s.relative_method, alternative=s.alternative, alpha=s.alpha,
            tuning_n=s.tuning_n, mixture_variance=s.mixture_variance,
        )  # fmt: skip
        lo, hi, p = float(av.ci_lower[0]), float(av.ci_upper[0]), float(av.p_value[0])
        prev = self._last_answered()
        if prev is not None:
            lo = max(lo, -math.inf if prev.running_ci_lower is None else prev.running_ci_lower)
            hi = min(hi, math.inf if prev.running_ci_upper is None else prev.running_ci_upper)
            p = min(p, 1.0 if prev.p_value is None else prev.p_value)
        crit = _critical_z(self.spec, float(av.estimate[0]), float(av.std_err[0]), av)
        d, n = float(av.estimate[0]), n_c + n_t
        fields = {
            **base,
            "estimate": d,
            "std_err": float(av.std_err[0]),
            "ci_lower": finite_or_none(av.ci_lower[0]),
            "ci_upper": finite_or_none(av.ci_upper[0]),
            "running_ci_lower": finite_or_none(lo),
            "running_ci_upper": finite_or_none(hi),
            "p_value": p,
            "statistic": statistic,
            "threshold": crit,
        }
        if lo > hi:
            fields["warnings"] = (
                *base["warnings"],
                "the running intersection of the intervals is empty: the variance estimate "
                "moved between looks more than sampling explains; check for a data change",
            )
        crossed = p <= s.alpha
        if s.method == "confidence_sequence":
            crossed = lo > 0 or hi < 0
        what = _always_valid_what(s, lo, hi, p, crossed)
        text = (
            f"metric {s.metric!r}, {s.effect} effect {d:.6g}: {what}; |z| = {abs(statistic):.3f} "
            f"vs always-valid critical value {crit:.3f}; n = {n_c:g} control + {n_t:g} treatment"
        )
        if crossed:
            decision = self._direction(lo > 0 if s.method == "confidence_sequence" else d > 0)
        elif s.max_n is not None and n >= s.max_n:
            decision = "stop_inconclusive"
            text += f"; the planned maximum max_n = {s.max_n:g} is reached"
        else:
            decision = "continue"
        return self._record(decision=decision, reason=text, **fields)

    def _group_sequential(
        self, estimate: float, std_err: float, z: float, base: dict[str, Any]
    ) -> MonitorLook:
        s = self.spec
        assert s.max_n is not None  # checked by MonitorSpec
        n = base["n_control"] + base["n_treatment"]
        fractions = self._fractions()
        t = min(n / s.max_n, 1.0)
        final = n >= s.max_n
        if fractions and (t <= fractions[-1] or fractions[-1] >= 1.0):
            return self._record(
                decision="continue",
                reason=(
                    f"metric {s.metric!r}: no new information since the last look "
                    f"(fraction {t:.4g}); no alpha spent"
                ),
                estimate=estimate,
                std_err=std_err,
                statistic=z,
                **base,
            )
        plan = self._spending_plan(fractions)
        bound = plan.add_look(t, final=final)
        upper = bound if s.alternative != "less" else math.inf
        lower = -bound if s.alternative != "greater" else -math.inf
        crossed_up, crossed_down = z >= upper, z <= lower
        # Repeated confidence interval: centre -+ boundary * se on the tested scale.
        if s.effect == "relative" and s.relative_method == "log":
            centre, se = math.log1p(estimate), std_err / (1.0 + estimate)
            ci = (math.expm1(centre - upper * se), math.expm1(centre - lower * se))
        else:
            ci = (estimate - upper * std_err, estimate - lower * std_err)
        text = (
            f"metric {s.metric!r}, {s.effect} effect {estimate:.6g}: z = {z:.3f} vs "
            f"group-sequential boundary {bound:.3f} ({s.spending} spending) at information "
            f"fraction {t:.4g}, alpha spent {plan.cumulative_alpha:.4g} of {s.alpha:g}; "
            f"n = {base['n_control']:g} control + {base['n_treatment']:g} treatment"
        )
        if crossed_up or crossed_down:
            decision = self._direction(crossed_up)
        elif final:
            decision, text = "stop_inconclusive", text + "; final planned look, no crossing"
        else:
            decision = "continue"
        return self._record(
            decision=decision,
            reason=text,
            estimate=estimate,
            std_err=std_err,
            ci_lower=finite_or_none(ci[0]),
            ci_upper=finite_or_none(ci[1]),
            # The stage-wise p-value means something only where the experiment stops.
            p_value=stagewise_p_value(plan.design(), z) if decision in STOPS else None,
            statistic=z,
            threshold=bound,
            information_fraction=t,
            alpha_spent=plan.cumulative_alpha,
            **base,
        )

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: the spec and every look."""
        return {"spec": self.spec.to_dict(), "history": [h.to_dict() for h in self.history]}

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SequentialMonitor:
        """Rebuild a monitor (spec and history) from :meth:`to_dict` output."""
        if not isinstance(data, Mapping) or "spec" not in data:
            raise StatsInputError(
                "a saved monitor must be an object with `spec` and `history`; got "
                f"{type(data).__name__}."
            )
        monitor = cls(MonitorSpec.from_dict(data["spec"]))
        history: Sequence[Mapping[str, Any]] = data.get("history") or ()
        monitor.history = [MonitorLook.from_dict(h) for h in history]
        monitor._stop = next((h for h in monitor.history if h.decision in STOPS), None)
        return monitor

    @classmethod
    def from_json(cls, text: str) -> SequentialMonitor:
        """Rebuild a monitor from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))


def _critical_z(spec: MonitorSpec, estimate: float, std_err: float, av: SequentialArrays) -> float:
    """The always-valid critical |z| at this look: half-width over standard error, which
    depends only on tau^2 / se^2 (on the log scale for log-ratio lifts)."""
    se = std_err
    if spec.effect == "relative" and spec.relative_method == "log":
        se = std_err / (1.0 + estimate)
    ratio = float(av.mixture_variance[0]) / se**2
    half = confidence_sequence_halfwidth(
        [1.0], [ratio], alpha=spec.alpha, alternative=spec.alternative
    )
    return float(half[0])


def _always_valid_what(spec: MonitorSpec, lo: float, hi: float, p: float, crossed: bool) -> str:
    """The clause of the reason that names the method, its statistic and threshold."""
    tuning = (
        f"tau^2 = {spec.mixture_variance:g}" if spec.mixture_variance else f"N* = {spec.tuning_n:g}"
    )
    if spec.method == "confidence_sequence":
        return (
            f"the always-valid {100 * (1 - spec.alpha):g}% confidence sequence (normal mixture, "
            f"{tuning}) [{lo:.6g}, {hi:.6g}] {'excludes' if crossed else 'includes'} 0"
        )
    return (
        f"the always-valid mSPRT p-value {p:.4g} {'<=' if crossed else '>'} alpha "
        f"{spec.alpha:g} (normal mixture, {tuning})"
    )
