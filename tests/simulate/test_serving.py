"""The live world: ground truth, outcome draws, trained models and exact truths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import binomtest

from proving.errors import StatsInputError
from proving.simulate.serving import ServingWorld, TrainedModels


@pytest.fixture(scope="module")
def world() -> ServingWorld:
    return ServingWorld(seed=11)


@pytest.fixture(scope="module")
def models(world: ServingWorld) -> TrainedModels:
    return world.train_models(20_000)


def test_purchase_probability_is_the_documented_formula(world: ServingWorld) -> None:
    x = np.array([[1.0, 2.0, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0]])
    b = world.base_logit
    expected = np.array(
        [
            [expit(b + 2.0), expit(b - 2.0), expit(b + 0.8 * (0.25 - 1)), expit(b - 0.8 - 0.3)],
            [expit(b), expit(b), expit(b - 0.8), expit(b - 0.3)],
        ]
    )
    np.testing.assert_allclose(world.purchase_probability(x), expected, rtol=1e-12)


def test_keyed_outcomes_match_the_probability_and_the_price(world: ServingWorld) -> None:
    features = [0.3, -1.2, 1.5, 0.4]
    item = 2
    p = float(world.purchase_probability(np.array([features]))[0, item])
    draws = [world.outcome(features, item, key) for key in range(6_000)]
    bought = sum(b for b, _ in draws)
    # An exact binomial test of the draws against p (alpha 0.001: a fixed seed, no flakes).
    assert binomtest(bought, len(draws), p).pvalue > 0.001
    values = np.array([v for b, v in draws if b])
    assert np.all(values > 0)
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert abs(values.mean() - world.prices[item]) < 4 * se  # Gamma(4, 1/4) has mean 1
    assert [v for b, v in draws if not b] == [0.0] * (len(draws) - bought)


def test_a_keyed_outcome_does_not_depend_on_draw_order(world: ServingWorld) -> None:
    features = [0.1, 0.2, 0.3, 0.4]
    first = [world.outcome(features, 1, key) for key in range(50)]
    world.outcome(features, 1)  # consume the running generator in between
    again = [world.outcome(features, 1, key) for key in reversed(range(50))][::-1]
    assert first == again


def test_users_have_attributes_and_poisson_repeat_requests(world: ServingWorld) -> None:
    users = world.users(20_000, prefix="t")
    assert len(set(users.unit_ids)) == 20_000 and users.unit_ids[0] == "t-0"
    assert users.requests.min() >= 1
    extra = users.requests - 1
    se = np.sqrt(world.repeat_rate / users.requests.size)
    assert abs(extra.mean() - world.repeat_rate) < 4 * se
    assert set(users.attributes(0)) == {"country", "platform"}
    assert len(users.feature_row(3)) == 4


def test_the_challenger_learns_the_best_item_better_than_the_champion(
    world: ServingWorld, models: TrainedModels
) -> None:
    x = np.random.default_rng(0).standard_normal((20_000, 4))
    best = world.purchase_probability(x).argmax(axis=1)
    hit_challenger = np.mean(models.challenger.predict(x) == best)
    hit_champion = np.mean(models.champion.predict(x) == best)
    assert hit_challenger > 0.8
    assert hit_challenger > hit_champion + 0.2
    assert models.n_purchases > 2_000


def test_truth_formulas_match_a_simulation_of_users(
    world: ServingWorld, models: TrainedModels
) -> None:
    truth = world.truth(models, n_users=100_000)
    rng = np.random.default_rng(42)
    n = 100_000
    x = rng.standard_normal((n, 4))
    k = 1 + rng.poisson(world.repeat_rate, n)
    items = models.challenger.predict(x)
    p = world.purchase_probability(x)[np.arange(n), items]
    purchases = rng.binomial(k, p)  # k independent requests, the same item each time
    converted = (purchases > 0).astype(float)
    revenue = purchases * np.asarray(world.prices)[items]  # Gamma noise has mean 1
    t = truth.metrics
    assert abs(converted.mean() - t["converted"].treatment_mean) < 4 * converted.std() / n**0.5
    assert abs(revenue.mean() - t["revenue"].treatment_mean) < 4 * revenue.std() / n**0.5
    assert t["converted"].relative_lift > 0.2
    assert 0.0 < truth.agreement < 1.0


def test_a_popularity_champion_always_shows_one_item(world: ServingWorld) -> None:
    weak = world.train_models(2_000, champion="popularity")
    x = np.random.default_rng(1).standard_normal((500, 4))
    assert len(set(weak.champion.predict(x).tolist())) == 1
    truth = world.truth(weak, n_users=20_000)
    assert truth.metrics["converted"].relative_lift > 0.5


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ServingWorld(repeat_rate=-1.0), r"repeat_rate .* must be in \[0, 20\]; got -1.0"),
        (lambda: ServingWorld(prices=(1.0, 2.0)), r"prices must be 4 positive numbers"),
        (lambda: ServingWorld(base_logit=float("nan")), r"base_logit must be finite; got nan"),
        (lambda: ServingWorld().users(0), r"n must be >= 1; got 0"),
        (lambda: ServingWorld().outcome([0, 0, 0, 0], 7), r"item must be an integer in \[0, 4\)"),
        (lambda: ServingWorld().outcome([0, 0, 0, 0], True), r"got True"),
        (lambda: ServingWorld().train_models(100), r"n_history must be >= 500"),
        (
            lambda: ServingWorld().train_models(600, champion="forest"),  # type: ignore[arg-type]
            r"champion must be 'logistic' or 'popularity'; got 'forest'",
        ),
    ],
)
def test_bad_parameters_are_named(make: object, message: str) -> None:
    with pytest.raises(StatsInputError, match=message):
        make()  # type: ignore[operator]
