"""Feature flags: rules, rollouts, prerequisites with cycle detection, overrides, holdouts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from proving.assign.features import FeatureResult, evaluate_feature
from proving.assign.growthbook import EvaluationContext
from proving.assign.hashing import hash_value


def _ctx(features: dict[str, Any], **attrs: Any) -> EvaluationContext:
    return EvaluationContext(attributes=attrs or {"id": "u1"}, features=features)


def test_unknown_feature_is_null_not_error() -> None:
    result = evaluate_feature("nope", _ctx({}))
    assert (result.value, result.source, result.on) == (None, "unknownFeature", False)


def test_rules_apply_in_order_with_conditions() -> None:
    features = {
        "banner": {
            "defaultValue": "none",
            "rules": [
                {"id": "r1", "condition": {"country": "FR"}, "force": "bonjour"},
                {"id": "r2", "condition": {"country": {"$in": ["US", "CA"]}}, "force": "hello"},
            ],
        }
    }
    assert evaluate_feature("banner", _ctx(features, id="a", country="CA")).rule_id == "r2"
    assert evaluate_feature("banner", _ctx(features, id="a", country="FR")).value == "bonjour"
    default = evaluate_feature("banner", _ctx(features, id="a", country="JP"))
    assert (default.value, default.source, default.rule_id) == ("none", "defaultValue", "")


def test_percentage_rollout_share_matches_coverage() -> None:
    coverage = 0.3
    features = {"flag": {"defaultValue": False, "rules": [{"force": True, "coverage": coverage}]}}
    on = sum(evaluate_feature("flag", _ctx(features, id=f"user-{i}")).value for i in range(4000))
    assert stats.binomtest(on, 4000, coverage).pvalue > 1e-3


def test_rollout_boundary_follows_sdk_js() -> None:
    # sdk-js includes a unit whose hash equals the coverage exactly (n <= coverage).
    n = hash_value("flag", "user-1", 1)
    assert n is not None
    features = {"flag": {"defaultValue": False, "rules": [{"force": True, "coverage": n}]}}
    assert evaluate_feature("flag", _ctx(features, id="user-1")).value is True


def test_gating_prerequisite_turns_feature_off() -> None:
    features = {
        "parent": {"defaultValue": False},
        "child": {
            "defaultValue": "on",
            "rules": [
                {"parentConditions": [{"id": "parent", "condition": {"value": True}, "gate": True}]}
            ],
        },
    }
    result = evaluate_feature("child", _ctx(features))
    assert (result.value, result.source) == (None, "prerequisite")


def test_non_gating_prerequisite_skips_the_rule() -> None:
    features = {
        "parent": {"defaultValue": "v2"},
        "child": {
            "defaultValue": "old",
            "rules": [
                {
                    "parentConditions": [{"id": "parent", "condition": {"value": "v1"}}],
                    "force": "x",
                },
                {
                    "parentConditions": [{"id": "parent", "condition": {"value": "v2"}}],
                    "force": "new",
                },
            ],
        },
    }
    assert evaluate_feature("child", _ctx(features)).value == "new"


@pytest.mark.parametrize("length", [1, 2, 5])
def test_prerequisite_cycles_are_detected(length: int) -> None:
    keys = [f"f{i}" for i in range(length)]
    features = {
        key: {
            "defaultValue": 1,
            "rules": [
                {"parentConditions": [{"id": keys[(i + 1) % length], "condition": {"value": 1}}]}
            ],
        }
        for i, key in enumerate(keys)
    }
    result = evaluate_feature("f0", _ctx(features))
    assert (result.value, result.source) == (None, "cyclicPrerequisite")


def test_diamond_dependency_is_not_a_cycle() -> None:
    features = {
        "base": {"defaultValue": True},
        "left": {
            "defaultValue": True,
            "rules": [{"parentConditions": [{"id": "base", "condition": {"value": True}}]}],
        },
        "right": {
            "defaultValue": True,
            "rules": [{"parentConditions": [{"id": "base", "condition": {"value": True}}]}],
        },
        "top": {
            "defaultValue": "ok",
            "rules": [
                {
                    "parentConditions": [
                        {"id": "left", "condition": {"value": True}},
                        {"id": "right", "condition": {"value": True}},
                    ]
                }
            ],
        },
    }
    assert evaluate_feature("top", _ctx(features)).source == "defaultValue"


def test_forced_feature_override() -> None:
    ctx = EvaluationContext(
        attributes={"id": "u"}, features={"f": {"defaultValue": 1}}, forced_features={"f": 42}
    )
    assert (evaluate_feature("f", ctx).value, evaluate_feature("f", ctx).source) == (42, "override")


def test_holdout_passthrough_falls_to_next_rule() -> None:
    # A 100% passthrough "holdout" variation: units in it skip to the next rule.
    features = {
        "f": {
            "defaultValue": "default",
            "rules": [
                {
                    "key": "holdout",
                    "variations": ["a", "b"],
                    "ranges": [[0, 0], [0, 1]],
                    "meta": [{}, {"passthrough": True}],
                },
                {"force": "after-holdout"},
            ],
        }
    }
    assert evaluate_feature("f", _ctx(features)).value == "after-holdout"


def test_experiment_rule_splits_by_weights() -> None:
    features = {
        "f": {
            "defaultValue": None,
            "rules": [{"variations": ["a", "b"], "weights": [0.2, 0.8], "hashVersion": 2}],
        }
    }
    values = [evaluate_feature("f", _ctx(features, id=f"u{i}")).value for i in range(5000)]
    counts = np.array([values.count("a"), values.count("b")])
    assert stats.chisquare(counts, np.array([0.2, 0.8]) * 5000).pvalue > 1e-3


@pytest.mark.parametrize(
    ("value", "on"), [(0, False), ("", False), (None, False), ({}, True), ([], True), ("0", True)]
)
def test_on_off_follow_javascript_truthiness(value: Any, on: bool) -> None:
    result = FeatureResult(value, "force")
    assert (result.on, result.off, result.to_growthbook()["on"]) == (on, not on, on)
