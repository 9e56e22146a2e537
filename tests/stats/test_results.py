"""Result dataclasses: plain-data conversion, strict JSON, round trips."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import numpy as np
import pytest

from proving.errors import StatsInputError
from proving.stats.results import (
    AnalysisResult,
    ComparisonResult,
    ResultBase,
    comparisons_from_columns,
    to_plain,
)
from proving.stats.srm import SRMResult, srm_check


def _comparison(**kw: object) -> ComparisonResult:
    base: dict[str, object] = {
        "experiment": "checkout",
        "metric": "revenue",
        "variant": "b",
        "estimate": 0.05,
        "ci_lower": 0.01,
        "ci_upper": 0.09,
        "p_value": 0.02,
        "covariates": ("pre", "has_pre"),
        "warnings": ("something to know",),
    }
    base.update(kw)
    return ComparisonResult(**base)  # type: ignore[arg-type]


def test_to_plain_converts_nan_inf_numpy_and_tuples():
    value = {
        "a": np.float64(1.5),
        "b": float("nan"),
        "c": (1, np.int64(2)),
        "d": np.array([1.0, np.inf]),
        "e": float("-inf"),
        "f": np.bool_(True),
    }
    assert to_plain(value) == {
        "a": 1.5,
        "b": None,
        "c": [1, 2],
        "d": [1.0, None],
        "e": None,
        "f": True,
    }
    assert type(to_plain(np.int64(3))) is int


def test_comparison_round_trips_through_json():
    r = _comparison(ci_upper=math.inf, df=np.float64(37.5), n_control=np.int64(10))
    text = r.to_json()
    data = json.loads(text)
    assert data["ci_upper"] is None  # a one-sided interval's infinite end
    assert data["covariates"] == ["pre", "has_pre"]
    assert isinstance(data["df"], float) and isinstance(data["n_control"], int)
    back = ComparisonResult.from_dict(data)
    assert back.covariates == ("pre", "has_pre") and back.warnings == ("something to know",)
    assert back.to_dict() == r.to_dict()


def test_json_is_strict_and_field_names_are_snake_case():
    r = _comparison(p_value=float("nan"), estimate=None, reason="an arm is empty")
    data = json.loads(r.to_json())
    assert data["p_value"] is None and data["reason"] == "an arm is empty"
    assert all(k == k.lower() and " " not in k for k in data)


def test_required_fields_are_named():
    with pytest.raises(TypeError, match="metric"):
        ComparisonResult(variant="b")  # type: ignore[call-arg]


def test_from_dict_rejects_unknown_fields():
    data = _comparison().to_dict()
    data["pvalue"] = 0.1
    with pytest.raises(StatsInputError, match=r"unknown field\(s\) \['pvalue'\]"):
        ComparisonResult.from_dict(data)
    with pytest.raises(StatsInputError, match="needs a mapping; got list"):
        ComparisonResult.from_dict([1, 2])  # type: ignore[arg-type]


def test_results_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _comparison().estimate = 1.0  # type: ignore[misc]


def test_significance_uses_the_adjusted_p_value_when_present():
    assert _comparison(p_value=0.02).significant is True
    assert _comparison(p_value=0.02, adjusted_p_value=0.08).significant is False
    assert _comparison(p_value=None, reason="x").significant is None
    assert _comparison(p_value=None, estimate=None, reason="x").has_answer is False


def test_analysis_result_round_trips_with_srm():
    srm = srm_check([1000, 1100], variants=["control", "b"])
    result = AnalysisResult(
        comparisons=(_comparison(), _comparison(variant="c")),
        srm=(srm,),
        srm_scope=(("checkout", "all"),),
        warnings=("w",),
    )
    data = json.loads(result.to_json())
    assert data["srm"][0]["variants"] == ["control", "b"]
    back = AnalysisResult.from_dict(data)
    assert isinstance(back.srm[0], SRMResult) and back.srm[0] == srm
    assert back.comparisons[1].variant == "c"
    assert back.srm_scope == (("checkout", "all"),)
    assert back.to_dict() == result.to_dict()
    assert back.find("revenue", "c").variant == "c"
    with pytest.raises(KeyError, match="metric='ctr'"):
        back.find("ctr", "c")


def test_result_base_works_for_any_frozen_dataclass():
    @dataclasses.dataclass(frozen=True)
    class ThingResult(ResultBase):
        values: tuple[float, ...]
        inner: ComparisonResult | None = None

    thing = ThingResult(values=(1.0, float("nan")), inner=_comparison())
    back = ThingResult.from_dict(json.loads(thing.to_json()))
    assert back.values == (1.0, None)
    assert back.inner == _comparison()


def _columns() -> dict[str, list[object]]:
    return {
        "metric": ["revenue", "ctr"],
        "variant": ["b", "c"],
        "estimate": [0.05, None],
        "p_value": [0.02, None],
        "covariates": [("pre",), ()],
        "reason": [None, "an arm is empty"],
        "warnings": [(), ("w",)],
    }


def test_comparisons_from_columns_equal_normally_built_results():
    built = comparisons_from_columns(_columns())
    rows = [
        dict(zip(_columns(), values, strict=True))
        for values in zip(*_columns().values(), strict=True)
    ]
    expected = tuple(ComparisonResult(**row) for row in rows)  # type: ignore[arg-type]
    assert built == expected and [hash(b) for b in built] == [hash(e) for e in expected]
    assert built[1].segment == "all" and built[1].adjusted_p_value is None  # defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        built[0].estimate = 1.0  # type: ignore[misc]
    with pytest.raises(StatsInputError, match=r"unknown field\(s\) \['pvalue'\]"):
        comparisons_from_columns({**_columns(), "pvalue": [1, 2]})
    with pytest.raises(StatsInputError, match=r"the column\(s\) \['variant'\] are required"):
        comparisons_from_columns({"metric": ["m"]})
    with pytest.raises(StatsInputError, match="differ in length"):
        comparisons_from_columns({**_columns(), "alpha": [0.1]})


def test_a_columnar_analysis_result_builds_its_comparisons_once_and_on_demand():
    calls = []

    def columns() -> dict[str, list[object]]:
        calls.append(1)
        return _columns()

    srm = srm_check([1000, 1100], variants=["control", "b"])
    lazy = AnalysisResult.from_columns(columns, srm=(srm,), srm_scope=(("", "all"),))
    assert lazy.comparison_columns()["estimate"] == [0.05, None] and len(calls) == 1
    assert lazy.comparison_columns()["alpha"] == [0.05, 0.05]  # defaults filled in
    eager = AnalysisResult(
        comparisons=comparisons_from_columns(_columns()), srm=(srm,), srm_scope=(("", "all"),)
    )
    assert lazy == eager and len(calls) == 3
    assert lazy.comparisons is lazy.comparisons and len(calls) == 3  # built once, kept
    assert lazy.to_dict() == eager.to_dict()
    assert eager.comparison_columns() == lazy.comparison_columns()
    assert pickle.loads(pickle.dumps(AnalysisResult.from_columns(columns))) == AnalysisResult(
        comparisons=eager.comparisons
    )
    assert dataclasses.replace(lazy, warnings=("x",)).comparisons == eager.comparisons
    with pytest.raises(dataclasses.FrozenInstanceError):
        lazy.comparisons = ()  # type: ignore[misc]
    assert AnalysisResult().comparisons == () and AnalysisResult.comparisons == ()
