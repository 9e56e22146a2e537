"""assign_batch: errors, input columns, and columns out (the equality with the scalar path
is tested per mode in test_assignment.py and as a property in test_properties.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from proving.assign import assign, assign_batch
from proving.errors import AssignmentError
from proving.spec import ExperimentSpec

IDS = np.array([f"u{i}" for i in range(2_000)])


def make(**kwargs: Any) -> ExperimentSpec:
    data: dict[str, Any] = {
        "name": "exp",
        "variants": [{"name": "control"}, {"name": "treatment"}],
    }
    data.update(kwargs)
    return ExperimentSpec.model_validate(data)


def test_batch_errors() -> None:
    spec = make(targeting={"country": "US"})
    with pytest.raises(AssignmentError, match=r"one-dimensional"):
        assign_batch(np.array([["a", "b"]]), spec)
    with pytest.raises(AssignmentError, match=r"2 attribute rows for 3 unit ids"):
        assign_batch(np.array(["a", "b", "c"]), spec, attributes=[{}, {}])
    with pytest.raises(AssignmentError, match=r"needs `attributes`"):
        assign_batch(np.array(["a"]), spec)
    with pytest.raises(AssignmentError, match=r"`now` is missing"):
        assign_batch(np.array(["a"]), make(schedule={"start": "2026-01-01T00:00:00Z"}))


def test_batch_accepts_object_and_bytes_columns() -> None:
    spec = make()
    objects = np.array(["a", 7, None], dtype=object)
    batch = assign_batch(objects, spec)
    assert batch.reasons.tolist()[2] == "no_unit"
    assert batch.variants[1] == assign("7", {}, spec).variant
    raw = assign_batch(np.array([b"a", b"b"]), spec)
    assert raw.variants.tolist() == [assign(u, {}, spec).variant for u in ("a", "b")]


def test_batch_columns_load_into_duckdb() -> None:
    import duckdb
    import pyarrow as pa

    spec = make(coverage=0.5)
    batch = assign_batch(IDS[:1000], spec)
    table = pa.table(batch.to_columns())
    con = duckdb.connect()
    con.register("assignments", table)
    rows = con.execute(
        "select variant, count(*) from assignments where in_experiment group by 1 order by 1"
    ).fetchall()
    assert dict(rows) == {k: v for k, v in batch.counts().items() if v}
