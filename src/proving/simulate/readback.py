"""Reading the live loop back from the event store, and checking it against the callers.

After the gateway stopped, the DuckDB store holds every exposure, prediction (served and
shadow) and outcome. :func:`compare_shadow` pairs the shadow phase's served and shadow
predictions by request id: how often the two models agree (with an interval that treats
users as clusters), how their logged latencies compare, and whether any caller ever got
the shadow's answer. :func:`count_stored` checks the store against what the callers got
back: one served prediction per answered request, an exposure for every user, every
outcome joined to a served prediction.

Example:
    >>> stats = LatencyStats.of("served", "champion", [1.0, 2.0, 3.0])
    >>> stats.n, stats.p50
    (3, 2.0)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from proving.simulate.traffic import PhaseRun
from proving.stats.results import ResultBase

if TYPE_CHECKING:
    from proving.metrics import MetricsEngine

__all__ = ["LatencyStats", "ShadowComparison", "StoredCounts", "compare_shadow", "count_stored"]


@dataclass(frozen=True)
class LatencyStats(ResultBase):
    """Model-call latency of one role as logged by the gateway (milliseconds)."""

    role: str
    variant: str
    n: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, role: str, variant: str, values: Any) -> LatencyStats:
        """Summary statistics of ``values`` (None when there are none)."""
        v = np.asarray(values, dtype=float)
        if v.size == 0:
            return cls(role, variant, 0, None, None, None, None)
        p50, p90, p99 = (float(q) for q in np.percentile(v, [50, 90, 99]))
        return cls(role, variant, int(v.size), float(v.mean()), p50, p90, p99)


@dataclass(frozen=True)
class ShadowComparison(ResultBase):
    """The shadow phase read back from the store: pairs of served and shadow predictions.

    ``agreement`` is the share of paired requests on which both models chose the same
    item. Requests of one user repeat its features, so the interval treats users as
    clusters: the ratio estimator's delta-method variance
    ``U/(U-1) * sum_u (a_u - r n_u)^2 / (sum_u n_u)^2`` (Deng, Knoblich and Lu 2018,
    "Applying the delta method in metric analytics", eq. 3).
    ``returned_from_shadow`` counts answers whose variant or prediction was not the
    champion's logged answer (it must be 0); ``hidden_disagreements`` counts pairs where
    the shadow chose differently and the caller still got the champion's item.
    """

    n_requests: int
    n_pairs: int
    n_units: int
    agreement: float | None
    ci_lower: float | None
    ci_upper: float | None
    true_agreement: float
    returned_from_shadow: int
    hidden_disagreements: int
    shadow_failures: int
    served_latency: LatencyStats
    shadow_latency: LatencyStats
    reason: str | None = None

    @property
    def covered(self) -> bool:
        """The agreement interval contains the true agreement of the two models."""
        return (
            self.ci_lower is not None
            and self.ci_upper is not None
            and self.ci_lower <= self.true_agreement <= self.ci_upper
        )


@dataclass(frozen=True)
class StoredCounts(ResultBase):
    """The event store checked against what the callers got back.

    Every ``*_missing`` / ``*_unjoined`` / ``*_extra`` count must be 0.
    """

    exposures: int
    exposed_units: int
    served_predictions: int
    shadow_predictions: int
    outcomes: int
    outcomes_posted: int
    answered_requests: int
    served_missing: int
    served_extra: int
    exposures_missing: int
    outcomes_unjoined: int
    outcomes_missing: int

    @property
    def consistent(self) -> bool:
        """Every answer was logged once, every user exposed, every outcome joined."""
        return not (
            self.served_missing or self.served_extra or self.exposures_missing
            or self.outcomes_unjoined or self.outcomes_missing
        )  # fmt: skip


def _frame(engine: MetricsEngine, table: str, columns: list[str]) -> Any:
    t = engine.table(table)
    return t.select(*columns).execute()


def _output(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def compare_shadow(
    engine: MetricsEngine, run: PhaseRun, true_agreement: float, champion: str, challenger: str
) -> ShadowComparison:
    """Pair the shadow phase's served and shadow predictions by request id (see the class)."""
    from scipy.stats import norm

    ok = {r.request_id: r for r in run.records if r.ok}
    p = _frame(engine, "predictions", ["request_id", "unit_id", "role", "variant", "status",
                                       "output", "latency_ms"])  # fmt: skip
    p = p[p.request_id.isin(list(ok))]
    served = p[(p.role == "served") & (p.variant == champion)].drop_duplicates("request_id")
    shadow = p[(p.role == "shadow") & (p.variant == challenger)]
    good = shadow[shadow.status == "ok"].drop_duplicates("request_id")
    pairs = served.merge(good, on="request_id", suffixes=("_served", "_shadow"))
    same = np.asarray(
        [
            _output(a) == _output(b)
            for a, b in zip(pairs.output_served, pairs.output_shadow, strict=True)
        ],
        dtype=float,
    )
    logged = dict(zip(served.request_id, served.output.map(_output), strict=True))
    leaked = sum(
        r.variant != champion or r.request_id not in logged or r.prediction != logged[r.request_id]
        for r in ok.values()
    )
    hidden = sum(
        _output(b) != ok[rid].prediction
        for rid, b in zip(pairs.request_id, pairs.output_shadow, strict=True)
    )
    n_units = int(pairs.unit_id_served.nunique()) if len(pairs) else 0
    estimate = lo = hi = None
    reason = None
    if n_units >= 2:
        by_unit = pairs.assign(a=same).groupby("unit_id_served").a.agg(["sum", "count"]).to_numpy()
        a_u, n_u = by_unit[:, 0], by_unit[:, 1]
        estimate = float(a_u.sum() / n_u.sum())
        var = n_units / (n_units - 1) * float(np.sum((a_u - estimate * n_u) ** 2)) / n_u.sum() ** 2
        half = float(norm.ppf(0.975)) * var**0.5
        lo, hi = max(0.0, estimate - half), min(1.0, estimate + half)
    else:
        reason = f"{n_units} user(s) with paired predictions; at least 2 are needed."
    return ShadowComparison(
        n_requests=len(ok),
        n_pairs=len(pairs),
        n_units=n_units,
        agreement=estimate,
        ci_lower=lo,
        ci_upper=hi,
        true_agreement=true_agreement,
        returned_from_shadow=int(leaked),
        hidden_disagreements=int(hidden),
        shadow_failures=int((shadow.status != "ok").sum()),
        served_latency=LatencyStats.of("served", champion, served.latency_ms),
        shadow_latency=LatencyStats.of("shadow", challenger, good.latency_ms),
        reason=reason,
    )


def count_stored(engine: MetricsEngine, runs: Sequence[PhaseRun], experiment: str) -> StoredCounts:
    """Check the store against the answers the callers received (see the class)."""
    records = [r for run in runs for r in run.records]
    answered = {r.request_id for r in records if r.ok}
    units = {r.unit_id for r in records if r.ok}
    posted = sum(run.outcomes_accepted for run in runs)
    e = _frame(engine, "exposures", ["experiment", "unit_id"])
    e = e[e.experiment == experiment]
    p = _frame(engine, "predictions", ["request_id", "role", "status"])
    o = _frame(engine, "outcomes", ["request_id"])
    served = p[(p.role == "served") & p.status.isin(["ok", "fallback"])]
    served_ids = set(served.request_id)
    return StoredCounts(
        exposures=len(e),
        exposed_units=int(e.unit_id.nunique()),
        served_predictions=len(served),
        shadow_predictions=int((p.role == "shadow").sum()),
        outcomes=len(o),
        outcomes_posted=posted,
        answered_requests=len(answered),
        served_missing=len(answered - served_ids) + int(served.request_id.duplicated().sum()),
        served_extra=len(served_ids - answered),
        exposures_missing=len(units - set(e.unit_id)),
        outcomes_unjoined=int((~o.request_id.isin(list(served_ids))).sum()),
        outcomes_missing=max(0, posted - len(o)),
    )
