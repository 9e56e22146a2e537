"""Result columns: reading comparisons as columns, writing rows back, building objects."""

from __future__ import annotations

import gc
from dataclasses import replace

import numpy as np
import pytest

from proving.stats import always_valid, bayesian, normal_posterior, sequential
from proving.stats.analyze import analyze
from proving.stats.result_columns import (
    gc_paused,
    objects_from_states,
    plain_list,
    read_columns,
    scatter,
)
from proving.stats.results import ComparisonResult


def _rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for k, (s_c, s_t) in enumerate([(10.0, 12.0), (20.0, 19.0), (5.0, 9.0)]):
        for variant, s in (("control", s_c), ("b", s_t)):
            rows.append({"variant": variant, "metric": f"m{k}", "n": 100, "sum": s,
                         "sum_squares": s * s / 100 + 50.0})  # fmt: skip
    return rows


def test_read_columns_of_objects_equals_the_analysis_columns() -> None:
    result = analyze(_rows(), effect="absolute")
    objects = list(result.comparisons)
    names = ("metric", "variant", "estimate", "std_err", "p_value")
    from_objects, kept = read_columns(objects, names)
    from_analysis, none = read_columns(result, names)
    assert kept == objects and none is None
    for name in names:
        assert list(from_objects[name]) == list(from_analysis[name])
        assert list(from_objects[name]) == [getattr(c, name) for c in objects]


def test_plain_list_turns_nan_and_infinities_into_none() -> None:
    values = plain_list(np.array([1.5, np.nan, np.inf, -np.inf, -0.25]))
    assert values == [1.5, None, None, None, -0.25]
    assert all(type(v) is float for v in values if v is not None)


def test_scatter_writes_a_new_list_at_the_positions() -> None:
    column = [0, 1, 2, 3]
    assert scatter(column, [1, 3], ["a", "b"]) == [0, "a", 2, "b"]
    assert column == [0, 1, 2, 3]  # the input is not modified
    assert scatter(column, [0, 1, 2, 3], "wxyz") == ["w", "x", "y", "z"]
    with pytest.raises(ValueError, match="zip"):
        scatter(column, [1, 2], ["only one"])


def test_objects_from_states_equal_replace_and_stay_frozen() -> None:
    originals = list(analyze(_rows(), effect="absolute").comparisons)
    states = [{**vars(c), "p_value": 0.5, "method": "z"} for c in originals]
    with gc_paused():
        assert not gc.isenabled()
        built = objects_from_states(map(type, originals), states)
    assert built == [replace(c, p_value=0.5, method="z") for c in originals]
    assert all(type(b) is ComparisonResult for b in built)
    with pytest.raises(AttributeError):
        built[0].p_value = 0.1  # type: ignore[misc]


def test_gc_paused_restores_the_collector_even_on_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_split_modules_stay_importable_from_the_old_ones() -> None:
    moved = (
        "always_valid_compare",
        "always_valid_interval",
        "tuning_rho_squared",
        "mixture_variances",
        "log_mixture_ratio",
        "confidence_sequence_halfwidth",
        "SequentialArrays",
        "DEFAULT_TUNING_N",
        "_check_alpha",
        "_check_alternative",
    )
    for name in moved:
        assert getattr(sequential, name) is getattr(always_valid, name)
    for name in ("posterior", "bayes_factor", "bayesian_compare", "BayesianArrays"):
        assert getattr(bayesian, name) is getattr(normal_posterior, name)
