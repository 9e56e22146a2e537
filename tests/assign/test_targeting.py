"""Targeting and control gates: order, schedule bounds, allowlist, segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from proving.assign.targeting import GATE_REASONS, decide_targeting, decide_targeting_batch
from proving.errors import AssignmentError
from proving.spec import ExperimentSpec

START = datetime(2026, 3, 1, tzinfo=UTC)
STOP = datetime(2026, 3, 29, tzinfo=UTC)


def make(**kwargs: Any) -> ExperimentSpec:
    data: dict[str, Any] = {
        "name": "exp",
        "unit": "user_id",
        "variants": [{"name": "control"}, {"name": "treatment"}],
        "forced": {"qa": "treatment"},
        "allowlist": ["beta"],
        "targeting": {"country": {"$in": ["US", "CA"]}},
        "schedule": {"start": START, "stop": STOP},
    }
    data.update(kwargs)
    return ExperimentSpec.model_validate(data)


NOW = START + timedelta(days=1)


def test_kill_switch_beats_everything() -> None:
    spec = make(enabled=False)
    for unit in ("qa", "beta", "u1", None):
        d = decide_targeting(unit, {"country": "US"}, spec, NOW)
        assert (d.reason, d.variant, d.bypass) == ("kill_switch", "control", False)


def test_forced_variant_applies_even_outside_the_schedule() -> None:
    d = decide_targeting("qa", {}, make(), START - timedelta(days=3))
    assert (d.reason, d.variant) == ("forced", "treatment")
    assert "forced" in d.detail


def test_schedule_start_is_inclusive_and_stop_exclusive() -> None:
    spec = make()
    assert decide_targeting("u1", {"country": "US"}, spec, START).reason is None
    assert (
        decide_targeting("u1", {"country": "US"}, spec, START - timedelta(microseconds=1)).reason
        == "not_started"
    )
    assert (
        decide_targeting("u1", {"country": "US"}, spec, STOP - timedelta(microseconds=1)).reason
        is None
    )
    stopped = decide_targeting("u1", {"country": "US"}, spec, STOP)
    assert (stopped.reason, stopped.variant) == ("stopped", "control")
    assert STOP.isoformat() in stopped.detail


def test_missing_unit() -> None:
    for unit in (None, ""):
        d = decide_targeting(unit, {"country": "US"}, make(), NOW)
        assert (d.reason, d.variant) == ("no_unit", "control")
        assert "user_id" in d.detail


def test_allowlist_bypasses_targeting() -> None:
    d = decide_targeting("beta", {"country": "FR"}, make(), NOW)
    assert (d.reason, d.variant, d.bypass) == ("allowlist", None, True)
    assert not d.decided


def test_segment_condition() -> None:
    spec = make()
    assert decide_targeting("u1", {"country": "FR"}, spec, NOW).reason == "not_targeted"
    ok = decide_targeting("u1", {"country": "CA"}, spec, NOW)
    assert ok.reason is None and ok.variant is None


def test_condition_sees_the_unit_id_and_saved_groups() -> None:
    spec = make(
        targeting={"user_id": {"$inGroup": "employees"}},
        saved_groups={"employees": ["alice", "bob"]},
        schedule=None,
    )
    assert decide_targeting("alice", {}, spec).reason is None
    assert decide_targeting("carol", {}, spec).reason == "not_targeted"


def test_time_based_spec_needs_an_aware_now() -> None:
    with pytest.raises(AssignmentError, match=r"has a schedule.*`now` is missing"):
        decide_targeting("u1", {}, make())
    with pytest.raises(AssignmentError, match=r"must carry a time zone"):
        decide_targeting("u1", {}, make(), datetime(2026, 3, 2))
    # A spec without a schedule never reads the clock.
    assert decide_targeting("u1", {"country": "US"}, make(schedule=None)).reason is None


def test_batch_gates_equal_scalar_gates() -> None:
    spec = make()
    ids = np.array(["qa", "beta", "", "u1", "u2", "u3"])
    attrs = [{"country": c} for c in ("FR", "FR", "US", "US", "FR", "CA")]
    for now in (START - timedelta(days=1), NOW, STOP):
        codes, forced = decide_targeting_batch(ids, spec, attrs, now)
        for i, unit in enumerate(ids.tolist()):
            d = decide_targeting(unit, attrs[i], spec, now)
            assert (d.reason or "") == GATE_REASONS[codes[i]]
            assert forced[i] == (1 if d.reason == "forced" else -1)
    with pytest.raises(AssignmentError, match=r"needs `attributes`"):
        decide_targeting_batch(ids, spec, None, NOW)
    killed, _ = decide_targeting_batch(ids, make(enabled=False), None, NOW)
    assert {GATE_REASONS[c] for c in killed.tolist()} == {"kill_switch"}
