"""GrowthBook's cross-language SDK conformance cases, one test per case.

The cases file is GrowthBook's ``packages/sdk-js/test/cases.json`` (MIT), kept byte for
byte in ``../shared/reference/growthbook-sdk-cases.json`` with its provenance in the
README beside it. ``PROVING_GROWTHBOOK_CASES`` points elsewhere. Where the file is missing
the tests skip, except in CI (``CI=true`` or ``PROVING_REQUIRE_SERVICES=1``), where they fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from proving.assign.buckets import bucket_ranges, choose_variation, equal_weights, in_namespace
from proving.assign.conditions import compile_condition, eval_condition
from proving.assign.features import evaluate_feature
from proving.assign.growthbook import EvaluationContext, query_string_override, run_experiment
from proving.assign.hashing import hash_value
from proving.assign.sticky import doc_key, docs_for_unit

REPO = Path(__file__).resolve().parents[2]
CASES_PATH = Path(
    os.environ.get(
        "PROVING_GROWTHBOOK_CASES",
        REPO / ".." / "shared" / "reference" / "growthbook-sdk-cases.json",
    )
)


def _load() -> dict[str, list[Any]]:
    try:
        return dict(json.loads(CASES_PATH.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


CASES = _load()


def _must_run() -> bool:
    flags = (os.environ.get("CI", ""), os.environ.get("PROVING_REQUIRE_SERVICES", ""))
    return any(f.lower() not in ("", "0", "false") for f in flags)


def _params(section: str, named: bool = True) -> list[Any]:
    """One pytest param per case, with the case name as id (or a synthesized one)."""
    cases = CASES.get(section)
    if not cases:
        return [pytest.param(None, id=f"{section}-cases-file-missing")]
    params = []
    for i, case in enumerate(cases):
        case_id = f"{case[0]}" if named else f"{section}-{i}-" + "-".join(map(str, case[:-1]))
        params.append(pytest.param(case, id=case_id))
    return params


def _case(case: list[Any] | None) -> list[Any]:
    if case is None:
        message = f"GrowthBook cases file not found or unreadable at {CASES_PATH}"
        if _must_run():
            pytest.fail(f"{message}; in CI it must be present (set PROVING_GROWTHBOOK_CASES)")
        pytest.skip(message)
    return case


@pytest.mark.parametrize("case", _params("hash", named=False))
def test_hash(case: list[Any] | None) -> None:
    seed, value, version, expected = _case(case)
    assert hash_value(seed, value, version) == expected


@pytest.mark.parametrize("case", _params("getBucketRange"))
def test_get_bucket_range(case: list[Any] | None) -> None:
    _, (num_variations, coverage, weights), expected = _case(case)
    got = bucket_ranges(num_variations, coverage, weights)
    assert [[round(a, 8), round(b, 8)] for a, b in got] == [
        [round(a, 8), round(b, 8)] for a, b in expected
    ]


@pytest.mark.parametrize("case", _params("chooseVariation"))
def test_choose_variation(case: list[Any] | None) -> None:
    _, n, ranges, expected = _case(case)
    assert choose_variation(n, ranges) == expected


@pytest.mark.parametrize("case", _params("getEqualWeights", named=False))
def test_get_equal_weights(case: list[Any] | None) -> None:
    n, expected = _case(case)
    assert [round(w, 8) for w in equal_weights(n)] == expected


@pytest.mark.parametrize("case", _params("inNamespace"))
def test_in_namespace(case: list[Any] | None) -> None:
    _, unit_id, namespace, expected = _case(case)
    assert in_namespace(unit_id, namespace) is expected


@pytest.mark.parametrize("case", _params("evalCondition"))
def test_eval_condition(case: list[Any] | None) -> None:
    _, condition, attributes, expected, *rest = _case(case)
    saved_groups = rest[0] if rest else None
    assert eval_condition(attributes, condition, saved_groups) is expected
    assert compile_condition(condition)(attributes, saved_groups or {}) is expected


@pytest.mark.parametrize("case", _params("run"))
def test_run(case: list[Any] | None) -> None:
    _, context, experiment, value, in_experiment, hash_used = _case(case)
    result = run_experiment(experiment, EvaluationContext.from_growthbook(context))
    assert (result.value, result.in_experiment, result.hash_used) == (
        value,
        in_experiment,
        hash_used,
    )


@pytest.mark.parametrize("case", _params("feature"))
def test_feature(case: list[Any] | None) -> None:
    _, context, key, expected = _case(case)
    result = evaluate_feature(key, EvaluationContext.from_growthbook(context))
    assert result.to_growthbook() == expected


@pytest.mark.parametrize("case", _params("stickyBucket"))
def test_sticky_bucket(case: list[Any] | None) -> None:
    _, context, stored_docs, key, expected_result, expected_docs = _case(case)
    docs = docs_for_unit(stored_docs, context["attributes"])
    ctx = EvaluationContext.from_growthbook(context, sticky_bucketing=True, sticky_bucket_docs=docs)
    result = evaluate_feature(key, ctx)
    exp_result = result.experiment_result
    assert (exp_result.to_growthbook() if exp_result else None) == expected_result
    if exp_result is not None and exp_result.sticky_bucket_doc is not None:
        doc = exp_result.sticky_bucket_doc
        docs[doc_key(doc["attributeName"], doc["attributeValue"])] = dict(doc)
    assert docs == expected_docs


@pytest.mark.parametrize("case", _params("contextualBandit"))
def test_contextual_bandit(case: list[Any] | None) -> None:
    _, context, key, expected = _case(case)
    result = evaluate_feature(key, EvaluationContext.from_growthbook(context))
    assert result.to_growthbook() == expected


@pytest.mark.parametrize("case", _params("getQueryStringOverride"))
def test_query_string_override(case: list[Any] | None) -> None:
    _, key, url, num_variations, expected = _case(case)
    assert query_string_override(key, url, num_variations) == expected
