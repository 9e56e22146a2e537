"""Domains, layers, launch layers and holdouts (Tang et al. 2010)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from proving.assign import assign, assign_batch
from proving.assign.layers import assign_program, merge_parameters, place, place_batch
from proving.spec import ExperimentSpec, load_program

PROGRAM = Path(__file__).parents[2] / "docs" / "examples" / "search-program.yaml"
N = 40_000
IDS = np.array([f"user-{i}" for i in range(N)])


def test_experiments_in_one_layer_are_mutually_exclusive_and_cover_the_layer() -> None:
    program = load_program(PROGRAM)
    a = assign_batch(IDS, program.experiment("ranker-bm25-boost"))
    b = assign_batch(IDS, program.experiment("ranker-neural"))
    assert not np.any(a.in_experiment & b.in_experiment)
    # Outside the holdout and inside the domain, every unit is in exactly one of them.
    reasons_a, reasons_b = a.reasons, b.reasons
    eligible = ~np.isin(reasons_a, ["holdout", "other_domain"])
    assert np.array_equal(a.in_experiment | b.in_experiment, eligible)
    assert np.all(np.isin(reasons_b[a.in_experiment], ["other_layer_slice"]))


def test_domain_and_holdout_shares_match_their_specs() -> None:
    spec = load_program(PROGRAM).experiment("ranker-neural")
    reasons = assign_batch(IDS, spec).reasons
    out_of_domain = int(np.sum(reasons == "other_domain"))
    # 10% of units are in the other domain; binomial test at a strict level.
    assert stats.binomtest(out_of_domain, N, 0.1).pvalue > 1e-4
    held = int(np.sum(reasons == "holdout"))
    in_domain = N - out_of_domain
    assert stats.binomtest(held, in_domain, 0.05).pvalue > 1e-4


def test_layers_are_independent_chi_square_on_the_cross_tab() -> None:
    program = load_program(PROGRAM)
    ranking = [program.experiment(n) for n in ("ranker-bm25-boost", "ranker-neural")]
    ui = assign_batch(IDS, program.experiment("snippet-length"))
    cell = np.full(N, -1)
    for k, spec in enumerate(ranking):
        batch = assign_batch(IDS, spec)
        cell[batch.in_experiment] = 2 * k + batch.variant_index[batch.in_experiment]
    both = (cell >= 0) & ui.in_experiment
    table = np.zeros((4, 3))
    np.add.at(table, (cell[both], ui.variant_index[both]), 1)
    assert table.min() > 500
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_the_layer_hash_does_not_bias_the_split_inside_a_slice() -> None:
    spec = ExperimentSpec.model_validate(
        {
            "name": "slice-exp",
            "variants": [{"name": "a"}, {"name": "b"}],
            "layer": {"name": "L", "range": [0.0, 0.2]},
        }
    )
    batch = assign_batch(IDS, spec)
    counts = np.bincount(batch.variant_index[batch.in_experiment], minlength=2)
    assert stats.chisquare(counts).pvalue > 1e-3
    assert stats.binomtest(int(batch.in_experiment.sum()), N, 0.2).pvalue > 1e-4


def test_place_batch_equals_place() -> None:
    spec = load_program(PROGRAM).experiment("ranker-neural")
    codes, buckets = place_batch(IDS[:3000], spec)
    names = (None, "other_domain", "holdout", "other_layer_slice")
    for i, unit in enumerate(IDS[:3000].tolist()):
        p = place(unit, spec)
        assert p.reason == names[codes[i]]
        if p.layer_bucket is not None:
            assert p.layer_bucket == buckets[i]


def test_explanations_name_the_hashes() -> None:
    spec = load_program(PROGRAM).experiment("ranker-neural")
    details = {place(u, spec).reason: place(u, spec).detail for u in IDS[:200].tolist()}
    assert "outside domain 'main'" in str(details["other_domain"])
    assert "holdout 'search-holdout-2026'" in str(details["holdout"])
    assert "slice [0.5, 1.0) of layer 'ranking'" in str(details[None])


def test_launch_layer_values_are_overridden_by_experiment_layers() -> None:
    assert merge_parameters([(True, False, {"k": 2}), (True, True, {"k": 1, "x": 0})]) == {
        "k": 2,
        "x": 0,
    }
    assert merge_parameters([(False, False, {"k": 2}), (True, True, {"k": 1})]) == {"k": 1}
    assert merge_parameters([(True, False, "not a mapping")]) == {}


def test_assign_program_collects_one_assignment_per_experiment() -> None:
    program = load_program(PROGRAM)
    seen_params: set[str] = set()
    for unit in IDS[:300].tolist():
        result = assign_program(unit, {}, program)
        assert set(result.assignments) == {e.name for e in program.experiments}
        in_ranking = [
            result.assignments[n].in_experiment for n in ("ranker-bm25-boost", "ranker-neural")
        ]
        assert sum(in_ranking) <= 1
        for name, a in result.assignments.items():
            assert a == assign(unit, {}, program.experiment(name))
        seen_params |= set(result.parameters)
        assert result.to_dict()["unit_id"] == unit
    assert {"spellcheck", "bm25_boost", "ranker", "snippet_chars"} <= seen_params
