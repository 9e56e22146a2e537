import numpy as np
import pytest

from proving.errors import StatsInputError
from proving.simulate import simulate_experiment


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return simulate_experiment(400_000, seed=11)


def test_same_seed_same_world() -> None:
    a = simulate_experiment(1_000, seed=3)
    b = simulate_experiment(1_000, seed=3)
    for key in a.columns:
        np.testing.assert_array_equal(a.columns[key], b.columns[key])


def test_realized_lifts_match_the_truth(world) -> None:  # type: ignore[no-untyped-def]
    c = world.columns
    treated = c["variant"] == 1
    for metric, column in (("revenue", "revenue"), ("conversion", "converted")):
        lift = c[column][treated].mean() / c[column][~treated].mean() - 1
        # Standard error of the lift at n = 400,000 is below 0.01 for both metrics.
        assert lift == pytest.approx(world.truth[metric], abs=0.02)
    ratio = lambda m: c["clicks"][m].sum() / c["sessions"][m].sum()  # noqa: E731
    assert ratio(treated) / ratio(~treated) - 1 == pytest.approx(
        world.truth["clicks_per_session"], abs=0.02
    )


def test_pre_period_correlation_matches_theory(world) -> None:  # type: ignore[no-untyped-def]
    # y = u g with u ~ LogNormal(0, 0.6), g ~ Gamma(8, 1/8): rho = Var(u) / Var(u g).
    var_u = (np.exp(0.36) - 1) * np.exp(0.36)
    e_u2 = var_u + np.exp(0.36)
    rho = var_u / (e_u2 * (1 + 1 / 8) - np.exp(0.36))
    c = world.columns
    m = (c["has_pre"] == 1) & (c["variant"] == 0)
    assert np.corrcoef(c["revenue"][m], c["pre_revenue"][m])[0, 1] == pytest.approx(rho, abs=0.01)


def test_split_follows_weights() -> None:
    w = simulate_experiment(100_000, variants=("a", "b", "c"), weights=(0.5, 0.3, 0.2), seed=1)
    shares = np.bincount(w.columns["variant"], minlength=3) / w.n_units
    np.testing.assert_allclose(shares, [0.5, 0.3, 0.2], atol=0.01)


def test_stats_rows_reduce_unit_data(world) -> None:  # type: ignore[no-untyped-def]
    rows = world.stats_rows()
    assert {r["metric"] for r in rows} == {"revenue", "conversion", "clicks_per_session"}
    c = world.columns
    control = next(r for r in rows if r["metric"] == "revenue" and r["variant"] == "control")
    assert control["n"] == (c["variant"] == 0).sum()
    assert control["sum"] == pytest.approx(c["revenue"][c["variant"] == 0].sum(), rel=1e-12)
    assert control["covariate_names"] == ["pre_revenue", "has_pre"]
    ratio = next(r for r in rows if r["metric"] == "clicks_per_session")
    assert "sum_products" in ratio and ratio["covariate_names"] == [
        "pre_clicks",
        "pre_sessions",
        "has_pre",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_units": -1}, "n_units must be >= 0; got -1"),
        ({"variants": ("only",)}, "give a control and at least one treatment"),
        ({"weights": (0.7, 0.7)}, "summing to 1"),
        ({"lifts": {"latency": 0.1}}, "unknown metrics \\['latency'\\]"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, object], message: str) -> None:
    args = {"n_units": 100, **kwargs}
    with pytest.raises(StatsInputError, match=message):
        simulate_experiment(**args)  # type: ignore[arg-type]
