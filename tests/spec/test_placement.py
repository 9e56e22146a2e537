"""Placement specs: slices of [0, 1] and holdout fractions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from proving.spec import DomainPlacementSpec, HoldoutSpec, LayerPlacementSpec


def test_salts_default_to_names() -> None:
    assert LayerPlacementSpec(name="ranking").hash_salt == "ranking"
    assert LayerPlacementSpec(name="ranking", salt="r2").hash_salt == "r2"
    assert HoldoutSpec(fraction=0.05).hash_salt == "holdout"
    assert LayerPlacementSpec(name="x").range == (0.0, 1.0)


@pytest.mark.parametrize("rng", [(0.5, 0.5), (0.6, 0.4), (-0.1, 0.5), (0.0, 1.1)])
def test_bad_ranges(rng: tuple[float, float]) -> None:
    with pytest.raises(ValidationError, match=r"must be \[start, end\) with 0 <= start < end"):
        LayerPlacementSpec(name="x", range=rng)
    with pytest.raises(ValidationError, match=r"domain range must be"):
        DomainPlacementSpec(name="d", range=rng)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_holdout_fraction_is_a_proper_share(fraction: float) -> None:
    with pytest.raises(ValidationError, match=r"fraction"):
        HoldoutSpec(fraction=fraction)
