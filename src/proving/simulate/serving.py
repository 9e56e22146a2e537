"""The live world: users, a recommendation task with known truth, and two models trained on it.

Every user has four standard-normal features ``x`` and a country and platform (attributes
for targeting and segments). A request asks which of four items to show. The world's
ground truth is the purchase probability of user ``x`` shown item ``i``:

    p(x, i) = sigmoid(b + a_i(x)),   a(x) = (x0 x1, -x0 x1, 0.8 (x2^2 - 1), 0.8 x3 - 0.3)

and a purchase of item ``i`` is worth ``price_i * g`` with ``g ~ Gamma(4, 1/4)`` (mean 1).
The affinities are interactions and a square, so a linear model can only partly learn
which item a user wants; a model with degree-2 features can learn it all.

Training data is a log of past impressions shown uniformly at random (as an exploration
policy would). Fitting a multinomial classifier to the purchases of that log estimates
``P(item | x, purchase)``, which under uniform display is proportional to ``p(x, item)``,
so the classifier's ``argmax`` is the item with the highest purchase probability
(Li et al. 2010, "A contextual-bandit approach to personalized news article
recommendation", on learning from uniformly randomized logs). The **champion** is a plain
multinomial logistic regression (or a popularity baseline); the **challenger** adds
degree-2 polynomial features.

Each user sends ``1 + Poisson(repeat_rate)`` requests, independently of ``x``. The truth of
the per-user metrics is therefore exact given the models' decisions:

* revenue per user: ``(1 + lambda) * p(x, m(x)) * price_m(x)``;
* converted (any purchase): ``1 - (1 - p) * exp(-lambda p)`` with ``p = p(x, m(x))``
  (the Poisson probability-generating function);

averaged over a large independent sample of users (common random numbers for both arms).

Example:
    >>> world = ServingWorld(seed=3)
    >>> models = world.train_models(n_history=4_000)
    >>> truth = world.truth(models, n_users=20_000)
    >>> truth.metrics["converted"].treatment_mean > truth.metrics["converted"].control_mean
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from proving._types import FloatArray
from proving.errors import StatsInputError
from proving.stats.results import ResultBase

__all__ = [
    "FEATURE_NAMES",
    "LiveUsers",
    "MetricTruth",
    "ServingTruth",
    "ServingWorld",
    "TrainedModels",
]

IntArray = npt.NDArray[np.int64]
ChampionKind = Literal["logistic", "popularity"]

FEATURE_NAMES: tuple[str, ...] = ("f0", "f1", "f2", "f3")
COUNTRIES: tuple[str, ...] = ("US", "DE", "FR", "BR", "JP")
PLATFORMS: tuple[str, ...] = ("ios", "android", "web")
_GAMMA_SHAPE = 4.0


@dataclass(frozen=True)
class LiveUsers:
    """Simulated users: ids, features (one row each), attributes and requests per user."""

    unit_ids: tuple[str, ...]
    features: FloatArray
    countries: tuple[str, ...]
    platforms: tuple[str, ...]
    requests: IntArray

    def __len__(self) -> int:
        return len(self.unit_ids)

    def attributes(self, index: int) -> dict[str, Any]:
        """The request attributes of user ``index`` (targeting and segments)."""
        return {"country": self.countries[index], "platform": self.platforms[index]}

    def feature_row(self, index: int) -> list[float]:
        """User ``index``'s features as a JSON list (the models' input order)."""
        return [float(v) for v in self.features[index]]


@dataclass(frozen=True)
class TrainedModels:
    """The champion and challenger, fitted scikit-learn estimators (``predict`` -> item)."""

    champion: Any
    challenger: Any
    champion_name: str
    challenger_name: str
    n_history: int
    n_purchases: int


@dataclass(frozen=True)
class MetricTruth(ResultBase):
    """The population value of one per-user metric under each model, and the lift."""

    metric: str
    control_mean: float
    treatment_mean: float

    @property
    def relative_lift(self) -> float:
        """``treatment / control - 1``."""
        return self.treatment_mean / self.control_mean - 1.0

    @property
    def absolute_difference(self) -> float:
        """``treatment - control``."""
        return self.treatment_mean - self.control_mean


@dataclass(frozen=True)
class ServingTruth(ResultBase):
    """What the A/B test and the shadow comparison should find, from the world itself.

    Attributes:
        metrics: per-user metric truths (``converted``, ``revenue``).
        agreement: share of requests on which the two models pick the same item.
        n_users: size of the independent sample the expectations average over.
    """

    metrics: dict[str, MetricTruth]
    agreement: float
    n_users: int


@dataclass(frozen=True)
class ServingWorld:
    """The live world's ground truth (see the module docstring).

    Args:
        seed: seeds every draw (users, history, outcomes).
        base_logit: ``b``, sets the overall purchase rate (about 10-25%).
        repeat_rate: mean extra requests per user (Poisson).
        prices: the value of each item.
    """

    seed: int = 2026
    base_logit: float = -2.2
    repeat_rate: float = 0.5
    prices: tuple[float, ...] = (20.0, 25.0, 30.0, 40.0)
    _rng: np.random.Generator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not np.isfinite(self.base_logit):
            raise StatsInputError(
                f"ServingWorld: base_logit must be finite; got {self.base_logit}."
            )
        if not (0.0 <= self.repeat_rate <= 20.0):
            raise StatsInputError(
                f"ServingWorld: repeat_rate (mean extra requests per user) must be in [0, 20]; "
                f"got {self.repeat_rate}. Use e.g. 0.5."
            )
        if len(self.prices) != len(FEATURE_NAMES) or min(self.prices) <= 0:
            raise StatsInputError(
                f"ServingWorld: prices must be {len(FEATURE_NAMES)} positive numbers (one per "
                f"item); got {self.prices}."
            )
        object.__setattr__(self, "_rng", np.random.default_rng(self.seed))

    @property
    def n_items(self) -> int:
        """Number of items a model chooses from."""
        return len(self.prices)

    def purchase_probability(self, features: FloatArray) -> FloatArray:
        """``p(x, i)`` for every user row and item: shape ``(n, n_items)``."""
        x = np.atleast_2d(np.asarray(features, dtype=float))
        affinity = np.stack(
            [
                x[:, 0] * x[:, 1],
                -x[:, 0] * x[:, 1],
                0.8 * (x[:, 2] ** 2 - 1.0),
                0.8 * x[:, 3] - 0.3,
            ],
            axis=1,
        )
        out: FloatArray = 1.0 / (1.0 + np.exp(-(self.base_logit + affinity)))
        return out

    def users(self, n: int, *, prefix: str = "u") -> LiveUsers:
        """``n`` new users drawn from the population, ids ``{prefix}-{k}``."""
        if n < 1:
            raise StatsInputError(f"ServingWorld.users: n must be >= 1; got {n}.")
        rng = self._rng
        features = rng.standard_normal((n, len(FEATURE_NAMES)))
        countries = rng.choice(len(COUNTRIES), size=n, p=[0.4, 0.2, 0.15, 0.15, 0.1])
        platforms = rng.choice(len(PLATFORMS), size=n, p=[0.35, 0.45, 0.2])
        requests = 1 + rng.poisson(self.repeat_rate, size=n)
        return LiveUsers(
            unit_ids=tuple(f"{prefix}-{k}" for k in range(n)),
            features=features,
            countries=tuple(COUNTRIES[c] for c in countries),
            platforms=tuple(PLATFORMS[p] for p in platforms),
            requests=requests.astype(np.int64),
        )

    def outcome(
        self, features: list[float], item: int, key: int | None = None
    ) -> tuple[bool, float]:
        """Draw what the user does after seeing ``item``: (purchased, revenue).

        ``key`` seeds this draw on its own (with the world's seed), so a run gives the same
        outcomes whatever order concurrent requests complete in; None uses the world's
        running generator.
        """
        if isinstance(item, bool) or not (isinstance(item, int) and 0 <= item < self.n_items):
            raise StatsInputError(
                f"ServingWorld.outcome: item must be an integer in [0, {self.n_items}); got "
                f"{item!r}. The served prediction is not an item of this world."
            )
        rng = self._rng if key is None else np.random.default_rng([self.seed, 11, key])
        p = float(self.purchase_probability(np.asarray([features]))[0, item])
        if rng.random() >= p:
            return False, 0.0
        g = rng.gamma(_GAMMA_SHAPE, 1.0 / _GAMMA_SHAPE)
        return True, float(self.prices[item] * g)

    def train_models(
        self, n_history: int = 20_000, *, champion: ChampionKind = "logistic"
    ) -> TrainedModels:
        """Fit the champion and challenger on a uniformly randomized impression log."""
        from sklearn.dummy import DummyClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler

        if n_history < 500:
            raise StatsInputError(
                f"ServingWorld.train_models: n_history must be >= 500 impressions to fit "
                f"four classes; got {n_history}."
            )
        rng = self._rng
        x = rng.standard_normal((n_history, len(FEATURE_NAMES)))
        shown = rng.integers(0, self.n_items, size=n_history)
        p = self.purchase_probability(x)[np.arange(n_history), shown]
        bought = rng.random(n_history) < p
        xb, yb = x[bought], shown[bought]
        base: Any
        if champion == "logistic":
            base = LogisticRegression(max_iter=1000).fit(xb, yb)
            base_name = "logistic"
        elif champion == "popularity":
            base = DummyClassifier(strategy="most_frequent").fit(xb, yb)
            base_name = "popularity"
        else:
            raise StatsInputError(
                f"ServingWorld.train_models: champion must be 'logistic' or 'popularity'; "
                f"got {champion!r}."
            )
        challenger = make_pipeline(
            PolynomialFeatures(2), StandardScaler(), LogisticRegression(max_iter=2000)
        ).fit(xb, yb)
        return TrainedModels(
            champion=base,
            challenger=challenger,
            champion_name=base_name,
            challenger_name="logistic-poly2",
            n_history=n_history,
            n_purchases=int(bought.sum()),
        )

    def truth(self, models: TrainedModels, n_users: int = 200_000) -> ServingTruth:
        """The exact per-user expectations under each model, averaged over ``n_users``."""
        rng = np.random.default_rng([self.seed, 7])  # independent of the served users
        x = rng.standard_normal((n_users, len(FEATURE_NAMES)))
        p_all = self.purchase_probability(x)
        prices = np.asarray(self.prices)
        rows = np.arange(n_users)
        lam = self.repeat_rate
        items = {
            "control": np.asarray(models.champion.predict(x), dtype=np.int64),
            "treatment": np.asarray(models.challenger.predict(x), dtype=np.int64),
        }
        means: dict[str, dict[str, float]] = {"converted": {}, "revenue": {}}
        for arm, chosen in items.items():
            p = p_all[rows, chosen]
            means["converted"][arm] = float(np.mean(1.0 - (1.0 - p) * np.exp(-lam * p)))
            means["revenue"][arm] = float(np.mean((1.0 + lam) * p * prices[chosen]))
        metrics = {
            name: MetricTruth(name, m["control"], m["treatment"]) for name, m in means.items()
        }
        agreement = float(np.mean(items["control"] == items["treatment"]))
        return ServingTruth(metrics=metrics, agreement=agreement, n_users=n_users)
