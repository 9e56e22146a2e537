"""The monitor's spec and look: validation with messages that name the fix, and JSON
round trips (a monitor's state is saved and reloaded through these)."""

from __future__ import annotations

import json

import pytest

from proving.errors import StatsInputError
from proving.stats import monitor
from proving.stats.monitor_spec import MonitorLook, MonitorSpec
from proving.stats.priors import NormalPrior


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "group_sequential"}, "`max_n` is required by method 'group_sequential'"),
        ({"method": "bayes"}, "monitor `method` must be one of"),
        ({"min_n": 1}, "monitor `min_n` must be a number >= 2"),
        ({"max_n": -5.0}, "monitor `max_n` must be a positive number"),
        ({"spending": "linear"}, "monitor `spending` must be one of"),
        ({"alpha": 0.9}, "`alpha` must be a number in"),
        ({"kind": "quantile"}, "monitor `kind` must be one of"),
        ({"tuning_n": 0.0}, r"`tuning_n` \(N\*"),
        ({"mixture_variance": -1.0}, "monitor `mixture_variance` must be a positive number"),
    ],
)
def test_bad_spec_raises_with_the_fix(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        MonitorSpec(**kwargs)  # type: ignore[arg-type]


def test_prior_needs_the_delta_lift() -> None:
    with pytest.raises(StatsInputError, match="monitor `prior` needs relative_method 'delta'"):
        MonitorSpec(prior=NormalPrior(std=0.05), relative_method="log")


def test_spec_and_look_round_trip_through_json() -> None:
    spec = MonitorSpec(
        metric="latency", method="group_sequential", max_n=5000.0, effect="absolute",
        higher_is_better=False, prior=NormalPrior(std=2.0, scale="absolute"),
    )  # fmt: skip
    assert MonitorSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    look = MonitorLook(
        look=3, decision="continue", reason="r", metric="latency", method="msprt",
        n_control=100.0, n_treatment=101.0, estimate=0.5, warnings=("w",),
    )  # fmt: skip
    assert MonitorLook.from_dict(json.loads(json.dumps(look.to_dict()))) == look


def test_old_import_path_still_works() -> None:
    assert monitor.MonitorSpec is MonitorSpec and monitor.MonitorLook is MonitorLook
