"""Metric specs: kinds, margins and unique names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from proving.spec import MetricSpec, MetricsSpec


def test_single_mapping_is_a_one_item_list() -> None:
    metrics = MetricsSpec.model_validate({"primary": {"name": "ctr", "kind": "proportion"}})
    assert [m.name for m in metrics.all()] == ["ctr"]


def test_all_orders_primary_secondary_guardrails() -> None:
    metrics = MetricsSpec.model_validate(
        {
            "primary": [{"name": "a"}],
            "secondary": [{"name": "b"}],
            "guardrails": [{"name": "c", "direction": "decrease", "non_inferiority_margin": 0.05}],
        }
    )
    assert [m.name for m in metrics.all()] == ["a", "b", "c"]
    assert metrics.guardrails[0].non_inferiority_margin == 0.05


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"name": "r", "kind": "ratio"}, r"needs `numerator` and `denominator`"),
        ({"name": "m", "numerator": "x"}, r"only apply to ratio metrics"),
        ({"name": "q", "kind": "quantile"}, r"without `quantile`"),
        ({"name": "m", "quantile": 0.5}, r"has `quantile` but kind 'mean'"),
        ({"name": "m", "non_inferiority_margin": 5}, r"relative non_inferiority_margin.*below 1"),
        ({"name": "m", "non_inferiority_margin": -1}, r"greater than 0"),
        ({"name": "m", "direction": "up"}, r"'increase' or 'decrease'"),
        ({"name": "m", "kind": "median"}, r"'mean', 'proportion', 'ratio'"),
    ],
)
def test_metric_rules(data: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        MetricSpec.model_validate(data)


def test_absolute_margins_may_exceed_one() -> None:
    m = MetricSpec(name="latency_ms", non_inferiority_margin=25.0, margin_type="absolute")
    assert m.non_inferiority_margin == 25.0


def test_duplicate_names_across_groups() -> None:
    with pytest.raises(ValidationError, match=r"'ctr' appears more than once"):
        MetricsSpec.model_validate({"primary": [{"name": "ctr"}], "guardrails": [{"name": "ctr"}]})
