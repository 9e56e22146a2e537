"""Switchback: (cluster, window) randomization, carry-over buffers and window export."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from scipy import stats

from proving.assign import assign, assign_batch
from proving.assign.switchback import export_windows, window_assignment, window_index
from proving.errors import AssignmentError
from proving.spec import ExperimentSpec, SwitchbackSpec

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def make(**settings: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "surge",
            "mode": "switchback",
            "variants": [{"name": "current"}, {"name": "new"}],
            "switchback": {"window": "1h", "buffer": "15m", "cluster_attribute": "city",
                           "origin": T0, **settings},
        }
    )  # fmt: skip


def test_window_index_is_exact_at_boundaries() -> None:
    s = SwitchbackSpec(window=timedelta(minutes=30), origin=T0)
    assert window_index(s, T0) == 0
    assert window_index(s, T0 + timedelta(minutes=30) - timedelta(microseconds=1)) == 0
    assert window_index(s, T0 + timedelta(minutes=30)) == 1
    assert window_index(s, T0 - timedelta(microseconds=1)) == -1
    with pytest.raises(AssignmentError, match=r"time zone"):
        window_index(s, datetime(2026, 1, 5))


def test_every_unit_of_a_cluster_shares_the_window_variant() -> None:
    spec = make()
    now = T0 + timedelta(hours=7, minutes=40)
    window = window_assignment(spec, "paris", now)
    for unit in ("r1", "r2", "r3", "r4"):
        a = assign(unit, {"city": "paris"}, spec, now=now)
        assert a.variant == window.variant and a.window == window
        assert a.reason == "switchback" and a.in_experiment


def test_buffer_only_after_a_switch_and_only_in_its_first_minutes() -> None:
    spec = make()
    windows = export_windows(spec, ["paris"], T0, T0 + timedelta(hours=48))
    switched = [w for w in windows if w.switched]
    steady = [w for w in windows if not w.switched]
    assert switched and steady
    for w in switched:
        assert w.in_buffer and w.buffer_end == w.start + timedelta(minutes=15)
        early = assign("r1", {"city": "paris"}, spec, now=w.start + timedelta(minutes=5))
        late = assign("r1", {"city": "paris"}, spec, now=w.start + timedelta(minutes=20))
        assert early.in_buffer and not late.in_buffer
        assert early.variant == late.variant == w.variant
    for w in steady:
        assert not w.in_buffer and w.buffer_end == w.start
        assert not assign("r1", {"city": "paris"}, spec, now=w.start).in_buffer
    for prev, cur in itertools.pairwise(windows):
        assert cur.switched == (prev.variant != cur.variant)
        assert cur.start == prev.end


def test_export_equals_window_by_window_assignment() -> None:
    spec = make()
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(hours=30)
    windows = export_windows(spec, ["paris", "berlin", "rome"], start, end)
    assert len(windows) == 3 * 30  # end is exclusive: windows 0..29
    for w in windows:
        assert w == window_assignment(spec, w.cluster, w.start + timedelta(minutes=1))
    row = windows[0].to_dict()
    assert set(row) >= {"start", "end", "cluster", "variant", "in_buffer", "buffer_end"}


def test_windows_are_balanced_and_clusters_independent() -> None:
    spec = make()
    clusters = [f"city-{i}" for i in range(40)]
    windows = export_windows(spec, clusters, T0, T0 + timedelta(days=50))
    names = np.array([w.variant for w in windows]).reshape(len(clusters), -1)
    counts = [int(np.sum(names == "current")), int(np.sum(names == "new"))]
    assert stats.chisquare(counts).pvalue > 1e-3
    # Consecutive windows of a cluster are independent draws: switches happen half the time.
    switches = int(np.sum(names[:, 1:] != names[:, :-1]))
    assert stats.binomtest(switches, names[:, 1:].size, 0.5).pvalue > 1e-3


def test_missing_cluster_and_global_cluster() -> None:
    spec = make()
    now = T0 + timedelta(hours=1)
    a = assign("r1", {}, spec, now=now)
    assert (a.reason, a.variant, a.in_experiment) == ("no_cluster", "current", False)
    global_spec = make(cluster_attribute=None)
    b = assign("r1", {}, global_spec, now=now)
    assert b.window is not None and b.window.cluster == "all"


def test_batch_equals_scalar() -> None:
    spec = make()
    ids = np.array([f"r{i}" for i in range(600)])
    attrs = [{"city": ["paris", "berlin", "", "rome"][i % 4]} for i in range(600)]
    for minutes in (5, 50, 185):
        now = T0 + timedelta(minutes=minutes)
        batch = assign_batch(ids, spec, attributes=attrs, now=now)
        for i, unit in enumerate(ids.tolist()):
            a = assign(unit, attrs[i], spec, now=now)
            assert (a.variant, a.reason, a.in_buffer) == (
                batch.variants[i],
                batch.reasons[i],
                batch.in_buffer[i],
            )
    with pytest.raises(AssignmentError, match=r"needs `attributes`"):
        assign_batch(ids, spec, now=T0)


def test_errors() -> None:
    spec = make()
    with pytest.raises(AssignmentError, match=r"switchback mode.*`now` is missing"):
        assign("r1", {"city": "paris"}, spec)
    with pytest.raises(AssignmentError, match=r"must be after `start`"):
        export_windows(spec, ["paris"], T0, T0)
    ab = ExperimentSpec.model_validate({"name": "x", "variants": [{"name": "a"}, {"name": "b"}]})
    with pytest.raises(AssignmentError, match=r"has mode 'ab', not switchback"):
        window_assignment(ab, "paris", T0)
