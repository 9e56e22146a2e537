"""The analysis layout: groups in order of appearance, control first, pairs, and its errors."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from proving.errors import StatsInputError
from proving.stats import layout as layout_module
from proving.stats.analyze import analyze
from proving.stats.columns import read_columns
from proving.stats.layout import lay_out, pairs
from proving.stats.sufficient import ArmStats


def _row(variant: str, values: np.ndarray, **keys: str) -> dict:
    keys.setdefault("metric", "m")
    return {"variant": variant, **keys, **ArmStats.from_values(values).to_flat()}


def test_groups_control_first_and_pairs_match_a_plain_python_layout():
    rng = np.random.default_rng(5)
    keys = [
        (e, m, s, v)
        for e in ("e1", "e2")
        for m in ("a", "b", "c")
        for s in ("all", "eu")
        for v in ("control", "t1", "t2")
        if not (s == "eu" and v == "control" and m == "c")  # one group without a control
    ]
    order = rng.permutation(len(keys))
    rows = [
        _row(keys[i][3], np.arange(3.0), experiment=keys[i][0], metric=keys[i][1],
             segment=keys[i][2])
        for i in order
    ]  # fmt: skip
    cols = read_columns(rows)
    lay = lay_out(cols, "control")
    # Reference: groups by first appearance, the control first, other arms in table order.
    groups: dict[tuple[str, str, str], list[int]] = {}
    for r, row in enumerate(rows):
        groups.setdefault((row["experiment"], row["metric"], row["segment"]), []).append(r)
    expected = [
        r
        for members in groups.values()
        for r in sorted(members, key=lambda r: rows[r]["variant"] != "control")
    ]
    assert lay.order.tolist() == expected
    assert lay.has_control.tolist() == [
        any(rows[r]["variant"] == "control" for r in m) for m in groups.values()
    ]
    c, t = pairs(lay)
    got = [
        (rows[expected[j]]["variant"], None if i < 0 else rows[expected[i]]["variant"])
        for i, j in zip(c.tolist(), t.tolist(), strict=True)
    ]
    want = []
    for members in groups.values():
        variants = [rows[r]["variant"] for r in members]
        control = "control" if "control" in variants else None
        want += [(v, control) for v in variants if v != "control"]
    assert got == want
    assert sum(i < 0 for i in c.tolist()) == 4  # e1/e2 x metric c x eu: t1 and t2


def test_missing_control_everywhere_is_an_error_with_the_fix():
    rows = [_row("a", np.arange(5.0)), _row("b", np.arange(6.0))]
    with pytest.raises(
        StatsInputError, match=r"no arm is named 'control'.*\['a', 'b'\].*--control"
    ):
        analyze(rows)
    with pytest.raises(StatsInputError, match=r"no arm is named 'control'"):
        lay_out(read_columns(rows), "control")
    assert analyze(rows, control="a").comparisons[0].variant == "b"


def test_arms_that_disagree_on_kind_or_covariates_are_an_error():
    rows = [_row("control", np.arange(10.0)), {**_row("b", np.arange(10.0)), "kind": "proportion"}]
    with pytest.raises(StatsInputError, match=r"metric 'm'.*disagree on the kind"):
        analyze(rows)
    cov = ArmStats.from_values(np.arange(10.0), covariates={"x": np.arange(10.0) ** 2})
    rows = [_row("control", np.arange(10.0)), {"variant": "b", "metric": "m", **cov.to_flat()}]
    with pytest.raises(StatsInputError, match=r"or the covariates .*every arm of a metric"):
        lay_out(read_columns(rows), "control")


def test_docstring_examples():
    assert doctest.testmod(layout_module).failed == 0
