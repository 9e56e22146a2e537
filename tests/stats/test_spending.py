"""Alpha-spending functions against their closed forms (evaluated with scipy here) and
their defining properties: 0 at t = 0, alpha at t = 1, increasing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from proving.errors import StatsInputError
from proving.stats import group_sequential
from proving.stats.spending import SPENDING_FUNCTIONS, alpha_spent


def test_spending_functions_reach_alpha_and_start_at_zero() -> None:
    t = np.array([0.0, 0.5, 1.0])
    for name in ("obrien_fleming", "pocock", "hwang_shih_decani", "power"):
        a = alpha_spent(t, alpha=0.025, spending=name)  # type: ignore[arg-type]
        assert a[0] == pytest.approx(0.0, abs=1e-12)
        assert a[2] == pytest.approx(0.025, rel=1e-12)
        assert 0 < a[1] < 0.025
    assert alpha_spent(0.5, alpha=0.1, spending="hwang_shih_decani", parameter=0.0) == (
        pytest.approx(0.05)
    )


def test_spending_functions_equal_their_closed_forms() -> None:
    t = np.array([0.1, 0.37, 0.8])
    a = 0.025
    z = stats.norm.isf(a / 2)
    expected = {
        "obrien_fleming": 2 * stats.norm.sf(z / np.sqrt(t)),  # Lan & DeMets 1983
        "pocock": a * np.log(1 + (math.e - 1) * t),  # Lan & DeMets 1983
        "hwang_shih_decani": a * (1 - np.exp(4 * t)) / (1 - math.exp(4)),  # gamma = -4
        "power": a * t**3,  # rho = 3
    }
    for name in SPENDING_FUNCTIONS:
        got = alpha_spent(t, alpha=a, spending=name)  # type: ignore[arg-type]
        np.testing.assert_allclose(got, expected[name], rtol=1e-12)
        assert np.all(np.diff(alpha_spent(np.linspace(0, 1, 50), alpha=a, spending=name)) >= 0)  # type: ignore[arg-type]
    hsd = alpha_spent(t, alpha=a, spending="hwang_shih_decani", parameter=1.0)
    np.testing.assert_allclose(hsd, a * (1 - np.exp(-t)) / (1 - math.exp(-1)), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spending": "linear"}, "`spending` must be one of"),
        (
            {"spending": "power", "parameter": 0.0},
            r"rho\) of the power spending function must be > 0",
        ),
        ({"alpha": 0.0}, r"`alpha` must be a number in \(0, 1\)"),
    ],
)
def test_bad_spending_raises_with_the_fix(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(StatsInputError, match=match):
        alpha_spent(0.5, **kwargs)  # type: ignore[arg-type]


def test_old_import_path_still_works() -> None:
    assert group_sequential.alpha_spent is alpha_spent
