"""Metric definitions: YAML loading, defaults, and bad definitions with clear errors that
name the file, the field and the fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from proving.errors import SpecError
from proving.metrics.definitions import (
    format_duration,
    load_metrics_spec,
    parse_duration,
    parse_metrics_spec,
)

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "metrics.yaml"


def spec_with(metric: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"experiment": "checkout", "metrics": [{"name": "m", **metric}], **top}


def test_example_file_loads() -> None:
    spec = load_metrics_spec(EXAMPLE)
    by_name = {m.name: m for m in spec.metrics}
    assert spec.segments == ("country", "platform")
    revenue = by_name["revenue"]
    assert revenue.window.end == timedelta(days=7)
    assert revenue.covariate is not None and revenue.covariate.window == timedelta(days=14)
    assert revenue.covariate_names() == ("pre_revenue",)
    assert by_name["order_value"].covariate_names() == (
        "pre_order_value",
        "pre_order_value_denominator",
        "pre_order_value_any",
    )
    assert by_name["clicks"].output_kind() == "mean"
    assert by_name["served_errors"].numerator_measure().aggregation == "any"


@pytest.mark.parametrize(
    ("metric", "aggregation", "value", "fill"),
    [
        ({"kind": "mean", "event": "purchase"}, "sum", "value", True),
        ({"kind": "proportion", "event": "purchase"}, "any", None, True),
        ({"kind": "count", "event": "click"}, "count", None, True),
        ({"kind": "mean", "source": "predictions"}, "count", None, True),
        (
            {"kind": "mean", "source": "predictions", "value": "latency_ms"},
            "sum",
            "latency_ms",
            True,
        ),
        ({"kind": "mean", "event": "purchase", "aggregation": "max"}, "max", "value", False),
    ],
)
def test_defaults(metric: dict[str, Any], aggregation: str, value: str | None, fill: bool) -> None:
    m = parse_metrics_spec(spec_with(metric)).metrics[0]
    measure = m.numerator_measure()
    assert measure.aggregation == aggregation
    assert measure.value_column() == value
    assert m.fill_missing() is fill


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 604800), ("12h", 43200), ("30m", 1800), ("45s", 45), ("2w", 1209600), (90, 90)],
)
def test_durations(text: object, seconds: int) -> None:
    d = parse_duration(text, field="x")
    assert d.total_seconds() == seconds
    assert parse_duration(format_duration(d), field="x") == d


BAD: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"kind": "median"}, {}, r"metrics\[0\] \('m'\)\.kind.*'mean'.*got 'median'"),
    ({"event": "purchase", "colour": 1}, {}, r"metrics\[0\] \('m'\)\.colour`: unknown field"),
    ({"kind": "ratio", "event": "purchase"}, {}, "needs both `numerator` and `denominator`"),
    (
        {"kind": "ratio", "numerator": {"event": "a"}, "denominator": {"event": "b"}, "event": "c"},
        {},
        "move event there",
    ),
    ({"numerator": {"event": "a"}}, {}, "numerator/denominator are for kind 'ratio'"),
    ({"kind": "proportion", "aggregation": "sum"}, {}, "aggregation 'any'"),
    ({"kind": "count", "aggregation": "sum"}, {}, "count metric uses aggregation 'count'"),
    ({"source": "predictions", "event": "x"}, {}, "works only with source 'outcomes'"),
    ({"source": "predictions", "value": "status"}, {}, "numeric column of predictions"),
    ({"source": "predictions", "aggregation": "max"}, {}, "needs `value`"),
    (
        {"filters": [{"column": "colour", "value": "x"}]},
        {},
        "filter column 'colour' is not a column of outcomes",
    ),
    ({"filters": [{"column": "name", "op": "in", "value": "x"}]}, {}, "non-empty list"),
    ({"filters": [{"column": "name", "op": "is_null", "value": 1}]}, {}, "takes no value"),
    ({"filters": [{"column": "name", "op": "like", "value": "x"}]}, {}, "got 'like'"),
    ({"filters": [{"column": "value", "op": "gt", "value": "ten"}]}, {}, "needs a number"),
    (
        {"source": "predictions", "filters": [{"column": "model_version", "value": 2}]},
        {},
        "Quote it in YAML",
    ),
    ({"window": {"end": "soon"}}, {}, "window.end must be a duration"),
    ({"window": {"start": "2d", "end": "1d"}}, {}, r"must be after window.start"),
    ({"covariate": {"window": "0d"}}, {}, "covariate.window must be positive"),
    ({"capping": {}}, {}, "exactly one of `value`"),
    ({"capping": {"quantile": 0.2}}, {}, r"capping.quantile must be in \[0.5, 1\)"),
    ({"kind": "quantile", "value": "value"}, {}, "needs `quantile: {p: 0.9}`"),
    ({"kind": "quantile", "value": "value", "quantile": {"p": 1.5}}, {}, r"in \(0, 1\)"),
    ({"quantile": {"p": 0.5}}, {}, "`quantile` is for kind 'quantile'"),
    ({"name": "bad name"}, {}, "metric name must use letters"),
    ({}, {"segments": ["country code"]}, "attribute key of letters"),
    ({}, {"segments": ["a", "a"]}, "segments repeat"),
    ({}, {"multiple_exposures": "drop"}, "'exclude' or 'first'"),
    ({}, {"experiments": ["b"]}, "not both"),
]


@pytest.mark.parametrize(("metric", "top", "message"), BAD)
def test_bad_definitions(metric: dict[str, Any], top: dict[str, Any], message: str) -> None:
    doc = spec_with(metric, **top)
    if "name" in metric:
        doc["metrics"][0]["name"] = metric["name"]
    with pytest.raises(SpecError, match=message):
        parse_metrics_spec(doc, where="exp.yaml")


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text("experiment: x\nmetrics:\n  - name: a\n    kind: ratio\n")
    with pytest.raises(SpecError, match=rf"{path}: field `metrics\[0\] \('a'\)`: a ratio"):
        load_metrics_spec(path)


def test_duplicate_metric_names_and_missing_experiment() -> None:
    with pytest.raises(SpecError, match="metric names repeat: \\['a'\\]"):
        parse_metrics_spec({"experiment": "x", "metrics": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(SpecError, match="name the experiment"):
        parse_metrics_spec({"metrics": [{"name": "a"}]})
    with pytest.raises(SpecError, match="`metrics` is empty"):
        parse_metrics_spec({"experiment": "x", "metrics": []})


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the metrics spec"):
        load_metrics_spec(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: [x\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_metrics_spec(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_metrics_spec(bad)
