"""The parameters of analyze(): checked before any data is read, with the fix in the message."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from proving.errors import StatsInputError
from proving.stats import analysis_options as options_module
from proving.stats.analysis_options import AnalysisOptions, check_options
from proving.stats.analyze import Correction, analyze
from proving.stats.sufficient import ArmStats

GOOD = {
    "alpha": 0.05,
    "effect": "relative",
    "relative_method": "delta",
    "method": "welch",
    "alternative": "two-sided",
    "correction": "none",
    "families": None,
    "srm_threshold": 0.001,
}


def _row(variant: str, values: np.ndarray) -> dict:
    return {"variant": variant, "metric": "m", **ArmStats.from_values(values).to_flat()}


BAD = [
    ({"alpha": 0.7}, r"`alpha` must be a number in \(0, 0.5\]; got 0.7"),
    ({"effect": "ratio"}, r"`effect` must be one of"),
    ({"correction": "bonferroni"}, r"`correction` must be one of 'none', 'holm', 'bh'"),
    ({"srm_threshold": 2}, r"`srm_threshold` must be in \(0, 1\); got 2\. Use 0\.001"),
    ({"srm_threshold": "0.01"}, r"`srm_threshold` must be in \(0, 1\); got '0\.01'"),
    ({"families": {"m": "tertiary"}}, r"families\['m'\] must be one of .*got 'tertiary'"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD)
def test_bad_parameters_raise(kwargs, match):
    rows = [_row("control", np.arange(5.0)), _row("b", np.arange(6.0))]
    with pytest.raises(StatsInputError, match=match):
        analyze(rows, **kwargs)
    with pytest.raises(StatsInputError, match=match):
        check_options(**{**GOOD, **kwargs})


def test_parameters_are_checked_before_the_table_is_read(tmp_path):
    with pytest.raises(StatsInputError, match=r"`correction` must be one of"):
        analyze(tmp_path / "missing.csv", correction="bonferroni")  # type: ignore[arg-type]
    with pytest.raises(StatsInputError, match=r"no such file"):
        analyze(tmp_path / "missing.csv")


@pytest.mark.parametrize("correction", ["none", "holm", "bh"])
def test_good_parameters_pass_and_the_options_are_frozen(correction: Correction):
    check_options(**{**GOOD, "correction": correction, "families": {"m": "guardrail"}})
    opts = AnalysisOptions("control", 0.05, "relative", "delta", "welch", "two-sided")
    with pytest.raises(AttributeError):
        opts.alpha = 0.1  # type: ignore[misc]


def test_docstring_examples():
    assert doctest.testmod(options_module).failed == 0
