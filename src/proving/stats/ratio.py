"""Per-arm estimates from sufficient statistics: means, proportions and ratio metrics.

A ratio metric (clicks per session, revenue per order) is ``R = sum(y) / sum(d)`` over the
units of an arm, where each unit (user) contributes a numerator ``y_i`` and a denominator
``d_i``. Units are the randomization unit, so ``y_i`` and ``d_i`` are correlated and the
sessions are not independent: the variance of ``R`` comes from the delta method on the
pair of unit means (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric
Analytics", KDD, eq. 3; Kohavi, Tang & Xu 2020, ch. 18):

    Var(R) = (S_yy - 2 R S_yd + R^2 S_dd) / (n (n - 1) dbar^2)

with ``S`` the centered sums of squares and products. Equivalently ``R`` behaves like the
mean of the linearized unit values ``z_i = (y_i - R d_i) / dbar`` (the first-order Taylor
expansion of ``ybar / dbar`` around the arm means), which is how CUPED adjusts a ratio: it
regresses ``z`` on the covariates (:mod:`proving.stats.cuped`).

Public API:

- :func:`ratio_moments` ``(n, sum, sum_squares, denominator_sum, denominator_sum_squares,
  sum_products) -> (ratio, var_of_ratio)``, vectorized.
- :func:`linearize` ``(n, sums, cross, *, ratio, ddof=1) -> LinearizedArms``: for stacked
  moments (see :func:`proving.stats.sufficient.stack`) of any kind, each arm's estimate and
  the covariance matrix of the per-unit vector ``(z, x_1, ..., x_k)``; the variance of the
  estimate is ``cov[:, 0, 0] / n``.

Example:
    >>> from proving.stats.sufficient import ArmStats
    >>> a = ArmStats.from_values([2.0, 3.0, 7.0], denominators=[1.0, 2.0, 3.0])
    >>> r, v = ratio_moments(a.n, a.sum, a.sum_squares, a.denominator_sum,
    ...                      a.denominator_sum_squares, a.sum_products)
    >>> float(r)
    2.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from proving._types import ArrayLike, FloatArray

# Relative size below which a centered sum of squares is rounding noise (float64 eps * 1e4).
_ZERO_VARIANCE = 1e-12


@dataclass(frozen=True)
class LinearizedArms:
    """Per-arm estimates and the covariance of the linearized unit vector ``(z, x)``.

    Attributes:
        n: unit counts, shape ``(m,)``.
        estimate: mean, proportion or ratio of each arm, shape ``(m,)``.
        variance: variance of ``estimate`` (``cov[:, 0, 0] / n``), shape ``(m,)``.
        cov: covariance matrix of ``(z, x_1..x_k)`` per unit, shape ``(m, 1 + k, 1 + k)``.
        covariate_means: ``xbar`` per arm, shape ``(m, k)``.
        ddof: the covariance divisor is ``n - ddof``.
    """

    n: FloatArray
    estimate: FloatArray
    variance: FloatArray
    cov: FloatArray
    covariate_means: FloatArray
    ddof: int = 1


def ratio_moments(
    n: ArrayLike,
    sum: ArrayLike,
    sum_squares: ArrayLike,
    denominator_sum: ArrayLike,
    denominator_sum_squares: ArrayLike,
    sum_products: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """Ratio ``sum / denominator_sum`` and its delta-method variance (Deng et al. 2018)."""
    n_ = np.asarray(n, dtype=float)
    y, d = np.asarray(sum, dtype=float), np.asarray(denominator_sum, dtype=float)
    s_yy = np.asarray(sum_squares, dtype=float) - y * y / np.where(n_ == 0, np.nan, n_)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_dd = np.asarray(denominator_sum_squares, dtype=float) - d * d / n_
        s_yd = np.asarray(sum_products, dtype=float) - y * d / n_
        r = y / d
        dbar = d / n_
        s_zz = s_yy - 2 * r * s_yd + r * r * s_dd
        scale = np.abs(np.asarray(sum_squares, dtype=float)) + r * r * np.abs(
            np.asarray(denominator_sum_squares, dtype=float)
        )
        s_zz = np.where(s_zz <= _ZERO_VARIANCE * scale, 0.0, s_zz)
        var_z = s_zz / ((n_ - 1) * dbar**2)
        var = np.where(n_ >= 2, var_z / n_, np.nan)
    return r, var


def linearize(
    n: FloatArray, sums: FloatArray, cross: FloatArray, *, ratio: bool, ddof: int = 1
) -> LinearizedArms:
    """Linearize stacked arms to ``(z, x)`` with ``z = y`` (mean) or the ratio's gradient.

    Args:
        n: unit counts, shape ``(m,)``.
        sums: sums of the variables ``(y, [d], x_1..x_k)``, shape ``(m, p)``.
        cross: sums of products, shape ``(m, p, p)``.
        ratio: True when the second variable is a ratio metric's denominator.
        ddof: 1 for sample covariances; 0 for the Bernoulli ``p (1 - p)`` of a proportion.

    Returns:
        LinearizedArms; arms with ``n <= ddof`` or a zero denominator hold NaN (explained
        later as degenerate data).
    """
    n = np.asarray(n, dtype=float)
    sums = np.asarray(sums, dtype=float)
    cross = np.asarray(cross, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums / n[:, None]
        # Centered sums of products; divided by n - ddof gives the covariance matrix.
        centered = cross - sums[:, :, None] * means[:, None, :]
        cov_full = centered / np.where(n > ddof, n - ddof, np.nan)[:, None, None]
        o = 2 if ratio else 1
        if ratio:
            r = sums[:, 0] / sums[:, 1]
            dbar = means[:, 1]
            p = sums.shape[1]
            # Jacobian of (z, x) w.r.t. (y, d, x): z = (y - R d) / dbar (Deng et al. eq. 3).
            jac = np.zeros((n.shape[0], p - 1, p))
            jac[:, 0, 0] = 1.0 / dbar
            jac[:, 0, 1] = -r / dbar
            idx = np.arange(1, p - 1)
            jac[:, idx, idx + 1] = 1.0
            cov = jac @ cov_full @ np.swapaxes(jac, 1, 2)
            estimate = r
            # Magnitude of the uncentered terms the variance is computed from.
            scale = (cross[:, 0, 0] + r * r * cross[:, 1, 1]) / dbar**2
        else:
            cov = cov_full
            estimate = means[:, 0]
            scale = cross[:, 0, 0]
        # Cancellation leaves ~1e-16 * scale of noise where the true variance is 0; call that
        # 0 so that constant data is reported as "zero variance", not as a huge t statistic.
        zero = cov[:, 0, 0] * (n - ddof) <= _ZERO_VARIANCE * np.abs(scale)
        # A constant z also has exactly zero covariance with every covariate.
        cov[:, 0, :] = np.where(zero[:, None], 0.0, cov[:, 0, :])
        cov[:, :, 0] = np.where(zero[:, None], 0.0, cov[:, :, 0])
        variance = cov[:, 0, 0] / n
    return LinearizedArms(
        n=n,
        estimate=estimate,
        variance=variance,
        cov=cov,
        covariate_means=means[:, o:],
        ddof=ddof,
    )
