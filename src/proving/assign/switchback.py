"""Switchback (time-sliced) assignment: the unit of randomization is (cluster, window).

When the arms of an experiment interfere (they share a budget, a fleet, a downstream
model), randomizing users leaks the treatment into the control. A switchback design
instead gives *all* traffic of a cluster (a city, a region, or everything) the same
variant for a time window, and re-randomizes every window (Bojinov, Simchi-Levi and Zhao,
"Design and Analysis of Switchback Experiments", Management Science 2023).

* Windows are ``[origin + k * window, origin + (k + 1) * window)`` for integer ``k``.
* Window ``k`` of cluster ``c`` is hashed like a unit with id ``"c|k"`` through the
  experiment's seed, weights and coverage (:func:`proving.assign.buckets.bucket_ranges`),
  so every replica agrees without state, and past windows can be recomputed.
* Carry-over: after a *switch* (the variant differs from the previous window's), the first
  ``buffer`` of the window is flagged ``in_buffer`` and should be left out of the analysis,
  because the previous variant's effect may linger.

:func:`export_windows` lists the windows of a period (start, end, cluster, variant,
in_buffer, buffer_end) for the analysis to join events against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from proving.assign.buckets import bucket_ranges, choose_variation, choose_variation_batch
from proving.assign.hashing import hash_batch, hash_value
from proving.errors import AssignmentError
from proving.spec.experiment import ExperimentSpec
from proving.spec.mode import SwitchbackSpec

__all__ = [
    "ALL_CLUSTERS",
    "SwitchbackWindow",
    "assign_windows_batch",
    "cluster_of",
    "export_windows",
    "switchback_settings",
    "window_assignment",
    "window_index",
]

ALL_CLUSTERS = "all"


@dataclass(frozen=True)
class SwitchbackWindow:
    """One (cluster, window) cell of a switchback experiment.

    Attributes:
        cluster: the cluster (``"all"`` without a cluster attribute).
        index: the window number since the origin.
        start: the window's start (inclusive).
        end: the window's end (exclusive).
        variant: the variant served in this window.
        in_experiment: False when the window fell outside coverage (control is served).
        bucket: the window's hash in [0, 1).
        switched: the variant differs from the previous window's.
        buffer_end: end of the carry-over buffer (``start`` when there is none).
    """

    cluster: str
    index: int
    start: datetime
    end: datetime
    variant: str
    in_experiment: bool
    bucket: float
    switched: bool
    buffer_end: datetime

    @property
    def in_buffer(self) -> bool:
        """True when the window opens with a carry-over buffer."""
        return self.buffer_end > self.start

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "cluster": self.cluster,
            "index": self.index,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "variant": self.variant,
            "in_experiment": self.in_experiment,
            "bucket": self.bucket,
            "switched": self.switched,
            "in_buffer": self.in_buffer,
            "buffer_end": self.buffer_end.isoformat(),
        }


def switchback_settings(spec: ExperimentSpec) -> SwitchbackSpec:
    """The switchback settings of a spec, refusing other modes."""
    if spec.mode != "switchback":
        raise AssignmentError(
            f"experiment '{spec.name}' has mode '{spec.mode}', not switchback. Set "
            "`mode: switchback` to use windows."
        )
    settings = spec.settings_for_mode()
    assert isinstance(settings, SwitchbackSpec)
    return settings


def window_index(settings: SwitchbackSpec, now: datetime) -> int:
    """The number of the window holding ``now`` (negative before the origin)."""
    if now.tzinfo is None:
        raise AssignmentError(
            f"`now` must carry a time zone; got {now.isoformat()}. Use e.g. 2026-01-31T09:00:00Z."
        )
    # Integer microseconds: exact, so window boundaries never drift with float rounding.
    return (now - settings.origin) // settings.window


def _variant_of(spec: ExperimentSpec, bucket: float) -> tuple[str, bool]:
    ranges = bucket_ranges(len(spec.variants), spec.coverage, list(spec.resolved_weights()))
    i = choose_variation(bucket, ranges)
    if i < 0:
        return spec.control_name, False
    return spec.variants[i].name, True


def _bucket(spec: ExperimentSpec, cluster: str, index: int) -> float:
    n = hash_value(spec.hash_seed, f"{cluster}|{index}", spec.hash_version)
    assert n is not None  # the spec allows hash versions 1 and 2 only
    return n


def window_assignment(spec: ExperimentSpec, cluster: str, now: datetime) -> SwitchbackWindow:
    """The window of ``cluster`` that holds ``now``, with its variant and buffer.

    Example:
        >>> from datetime import UTC, datetime
        >>> from proving.spec import ExperimentSpec
        >>> spec = ExperimentSpec(name="pricing", mode="switchback",
        ...     variants=[{"name": "a"}, {"name": "b"}],
        ...     switchback={"window": "1h", "buffer": "10m"})
        >>> w = window_assignment(spec, "paris", datetime(2026, 1, 1, 9, 30, tzinfo=UTC))
        >>> (w.start.hour, w.end.hour)
        (9, 10)
    """
    settings = switchback_settings(spec)
    k = window_index(settings, now)
    bucket = _bucket(spec, cluster, k)
    variant, in_experiment = _variant_of(spec, bucket)
    previous, _ = _variant_of(spec, _bucket(spec, cluster, k - 1))
    start = settings.origin + k * settings.window
    switched = previous != variant
    return SwitchbackWindow(
        cluster=cluster,
        index=k,
        start=start,
        end=start + settings.window,
        variant=variant,
        in_experiment=in_experiment,
        bucket=bucket,
        switched=switched,
        buffer_end=start + settings.buffer if switched else start,
    )


def export_windows(
    spec: ExperimentSpec, clusters: Sequence[str], start: datetime, end: datetime
) -> list[SwitchbackWindow]:
    """Every (cluster, window) cell overlapping ``[start, end)``, for the analysis.

    Vectorized over clusters and windows (one :func:`hash_batch` call), equal to calling
    :func:`window_assignment` cell by cell.

    Args:
        spec: a switchback experiment.
        clusters: the clusters (``["all"]`` without a cluster attribute).
        start: the period's start (with a zone).
        end: the period's end (exclusive, with a zone).

    Returns:
        Windows ordered by cluster (as given), then time.

    Raises:
        AssignmentError: not a switchback spec, naive datetimes, or ``end <= start``.
    """
    settings = switchback_settings(spec)
    first = window_index(settings, start)
    last = window_index(settings, end)
    if end <= start:
        raise AssignmentError(
            f"export_windows: `end` ({end.isoformat()}) must be after `start` "
            f"({start.isoformat()}). Swap them."
        )
    if settings.origin + last * settings.window == end:
        last -= 1  # `end` is exclusive
    indices = np.arange(first - 1, last + 1)  # one before, to know whether the first switched
    keys = np.array([f"{c}|{k}" for c in clusters for k in indices.tolist()])
    buckets = hash_batch(spec.hash_seed, keys, spec.hash_version).reshape(
        len(clusters), len(indices)
    )
    ranges = bucket_ranges(len(spec.variants), spec.coverage, list(spec.resolved_weights()))
    chosen = choose_variation_batch(buckets.ravel(), ranges).reshape(buckets.shape)
    served = np.where(chosen < 0, spec.control_index, chosen)
    names = spec.variant_names
    out: list[SwitchbackWindow] = []
    for ci, cluster in enumerate(clusters):
        for j in range(1, len(indices)):
            k = int(indices[j])
            w_start = settings.origin + k * settings.window
            switched = bool(served[ci, j] != served[ci, j - 1])
            out.append(
                SwitchbackWindow(
                    cluster=cluster,
                    index=k,
                    start=w_start,
                    end=w_start + settings.window,
                    variant=names[int(served[ci, j])],
                    in_experiment=bool(chosen[ci, j] >= 0),
                    bucket=float(buckets[ci, j]),
                    switched=switched,
                    buffer_end=w_start + settings.buffer if switched else w_start,
                )
            )
    return out


def cluster_of(settings: SwitchbackSpec, attributes: Mapping[str, Any] | None) -> str | None:
    """The unit's cluster: its ``cluster_attribute`` value, ``"all"`` without one, or
    None when the attribute is missing or empty."""
    if settings.cluster_attribute is None:
        return ALL_CLUSTERS
    value = (attributes or {}).get(settings.cluster_attribute)
    if value is None or value == "":
        return None
    return str(value)


def assign_windows_batch(
    spec: ExperimentSpec, clusters: Sequence[str | None], now: datetime
) -> tuple[NDArray[np.int64], NDArray[np.bool_], NDArray[np.float64], NDArray[np.bool_]]:
    """The window holding ``now`` for each unit's cluster (None: no cluster).

    Returns:
        ``(variant_index, in_experiment, bucket, in_buffer)``; ``variant_index`` is -1 and
        ``bucket`` NaN where the cluster is None.
    """
    n = len(clusters)
    variant = np.full(n, -1, dtype=np.int64)
    inside = np.zeros(n, dtype=bool)
    bucket = np.full(n, np.nan)
    buffered = np.zeros(n, dtype=bool)
    names = spec.variant_names
    windows: dict[str, SwitchbackWindow] = {}
    for i, cluster in enumerate(clusters):
        if cluster is None:
            continue
        if cluster not in windows:  # `now` is shared: one window per cluster
            windows[cluster] = window_assignment(spec, cluster, now)
        w = windows[cluster]
        variant[i] = names.index(w.variant)
        inside[i] = w.in_experiment
        bucket[i] = w.bucket
        buffered[i] = w.in_buffer and now < w.buffer_end
    return variant, inside, bucket, buffered
