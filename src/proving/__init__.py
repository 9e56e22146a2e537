"""proving: test machine-learning models in production, with statistical rigor.

The package root re-exports the entry points of every stage; each stage's package holds the
rest (``proving.stats``, ``proving.assign``, ``proving.spec``, ``proving.telemetry``,
``proving.metrics``, ``proving.serve``, ``proving.simulate``). Names load lazily, so
``import proving`` stays cheap and pulls in neither the web stack nor the warehouse drivers.

Example:
    >>> import proving
    >>> world = proving.simulate_experiment(20_000, seed=1)
    >>> result = proving.analyze(world.stats_rows())
    >>> sorted({c.metric for c in result.comparisons})
    ['clicks_per_session', 'conversion', 'revenue']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proving._lazy import lazy_exports as _lazy_exports

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "ArmStats": "proving.stats",
    "analyze": "proving.stats",
    "AnalysisResult": "proving.stats",
    "ComparisonResult": "proving.stats",
    "sample_size": "proving.stats",
    "minimum_detectable_effect": "proving.stats",
    "SequentialMonitor": "proving.stats",
    "MonitorSpec": "proving.stats",
    "judge": "proving.stats",
    "load_spec": "proving.spec",
    "ExperimentSpec": "proving.spec",
    "assign": "proving.assign",
    "assign_batch": "proving.assign",
    "Assignment": "proving.assign",
    "open_store": "proving.telemetry",
    "BatchWriter": "proving.telemetry",
    "load_metrics_spec": "proving.metrics",
    "compute_metrics": "proving.metrics",
    "create_app": "proving.serve",
    "simulate_experiment": "proving.simulate",
    "ProvingError": "proving.errors",
}

__all__ = [
    "AnalysisResult",
    "ArmStats",
    "Assignment",
    "BatchWriter",
    "ComparisonResult",
    "ExperimentSpec",
    "MonitorSpec",
    "ProvingError",
    "SequentialMonitor",
    "analyze",
    "assign",
    "assign_batch",
    "compute_metrics",
    "create_app",
    "judge",
    "load_metrics_spec",
    "load_spec",
    "minimum_detectable_effect",
    "open_store",
    "sample_size",
    "simulate_experiment",
]

if TYPE_CHECKING:
    from proving.assign import Assignment, assign, assign_batch
    from proving.errors import ProvingError
    from proving.metrics import compute_metrics, load_metrics_spec
    from proving.serve import create_app
    from proving.simulate import simulate_experiment
    from proving.spec import ExperimentSpec, load_spec
    from proving.stats import (
        AnalysisResult,
        ArmStats,
        ComparisonResult,
        MonitorSpec,
        SequentialMonitor,
        analyze,
        judge,
        minimum_detectable_effect,
        sample_size,
    )
    from proving.telemetry import BatchWriter, open_store


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
