"""GrowthBook experiment runs: which variation a unit gets, and why (sdk-js ``runExperiment``).

An experiment is GrowthBook JSON (``key``, ``variations``, optional ``weights``,
``coverage``, ``namespace``, ``filters``, ``ranges``, ``seed``, ``hashVersion``,
``hashAttribute``, ``fallbackAttribute``, ``condition``, ``parentConditions``, ``force``,
``active``, ``meta``, ``bucketVersion``, ``minBucketVersion``,
``disableStickyBucketing``). :func:`compile_experiment` turns it once into an
:class:`ExperimentPlan` (ranges and seed precomputed); :meth:`ExperimentPlan.run`
evaluates one unit in the reference order:

1. fewer than 2 variations, or evaluation disabled: not in the experiment;
2. a variation forced by the URL query string (``?<key>=<index>``) or by the context;
3. inactive: out;
4. no usable hash attribute value: out;
5. a sticky bucket (when enabled) skips the next step;
6. filters (or the legacy namespace), condition, prerequisite features: out if failing;
7. hash, choose the variation from the bucket ranges (or the sticky one);
8. ``force`` on the experiment, then QA mode: not a hashed exposure.

Results are frozen; :meth:`ExperimentResult.to_growthbook` gives the SDK's camelCase
dict. No I/O: a new sticky-bucket document is returned on the result for the caller to
store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from proving.assign.buckets import bucket_ranges, choose_variation
from proving.assign.conditions import Predicate, compile_condition
from proving.assign.context import (
    _EMPTY,
    EvaluationContext,
    ExperimentResult,
    _is_hashable,
    query_string_override,
    resolve_hash_attribute,
)
from proving.assign.hashing import fnv1a32_bytes as _fnv_bytes
from proving.assign.hashing import hash_value
from proving.assign.javascript import js_string
from proving.assign.sticky import (
    StickyLookup,
    find_sticky_variation,
    merged_assignments,
    sticky_experiment_key,
    updated_doc,
)
from proving.errors import AssignmentError

__all__ = [
    "EvaluationContext",
    "ExperimentPlan",
    "ExperimentResult",
    "compile_experiment",
    "filtered_out",
    "query_string_override",
    "resolve_hash_attribute",
    "run_experiment",
]

# A filter compiled as (attribute, seed, hash version, ranges).
_Filter = tuple[str | None, str, int, tuple[tuple[float, float], ...]]


def _compile_filter(f: Mapping[str, Any]) -> _Filter:
    return (
        f.get("attribute"),
        str(f.get("seed", "")),
        int(f.get("hashVersion") or 2),
        tuple((float(r[0]), float(r[1])) for r in f.get("ranges", ())),
    )


def filtered_out(filters: Sequence[Mapping[str, Any]], attributes: Mapping[str, Any]) -> bool:
    """Whether any filter excludes the unit (sdk-js ``isFilteredOut``; hash version 2)."""
    return _filtered((_compile_filter(f) for f in filters), attributes)


def _filtered(filters: Iterable[_Filter], attributes: Mapping[str, Any]) -> bool:
    """:func:`filtered_out` over compiled filters (lazily: the first exclusion decides)."""
    for attribute, seed, version, ranges in filters:
        raw = attributes.get(attribute or "id")
        if raw.__class__ is not str or not raw:
            _, raw = resolve_hash_attribute(attributes, attribute)
            if raw == "":
                return True
            raw = js_string(raw)
        n = hash_value(seed, raw, version)
        if n is None or not any(start <= n < end for start, end in ranges):
            return True
    return False


def _validate(experiment: Mapping[str, Any]) -> None:
    if not isinstance(experiment, Mapping):
        raise AssignmentError(
            f"experiment must be a GrowthBook experiment object (a dict); got "
            f"{type(experiment).__name__}. Pass e.g. {{'key': 'exp', 'variations': [0, 1]}}."
        )
    key = experiment.get("key")
    if not isinstance(key, str) or not key:
        raise AssignmentError(
            f"experiment `key` must be a non-empty string; got {key!r}. "
            "Give the experiment a key such as 'checkout-button'."
        )
    if not isinstance(experiment.get("variations"), list | tuple):
        raise AssignmentError(
            f"experiment {key!r}: `variations` must be a list; got "
            f"{experiment.get('variations')!r}. Use e.g. ['control', 'treatment']."
        )


@dataclass(frozen=True, slots=True)
class ExperimentPlan:
    """A compiled experiment: the JSON plus everything that does not depend on the unit."""

    experiment: Mapping[str, Any]
    key: str
    variations: tuple[Any, ...]
    seed: str
    hash_version: int
    hash_attribute: str
    fallback_attribute: str | None
    ranges: tuple[tuple[float, float], ...]
    meta: tuple[Mapping[str, Any], ...]
    variation_keys: tuple[str, ...]
    bucket_version: int
    min_bucket_version: int
    condition: Predicate | None
    # ("__" + namespace id, start, end) when the legacy namespace applies (no filters).
    namespace: tuple[str, float, float] | None
    filters: tuple[_Filter, ...]
    # True when hashing, targeting and ranges decide everything (no force, prerequisites,
    # status, bandit or unusual seed): then run() takes the inlined path.
    fast: bool
    # Per variation, the fields of a hashed result that do not depend on the unit; and
    # those of a not-in-experiment result.
    templates: tuple[MappingProxyType[str, Any], ...]
    out_template: MappingProxyType[str, Any]

    def run(self, context: EvaluationContext, feature_id: str | None = None) -> ExperimentResult:
        """Evaluate the experiment for the unit in ``context``.

        Example:
            >>> plan = compile_experiment({"key": "my-test", "variations": [0, 1]})
            >>> plan.run(EvaluationContext(attributes={"id": "1"})).variation_id
            1
        """
        if (
            self.fast
            and context.enabled
            and not (
                context.qa_mode
                or context.sticky_bucketing
                or context.url
                or context.forced_variations
            )
        ):
            raw = context.attributes.get(self.hash_attribute)
            if raw.__class__ is str and raw and raw.isascii():
                return _fast_run(self, context, raw, feature_id)
        return _run(self, context, feature_id)

    def out(
        self, attr: str, raw: Any, reason: str, feature_id: str | None, **extra: Any
    ) -> ExperimentResult:
        """A not-in-experiment result (the control's value, no hashed exposure)."""
        fields = self.out_template.copy()
        fields["hash_attribute"] = attr
        fields["hash_value"] = raw
        fields["reason"] = reason
        if feature_id is not None:
            fields["feature_id"] = feature_id
        if extra:
            fields.update(extra)
        result: ExperimentResult = _new(ExperimentResult)
        _set_dict(result, "__dict__", fields)
        return result

    def forced(
        self, index: int, attr: str, raw: Any, reason: str, feature_id: str | None
    ) -> ExperimentResult:
        """A result forced to ``index`` (out of the experiment if it is not a variation)."""
        if not 0 <= index < len(self.variations):
            return self.out(attr, raw, reason + " (not a variation)", feature_id)
        return _build(
            **self._meta_fields(index),
            in_experiment=True,
            hash_used=False,
            hash_attribute=attr,
            hash_value=raw,
            feature_id=feature_id,
            reason=reason,
        )

    def _meta_fields(self, index: int) -> dict[str, Any]:
        meta = self.meta[index] if index < len(self.meta) else _EMPTY
        fields = {
            "key": self.variation_keys[index],
            "value": self.variations[index],
            "variation_id": index,
        }
        if meta.get("name"):
            fields["name"] = meta["name"]
        if meta.get("passthrough"):
            fields["passthrough"] = True
        return fields

    def sticky(self, context: EvaluationContext) -> bool:
        """Whether sticky bucketing applies to this experiment in ``context``."""
        return context.sticky_bucketing and not self.experiment.get("disableStickyBucketing")


_new = object.__new__
_set_dict = object.__setattr__


def _build(**fields: Any) -> ExperimentResult:
    """An :class:`ExperimentResult` without ``__init__`` (3x faster for this frozen
    dataclass): fields left out keep the class-level defaults."""
    result: ExperimentResult = _new(ExperimentResult)
    _set_dict(result, "__dict__", fields)
    return result


def compile_experiment(experiment: Mapping[str, Any]) -> ExperimentPlan:
    """Validate and precompute a GrowthBook experiment definition.

    Raises:
        AssignmentError: the experiment has no string ``key`` or no ``variations`` list.

    Example:
        >>> compile_experiment({"key": "e", "variations": ["a", "b"], "coverage": 0.5}).ranges
        ((0.0, 0.25), (0.5, 0.75))
    """
    _validate(experiment)
    variations = tuple(experiment["variations"])
    key = str(experiment["key"])
    coverage = experiment.get("coverage")
    explicit = experiment.get("ranges")
    ranges = (
        tuple((float(r[0]), float(r[1])) for r in explicit)
        if explicit
        else tuple(
            bucket_ranges(
                len(variations), 1.0 if coverage is None else coverage, experiment.get("weights")
            )
        )
    )
    meta = tuple(m if isinstance(m, Mapping) else _EMPTY for m in experiment.get("meta") or ())
    keys = tuple(
        str(meta[i].get("key")) if i < len(meta) and meta[i].get("key") else str(i)
        for i in range(max(len(variations), 1))
    )
    seed = str(experiment.get("seed") or key)
    hash_attribute = str(experiment.get("hashAttribute") or "id")
    condition = experiment.get("condition")
    plan = ExperimentPlan(
        experiment=experiment,
        key=key,
        variations=variations,
        seed=seed,
        hash_version=int(experiment.get("hashVersion") or 1),
        hash_attribute=hash_attribute,
        fallback_attribute=experiment.get("fallbackAttribute") or None,
        ranges=ranges,
        meta=meta,
        variation_keys=keys,
        bucket_version=int(experiment.get("bucketVersion") or 0),
        min_bucket_version=int(experiment.get("minBucketVersion") or 0),
        condition=compile_condition(condition) if condition else None,
        namespace=_namespace(experiment),
        filters=tuple(_compile_filter(f) for f in experiment.get("filters") or ()),
        fast=False,
        templates=(),
        out_template=MappingProxyType(
            {
                "key": keys[0],
                "value": variations[0] if variations else None,
                "variation_id": 0,
                "in_experiment": False,
                "hash_used": False,
            }
        ),
    )
    fast = (
        len(variations) >= 2
        and not any(experiment.get(k) for k in ("parentConditions", "contextualBandit"))
        and experiment.get("force") is None
        and experiment.get("active") is not False
        and experiment.get("status") not in ("draft", "stopped")
        and plan.hash_version in (1, 2)
        and seed.isascii()
    )
    templates = tuple(
        MappingProxyType(
            {
                **plan._meta_fields(i),
                "in_experiment": True,
                "hash_used": True,
                "hash_attribute": hash_attribute,
            }
        )
        for i in range(len(variations))
    )
    return replace(plan, fast=fast, templates=templates)


def _namespace(experiment: Mapping[str, Any]) -> tuple[str, float, float] | None:
    namespace = experiment.get("namespace")
    if not namespace or experiment.get("filters"):
        return None
    if not isinstance(namespace, list | tuple) or len(namespace) != 3:
        raise AssignmentError(
            f"experiment {experiment.get('key')!r}: `namespace` must be [id, start, end]; got "
            f"{namespace!r}. Use e.g. ['checkout', 0, 0.5]."
        )
    return "__" + str(namespace[0]), float(namespace[1]), float(namespace[2])


def _excluded(plan: ExperimentPlan, context: EvaluationContext, hashed: str) -> str | None:
    """Why a unit (without a sticky bucket) is left out before hashing, or ``None``."""
    if plan.filters:
        if _filtered(plan.filters, context.attributes):
            return "filtered out"
    elif plan.namespace is not None:
        seed, start, end = plan.namespace
        n = hash_value(seed, hashed, 1)  # GrowthBook namespaces hash with version 1
        if n is None or not start <= n < end:
            return "not in namespace"
    exp = plan.experiment
    if plan.condition is not None and not plan.condition(context.attributes, context.saved_groups):
        return "condition failed"
    parents = exp.get("parentConditions")
    if parents:
        from proving.assign.features import evaluate_prerequisites

        outcome = evaluate_prerequisites(parents, context, frozenset())
        if outcome != "pass":
            return f"prerequisite {outcome}"
    return None


def _fast_run(
    plan: ExperimentPlan, context: EvaluationContext, raw: str, feature_id: str | None
) -> ExperimentResult:
    """The hot path for an ASCII id in a plain context: targeting, hash, ranges.

    Same arithmetic as :func:`proving.assign.hashing.hash_value`, inlined: this runs
    once per request.
    """
    why = _excluded(plan, context, raw)
    if why:
        return plan.out(plan.hash_attribute, raw, why, feature_id)
    if plan.hash_version == 2:
        n = (_fnv_bytes(str(_fnv_bytes((plan.seed + raw).encode())).encode()) % 10000) / 10000
    else:
        n = (_fnv_bytes((raw + plan.seed).encode()) % 1000) / 1000
    index = 0
    for start, end in plan.ranges:
        if start <= n < end:
            break
        index += 1
    else:
        return plan.out(plan.hash_attribute, raw, "outside coverage", feature_id)
    fields = plan.templates[index].copy()
    fields["hash_value"] = raw
    fields["bucket"] = n
    fields["reason"] = "hashed"
    if feature_id is not None:
        fields["feature_id"] = feature_id
    result: ExperimentResult = _new(ExperimentResult)
    _set_dict(result, "__dict__", fields)
    return result


def _sticky_lookup(plan: ExperimentPlan, context: EvaluationContext) -> StickyLookup:
    attributes = context.attributes
    _, fallback_raw = resolve_hash_attribute(attributes, plan.fallback_attribute)
    primary_raw = attributes.get(plan.hash_attribute)
    assignments = merged_assignments(
        context.sticky_bucket_docs,
        plan.hash_attribute,
        js_string(primary_raw) if _is_hashable(primary_raw) else "",
        plan.fallback_attribute if fallback_raw != "" else None,
        js_string(fallback_raw) if fallback_raw != "" else "",
    )
    return find_sticky_variation(
        assignments, plan.key, plan.bucket_version, plan.min_bucket_version, plan.meta
    )


def _run(
    plan: ExperimentPlan, context: EvaluationContext, feature_id: str | None
) -> ExperimentResult:
    """The general path, in sdk-js ``runExperiment`` order (see the module docstring)."""
    sticky = plan.sticky(context)
    attr, raw = resolve_hash_attribute(
        context.attributes, plan.hash_attribute, plan.fallback_attribute if sticky else None
    )
    if len(plan.variations) < 2:
        return plan.out(attr, raw, "fewer than 2 variations", feature_id)
    if not context.enabled:
        return plan.out(attr, raw, "evaluation disabled", feature_id)
    forced = query_string_override(plan.key, context.url, len(plan.variations))
    if forced is not None:
        return plan.forced(forced, attr, raw, "forced by URL", feature_id)
    if context.forced_variations.get(plan.key) is not None:
        return plan.forced(
            int(context.forced_variations[plan.key]), attr, raw, "forced by context", feature_id
        )
    if plan.experiment.get("active") is False or plan.experiment.get("status") == "draft":
        return plan.out(attr, raw, "experiment inactive", feature_id)
    if raw == "":
        return plan.out(attr, raw, f"missing hash attribute {attr!r}", feature_id)
    hashed = raw if isinstance(raw, str) else js_string(raw)
    lookup = _sticky_lookup(plan, context) if sticky else StickyLookup(-1)
    if lookup.variation < 0:
        why = _excluded(plan, context, hashed)
        if why:
            return plan.out(attr, raw, why, feature_id)
    n = hash_value(plan.seed, hashed, plan.hash_version)
    if n is None:
        return plan.out(attr, raw, f"unknown hash version {plan.hash_version}", feature_id)
    assigned = lookup.variation if lookup.variation >= 0 else choose_variation(n, plan.ranges)
    if lookup.version_is_blocked:
        return plan.out(
            attr, raw, "sticky bucket version blocked", feature_id, sticky_bucket_used=True
        )
    if assigned < 0:
        return plan.out(attr, raw, "outside coverage", feature_id)
    if plan.experiment.get("force") is not None:
        return plan.forced(
            int(plan.experiment["force"]), attr, raw, "forced by experiment", feature_id
        )
    if context.qa_mode:
        return plan.out(attr, raw, "QA mode", feature_id)
    if plan.experiment.get("status") == "stopped":
        return plan.out(attr, raw, "experiment stopped", feature_id)
    fields = plan._meta_fields(assigned)
    if sticky:
        entry = {
            sticky_experiment_key(plan.key, plan.bucket_version): plan.variation_keys[assigned]
        }
        _, doc, changed = updated_doc(context.sticky_bucket_docs, attr, hashed, entry)
        if changed:
            fields["sticky_bucket_doc"] = doc
    bandit = plan.experiment.get("contextualBandit")
    if bandit:  # bandit metadata describes hashed exposures only (sdk-js)
        fields["leaf_id"] = bandit.get("leafId")
        fields["variation_weights"] = tuple(bandit.get("variationWeights", ()))
        fields["bandit_version"] = bandit.get("banditVersion")
    return _build(
        **fields,
        in_experiment=True,
        hash_used=True,
        hash_attribute=attr,
        hash_value=raw,
        feature_id=feature_id,
        bucket=n,
        sticky_bucket_used=lookup.variation >= 0,
        reason="sticky bucket" if lookup.variation >= 0 else "hashed",
    )


def run_experiment(
    experiment: Mapping[str, Any] | ExperimentPlan,
    context: EvaluationContext,
    feature_id: str | None = None,
) -> ExperimentResult:
    """Evaluate a GrowthBook experiment for one unit.

    Args:
        experiment: GrowthBook experiment JSON, or an :class:`ExperimentPlan` compiled
            once with :func:`compile_experiment` (faster when evaluating many units).
        context: the unit's attributes and the evaluation settings.
        feature_id: the feature this experiment belongs to, if any (reported back).

    Returns:
        An :class:`ExperimentResult`.

    Example:
        >>> ctx = EvaluationContext(attributes={"id": "1"})
        >>> run_experiment({"key": "my-test", "variations": [0, 1]}, ctx).value
        1
    """
    plan = experiment if isinstance(experiment, ExperimentPlan) else compile_experiment(experiment)
    return plan.run(context, feature_id)
