"""Result columns: read comparisons as columns, write fields back, build objects fast.

The family layers (:mod:`proving.stats.sequential`, :mod:`proving.stats.bayesian`) work on
whole columns of results at once: they read the fields they need from an
:class:`~proving.stats.results.AnalysisResult` (columnar, no object per comparison) or from
a sequence of :class:`~proving.stats.results.ComparisonResult`, compute in numpy, write
new values back into some rows, and build frozen result objects without running
``__init__`` per object. These are the shared pieces.

Example:
    >>> import numpy as np
    >>> plain_list(np.array([1.5, np.nan, np.inf]))
    [1.5, None, None]
    >>> scatter([0, 0, 0], [1], ["x"])
    [0, 'x', 0]
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import repeat
from operator import attrgetter
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from proving.stats.results import AnalysisResult, ComparisonResult

Columns = Mapping[str, Sequence[Any]]
Comparisons = Sequence[ComparisonResult] | AnalysisResult

_T = TypeVar("_T")


def read_columns(
    results: Comparisons, names: Sequence[str]
) -> tuple[Columns, list[ComparisonResult] | None]:
    """The columns ``names`` of ``results``, and the objects when given objects.

    An :class:`AnalysisResult` from :func:`proving.stats.analyze` is read as all its
    columns without creating one object per comparison (``None`` for the objects).
    """
    if isinstance(results, AnalysisResult):
        return results.comparison_columns(), None
    objects = list(results)
    return {n: list(map(attrgetter(n), objects)) for n in names}, objects


def plain_list(x: npt.NDArray[np.float64]) -> list[float | None]:
    """Python floats, with NaN and infinities as None (the results' convention)."""
    out = x.astype(object)
    out[~np.isfinite(x)] = None
    values: list[float | None] = out.tolist()
    return values


def scatter(column: Sequence[Any], idx: Sequence[int], values: Sequence[Any]) -> list[Any]:
    """A new list: ``column`` with ``values`` written at the (distinct) positions ``idx``."""
    if len(idx) == len(column):
        return list(values)
    out = list(column)
    for i, v in zip(idx, values, strict=True):
        out[i] = v
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (restored after) while building acyclic objects.

    Allocating thousands of containers otherwise triggers collections that scan them all;
    the objects built here hold no cycles, so nothing is left for the collector to find.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def objects_from_states(classes: Iterable[type[_T]], states: Iterable[dict[str, Any]]) -> list[_T]:
    """Objects of ``classes`` whose ``__dict__`` is each of ``states``, without ``__init__``.

    Each object gets its ``__dict__`` in one step (``object.__setattr__`` works on frozen
    dataclasses too), built in C by ``map``; they equal the objects ``__init__`` would
    build from the same fields. Call it inside :func:`gc_paused` for speed.
    """
    built: list[_T] = list(map(object.__new__, classes))
    deque(map(object.__setattr__, built, repeat("__dict__"), states), maxlen=0)
    return built
