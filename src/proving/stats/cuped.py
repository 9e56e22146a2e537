"""CUPED: variance reduction with pre-exposure covariates, pooled across arms, vectorized.

CUPED (Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of Online Controlled
Experiments by Utilizing Pre-Experiment Data", WSDM) replaces each arm's mean ``Ybar_a``
by ``Ybar_a - (Xbar_a - Xbar) beta``, where ``X`` are covariates fixed before exposure
(so ``E[Xbar_a] = E[Xbar]`` in every arm and the adjustment removes no signal). With
several covariates ``beta = Sigma_xx^-1 Sigma_xy`` (the multivariate form in Etsy's
write-up, "Increasing experimentation accuracy and speed by using control variates", and
Deng et al. sec. 3.3), and the treatment effect is

    (Ybar_t - Ybar_c) - (Xbar_t - Xbar_c) beta.

``beta`` is pooled: ``Sigma_xx`` and ``Sigma_xy`` are the within-arm covariances summed over
every arm of the experiment (one metric, one segment). That makes the point estimate
identical to the treatment coefficient of the OLS regression ``y ~ C(variant) + x``
(Lin 2013, "Agnostic notes on regression adjustments to experimental data", sec. 2: the
coefficient on ``x`` in that regression is the pooled within-group slope).

Each adjusted arm mean has variance ``Var(y - x beta) / n_a`` with the arm's own
covariances, ``(s_yy - 2 beta' s_xy + beta' S_xx beta) / n_a``; treating ``beta`` as known
is the standard CUPED approximation (its estimation error is O(1/n) relative).

Ratio metrics regress the linearized ratio ``z = (y - R d) / dbar`` (see
:mod:`proving.stats.ratio`) on ``x``: the same formulas with ``y`` replaced by ``z``.

Any pre-exposure column works as a covariate: last month's value of the metric, a
has-pre-period indicator, or a model's prediction of the outcome made before exposure
(CUPAC, DoorDash 2020). **Units without pre-period data**: set their covariate to 0 and add
an indicator covariate that is 1 when the unit has pre-period data; with both in ``x`` the
regression fits a separate intercept for new units, so they keep contributing to the
estimate without biasing ``beta`` (dropping them loses their data; imputing 0 without the
indicator mixes two populations into one slope).

Singular covariate matrices degrade gracefully: a covariate with no variance, or one that
is a linear combination of earlier ones, is dropped for that experiment (coefficient 0) with
a warning naming it.

Public API:

- :func:`cuped_adjust` ``(arms: LinearizedArms, group, *, names=()) -> CupedArrays``.

Example:
    >>> import numpy as np
    >>> from proving.stats.sufficient import ArmStats, stack
    >>> from proving.stats.ratio import linearize
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2, 500)); y = x + rng.normal(size=(2, 500))
    >>> arms = [ArmStats.from_values(y[i], covariates={"pre": x[i]}) for i in range(2)]
    >>> adjusted = cuped_adjust(linearize(*stack(arms), ratio=False), np.array([0, 0]))
    >>> bool(adjusted.variance[0] < arms[0].sum_squares / 500 / 500)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from proving._types import BoolArray, FloatArray, IntArray, ObjectArray
from proving.stats.ratio import LinearizedArms

# A covariate whose centered sum of squares is below this share of its uncentered scale is
# constant up to rounding.
_CONSTANT = 1e-12
# A covariate whose squared multiple correlation with the kept ones exceeds 1 - _COLLINEAR
# adds nothing but rounding noise.
_COLLINEAR = 1e-8


@dataclass(frozen=True)
class CupedArrays:
    """CUPED-adjusted arms (per arm) and the pooled coefficients (per group).

    Attributes:
        estimate: adjusted arm estimate ``est_a - (xbar_a - xbar_g) beta_g``, shape ``(m,)``.
        variance: variance of the adjusted estimate, shape ``(m,)``.
        beta: pooled coefficients per group, shape ``(g, k)`` (0 for dropped covariates).
        kept: which covariates were used per group, shape ``(g, k)``.
        adjusted: True for groups where at least one covariate was used, shape ``(g,)``.
        warnings: per group, a tuple of messages (dropped covariates), shape ``(g,)``.
    """

    estimate: FloatArray
    variance: FloatArray
    beta: FloatArray
    kept: BoolArray
    adjusted: BoolArray
    warnings: ObjectArray


def _drop_collinear(corr: FloatArray, keep: BoolArray) -> tuple[BoolArray, list[int]]:
    """Greedy in column order: keep a covariate if it is not explained by the kept ones."""
    kept: list[int] = []
    dropped: list[int] = []
    for j in range(corr.shape[0]):
        if not keep[j]:
            continue
        if kept:
            c_kk = corr[np.ix_(kept, kept)]
            c_kj = corr[kept, j]
            residual = corr[j, j] - c_kj @ np.linalg.solve(c_kk, c_kj)
        else:
            residual = corr[j, j]
        if residual > _COLLINEAR:
            kept.append(j)
        else:
            dropped.append(j)
    out = np.zeros_like(keep)
    out[kept] = True
    return out, dropped


def _pool(
    arms: LinearizedArms, group: IntArray, g: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Sum within-arm centered cross products and the covariate totals per group."""
    k = arms.covariate_means.shape[1]
    valid = (
        (arms.n > max(arms.ddof, 1))
        & np.isfinite(arms.estimate)
        & np.isfinite(arms.cov).all(axis=(1, 2))
        & np.isfinite(arms.covariate_means).all(axis=1)
    )
    centered = arms.cov * (arms.n - arms.ddof)[:, None, None]
    pooled = np.zeros((g, k + 1, k + 1))
    np.add.at(pooled, group[valid], centered[valid])
    n_total = np.zeros(g)
    np.add.at(n_total, group[valid], arms.n[valid])
    x_total = np.zeros((g, k))
    np.add.at(x_total, group[valid], (arms.covariate_means * arms.n[:, None])[valid])
    with np.errstate(divide="ignore", invalid="ignore"):
        x_grand = x_total / n_total[:, None]
    return pooled, x_grand, n_total


def _usable_covariates(
    s_xx: FloatArray, x_grand: FloatArray, n_total: FloatArray, labels: Sequence[str]
) -> tuple[BoolArray, list[tuple[str, ...]]]:
    """Per group, the covariates with variance that are not collinear, and why others
    were dropped."""
    g, k = x_grand.shape
    diag = np.diagonal(s_xx, axis1=1, axis2=2)
    scale = diag + n_total[:, None] * x_grand**2
    keep = np.isfinite(scale) & (diag > _CONSTANT * scale)
    warnings: list[tuple[str, ...]] = [() for _ in range(g)]
    for gi, j in zip(*np.nonzero(~keep & (n_total > 0)[:, None]), strict=True):
        warnings[gi] += (f"covariate '{labels[j]}' has no variance; CUPED ignores it",)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(np.where(keep, diag, 1.0))
        corr = s_xx / (sd[:, :, None] * sd[:, None, :])
    both = keep[:, :, None] & keep[:, None, :]
    corr = np.where(both, corr, np.where(np.eye(k, dtype=bool)[None], 1.0, 0.0))
    if k > 1 and g:
        # Only groups whose kept covariates are (nearly) collinear need the per-group loop.
        suspect = np.linalg.eigvalsh(corr)[:, 0] < _COLLINEAR
        for gi in np.nonzero(suspect)[0]:
            keep[gi], dropped = _drop_collinear(corr[gi], keep[gi])
            for j in dropped:
                warnings[gi] += (
                    f"covariate '{labels[j]}' is collinear with the other covariates; "
                    "CUPED dropped it",
                )
    return keep, warnings


def cuped_adjust(
    arms: LinearizedArms, group: IntArray | Sequence[int], *, names: Sequence[str] = ()
) -> CupedArrays:
    """Adjust every arm with a coefficient pooled over the arms of its group.

    Args:
        arms: linearized arms (:func:`proving.stats.ratio.linearize`) with ``k >= 1``
            covariates.
        group: group index per arm (0..g-1); arms of one experiment, metric and segment
            share a group and hence ``beta``.
        names: covariate names, for the warnings.

    Returns:
        CupedArrays. Arms with degenerate statistics are left out of the pooling and come
        back NaN-free only if their own statistics are finite.
    """
    grp = np.asarray(group, dtype=np.intp)
    g = int(grp.max()) + 1 if grp.size else 0
    k = arms.covariate_means.shape[1]
    labels = list(names) if len(names) == k else [f"covariate_{i + 1}" for i in range(k)]
    pooled, x_grand, n_total = _pool(arms, grp, g)
    s_xx, s_xz = pooled[:, 1:, 1:], pooled[:, 1:, 0]
    keep, warnings = _usable_covariates(s_xx, x_grand, n_total, labels)
    eye = np.eye(k, dtype=bool)[None]
    both = keep[:, :, None] & keep[:, None, :]
    a = np.where(both, s_xx, np.where(eye, 1.0, 0.0))
    b = np.where(keep, s_xz, 0.0)
    beta = np.linalg.solve(a, b[:, :, None])[:, :, 0] if g else np.zeros((0, k))
    beta_a = beta[grp]
    with np.errstate(invalid="ignore"):
        shift = np.einsum("mk,mk->m", arms.covariate_means - x_grand[grp], beta_a)
        cov_zz, cov_xz, cov_xx = arms.cov[:, 0, 0], arms.cov[:, 1:, 0], arms.cov[:, 1:, 1:]
        var_unit = (
            cov_zz
            - 2 * np.einsum("mk,mk->m", beta_a, cov_xz)
            + np.einsum("mk,mkl,ml->m", beta_a, cov_xx, beta_a)
        )
    # Rounding can leave a tiny remainder where the residual variance is 0 (a constant
    # metric, s_zz = 0, or a perfect fit); that is no uncertainty, not a small one. (No cap
    # at s_zz: with the pooled beta an arm's residual variance can exceed its own s_zz.)
    var_unit = np.where(var_unit <= _CONSTANT * cov_zz, 0.0, var_unit)
    warn = np.fromiter(warnings, dtype=object, count=g)
    return CupedArrays(
        estimate=arms.estimate - shift,
        variance=var_unit / arms.n,
        beta=beta,
        kept=keep,
        adjusted=np.asarray(keep.any(axis=1), dtype=bool),
        warnings=warn,
    )
