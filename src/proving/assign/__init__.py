"""Assignment: which variant does this unit get (deterministic, GrowthBook-compatible).

Public names are re-exported here; helpers add theirs to ``__all__`` with small edits.
"""

from proving.assign.assignment import REASONS, Assignment, assign
from proving.assign.batch import AssignmentBatch, assign_batch
from proving.assign.buckets import (
    bucket_ranges,
    choose_variation,
    choose_variation_batch,
    equal_weights,
    in_namespace,
)
from proving.assign.conditions import compile_condition, eval_condition
from proving.assign.context import EvaluationContext, ExperimentResult
from proving.assign.features import FeatureResult, evaluate_feature
from proving.assign.growthbook import ExperimentPlan, compile_experiment, run_experiment
from proving.assign.hashing import fnv1a32, hash_batch, hash_value
from proving.assign.layers import assign_program, merge_parameters, place, place_batch
from proving.assign.planout import (
    bernoulli_trial,
    random_integer,
    sample,
    uniform_choice,
    weighted_choice,
)
from proving.assign.switchback import SwitchbackWindow, export_windows, window_assignment
from proving.assign.targeting import TargetingDecision, decide_targeting

__all__ = [
    "REASONS",
    "Assignment",
    "AssignmentBatch",
    "EvaluationContext",
    "ExperimentPlan",
    "ExperimentResult",
    "FeatureResult",
    "SwitchbackWindow",
    "TargetingDecision",
    "assign",
    "assign_batch",
    "assign_program",
    "bernoulli_trial",
    "bucket_ranges",
    "choose_variation",
    "choose_variation_batch",
    "compile_condition",
    "compile_experiment",
    "decide_targeting",
    "equal_weights",
    "eval_condition",
    "evaluate_feature",
    "export_windows",
    "fnv1a32",
    "hash_batch",
    "hash_value",
    "in_namespace",
    "merge_parameters",
    "place",
    "place_batch",
    "random_integer",
    "run_experiment",
    "sample",
    "uniform_choice",
    "weighted_choice",
    "window_assignment",
]
