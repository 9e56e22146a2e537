"""assign / assign_batch: every mode, every reason, the GrowthBook oracle, batch == scalar."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from growthbook import Experiment, GrowthBook
from scipy import stats

from proving.assign import REASONS, assign, assign_batch
from proving.assign.assignment import mode_ranges
from proving.errors import AssignmentError
from proving.spec import ExperimentSpec

NOW = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
IDS = np.array([f"u{i}" for i in range(20_000)])


def make(**kwargs: Any) -> ExperimentSpec:
    data: dict[str, Any] = {
        "name": "exp",
        "variants": [
            {"name": "control", "model": {"name": "m", "version": "1"}},
            {"name": "treatment", "value": {"k": 1}},
        ],
    }
    data.update(kwargs)
    return ExperimentSpec.model_validate(data)


FULL = {
    "forced": {"qa": "treatment"},
    "allowlist": ["beta"],
    "targeting": {"country": {"$in": ["US"]}},
    "domain": {"name": "d", "range": [0, 0.8]},
    "holdout": {"fraction": 0.1},
    "layer": {"name": "L", "range": [0.2, 0.9]},
}
MODES: list[dict[str, Any]] = [
    {"mode": "ab", "coverage": 0.7, "weights": [0.3, 0.7]},
    {"mode": "ab", "hash_version": 1},
    {"mode": "canary", "canary": {"weight": 0.2}, "coverage": 0.9},
    {"mode": "canary", "canary": {"weight": 0.2}, "control": "treatment"},
    {"mode": "shadow", "shadow": {"sample_rate": 0.5}},
    {"mode": "interleave", "coverage": 0.5},
    {"mode": "bluegreen", "bluegreen": {"active": "treatment"}},
    {"mode": "switchback", "switchback": {"window": "1h", "buffer": "10m",
                                          "cluster_attribute": "city"}},
    {"enabled": False},
    {"schedule": {"start": "2027-01-01T00:00:00Z"}},
    {"schedule": {"stop": "2025-01-01T00:00:00Z"}},
]  # fmt: skip


@pytest.mark.parametrize("extra", MODES, ids=[json.dumps(m)[:60] for m in MODES])
def test_batch_equals_scalar_in_every_mode(extra: dict[str, Any]) -> None:
    spec = make(**FULL, **extra)
    ids = np.array([*IDS[:1500].tolist(), "", "qa", "beta"])
    attrs = [
        {"country": "US" if i % 3 else "FR", "city": ["paris", "berlin", None][i % 3]}
        for i in range(len(ids))
    ]
    batch = assign_batch(ids, spec, attributes=attrs, now=NOW)
    assert len(batch) == len(ids)
    for i, unit in enumerate(ids.tolist()):
        a = assign(unit, attrs[i], spec, now=NOW, explain=i % 2 == 0)
        assert a.variant == batch.variants[i], (unit, a.explanation)
        assert a.reason == batch.reasons[i]
        assert a.in_experiment == batch.in_experiment[i]
        assert a.in_buffer == batch.in_buffer[i]
        assert (a.bucket is None and np.isnan(batch.bucket[i])) or a.bucket == batch.bucket[i]


def test_reasons_in_order_of_the_gates() -> None:
    spec = make(**FULL)
    assert assign("qa", {}, spec).reason == "forced"
    assert assign("", {"country": "US"}, spec).reason == "no_unit"
    beta = assign("beta", {"country": "FR"}, spec)
    assert beta.reason == "allowlist" and beta.in_experiment
    seen = {assign(u, {"country": "US"}, spec).reason for u in IDS[:2000].tolist()}
    assert seen == {"other_domain", "holdout", "other_layer_slice", "bucket"}
    assert assign("u1", {"country": "FR"}, spec).reason == "not_targeted"
    assert set(REASONS) >= seen


def test_units_not_in_the_experiment_get_the_control() -> None:
    spec = make(**FULL, control="treatment")
    for unit in IDS[:1000].tolist():
        a = assign(unit, {"country": "US"}, spec)
        if not a.in_experiment:
            assert a.variant == "treatment" and a.value == {"k": 1}


def test_assignment_carries_value_model_explanation_and_json() -> None:
    a = assign("user-42", {}, make(), explain=True)
    assert a.reason == "bucket" and a.in_experiment
    assert assign("user-42", {}, make()).explanation == ()
    assert a.bucket is not None and 0 <= a.bucket < 1
    if a.variant == "control":
        assert dict(a.model or {}) == {
            "name": "m",
            "version": "1",
            "uri": None,
            "entry_point": None,
        }
    else:
        assert a.value == {"k": 1}
    assert any("hash('exp', 'user-42', v2)" in step for step in a.explanation)
    data = json.loads(json.dumps(a.to_dict()))
    assert data["variant"] == a.variant and data["explanation"] == list(a.explanation)


def test_unit_id_from_attributes_and_integer_ids() -> None:
    spec = make(unit="user_id")
    assert assign(None, {"user_id": "abc"}, spec) == assign("abc", {}, spec)
    assert assign(12345, {}, spec).variant == assign("12345", {}, spec).variant
    batch = assign_batch(np.arange(100), spec)
    assert batch.variants.tolist() == [assign(str(i), {}, spec).variant for i in range(100)]
    with pytest.raises(AssignmentError, match=r"string or an integer; got float"):
        assign(1.5, {}, spec)  # type: ignore[arg-type]


def test_growthbook_sdk_oracle() -> None:
    """For A/B specs, proving's variant and in/out equal the GrowthBook Python SDK's run()."""
    rng = np.random.default_rng(7)
    gb = GrowthBook(attributes={})
    for trial in range(12):
        k = int(rng.integers(2, 5))
        weights = rng.dirichlet(np.ones(k)).round(4)
        weights[-1] = round(1 - float(weights[:-1].sum()), 4)
        coverage = float(rng.choice([1.0, 0.5, 0.33]))
        version = int(rng.choice([1, 2]))
        spec = ExperimentSpec.model_validate(
            {
                "name": f"oracle-{trial}",
                "variants": [{"name": f"v{i}"} for i in range(k)],
                "weights": weights.tolist(),
                "coverage": coverage,
                "hash_version": version,
            }
        )
        exp = Experiment(
            key=spec.name,
            variations=spec.variant_names,
            weights=weights.tolist(),
            coverage=coverage,
            hashVersion=version,
        )
        for unit in rng.choice(IDS, 150).tolist():
            gb.set_attributes({"id": unit})
            theirs = gb.run(exp)
            ours = assign(unit, {}, spec)
            assert ours.in_experiment == theirs.inExperiment
            if theirs.inExperiment:
                assert ours.variant == theirs.value
                assert ours.bucket == pytest.approx(theirs.bucket)


def test_realized_split_matches_weights() -> None:
    spec = make(weights=[0.2, 0.8], coverage=0.5)
    batch = assign_batch(IDS, spec)
    counts = batch.counts()
    n_in = sum(counts.values())
    assert stats.binomtest(n_in, len(IDS), 0.5).pvalue > 1e-4
    expected = [0.2 * n_in, 0.8 * n_in]
    assert stats.chisquare([counts["control"], counts["treatment"]], expected).pvalue > 1e-3


def test_canary_ranges_are_anchored() -> None:
    spec = make(mode="canary", canary={"weight": 0.25}, coverage=0.8)
    assert mode_ranges(spec) == [(1 - 0.8 * 0.75, 1.0), (0.0, 0.8 * 0.25)]
    flipped = make(mode="canary", canary={"weight": 0.25}, control="treatment")
    assert mode_ranges(flipped) == [(0.0, 0.25), (0.25, 1.0)]
    batch = assign_batch(IDS, make(mode="canary", canary={"weight": 0.1}))
    share = float(np.mean(batch.variants == "treatment"))
    assert stats.binomtest(int(share * len(IDS)), len(IDS), 0.1).pvalue > 1e-4


def test_shadow_mirrors_a_sample_and_serves_the_control() -> None:
    spec = make(mode="shadow", shadow={"sample_rate": 0.3})
    batch = assign_batch(IDS, spec)
    assert set(batch.variants.tolist()) == {"control"}
    mirrored = int(batch.in_experiment.sum())
    assert stats.binomtest(mirrored, len(IDS), 0.3).pvalue > 1e-4
    a = next(assign(u, {}, spec) for u in IDS.tolist() if assign(u, {}, spec).in_experiment)
    assert a.shadow_variants == ("treatment",) and a.reason == "shadow"


def test_interleave_and_bluegreen() -> None:
    a = assign("u1", {}, make(mode="interleave"))
    assert (a.variant, a.interleave_variants, a.reason) == (
        "control",
        ("control", "treatment"),
        "interleave",
    )
    b = assign("u1", {}, make(mode="bluegreen", bluegreen={"active": "treatment"}))
    assert (b.variant, b.reason, b.bucket) == ("treatment", "bluegreen", None)
    assert assign("u1", {}, make(mode="bluegreen")).variant == "control"


def test_kill_switch_sends_everyone_to_control_immediately() -> None:
    spec = make(forced={"qa": "treatment"}, enabled=False)
    batch = assign_batch(np.array(["qa", *IDS[:500].tolist()]), spec)
    assert set(batch.variants.tolist()) == {"control"}
    assert set(batch.reasons.tolist()) == {"kill_switch"}
    assert not batch.in_experiment.any()
