"""The statistics engine: sufficient statistics in, explained results out. Pure: no I/O."""

from proving.stats.analyze import analyze
from proving.stats.balance import BalanceResult, balance_check, balance_table
from proving.stats.bayesian import bayesian_compare, bayesian_family
from proving.stats.canary import CanaryMetricSpec, compare_distributions, judge
from proving.stats.canary_sequential import SequentialCanaryTest
from proving.stats.cuped import cuped_adjust
from proving.stats.effects import EffectArrays, compare
from proving.stats.group_sequential import GroupSequentialDesign, design_boundaries
from proving.stats.interaction import (
    assignment_independence,
    interaction_contrast,
    interaction_test,
)
from proving.stats.interleaving import InterleavingCounts, analyze_interleaving
from proving.stats.monitor import SequentialMonitor
from proving.stats.monitor_spec import MonitorSpec
from proving.stats.multiple import adjust
from proving.stats.noninferiority import (
    NonInferiorityResult,
    noninferiority_check,
    noninferiority_from_comparison,
)
from proving.stats.plan_metric import PlanMetric
from proving.stats.power import PowerResult, achieved_power, minimum_detectable_effect, sample_size
from proving.stats.priors import NormalPrior, fit_prior
from proving.stats.quantiles import QuantileStats, compare_quantiles
from proving.stats.ratio import linearize, ratio_moments
from proving.stats.results import AnalysisResult, ComparisonResult
from proving.stats.segments import analyze_segments, heterogeneity, post_stratify
from proving.stats.sequential import adjust_sequential, always_valid_compare, sequentialize
from proving.stats.srm import SRMResult, srm_check, srm_sequential
from proving.stats.sufficient import ArmStats
from proving.stats.table import ArmColumns, ArmRow, read_columns, read_table

__all__ = [
    "AnalysisResult",
    "ArmColumns",
    "ArmRow",
    "ArmStats",
    "BalanceResult",
    "CanaryMetricSpec",
    "ComparisonResult",
    "EffectArrays",
    "GroupSequentialDesign",
    "InterleavingCounts",
    "MonitorSpec",
    "NonInferiorityResult",
    "NormalPrior",
    "PlanMetric",
    "PowerResult",
    "QuantileStats",
    "SRMResult",
    "SequentialCanaryTest",
    "SequentialMonitor",
    "achieved_power",
    "adjust",
    "adjust_sequential",
    "always_valid_compare",
    "analyze",
    "analyze_interleaving",
    "analyze_segments",
    "assignment_independence",
    "balance_check",
    "balance_table",
    "bayesian_compare",
    "bayesian_family",
    "compare",
    "compare_distributions",
    "compare_quantiles",
    "cuped_adjust",
    "design_boundaries",
    "fit_prior",
    "heterogeneity",
    "interaction_contrast",
    "interaction_test",
    "judge",
    "linearize",
    "minimum_detectable_effect",
    "noninferiority_check",
    "noninferiority_from_comparison",
    "post_stratify",
    "ratio_moments",
    "read_columns",
    "read_table",
    "sample_size",
    "sequentialize",
    "srm_check",
    "srm_sequential",
]
