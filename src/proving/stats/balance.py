"""Pre-period balance: were the arms alike before the experiment started?

Randomization makes every pre-exposure variable equal in expectation across arms. A
pre-period covariate (last month's revenue, an earlier model's score) that differs between
arms by more than chance points to a broken assignment (a hash reused from an earlier test,
a filter applied after assignment, carry-over from a previous experiment) and biases the
unadjusted effect. CUPED corrects the bias in expectation, but the cause should be found.

The check analyses each covariate as if it were the outcome (Kohavi, Tang & Xu 2020,
"Trustworthy Online Controlled Experiments", ch. 21, "A/A and pre-period checks"):

* per covariate and variant, Welch's t test of the difference of covariate means
  (:func:`proving.stats.effects.compare`, absolute effect), flagged when
  ``p < threshold`` (default 0.001, strict like the SRM check, because the check runs on
  every experiment);
* the standardized mean difference ``SMD = (xbar_t - xbar_c) / sqrt((s_t^2 + s_c^2) / 2)``
  (Austin 2009, Stat. Med. 28, eq. 1), a sample-size-free measure; ``|SMD| > 0.1`` earns a
  warning, the usual rule for a meaningful imbalance;
* per variant, a joint Wald test over all ``k`` covariates (Hotelling's two-sample
  statistic with unequal covariances, asymptotically chi-square with ``k`` df):
  ``T^2 = D' (S_t / n_t + S_c / n_c)^-1 D`` with ``D`` the vector of mean differences.

The covariates come from the sufficient statistics' covariate fields (``covariate_<i>_sum``
and ``covariate_<i>_sum_squares``), so the check needs no extra data.

Example:
    >>> import numpy as np
    >>> from proving.stats.sufficient import ArmStats
    >>> rng = np.random.default_rng(0)
    >>> arms = {v: ArmStats.from_values(rng.normal(size=1000),
    ...                                 covariates={"pre": rng.normal(size=1000)})
    ...         for v in ("control", "b")}
    >>> balance_check(arms).imbalanced
    False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats as sps

from proving.errors import StatsInputError
from proving.stats.effects import compare, mean_moments, validate_options
from proving.stats.results import Method, ResultBase
from proving.stats.sufficient import ArmStats
from proving.stats.table import TableSource, read_table

SMD_WARNING = 0.1


@dataclass(frozen=True)
class CovariateBalance(ResultBase):
    """One covariate in one variant against control.

    ``estimate`` is ``xbar_t - xbar_c`` with its interval, test and standard error;
    ``standardized_difference`` the SMD; ``imbalanced`` is ``p_value < threshold``.
    """

    covariate: str
    variant: str
    control_mean: float | None = None
    treatment_mean: float | None = None
    estimate: float | None = None
    std_err: float | None = None
    df: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    standardized_difference: float | None = None
    imbalanced: bool | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class JointBalance(ResultBase):
    """All covariates of one variant at once: the Wald (Hotelling) chi-square test."""

    variant: str
    statistic: float | None = None
    df: int | None = None
    p_value: float | None = None
    imbalanced: bool | None = None
    reason: str | None = None


@dataclass(frozen=True)
class BalanceResult(ResultBase):
    """The pre-period balance of one metric's arms (one experiment, one segment)."""

    metric: str
    control: str
    threshold: float
    covariates: tuple[CovariateBalance, ...] = ()
    joint: tuple[JointBalance, ...] = ()
    experiment: str = ""
    segment: str = "all"
    imbalanced: bool = False
    method: str = "Welch t per covariate; Wald chi-square over all covariates per variant"
    reason: str | None = None
    warnings: tuple[str, ...] = ()


def _covariate_moments(arm: ArmStats) -> tuple[float, np.ndarray, np.ndarray]:
    """n, covariate means and covariate covariance matrix (n - 1) of one arm."""
    n = float(arm.n)
    sums = np.asarray(arm.covariate_sums, dtype=float)
    cross = np.asarray(arm.covariate_cross_products, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums / n
        cov = (cross - n * np.outer(means, means)) / (n - 1)
    return n, means, cov


def _joint(variant: str, control: ArmStats, treatment: ArmStats, threshold: float) -> JointBalance:
    n_c, m_c, s_c = _covariate_moments(control)
    n_t, m_t, s_t = _covariate_moments(treatment)
    k = m_c.size
    if min(n_c, n_t) <= k or not np.all(np.isfinite(s_c)) or not np.all(np.isfinite(s_t)):
        return JointBalance(variant, reason=f"the joint test needs more than {k} units per arm")
    d = m_t - m_c
    v = s_t / n_t + s_c / n_c
    # Drop directions with no variance (a constant covariate) instead of inverting them.
    eigval, eigvec = np.linalg.eigh(v)
    keep = eigval > 1e-12 * max(float(eigval.max()), 0.0)
    if not keep.any():
        return JointBalance(variant, reason="the covariates have no variance")
    proj = eigvec[:, keep].T @ d
    stat = float(np.sum(proj**2 / eigval[keep]))
    df = int(keep.sum())
    p = float(sps.chi2.sf(stat, df))
    return JointBalance(variant, stat, df, p, p < threshold)


def _one_covariate(
    name: str,
    variant: str,
    moments: tuple[tuple[float, float, float], tuple[float, float, float]],
    out: Any,
    i: int,
    threshold: float,
) -> CovariateBalance:
    (_, mean_c, var_c), (_, mean_t, var_t) = moments
    if out.reason[i] is not None:
        return CovariateBalance(name, variant, reason=str(out.reason[i]))
    smd = (mean_t - mean_c) / math.sqrt((var_c + var_t) / 2) if var_c + var_t > 0 else None
    warnings: tuple[str, ...] = ()
    if smd is not None and abs(smd) > SMD_WARNING:
        warnings = (
            f"standardized difference {smd:+.3f} exceeds {SMD_WARNING} in absolute value: "
            "the arms differed before exposure",
        )
    p = float(out.p_value[i])
    return CovariateBalance(
        covariate=name,
        variant=variant,
        control_mean=mean_c,
        treatment_mean=mean_t,
        estimate=float(out.estimate[i]),
        std_err=float(out.std_err[i]),
        df=None if math.isinf(out.df[i]) else float(out.df[i]),
        statistic=float(out.statistic[i]),
        p_value=p,
        ci_lower=float(out.ci_lower[i]),
        ci_upper=float(out.ci_upper[i]),
        standardized_difference=smd,
        imbalanced=p < threshold,
        warnings=warnings,
    )


def balance_check(
    arms: Mapping[str, ArmStats],
    *,
    control: str = "control",
    threshold: float = 0.001,
    alpha: float = 0.05,
    method: Method = "welch",
    metric: str = "metric",
    experiment: str = "",
    segment: str = "all",
) -> BalanceResult:
    """Check every pre-period covariate of every variant against control.

    Args:
        arms: variant name -> sufficient statistics with covariates (one metric).
        control: the control's name in ``arms``.
        threshold: flag a covariate (or the joint test) when its p-value is below this.
        alpha: ``1 - confidence`` of the reported intervals of the differences.
        method: "welch" (t) or "z".
        metric: the metric name, for the result.
        experiment: the experiment name, for the result.
        segment: the segment name, for the result.

    Returns:
        A :class:`BalanceResult`; ``imbalanced`` is True when any covariate or joint test
        is flagged. Without covariates it has a ``reason`` and flags nothing.

    Raises:
        StatsInputError: no control arm, arms over different covariates, or a parameter
            out of range.
    """
    validate_options(alpha=alpha, method=method)
    if not (isinstance(threshold, int | float) and 0 < threshold < 1):
        raise StatsInputError(f"`threshold` must be in (0, 1); got {threshold!r}. Use 0.001.")
    if control not in arms:
        raise StatsInputError(
            f"no control arm named {control!r} among {sorted(arms)}; pass control=<name>."
        )
    c = arms[control]
    names = c.covariate_names
    base = BalanceResult(metric, control, threshold, experiment=experiment, segment=segment)
    for v, a in arms.items():
        if a.covariate_names != names:
            raise StatsInputError(
                f"variant {v!r} has covariates {list(a.covariate_names)} but the control has "
                f"{list(names)}; every arm needs the same pre-period covariates."
            )
    if not names:
        return replace(base, reason="the statistics have no pre-period covariates to check")
    treatments = [v for v in arms if v != control]
    if not treatments:
        return replace(base, reason="there is no variant besides the control")
    rows, moments = [], []
    for v in treatments:
        t = arms[v]
        for j, name in enumerate(names):
            pair = []
            for arm in (c, t):
                m, var_mean = mean_moments(
                    arm.n, arm.covariate_sums[j], arm.covariate_cross_products[j][j]
                )
                pair.append((float(arm.n), float(m), float(var_mean * arm.n)))
            rows.append((name, v))
            moments.append((pair[0], pair[1]))
    arr = np.array([[*p[0], *p[1]] for p in moments])  # n_c, mean_c, var_c, n_t, mean_t, var_t
    with np.errstate(divide="ignore", invalid="ignore"):
        out = compare(
            arr[:, 1], arr[:, 2] / arr[:, 0], arr[:, 0], arr[:, 4], arr[:, 5] / arr[:, 3],
            arr[:, 3], effect="absolute", method=method, alpha=alpha,
        )  # fmt: skip
    per = tuple(
        _one_covariate(name, v, moments[i], out, i, threshold) for i, (name, v) in enumerate(rows)
    )
    joint = tuple(_joint(v, c, arms[v], threshold) for v in treatments)
    flagged = any(r.imbalanced for r in per) or any(j.imbalanced for j in joint)
    warnings = tuple(w for r in per for w in r.warnings)
    return replace(base, covariates=per, joint=joint, imbalanced=flagged, warnings=warnings)


def balance_table(
    table: TableSource, *, control: str = "control", threshold: float = 0.001, alpha: float = 0.05
) -> list[BalanceResult]:
    """Run :func:`balance_check` for every (experiment, metric, segment) of a table.

    Metrics without covariates are skipped. ``table`` is anything
    :func:`proving.stats.table.read_table` reads (a CSV or JSON path, rows, a DataFrame).
    """
    groups: dict[tuple[str, str, str], dict[str, ArmStats]] = {}
    for row in read_table(table):
        key = (row.experiment, row.metric, row.segment)
        groups.setdefault(key, {})[row.variant] = row.stats
    return [
        balance_check(
            arms,
            control=control,
            threshold=threshold,
            alpha=alpha,
            metric=metric,
            experiment=exp,
            segment=seg,
        )
        for (exp, metric, seg), arms in groups.items()
        if next(iter(arms.values())).covariate_names
    ]
