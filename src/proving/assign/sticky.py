"""Sticky bucketing: keep a unit in the variation it first got, across weight changes.

GrowthBook stores, per hash attribute value, an assignment document::

    {"attributeName": "id", "attributeValue": "u1",
     "assignments": {"<experiment key>__<bucket version>": "<variation key>"}}

keyed ``"<attributeName>||<attributeValue>"``. An experiment evaluated with sticky
bucketing reuses the stored variation for its current bucket version; bumping
``bucketVersion`` re-randomizes everyone, and ``minBucketVersion`` blocks units whose
stored assignment predates it (they leave the experiment). Documents found under the
hash attribute win over those under the fallback attribute.

Everything here is pure: lookups read the documents given; writes return a new document
for the caller to persist (the experiment run attaches it to its result).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proving.assign.conditions import js_string

__all__ = [
    "StickyLookup",
    "doc_key",
    "docs_for_unit",
    "find_sticky_variation",
    "merged_assignments",
    "sticky_experiment_key",
    "updated_doc",
]


def sticky_experiment_key(experiment_key: str, bucket_version: int = 0) -> str:
    """The assignment key of an experiment at a bucket version, e.g. ``"exp__0"``."""
    return f"{experiment_key}__{bucket_version}"


def doc_key(attribute_name: str, attribute_value: str) -> str:
    """The storage key of a unit's assignment document: ``"id||u1"``."""
    return f"{attribute_name}||{attribute_value}"


def docs_for_unit(
    docs: Iterable[Mapping[str, Any]], attributes: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The stored documents that belong to a unit, keyed for lookup.

    A document belongs to the unit when the unit's attribute ``attributeName`` has the
    value ``attributeValue`` (compared as strings), like a sticky-bucket service's
    ``getAllAssignments(attributes)``.

    Example:
        >>> docs = [{"attributeName": "id", "attributeValue": "u1", "assignments": {}},
        ...         {"attributeName": "id", "attributeValue": "u2", "assignments": {}}]
        >>> list(docs_for_unit(docs, {"id": "u1"}))
        ['id||u1']
    """
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        name, value = doc.get("attributeName"), doc.get("attributeValue")
        if not isinstance(name, str) or name not in attributes or attributes[name] is None:
            continue
        if js_string(attributes[name]) == value:
            out[doc_key(name, str(value))] = dict(doc)
    return out


def merged_assignments(
    docs: Mapping[str, Mapping[str, Any]],
    hash_attribute: str,
    hash_value: str,
    fallback_attribute: str | None = None,
    fallback_value: str = "",
) -> dict[str, str]:
    """Assignments for a unit: those under the hash attribute, then the fallback's.

    Example:
        >>> docs = {"id||u1": {"assignments": {"e__0": "1"}}}
        >>> merged_assignments(docs, "id", "u1")
        {'e__0': '1'}
    """
    merged: dict[str, str] = dict(
        docs.get(doc_key(hash_attribute, hash_value), {}).get("assignments", {})
    )
    if fallback_attribute:
        fallback_doc = docs.get(doc_key(fallback_attribute, fallback_value), {})
        for key, value in fallback_doc.get("assignments", {}).items():
            merged.setdefault(key, value)
    return merged


@dataclass(frozen=True, slots=True)
class StickyLookup:
    """A sticky-bucket lookup: the stored variation index (-1 if none) and whether the
    unit is blocked by ``minBucketVersion``."""

    variation: int
    version_is_blocked: bool = False


def find_sticky_variation(
    assignments: Mapping[str, str],
    experiment_key: str,
    bucket_version: int = 0,
    min_bucket_version: int = 0,
    meta: Sequence[Mapping[str, Any]] | None = None,
) -> StickyLookup:
    """The stored variation of an experiment for a unit, if any.

    The stored value is a variation *key* (``meta[i]["key"]``, or the index as a string
    when the experiment has no meta), matched back to an index.

    Example:
        >>> find_sticky_variation({"e__1": "1"}, "e", 1, 0, [{"key": "0"}, {"key": "1"}])
        StickyLookup(variation=1, version_is_blocked=False)
    """
    for version in range(min_bucket_version):
        if sticky_experiment_key(experiment_key, version) in assignments:
            return StickyLookup(-1, version_is_blocked=True)
    stored = assignments.get(sticky_experiment_key(experiment_key, bucket_version))
    if not stored:
        return StickyLookup(-1)
    for i, m in enumerate(meta or []):
        if isinstance(m, Mapping) and m.get("key") == stored:
            return StickyLookup(i)
    return StickyLookup(-1)


def updated_doc(
    docs: Mapping[str, Mapping[str, Any]],
    attribute_name: str,
    attribute_value: str,
    assignments: Mapping[str, str],
) -> tuple[str, dict[str, Any], bool]:
    """The unit's document with ``assignments`` merged in: ``(key, doc, changed)``.

    Example:
        >>> key, doc, changed = updated_doc({}, "id", "u1", {"e__0": "1"})
        >>> key, doc["assignments"], changed
        ('id||u1', {'e__0': '1'}, True)
    """
    key = doc_key(attribute_name, attribute_value)
    existing = dict(docs.get(key, {}).get("assignments", {}))
    merged = {**existing, **assignments}
    doc = {
        "attributeName": attribute_name,
        "attributeValue": attribute_value,
        "assignments": merged,
    }
    return key, doc, merged != existing
