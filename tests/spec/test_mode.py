"""Mode settings: canary steps, switchback windows, shadow rates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from proving.spec import CanarySpec, ShadowSpec, SwitchbackSpec


def test_canary_current_weight_defaults_to_first_step() -> None:
    assert CanarySpec().current_weight == 0.01
    assert CanarySpec(weight=0.3).current_weight == 0.3
    spec = CanarySpec.model_validate({"steps": [{"weight": 0.1, "duration": "6h"}, {"weight": 1}]})
    assert spec.steps[0].duration == timedelta(hours=6)


def test_switchback_durations() -> None:
    s = SwitchbackSpec.model_validate({"window": "1h30m", "buffer": "90s"})
    assert s.window == timedelta(minutes=90) and s.buffer == timedelta(seconds=90)
    assert SwitchbackSpec.model_validate({"window": 3600}).window == timedelta(hours=1)
    assert SwitchbackSpec.model_validate({"window": "PT2H"}).window == timedelta(hours=2)


@pytest.mark.parametrize(
    ("model", "data", "pattern"),
    [
        (CanarySpec, {"steps": [{"weight": 0.5}, {"weight": 0.1}]}, r"strictly increasing"),
        (CanarySpec, {"steps": []}, r"at least 1 item"),
        (CanarySpec, {"weight": 1.5}, r"less than or equal to 1"),
        (SwitchbackSpec, {"window": "1h", "buffer": "1h"}, r"buffer must be in \[0, window\)"),
        (SwitchbackSpec, {"window": 0}, r"window must be positive"),
        (SwitchbackSpec, {"window": "an hour"}, r"valid timedelta"),
        (SwitchbackSpec, {"origin": "2026-01-01T00:00:00"}, r"timezone"),
        (ShadowSpec, {"sample_rate": 2}, r"less than or equal to 1"),
        (ShadowSpec, {"max_concurrency": 0}, r"greater than or equal to 1"),
    ],
)
def test_mode_rules(model: Any, data: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        model.model_validate(data)
