"""The statistics engine: sufficient statistics in, explained results out. Pure: no I/O.

Names load lazily (see :mod:`proving._lazy`): importing one module of the engine does not
import all of them, nor SciPy's statistics where they are not needed.
"""

import typing

from proving._lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "analyze": "proving.stats.analyze",
    "BalanceResult": "proving.stats.balance",
    "balance_check": "proving.stats.balance",
    "balance_table": "proving.stats.balance",
    "bayesian_compare": "proving.stats.bayesian",
    "bayesian_family": "proving.stats.bayesian",
    "CanaryMetricSpec": "proving.stats.canary",
    "compare_distributions": "proving.stats.canary",
    "judge": "proving.stats.canary",
    "SequentialCanaryTest": "proving.stats.canary_sequential",
    "cuped_adjust": "proving.stats.cuped",
    "EffectArrays": "proving.stats.effects",
    "compare": "proving.stats.effects",
    "GroupSequentialDesign": "proving.stats.group_sequential",
    "design_boundaries": "proving.stats.group_sequential",
    "assignment_independence": "proving.stats.interaction",
    "interaction_contrast": "proving.stats.interaction",
    "interaction_test": "proving.stats.interaction",
    "InterleavingCounts": "proving.stats.interleaving",
    "analyze_interleaving": "proving.stats.interleaving",
    "SequentialMonitor": "proving.stats.monitor",
    "MonitorSpec": "proving.stats.monitor_spec",
    "adjust": "proving.stats.multiple",
    "NonInferiorityResult": "proving.stats.noninferiority",
    "noninferiority_check": "proving.stats.noninferiority",
    "noninferiority_from_comparison": "proving.stats.noninferiority",
    "PlanMetric": "proving.stats.plan_metric",
    "PowerResult": "proving.stats.power",
    "achieved_power": "proving.stats.power",
    "minimum_detectable_effect": "proving.stats.power",
    "sample_size": "proving.stats.power",
    "NormalPrior": "proving.stats.priors",
    "fit_prior": "proving.stats.priors",
    "QuantileStats": "proving.stats.quantiles",
    "compare_quantiles": "proving.stats.quantiles",
    "linearize": "proving.stats.ratio",
    "ratio_moments": "proving.stats.ratio",
    "AnalysisResult": "proving.stats.results",
    "ComparisonResult": "proving.stats.results",
    "analyze_segments": "proving.stats.segments",
    "heterogeneity": "proving.stats.segments",
    "post_stratify": "proving.stats.segments",
    "adjust_sequential": "proving.stats.sequential",
    "always_valid_compare": "proving.stats.sequential",
    "sequentialize": "proving.stats.sequential",
    "SRMResult": "proving.stats.srm",
    "srm_check": "proving.stats.srm",
    "srm_sequential": "proving.stats.srm",
    "ArmStats": "proving.stats.sufficient",
    "ArmColumns": "proving.stats.table",
    "ArmRow": "proving.stats.table",
    "read_columns": "proving.stats.table",
    "read_table": "proving.stats.table",
}

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

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, exports_win=True)

if typing.TYPE_CHECKING:
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
    from proving.stats.power import (
        PowerResult,
        achieved_power,
        minimum_detectable_effect,
        sample_size,
    )
    from proving.stats.priors import NormalPrior, fit_prior
    from proving.stats.quantiles import QuantileStats, compare_quantiles
    from proving.stats.ratio import linearize, ratio_moments
    from proving.stats.results import AnalysisResult, ComparisonResult
    from proving.stats.segments import analyze_segments, heterogeneity, post_stratify
    from proving.stats.sequential import adjust_sequential, always_valid_compare, sequentialize
    from proving.stats.srm import SRMResult, srm_check, srm_sequential
    from proving.stats.sufficient import ArmStats
    from proving.stats.table import ArmColumns, ArmRow, read_columns, read_table
