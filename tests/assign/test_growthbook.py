"""Experiment runs: every reason a unit is in or out, bad definitions, and the inlined
fast path against the general path (they must never disagree)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proving.assign.growthbook import (
    EvaluationContext,
    _run,
    compile_experiment,
    filtered_out,
    run_experiment,
)
from proving.assign.hashing import hash_value
from proving.assign.javascript import js_string
from proving.errors import AssignmentError

EXP = {"key": "exp", "variations": ["a", "b"], "hashVersion": 2}


def _reason(experiment: dict[str, Any], **context: Any) -> str:
    context.setdefault("attributes", {"id": "user-1"})
    return run_experiment(experiment, EvaluationContext(**context)).reason


@pytest.mark.parametrize(
    ("experiment", "context", "reason"),
    [
        (EXP, {}, "hashed"),
        ({**EXP, "variations": ["a"]}, {}, "fewer than 2 variations"),
        (EXP, {"enabled": False}, "evaluation disabled"),
        (EXP, {"url": "https://x.io/?exp=1"}, "forced by URL"),
        (EXP, {"forced_variations": {"exp": 0}}, "forced by context"),
        (EXP, {"forced_variations": {"exp": 7}}, "forced by context (not a variation)"),
        ({**EXP, "active": False}, {}, "experiment inactive"),
        (EXP, {"attributes": {"id": ""}}, "missing hash attribute 'id'"),
        ({**EXP, "condition": {"country": "US"}}, {}, "condition failed"),
        ({**EXP, "coverage": 0}, {}, "outside coverage"),
        ({**EXP, "namespace": ["ns", 0, 0]}, {}, "not in namespace"),
        ({**EXP, "filters": [{"seed": "s", "ranges": [[0, 0]]}]}, {}, "filtered out"),
        ({**EXP, "hashVersion": 9}, {}, "unknown hash version 9"),
        ({**EXP, "force": 1}, {}, "forced by experiment"),
        (EXP, {"qa_mode": True}, "QA mode"),
        ({**EXP, "status": "stopped"}, {}, "experiment stopped"),
    ],
)
def test_every_outcome_has_a_reason(
    experiment: dict[str, Any], context: dict[str, Any], reason: str
) -> None:
    assert _reason(experiment, **context) == reason


@pytest.mark.parametrize(
    ("experiment", "match"),
    [
        (["not", "a", "dict"], "must be a GrowthBook experiment object"),
        ({"variations": [0, 1]}, r"`key` must be a non-empty string; got None"),
        ({"key": "k", "variations": "ab"}, r"'k': `variations` must be a list; got 'ab'"),
        (
            {"key": "k", "variations": [0, 1], "namespace": ["ns", 0.5]},
            r"`namespace` must be \[id, start, end\]",
        ),
    ],
)
def test_bad_experiments_raise_with_the_fix(experiment: Any, match: str) -> None:
    with pytest.raises(AssignmentError, match=match):
        compile_experiment(experiment)


@pytest.mark.parametrize(
    "attributes",
    [{"id": "user-7", "team": "t"}, {"id": 42, "team": 7}, {"id": 2.5}, {"id": "", "team": "t"}],
)
def test_filtered_out_hashes_each_filter_attribute(attributes: dict[str, Any]) -> None:
    filters = [{"seed": "f", "ranges": [[0, 0.5]]}, {"attribute": "team", "ranges": [[0, 1]]}]
    expected = False
    for f in filters:  # sdk-js isFilteredOut, spelled out with hash_value
        raw = attributes.get(f.get("attribute", "id"))
        n = hash_value(str(f.get("seed", "")), js_string(raw), 2) if raw not in (None, "") else None
        if n is None or not any(lo <= n < hi for lo, hi in f["ranges"]):
            expected = True
            break
    assert filtered_out(filters, attributes) is expected
    if attributes["id"]:  # (an experiment leaves a unit without an id out before filters)
        plan = compile_experiment({**EXP, "filters": filters})
        reason = plan.run(EvaluationContext(attributes=attributes)).reason
        assert (reason == "filtered out") is expected


def test_results_serialize_to_json() -> None:
    result = run_experiment(
        {**EXP, "meta": [{"key": "ctl", "name": "Control"}, {"key": "t"}]},
        EvaluationContext(attributes={"id": "user-3"}),
    )
    assert json.loads(json.dumps(result.to_growthbook()))["hashValue"] == "user-3"


experiments = st.fixed_dictionaries(
    {"key": st.sampled_from(["e1", "e2"]), "variations": st.just(["a", "b", "c"])},
    optional={
        "coverage": st.floats(0, 1),
        "weights": st.sampled_from([[0.2, 0.3, 0.5], [1, 0, 0], [0.5, 0.5, 0.5]]),
        "hashVersion": st.sampled_from([1, 2]),
        "seed": st.text(alphabet="abc-", max_size=6),
        "condition": st.sampled_from([{"country": "US"}, {"age": {"$gt": 30}}]),
        "namespace": st.sampled_from([["n1", 0, 0.5], ["n2", 0.3, 1]]),
        "filters": st.just([{"seed": "f", "ranges": [[0, 0.7]]}]),
    },
)


@settings(max_examples=150, deadline=None)
@given(
    experiments,
    st.text(alphabet="abcxyz0123456789-", min_size=1, max_size=12),
    st.sampled_from(["US", "FR"]),
)
def test_fast_path_equals_general_path(experiment: dict[str, Any], unit: str, country: str) -> None:
    plan = compile_experiment(experiment)
    assert plan.fast
    ctx = EvaluationContext(attributes={"id": unit, "country": country, "age": len(unit) * 5})
    assert plan.run(ctx) == _run(plan, ctx, None)
