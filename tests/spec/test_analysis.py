"""Analysis settings: defaults and bounds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from proving.spec import AnalysisSpec


def test_defaults() -> None:
    a = AnalysisSpec()
    assert (a.alpha, a.power, a.effect, a.alternative) == (0.05, 0.8, "relative", "two-sided")
    assert (a.correction, a.cuped, a.sequential) == ("holm", False, "none")


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"alpha": 0.7}, r"less than or equal to 0\.5"),
        ({"alpha": 0}, r"greater than 0"),
        ({"power": 1.0}, r"less than 1"),
        ({"correction": "sidak"}, r"'none', 'bonferroni', 'holm' or 'benjamini_hochberg'"),
        ({"sequential": "bayes"}, r"'none', 'msprt' or 'group_sequential'"),
        ({"cupd": True}, r"Extra inputs are not permitted"),
        ({"min_units_per_variant": 0}, r"greater than or equal to 1"),
    ],
)
def test_bounds(data: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        AnalysisSpec.model_validate(data)
