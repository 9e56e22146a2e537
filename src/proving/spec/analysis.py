"""Analysis settings of an experiment: how its results are computed and judged.

``alpha`` is the two-sided false-positive rate (a one-sided ``alternative`` spends it on
one side). ``correction`` adjusts for several metrics or variants (Holm 1979;
Benjamini and Hochberg 1995). ``cuped`` turns on variance reduction with pre-period
covariates (Deng et al. 2013). ``sequential`` chooses an always-valid method for
continuous monitoring (mSPRT: Johari et al. 2017; group sequential: O'Brien and Fleming
1979). ``srm_alpha`` is the threshold of the sample-ratio-mismatch check (chi-square).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AnalysisSpec"]


class AnalysisSpec(BaseModel):
    """How an experiment is analysed.

    Example:
        >>> AnalysisSpec(alpha=0.01).alpha
        0.01
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.05, gt=0.0, le=0.5, description="False-positive rate.")
    power: float = Field(default=0.8, gt=0.0, lt=1.0, description="Target power for sizing.")
    effect: Literal["relative", "absolute"] = Field(
        default="relative", description="Report lifts relative to control or as differences."
    )
    alternative: Literal["two-sided", "greater", "less"] = "two-sided"
    correction: Literal["none", "bonferroni", "holm", "benjamini_hochberg"] = "holm"
    cuped: bool = Field(default=False, description="Variance reduction with pre-period data.")
    sequential: Literal["none", "msprt", "group_sequential"] = "none"
    srm_alpha: float = Field(default=0.001, gt=0.0, lt=0.5)
    minimum_detectable_effect: float | None = Field(default=None, gt=0.0)
    min_units_per_variant: int = Field(default=100, ge=1)
