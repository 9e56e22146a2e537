"""The evaluation context and result: GrowthBook's camelCase context read field by field,
results serialised as the SDK's dict, and the hash-attribute rules of sdk-js."""

from __future__ import annotations

import json

import pytest

from proving.assign import growthbook
from proving.assign.context import (
    EvaluationContext,
    ExperimentResult,
    query_string_override,
    resolve_hash_attribute,
)


def test_hash_attribute_rules() -> None:
    assert resolve_hash_attribute({"id": 123}, None) == ("id", 123)
    assert resolve_hash_attribute({"id": True, "anon": "a"}, "id", "anon") == ("anon", "a")
    assert resolve_hash_attribute({"id": 0}, "id") == ("id", "")  # JS-falsy: missing
    assert resolve_hash_attribute({"id": float("nan")}, "id") == ("id", "")
    assert resolve_hash_attribute({"id": 1e400}, "id") == ("id", "")  # inf is not an id


def test_from_growthbook_reads_every_sdk_field() -> None:
    docs = {"id||u1": {"attributeName": "id", "attributeValue": "u1", "assignments": {}}}
    ctx = EvaluationContext.from_growthbook(
        {
            "attributes": {"id": "u1"},
            "features": {"f": {"defaultValue": 1}},
            "savedGroups": {"g": ["u1"]},
            "forcedVariations": {"e": 1},
            "forcedFeatures": {"f": 2},
            "url": "https://x.io/?e=0",
            "enabled": False,
            "qaMode": True,
            "stickyBucketAssignmentDocs": docs,
            "contextualBandits": {"b": {}},
        },
        url="",
    )
    assert ctx == EvaluationContext(
        attributes={"id": "u1"},
        features={"f": {"defaultValue": 1}},
        saved_groups={"g": ["u1"]},
        forced_variations={"e": 1},
        forced_features={"f": 2},
        url="",  # the override wins
        enabled=False,
        qa_mode=True,
        sticky_bucketing=True,
        sticky_bucket_docs=docs,
        contextual_bandits={"b": {}},
    )
    plain = EvaluationContext.from_growthbook({})
    assert plain.enabled and not plain.sticky_bucketing and dict(plain.attributes) == {}


def test_result_to_growthbook_adds_optional_fields_only_when_set() -> None:
    base = ExperimentResult("1", "b", 1, True, True, "id", "u1")
    out = base.to_growthbook()
    assert set(out) == {
        "key", "featureId", "inExperiment", "hashUsed", "variationId", "value",
        "hashAttribute", "hashValue", "stickyBucketUsed",
    }  # fmt: skip
    full = ExperimentResult(
        "1", "b", 1, True, True, "id", "u1", bucket=0.25, name="Blue", passthrough=True,
        leaf_id=3, variation_weights=(0.4, 0.6), bandit_version=2,
    ).to_growthbook()  # fmt: skip
    assert json.loads(json.dumps(full)) == {
        **out, "name": "Blue", "bucket": 0.25, "passthrough": True, "leafId": 3,
        "variationWeights": [0.4, 0.6], "banditVersion": 2,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x.io/?e=1", 1),
        ("https://x.io/?e=2", None),  # not a variation
        ("https://x.io/?e=-1", None),
        ("https://x.io/?other=1", None),
        ("", None),
    ],
)
def test_query_string_override(url: str, expected: int | None) -> None:
    assert query_string_override("e", url, 2) == expected


def test_old_import_path_still_works() -> None:
    assert growthbook.EvaluationContext is EvaluationContext
    assert growthbook.ExperimentResult is ExperimentResult
    assert growthbook.resolve_hash_attribute is resolve_hash_attribute
