"""Specs: what runs, for whom, judged on what (pydantic models, loaded from YAML).

Example:
    >>> from proving.spec import parse_spec
    >>> parse_spec("name: demo\\nvariants: [{name: a}, {name: b}]").control_name
    'a'
"""

from proving.spec.analysis import AnalysisSpec
from proving.spec.experiment import ExperimentSpec, ModelRefSpec, ScheduleSpec, VariantSpec
from proving.spec.issues import SpecIssue
from proving.spec.loader import load_program, load_spec, parse_spec, read_spec, spec_schema
from proving.spec.metric import MetricSpec, MetricsSpec
from proving.spec.mode import (
    BlueGreenSpec,
    CanarySpec,
    CanaryStepSpec,
    InterleaveSpec,
    Mode,
    ShadowSpec,
    SwitchbackSpec,
)
from proving.spec.placement import DomainPlacementSpec, HoldoutSpec, LayerPlacementSpec
from proving.spec.program import DomainSpec, LayerSpec, ProgramSpec

__all__ = [
    "AnalysisSpec",
    "BlueGreenSpec",
    "CanarySpec",
    "CanaryStepSpec",
    "DomainPlacementSpec",
    "DomainSpec",
    "ExperimentSpec",
    "HoldoutSpec",
    "InterleaveSpec",
    "LayerPlacementSpec",
    "LayerSpec",
    "MetricSpec",
    "MetricsSpec",
    "Mode",
    "ModelRefSpec",
    "ProgramSpec",
    "ScheduleSpec",
    "ShadowSpec",
    "SpecIssue",
    "SwitchbackSpec",
    "VariantSpec",
    "load_program",
    "load_spec",
    "parse_spec",
    "read_spec",
    "spec_schema",
]
