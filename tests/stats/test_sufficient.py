import numpy as np
import pytest

from proving.errors import StatsInputError
from proving.stats.sufficient import ArmStats, stack


@pytest.fixture
def units() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "y": rng.normal(3, 2, 50),
        "d": rng.poisson(3, 50) + 1.0,
        "x1": rng.normal(size=50),
        "x2": rng.exponential(size=50),
    }


def test_moments_equal_numpy_sums(units: dict[str, np.ndarray]) -> None:
    arm = ArmStats.from_values(
        units["y"], denominators=units["d"], covariates={"x1": units["x1"], "x2": units["x2"]}
    )
    v = np.column_stack([units["y"], units["d"], units["x1"], units["x2"]])
    n, sums, cross = arm.moments()
    assert n == 50
    np.testing.assert_allclose(sums, v.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cross, v.T @ v, rtol=1e-12)
    assert arm.sum_products == pytest.approx(float(units["y"] @ units["d"]), rel=1e-12)


def test_merge_is_the_statistics_of_the_union(units: dict[str, np.ndarray]) -> None:
    cov = {"x1": units["x1"]}
    whole = ArmStats.from_values(units["y"], denominators=units["d"], covariates=cov)
    first = ArmStats.from_values(
        units["y"][:20], denominators=units["d"][:20], covariates={"x1": units["x1"][:20]}
    )
    rest = ArmStats.from_values(
        units["y"][20:], denominators=units["d"][20:], covariates={"x1": units["x1"][20:]}
    )
    merged = first + rest
    for a, b in zip(merged.moments()[1:], whole.moments()[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_flat_round_trip(units: dict[str, np.ndarray]) -> None:
    arm = ArmStats.from_values(
        units["y"], denominators=units["d"], covariates={"x1": units["x1"], "x2": units["x2"]}
    )
    flat = arm.to_flat()
    assert flat["covariate_1_2_sum_products"] == pytest.approx(
        float(units["x1"] @ units["x2"]), rel=1e-12
    )
    assert ArmStats.from_flat(flat) == arm
    csv_like = {k: (";".join(v) if isinstance(v, list) else str(v)) for k, v in flat.items()}
    assert ArmStats.from_flat(csv_like) == arm


def test_stack_shapes(units: dict[str, np.ndarray]) -> None:
    a = ArmStats.from_values(units["y"], covariates={"x1": units["x1"]})
    n, sums, cross = stack([a, a, a])
    assert n.shape == (3,) and sums.shape == (3, 2) and cross.shape == (3, 2, 2)


def test_partial_ratio_fields_are_rejected() -> None:
    with pytest.raises(StatsInputError, match="missing denominator_sum_squares, sum_products"):
        ArmStats(n=3, sum=1.0, sum_squares=1.0, denominator_sum=2.0)


def test_covariate_shape_mismatch_is_rejected() -> None:
    with pytest.raises(StatsInputError, match="covariate_sums has 2 entries but there are 1"):
        ArmStats(
            n=3,
            sum=1.0,
            sum_squares=1.0,
            covariate_names=("x",),
            covariate_sums=(1.0, 2.0),
            covariate_cross_products=((1.0,),),
            covariate_sum_products=(1.0,),
        )


def test_merging_different_metrics_is_rejected(units: dict[str, np.ndarray]) -> None:
    with pytest.raises(StatsInputError, match="cannot merge"):
        _ = ArmStats.from_values(units["y"]) + ArmStats.from_values(
            units["y"], denominators=units["d"]
        )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"sum": 1, "sum_squares": 1}, "field `n` is missing"),
        ({"n": "ten", "sum": 1, "sum_squares": 1}, "field `n` must be a number; got 'ten'"),
        ({"n": 3, "sum": 1, "sum_squares": 1, "covariate_2_sum": 1}, "numbered \\[2\\]"),
    ],
)
def test_malformed_flat_rows_name_the_field(row: dict[str, object], message: str) -> None:
    with pytest.raises(StatsInputError, match=message):
        ArmStats.from_flat(row, where="stats.csv line 2")


def test_degenerate_values_are_legal_here() -> None:
    # NaN and negative counts are explained by the analysis, not rejected on construction.
    arm = ArmStats(n=-1, sum=float("nan"), sum_squares=0.0)
    assert arm.n == -1
