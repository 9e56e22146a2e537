"""Properties of assignment, checked by hypothesis over generated specs and units.

Derandomized (a fixed example sequence), so a statistical check cannot flake in CI; each
chi-square test runs at a strict level (p > 1e-4) on tens of thousands of units.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from proving.assign import assign, assign_batch
from proving.spec import ExperimentSpec

IDS = np.array([f"unit-{i:06d}" for i in range(20_000)])
PROPERTY = settings(
    derandomize=True,
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12).filter(
    lambda s: s[0].isalnum()
)


@st.composite
def weight_vectors(draw: st.DrawFn) -> list[float]:
    k = draw(st.integers(2, 4))
    raw = draw(st.lists(st.integers(1, 20), min_size=k, max_size=k))
    weights = [round(r / sum(raw), 6) for r in raw]
    weights[-1] = round(1 - sum(weights[:-1]), 6)
    return weights


def spec_of(name: str, weights: list[float], **kwargs: Any) -> ExperimentSpec:
    variants = [{"name": f"v{i}"} for i in range(len(weights))]
    return ExperimentSpec.model_validate(
        {"name": name, "variants": variants, "weights": weights, **kwargs}
    )


@PROPERTY
@given(name=names, weights=weight_vectors(), version=st.sampled_from([1, 2]))
def test_determinism_across_copies_of_the_spec(
    name: str, weights: list[float], version: int
) -> None:
    """The same unit gets the same answer twice, and from a spec rebuilt from JSON (as in
    another process or replica)."""
    spec = spec_of(name, weights, hash_version=version, coverage=0.9)
    again = ExperimentSpec.model_validate_json(spec.model_dump_json())
    for unit in IDS[:300].tolist():
        first = assign(unit, {}, spec)
        assert first == assign(unit, {}, spec) == assign(unit, {}, again)


@PROPERTY
@given(name=names, weights=weight_vectors(), coverage=st.sampled_from([1.0, 0.6, 0.25]))
def test_realized_split_matches_the_weights(
    name: str, weights: list[float], coverage: float
) -> None:
    spec = spec_of(name, weights, coverage=coverage)
    batch = assign_batch(IDS, spec)
    n_in = int(batch.in_experiment.sum())
    assert stats.binomtest(n_in, len(IDS), coverage).pvalue > 1e-4
    counts = np.bincount(batch.variant_index[batch.in_experiment], minlength=len(weights))
    expected = np.asarray(weights) * n_in
    assert stats.chisquare(counts, expected).pvalue > 1e-4


@PROPERTY
@given(
    name=names,
    weights=weight_vectors(),
    coverages=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2).map(sorted),
)
def test_raising_coverage_only_adds_units(
    name: str, weights: list[float], coverages: list[float]
) -> None:
    low = assign_batch(IDS, spec_of(name, weights, coverage=coverages[0]))
    high = assign_batch(IDS, spec_of(name, weights, coverage=coverages[1]))
    was_in = low.in_experiment
    assert np.all(high.in_experiment[was_in])
    assert np.array_equal(high.variant_index[was_in], low.variant_index[was_in])


@PROPERTY
@given(
    name=names,
    weights=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2).map(sorted),
    coverages=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2).map(sorted),
    control_first=st.booleans(),
)
def test_raising_a_canary_only_adds_units_to_it(
    name: str, weights: list[float], coverages: list[float], control_first: bool
) -> None:
    """Raising the canary weight and/or the coverage never moves a unit out of the canary."""
    variants = [{"name": "champion"}, {"name": "canary"}]
    if not control_first:
        variants.reverse()

    def canary(weight: float, coverage: float) -> np.ndarray:
        spec = ExperimentSpec.model_validate(
            {
                "name": name,
                "mode": "canary",
                "variants": variants,
                "control": "champion",
                "coverage": coverage,
                "canary": {"weight": weight},
            }
        )
        return assign_batch(IDS, spec).variants == "canary"

    before = canary(weights[0], coverages[0])
    for after in (canary(weights[1], coverages[0]), canary(weights[1], coverages[1])):
        assert np.all(after[before])


@PROPERTY
@given(layer=names, cuts=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=4, unique=True))
def test_experiments_in_one_layer_are_exclusive(layer: str, cuts: list[float]) -> None:
    edges = [0.0, *sorted(cuts), 1.0]
    slices = [(a, b) for a, b in itertools.pairwise(edges) if b > a]
    owner = np.full(len(IDS), -1)
    for j, (a, b) in enumerate(slices):
        spec = spec_of(f"exp-{j}", [0.5, 0.5], layer={"name": layer, "range": [a, b]})
        batch = assign_batch(IDS, spec)
        assert not np.any(batch.in_experiment & (owner >= 0))
        owner[batch.in_experiment] = j
    # The slices partition the layer: every unit is in exactly one experiment.
    assert np.all(owner >= 0)


@PROPERTY
@given(pair=st.lists(names, min_size=2, max_size=2, unique=True))
def test_layers_are_independent(pair: list[str]) -> None:
    """Chi-square test of independence on the cross-tab of two layers' assignments."""
    a = assign_batch(IDS, spec_of("exp-a", [0.5, 0.5], layer={"name": pair[0], "range": [0, 0.5]}))
    b = assign_batch(IDS, spec_of("exp-b", [0.5, 0.5], layer={"name": pair[1], "range": [0, 0.5]}))
    cell_a = np.where(a.in_experiment, a.variant_index, 2)
    cell_b = np.where(b.in_experiment, b.variant_index, 2)
    table = np.zeros((3, 3))
    np.add.at(table, (cell_a, cell_b), 1)
    assert stats.chi2_contingency(table).pvalue > 1e-4


@PROPERTY
@given(
    # No NUL: numpy's fixed-width strings drop trailing NULs, so such ids cannot be a
    # numpy column at all (a numpy limitation, not one of the hash).
    units=st.lists(
        st.text(st.characters(blacklist_characters="\x00"), max_size=12), min_size=1, max_size=60
    ),
    weights=weight_vectors(),
    coverage=st.floats(0.0, 1.0),
    version=st.sampled_from([1, 2]),
    layered=st.booleans(),
)
def test_assign_batch_equals_the_scalar_path(
    units: list[str], weights: list[float], coverage: float, version: int, layered: bool
) -> None:
    extra: dict[str, Any] = {"coverage": coverage, "hash_version": version}
    if layered:
        extra |= {"layer": {"name": "L", "range": [0.1, 0.7]}, "holdout": {"fraction": 0.2}}
    spec = spec_of("batch", weights, **extra)
    batch = assign_batch(np.array(units, dtype=str), spec)
    for i, unit in enumerate(units):
        a = assign(unit, {}, spec)
        assert (a.variant, a.reason, a.in_experiment) == (
            batch.variants[i],
            batch.reasons[i],
            bool(batch.in_experiment[i]),
        )
