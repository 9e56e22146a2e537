"""Feature flags: evaluate a GrowthBook feature for a unit (sdk-js ``evalFeature``).

A feature has a ``defaultValue`` and ordered ``rules``; the first rule that applies
decides. A rule may require prerequisite features (``parentConditions``: the parent's
value must satisfy a condition; ``gate: true`` turns a failure into "feature off"),
restrict by ``filters``, and then either *force* a value (optionally to a percentage
rollout by ``coverage`` or ``range``, gated by ``condition``) or run an *experiment*
whose variations are the feature's values. Units not in an experiment fall through to
the next rule; a ``passthrough`` variation (a holdout) also falls through.

Prerequisites are evaluated recursively with cycle detection: a feature met again on
its own evaluation path gives source ``cyclicPrerequisite`` instead of recursing forever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from proving.assign.buckets import equal_weights, valid_weights
from proving.assign.conditions import Predicate, compile_condition, eval_condition
from proving.assign.context import EvaluationContext, ExperimentResult, resolve_hash_attribute
from proving.assign.growthbook import ExperimentPlan, compile_experiment, filtered_out
from proving.assign.hashing import hash_value
from proving.assign.javascript import js_string, js_truthy

__all__ = ["FeatureResult", "FeatureSource", "evaluate_feature", "evaluate_prerequisites"]

FeatureSource = Literal[
    "unknownFeature",
    "defaultValue",
    "force",
    "override",
    "experiment",
    "prerequisite",
    "cyclicPrerequisite",
]
PrerequisiteOutcome = Literal["pass", "fail", "gate", "cyclic"]

# Rule fields copied onto the experiment a rule runs, when set (sdk-js evalFeature).
_TRUTHY_FIELDS = (
    "weights",
    "hashAttribute",
    "fallbackAttribute",
    "disableStickyBucketing",
    "namespace",
    "meta",
    "ranges",
    "name",
    "phase",
    "seed",
    "hashVersion",
    "filters",
    "condition",
)


@dataclass(frozen=True, slots=True)
class FeatureResult:
    """The value of a feature for one unit, with where it came from.

    ``source`` is one of ``unknownFeature``, ``defaultValue``, ``force``, ``override``,
    ``experiment``, ``prerequisite``, ``cyclicPrerequisite``; ``experiment`` and
    ``experiment_result`` are set when an experiment rule decided.
    """

    value: Any
    source: FeatureSource
    rule_id: str = ""
    experiment: Mapping[str, Any] | None = None
    experiment_result: ExperimentResult | None = None

    @property
    def on(self) -> bool:
        """JavaScript truthiness of the value (``0``, ``""``, ``None``, ``False`` are off)."""
        return js_truthy(self.value)

    @property
    def off(self) -> bool:
        """The negation of :attr:`on`."""
        return not self.on

    def to_growthbook(self) -> dict[str, Any]:
        """The SDK's camelCase FeatureResult dict."""
        out: dict[str, Any] = {
            "value": self.value,
            "on": self.on,
            "off": self.off,
            "source": self.source,
            "ruleId": self.rule_id,
        }
        if self.experiment is not None:
            out["experiment"] = dict(self.experiment)
        if self.experiment_result is not None:
            out["experimentResult"] = self.experiment_result.to_growthbook()
        return out


def evaluate_prerequisites(
    parents: Sequence[Mapping[str, Any]], context: EvaluationContext, stack: frozenset[str]
) -> PrerequisiteOutcome:
    """Check prerequisite features: ``pass``, ``fail``, ``gate`` (a gating one failed) or
    ``cyclic`` (a dependency cycle was found)."""
    for parent in parents:
        parent_id = parent.get("id")
        if not isinstance(parent_id, str):
            continue
        result = _evaluate(parent_id, context, stack)
        if result.source == "cyclicPrerequisite":
            return "cyclic"
        condition = parent.get("condition") or {}
        if not eval_condition({"value": result.value}, condition, context.saved_groups):
            return "gate" if parent.get("gate") else "fail"
    return "pass"


def _in_rollout(rule: Mapping[str, Any], feature_key: str, context: EvaluationContext) -> bool:
    """Whether the unit falls in a force rule's percentage rollout (sdk-js isIncludedInRollout)."""
    range_ = rule.get("range")
    coverage = rule.get("coverage")
    if not range_ and coverage is None:
        return True
    if not range_ and coverage == 0:
        return False
    fallback = (
        rule.get("fallbackAttribute")
        if context.sticky_bucketing and not rule.get("disableStickyBucketing")
        else None
    )
    _, raw = resolve_hash_attribute(context.attributes, rule.get("hashAttribute"), fallback)
    if raw == "":
        return False
    n = hash_value(
        str(rule.get("seed") or feature_key), js_string(raw), int(rule.get("hashVersion") or 1)
    )
    if n is None:
        return False
    if range_:
        return bool(range_[0] <= n < range_[1])
    # sdk-js includes the boundary here (n <= coverage), unlike bucket ranges.
    return isinstance(coverage, int | float) and n <= coverage


def _rule_experiment(
    rule: Mapping[str, Any], feature_key: str, variations: Sequence[Any]
) -> dict[str, Any]:
    exp: dict[str, Any] = {"variations": list(variations), "key": rule.get("key") or feature_key}
    if "coverage" in rule:
        exp["coverage"] = rule["coverage"]
    for name in _TRUTHY_FIELDS:
        if js_truthy(rule.get(name)):
            exp[name] = rule[name]
    for name in ("bucketVersion", "minBucketVersion"):
        if rule.get(name) is not None:
            exp[name] = rule[name]
    return exp


def _bandit_leaf(
    definition: Mapping[str, Any], context: EvaluationContext, num_variations: int
) -> tuple[int, list[float]] | None:
    """The first leaf whose condition matches, as ``(leaf_id, weights)``, if well formed."""
    for leaf in definition.get("contexts") or ():
        if not isinstance(leaf, Mapping):
            continue
        if eval_condition(context.attributes, leaf.get("condition") or {}, context.saved_groups):
            leaf_id, weights = leaf.get("leafId"), leaf.get("weights")
            if (
                isinstance(leaf_id, int)
                and not isinstance(leaf_id, bool)
                and isinstance(weights, list)
                and valid_weights(weights, num_variations)
            ):
                return leaf_id, [float(w) for w in weights]
            return None
    return None


def _apply_bandit(experiment: dict[str, Any], ref: Any, context: EvaluationContext) -> None:
    """Resolve a rule's contextual bandit: the matching leaf's weights replace the rule's.

    GrowthBook contextual bandits keep per-context ("leaf") weight vectors; a unit matching
    no leaf (or a bandit with no leaves) keeps the rule's marginal weights, reported with
    leaf id -1. A reference to an unknown bandit runs a plain experiment.
    """
    definition = context.contextual_bandits.get(ref) if isinstance(ref, str) else None
    if not isinstance(definition, Mapping):
        return
    n = len(experiment["variations"])
    leaf = _bandit_leaf(definition, context, n)
    if leaf is not None:
        experiment["weights"] = leaf[1]
        bandit: dict[str, Any] = {"leafId": leaf[0], "variationWeights": leaf[1]}
    else:
        weights = experiment.get("weights")
        used = (
            list(weights)
            if isinstance(weights, list) and valid_weights(weights, n)
            else equal_weights(n)
        )
        bandit = {"leafId": -1, "variationWeights": used}
    version = definition.get("banditVersion")
    if isinstance(version, int) and not isinstance(version, bool):
        bandit["banditVersion"] = version
    experiment["contextualBandit"] = bandit


# Compiled experiment plans of feature rules, by rule identity. Feature definitions are
# treated as immutable once evaluated (as a payload refresh brings new dicts); the cached
# rule itself is kept, so its id cannot be reused while the entry lives.
_RULE_PLANS: dict[int, tuple[Mapping[str, Any], str, Mapping[str, Any], ExperimentPlan]] = {}
_RULE_PLANS_MAX = 4096


def _rule_plan(
    rule: Mapping[str, Any], feature_key: str, variations: Sequence[Any]
) -> tuple[Mapping[str, Any], ExperimentPlan]:
    cached = _RULE_PLANS.get(id(rule))
    if cached is not None and cached[0] is rule and cached[1] == feature_key:
        return cached[2], cached[3]
    experiment = MappingProxyType(_rule_experiment(rule, feature_key, variations))
    plan = compile_experiment(experiment)
    if len(_RULE_PLANS) >= _RULE_PLANS_MAX:
        _RULE_PLANS.clear()
    _RULE_PLANS[id(rule)] = (rule, feature_key, experiment, plan)
    return experiment, plan


_RULE_CONDITIONS: dict[int, tuple[Mapping[str, Any], Any, Predicate]] = {}


def _rule_condition(rule: Mapping[str, Any], condition: Any) -> Predicate:
    """A force rule's compiled condition, cached by rule identity like the plans."""
    cached = _RULE_CONDITIONS.get(id(rule))
    if cached is not None and cached[0] is rule and cached[1] is condition:
        return cached[2]
    predicate = compile_condition(condition)
    if len(_RULE_CONDITIONS) >= _RULE_PLANS_MAX:
        _RULE_CONDITIONS.clear()
    _RULE_CONDITIONS[id(rule)] = (rule, condition, predicate)
    return predicate


def _evaluate(key: str, context: EvaluationContext, stack: frozenset[str]) -> FeatureResult:
    if key in stack:
        return FeatureResult(None, "cyclicPrerequisite")
    if key in context.forced_features:
        return FeatureResult(context.forced_features[key], "override")
    feature = context.features.get(key)
    if feature.__class__ is not dict and not isinstance(feature, Mapping):
        return FeatureResult(None, "unknownFeature")
    for rule in feature.get("rules") or ():
        if rule.__class__ is not dict and not isinstance(rule, Mapping):
            continue
        parents = rule.get("parentConditions")
        if parents:
            outcome = evaluate_prerequisites(parents, context, stack | {key})
            if outcome == "cyclic":
                return FeatureResult(None, "cyclicPrerequisite")
            if outcome == "gate":
                return FeatureResult(None, "prerequisite")
            if outcome == "fail":
                continue
        if rule.get("filters") and filtered_out(rule["filters"], context.attributes):
            continue
        if "force" in rule:
            condition = rule.get("condition")
            if condition and not _rule_condition(rule, condition)(
                context.attributes, context.saved_groups
            ):
                continue
            if not _in_rollout(rule, key, context):
                continue
            return FeatureResult(rule["force"], "force", str(rule.get("id") or ""))
        variations = rule.get("contextualVariations", rule.get("variations"))
        if not isinstance(variations, list | tuple):
            continue
        if rule.get("contextualBanditRef"):
            # The weights depend on the unit's leaf: compiled per evaluation.
            experiment = _rule_experiment(rule, key, variations)
            _apply_bandit(experiment, rule["contextualBanditRef"], context)
            result = compile_experiment(experiment).run(context, feature_id=key)
            if result.leaf_id is None:
                experiment.pop("contextualBandit", None)
            shown: Mapping[str, Any] = experiment
        else:
            shown, plan = _rule_plan(rule, key, variations)
            result = plan.run(context, feature_id=key)
        if result.in_experiment and not result.passthrough:
            return FeatureResult(
                result.value, "experiment", str(rule.get("id") or ""), shown, result
            )
    return FeatureResult(feature.get("defaultValue"), "defaultValue")


def evaluate_feature(key: str, context: EvaluationContext) -> FeatureResult:
    """Evaluate a feature flag for the unit in ``context``.

    Args:
        key: the feature key, looked up in ``context.features``.
        context: attributes, feature definitions and evaluation settings.

    Returns:
        A :class:`FeatureResult`; an unknown key gives value ``None`` with source
        ``unknownFeature`` (not an error: flags are often evaluated before they exist).

    Example:
        >>> ctx = EvaluationContext(
        ...     attributes={"id": "123", "country": "US"},
        ...     features={"new-checkout": {"defaultValue": False, "rules": [
        ...         {"condition": {"country": "US"}, "force": True}]}},
        ... )
        >>> evaluate_feature("new-checkout", ctx).value
        True
    """
    return _evaluate(key, context, frozenset())
