"""Sticky bucketing: units keep their variation across weight changes until the bucket
version is bumped; blocked versions leave the experiment; fallback ids are upgraded."""

from __future__ import annotations

from typing import Any

from proving.assign.features import evaluate_feature
from proving.assign.growthbook import EvaluationContext, ExperimentResult, run_experiment
from proving.assign.sticky import (
    docs_for_unit,
    find_sticky_variation,
    merged_assignments,
    sticky_experiment_key,
    updated_doc,
)

META = [{"key": "control"}, {"key": "treatment"}]


def _experiment(weights: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "key": "exp",
        "variations": ["c", "t"],
        "weights": weights,
        "meta": META,
        "hashVersion": 2,
        **extra,
    }


def _run_sticky(exp: dict[str, Any], unit: str, docs: dict[str, Any]) -> ExperimentResult:
    ctx = EvaluationContext(attributes={"id": unit}, sticky_bucketing=True, sticky_bucket_docs=docs)
    result = run_experiment(exp, ctx)
    if result.sticky_bucket_doc is not None:
        doc = result.sticky_bucket_doc
        docs[f"{doc['attributeName']}||{doc['attributeValue']}"] = dict(doc)
    return result


def test_units_keep_their_variation_when_weights_change() -> None:
    units = [f"user-{i}" for i in range(2000)]
    docs: dict[str, Any] = {}
    first = {u: _run_sticky(_experiment([0.5, 0.5]), u, docs).variation_id for u in units}
    assert len(docs) == len(units)
    after_sticky = {u: _run_sticky(_experiment([0.1, 0.9]), u, docs) for u in units}
    assert all(after_sticky[u].variation_id == first[u] for u in units)
    assert all(r.sticky_bucket_used and r.sticky_bucket_doc is None for r in after_sticky.values())
    # Without sticky bucketing the new weights move about 40% of units (0.5 -> 0.1 control).
    plain = {
        u: run_experiment(_experiment([0.1, 0.9]), EvaluationContext(attributes={"id": u}))
        for u in units
    }
    moved = sum(plain[u].variation_id != first[u] for u in units) / len(units)
    assert 0.35 < moved < 0.45


def test_bucket_version_bump_rerandomizes_and_min_version_blocks() -> None:
    docs: dict[str, Any] = {}
    _run_sticky(_experiment([0.5, 0.5]), "u1", docs)
    bumped = _run_sticky(_experiment([0.5, 0.5], bucketVersion=1), "u1", docs)
    assert not bumped.sticky_bucket_used and bumped.hash_used
    assert set(docs["id||u1"]["assignments"]) == {"exp__0", "exp__1"}
    blocked = _run_sticky(_experiment([0.5, 0.5], bucketVersion=2, minBucketVersion=1), "u1", docs)
    assert (blocked.in_experiment, blocked.sticky_bucket_used, blocked.reason) == (
        False,
        True,
        "sticky bucket version blocked",
    )


def test_fallback_attribute_assignment_is_kept_after_login() -> None:
    exp = _experiment([0.5, 0.5], fallbackAttribute="anon_id")
    docs: dict[str, Any] = {}
    anon = EvaluationContext(
        attributes={"anon_id": "a-7"}, sticky_bucketing=True, sticky_bucket_docs=docs
    )
    before = run_experiment(exp, anon)
    assert before.hash_attribute == "anon_id" and before.sticky_bucket_doc is not None
    docs["anon_id||a-7"] = dict(before.sticky_bucket_doc)
    for i in range(50):  # whatever the logged-in id hashes to, the variation is kept
        ctx = EvaluationContext(
            attributes={"id": f"user-{i}", "anon_id": "a-7"},
            sticky_bucketing=True,
            sticky_bucket_docs=docs,
        )
        after = run_experiment(exp, ctx)
        assert (after.variation_id, after.sticky_bucket_used) == (before.variation_id, True)


def test_sticky_bucket_skips_targeting_but_not_the_kill_switch() -> None:
    docs = {
        "id||u1": {
            "attributeName": "id",
            "attributeValue": "u1",
            "assignments": {"exp__0": "treatment"},
        }
    }
    exp = _experiment([0.5, 0.5], condition={"country": "US"})
    ctx = EvaluationContext(
        attributes={"id": "u1", "country": "FR"}, sticky_bucketing=True, sticky_bucket_docs=docs
    )
    assert run_experiment(exp, ctx).value == "t"
    off = EvaluationContext(
        attributes={"id": "u1"}, sticky_bucketing=True, sticky_bucket_docs=docs, enabled=False
    )
    assert not run_experiment(exp, off).in_experiment


def test_feature_rule_with_sticky_bucketing() -> None:
    features = {
        "f": {
            "defaultValue": "d",
            "rules": [{"key": "exp", "variations": ["c", "t"], "meta": META}],
        }
    }
    docs = {
        "id||u1": {
            "attributeName": "id",
            "attributeValue": "u1",
            "assignments": {"exp__0": "control"},
        }
    }
    ctx = EvaluationContext(
        attributes={"id": "u1"}, features=features, sticky_bucketing=True, sticky_bucket_docs=docs
    )
    result = evaluate_feature("f", ctx)
    assert result.value == "c" and result.experiment_result is not None
    assert result.experiment_result.sticky_bucket_used


def test_document_helpers() -> None:
    assert sticky_experiment_key("e", 3) == "e__3"
    docs = [
        {"attributeName": "id", "attributeValue": "7", "assignments": {"e__0": "1"}},
        {"attributeName": "id", "attributeValue": "8", "assignments": {}},
        {"attributeName": "anon", "attributeValue": "x", "assignments": {"e__0": "0", "f__0": "1"}},
    ]
    mine = docs_for_unit(docs, {"id": 7, "anon": "x"})  # numeric ids match as strings
    assert set(mine) == {"id||7", "anon||x"}
    assert merged_assignments(mine, "id", "7", "anon", "x") == {"e__0": "1", "f__0": "1"}
    assert find_sticky_variation({"e__0": "zzz"}, "e", 0, 0, META).variation == -1
    assert find_sticky_variation({"e__0": "treatment"}, "e", 0, 0, META).variation == 1
    _, _, changed = updated_doc(mine, "id", "7", {"e__0": "1"})
    assert changed is False
