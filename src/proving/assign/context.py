"""The evaluation context, the experiment result, and how a unit is identified.

:class:`EvaluationContext` holds everything an evaluation may read (the unit's attributes,
feature definitions, saved groups, forced variations, the URL, sticky-bucket documents);
:class:`ExperimentResult` is what one experiment run gives back for one unit (frozen, with
:meth:`ExperimentResult.to_growthbook` for the SDK's camelCase dict).
:func:`resolve_hash_attribute` picks the attribute a unit is hashed on (with the
``fallbackAttribute`` rules of sdk-js ``getHashAttribute``) and
:func:`query_string_override` reads a variation forced by ``?<key>=<index>`` in the URL
(sdk-js ``getQueryStringOverride``). :mod:`proving.assign.growthbook` runs experiments
with these; :mod:`proving.assign.features` evaluates features with them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlparse

__all__ = [
    "EvaluationContext",
    "ExperimentResult",
    "query_string_override",
    "resolve_hash_attribute",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(slots=True)
class EvaluationContext:
    """Everything an evaluation may read: the unit and the definitions it is evaluated in.

    One is built per unit (per request), so it is a plain slotted dataclass (a frozen one
    costs 3x more to build); evaluation only reads it.

    Attributes:
        attributes: the unit's attributes (``{"id": "u1", "country": "US"}``).
        features: GrowthBook feature definitions by key (for features and prerequisites).
        saved_groups: saved groups for ``$inGroup`` conditions.
        forced_variations: experiment key -> forced variation index (QA, allowlists).
        forced_features: feature key -> forced value (source ``override``).
        url: the request URL, for ``?<experiment key>=<index>`` overrides.
        enabled: ``False`` puts every unit out of every experiment (global kill switch).
        qa_mode: ``True`` excludes units from hashed assignment (forced ones still apply).
        sticky_bucketing: whether sticky bucketing is on.
        sticky_bucket_docs: stored assignment documents by ``"attr||value"``.
        contextual_bandits: contextual bandit definitions by reference (leaves with
            conditions and weights), for feature rules with ``contextualBanditRef``.
    """

    # Shared read-only empty defaults: building a context per request stays cheap.
    attributes: Mapping[str, Any] = field(default_factory=_empty)
    features: Mapping[str, Any] = field(default_factory=_empty)
    saved_groups: Mapping[str, Any] = field(default_factory=_empty)
    forced_variations: Mapping[str, int] = field(default_factory=_empty)
    forced_features: Mapping[str, Any] = field(default_factory=_empty)
    url: str = ""
    enabled: bool = True
    qa_mode: bool = False
    sticky_bucketing: bool = False
    sticky_bucket_docs: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    contextual_bandits: Mapping[str, Any] = field(default_factory=_empty)

    @classmethod
    def from_growthbook(cls, context: Mapping[str, Any], **overrides: Any) -> EvaluationContext:
        """Build from a GrowthBook SDK context dict (camelCase keys).

        Example:
            >>> ctx = EvaluationContext.from_growthbook({"attributes": {"id": "1"}, "qaMode": True})
            >>> ctx.qa_mode
            True
        """
        docs = context.get("stickyBucketAssignmentDocs")
        values: dict[str, Any] = {
            "attributes": context.get("attributes") or {},
            "features": context.get("features") or {},
            "saved_groups": context.get("savedGroups") or {},
            "forced_variations": context.get("forcedVariations") or {},
            "forced_features": context.get("forcedFeatures") or {},
            "url": context.get("url") or "",
            "enabled": context.get("enabled", True) is not False,
            "qa_mode": bool(context.get("qaMode", False)),
            "sticky_bucketing": docs is not None,
            "sticky_bucket_docs": docs or {},
            "contextual_bandits": context.get("contextualBandits") or {},
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class ExperimentResult:
    """The outcome of one experiment evaluation for one unit.

    ``in_experiment`` is False for units left out (then ``variation_id`` is 0 and
    ``value`` the control's); ``hash_used`` is True only for hashed assignments (not for
    forced ones); ``bucket`` is the hash in [0, 1) that decided, when hashed. ``reason``
    says in words why (``"hashed"``, ``"forced by context"``, ``"condition failed"``...).
    """

    key: str
    value: Any
    variation_id: int
    in_experiment: bool
    hash_used: bool
    hash_attribute: str
    hash_value: Any
    feature_id: str | None = None
    bucket: float | None = None
    sticky_bucket_used: bool = False
    name: str | None = None
    passthrough: bool = False
    reason: str = ""
    sticky_bucket_doc: Mapping[str, Any] | None = None
    leaf_id: int | None = None
    variation_weights: tuple[float, ...] | None = None
    bandit_version: int | None = None

    def to_growthbook(self) -> dict[str, Any]:
        """The SDK's camelCase result dict (as in GrowthBook's conformance cases)."""
        out: dict[str, Any] = {
            "key": self.key,
            "featureId": self.feature_id,
            "inExperiment": self.in_experiment,
            "hashUsed": self.hash_used,
            "variationId": self.variation_id,
            "value": self.value,
            "hashAttribute": self.hash_attribute,
            "hashValue": self.hash_value,
            "stickyBucketUsed": self.sticky_bucket_used,
        }
        if self.name:
            out["name"] = self.name
        if self.bucket is not None:
            out["bucket"] = self.bucket
        if self.passthrough:
            out["passthrough"] = True
        if self.leaf_id is not None:
            out["leafId"] = self.leaf_id
            out["variationWeights"] = list(self.variation_weights or ())
            if self.bandit_version is not None:
                out["banditVersion"] = self.bandit_version
        return out


def _is_hashable(value: Any) -> bool:
    """A non-empty string or a finite non-zero number can identify a unit.

    JavaScript would also hash ``true`` or an object (as ``"[object Object]"``), which
    puts every such unit in one bucket; like GrowthBook's Python SDK we treat those as
    missing instead.
    """
    if isinstance(value, str):
        return value != ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return value != 0 and math.isfinite(value)
    except OverflowError:
        return False


def resolve_hash_attribute(
    attributes: Mapping[str, Any], attribute: str | None, fallback: str | None = None
) -> tuple[str, Any]:
    """The attribute a unit is hashed on and its raw value (``""`` when missing).

    Example:
        >>> resolve_hash_attribute({"anon": "a1"}, "id", "anon")
        ('anon', 'a1')
    """
    name = attribute or "id"
    value = attributes.get(name)
    if _is_hashable(value):
        return name, value
    if fallback:
        value = attributes.get(fallback)
        if _is_hashable(value):
            return fallback, value
    return name, ""


def query_string_override(key: str, url: str, num_variations: int) -> int | None:
    """A variation forced by ``?<key>=<index>`` in the URL, or ``None``.

    Example:
        >>> query_string_override("my-test", "https://x.io/?my-test=1", 2)
        1
    """
    if not url:
        return None
    try:
        query = urlparse(url).query
    except ValueError:
        return None
    values = parse_qs(query).get(key)
    if not values:
        return None
    text = values[0]
    if not (text.isascii() and text.isdigit() and len(text) < 10):
        return None
    index = int(text)
    return index if 0 <= index < num_variations else None
