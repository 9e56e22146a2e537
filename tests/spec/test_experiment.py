"""ExperimentSpec: defaults and every validation rule, each with its fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from proving.spec import ExperimentSpec, ModelRefSpec

TWO = [{"name": "control"}, {"name": "treatment"}]


def make(**kwargs: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate({"name": "exp", "variants": TWO, **kwargs})


def test_defaults() -> None:
    spec = make()
    assert spec.control_name == "control" and spec.control_index == 0
    assert spec.resolved_weights() == (0.5, 0.5)
    assert spec.hash_seed == "exp" and spec.hash_version == 2
    assert spec.mode == "ab" and spec.settings_for_mode() is None
    assert spec.enabled and not spec.is_time_based()
    assert spec.analysis.alpha == 0.05


def test_explicit_control_seed_and_weights() -> None:
    spec = make(control="treatment", seed=123, weights=[0.2, 0.8])
    assert spec.control_index == 1 and spec.hash_seed == "123"
    assert spec.resolved_weights() == (0.2, 0.8)
    per_variant = make(variants=[{"name": "a", "weight": 0.25}, {"name": "b", "weight": 0.75}])
    assert per_variant.resolved_weights() == (0.25, 0.75)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"weights": [0.5, 0.05]}, r"weights must sum to 1.*0\.909091, 0\.090909"),
        ({"weights": [0.5, 0.3, 0.2]}, r"3 weights for 2 variants"),
        ({"weights": [1.5, -0.5]}, r"every weight must be in \[0, 1\]"),
        (
            {"weights": [0.5, 0.5], "variants": [{"name": "a", "weight": 0.5}, {"name": "b"}]},
            r"both in `weights` and on variants",
        ),
        (
            {"variants": [{"name": "a", "weight": 0.5}, {"name": "b"}]},
            r"only some variants have a weight; missing on \['b'\]",
        ),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, r"variant names must be unique; a"),
        ({"variants": [{"name": "a"}]}, r"at least 2 items"),
        ({"control": "baseline"}, r"control 'baseline' is not a variant"),
        ({"forced": {"u1": "nope"}}, r"forced variant 'nope' for unit 'u1'"),
        ({"coverage": 1.2}, r"less than or equal to 1"),
        ({"hash_version": 3}, r"less than or equal to 2"),
        ({"name": "bad name!"}, r"should match pattern"),
        ({"colour": "red"}, r"Extra inputs are not permitted"),
        ({"targeting": {"country": {"$regx": "^U"}}}, r"unknown operator '\$regx'"),
        ({"targeting": {"age": {"$in": 5}}}, r"\$in takes a list"),
        ({"schedule": {"start": "2026-01-01T00:00:00"}}, r"timezone"),
        (
            {"schedule": {"start": "2026-02-01T00:00:00Z", "stop": "2026-01-01T00:00:00Z"}},
            r"stop .* must be after start",
        ),
        ({"mode": "ab", "canary": {"weight": 0.1}}, r"mode is 'ab' but settings are given"),
        ({"mode": "canary", "weights": [0.9, 0.1]}, r"no effect in canary mode.*canary\.weight"),
        (
            {"mode": "canary", "variants": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
            r"exactly two variants",
        ),
        ({"mode": "interleave", "variants": [*TWO, {"name": "c"}]}, r"exactly two variants"),
        ({"mode": "bluegreen", "bluegreen": {"active": "purple"}}, r"'purple' is not a variant"),
        ({"mode": "shadow", "weights": [0.5, 0.5]}, r"no effect in shadow mode"),
        ({"mode": "nightly"}, r"Input should be 'ab', 'shadow'"),
    ],
)
def test_rules(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        make(**kwargs)


def test_rule_errors_carry_their_fix_and_field() -> None:
    with pytest.raises(ValidationError) as info:
        make(weights=[0.7, 0.7])
    (err,) = info.value.errors()
    assert err["type"] == "spec_rule"
    ctx = err.get("ctx") or {}
    assert tuple(err["loc"]) + tuple(ctx["at"]) == ("weights",)
    assert "[0.5, 0.5]" in ctx["fix"]


def test_numeric_ids_in_forced_and_allowlist_become_text() -> None:
    spec = make(forced={12345: "treatment"}, allowlist=[7, "beta"])
    assert spec.forced == {"12345": "treatment"}
    assert spec.allowlist == ["7", "beta"]


def test_time_based_and_mode_settings() -> None:
    assert make(schedule={"start": "2026-01-01T00:00:00Z"}).is_time_based()
    assert make(mode="switchback").is_time_based()
    canary = make(mode="canary")
    settings = canary.settings_for_mode()
    assert settings is not None and getattr(settings, "current_weight", None) == 0.01
    assert make(mode="shadow").settings_for_mode() is not None


def test_model_reference() -> None:
    ref = ModelRefSpec.model_validate({"name": "ranker", "version": 3, "entry_point": "a.b:c"})
    assert ref.version == "3"
    with pytest.raises(ValidationError, match=r"both `uri` and `entry_point`"):
        ModelRefSpec(name="m", uri="s3://x", entry_point="a:b")
    with pytest.raises(ValidationError, match=r"should match pattern"):
        ModelRefSpec(name="m", entry_point="not an entry point")


def test_variant_values_are_any_json() -> None:
    spec = make(variants=[{"name": "a", "value": {"k": [1, 2]}}, {"name": "b", "value": 3}])
    assert spec.variant("a").value == {"k": [1, 2]}
    assert spec.variant("b").value == 3
    with pytest.raises(KeyError):
        spec.variant("c")


def test_spec_is_frozen_and_round_trips_through_json() -> None:
    spec = make(
        weights=[0.3, 0.7],
        schedule={"start": datetime(2026, 1, 1, tzinfo=UTC)},
        targeting={"country": "US"},
        metrics={"primary": {"name": "ctr", "kind": "proportion"}},
    )
    with pytest.raises(ValidationError, match="frozen"):
        spec.coverage = 0.5  # type: ignore[misc]
    again = ExperimentSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
