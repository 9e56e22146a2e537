"""Result types of the statistics engine: frozen dataclasses that explain themselves.

Public API (stable; other modules of ``proving.stats`` build on it):

- :class:`ResultBase`: mixin for frozen dataclasses giving ``to_dict()``, ``to_json()`` and
  ``from_dict()``. ``to_dict`` turns NaN and infinities into ``None``, numpy scalars and
  arrays into Python numbers and lists, tuples into lists, nested results into dicts.
  ``from_dict`` converts lists back to tuples and nested dicts back to the annotated result
  class, so ``Cls.from_dict(r.to_dict()).to_dict() == r.to_dict()``.
- :class:`ComparisonResult`: one variant against control on one metric in one segment.
- :class:`AnalysisResult`: every comparison of an analysis, plus sample-ratio checks and
  warnings.

A result with no answer (degenerate data) has ``estimate``, ``ci_lower``, ``ci_upper`` and
``p_value`` set to ``None`` and a ``reason`` saying why; it never carries a number that
looks confident.

Example:
    >>> r = ComparisonResult(metric="ctr", variant="b", estimate=0.1, ci_lower=0.02,
    ...                      ci_upper=0.18, p_value=0.01)
    >>> ComparisonResult.from_dict(r.to_dict()) == r
    True
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import types
import typing
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, ClassVar, Literal, TypeVar, Union

import numpy as np

from proving.errors import StatsInputError

Kind = Literal["mean", "proportion", "ratio"]
Effect = Literal["absolute", "relative"]
RelativeMethod = Literal["delta", "log"]
Method = Literal["welch", "z"]
Alternative = Literal["two-sided", "greater", "less"]
Family = Literal["primary", "secondary", "guardrail"]

T = TypeVar("T", bound="ResultBase")
D = TypeVar("D")


def finite_or_none(value: Any) -> float | None:
    """A float, or None where it is NaN or infinite (the results' convention)."""
    v = float(value)
    return v if math.isfinite(v) else None


def to_plain(value: Any) -> Any:
    """Convert a value to JSON-ready Python: NaN/inf -> None, numpy -> Python, tuples ->
    lists, dataclasses -> dicts (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [to_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _from_plain(tp: Any, value: Any) -> Any:
    """Rebuild a value of annotated type ``tp`` from its plain form."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        for arg in args:
            if arg is type(None):
                continue
            return _from_plain(arg, value)
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return dataclass_from_dict(tp, value)
    if origin is tuple:
        item = args[0] if args else Any
        return tuple(_from_plain(item, v) for v in value)
    if origin is list:
        item = args[0] if args else Any
        return [_from_plain(item, v) for v in value]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def dataclass_from_dict(cls: type[D], data: Mapping[str, Any]) -> D:
    """Build any dataclass from its plain form (lists -> tuples, nested dataclasses)."""
    if not isinstance(data, Mapping):
        raise StatsInputError(
            f"{cls.__name__}.from_dict needs a mapping; got {type(data).__name__}."
        )
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise StatsInputError(
            f"{cls.__name__}.from_dict: unknown field(s) {unknown}; "
            f"known fields are {sorted(names)}."
        )
    return cls(**{k: _from_plain(hints[k], v) for k, v in data.items()})


class ResultBase:
    """Mixin for frozen result dataclasses: plain-data and JSON conversion."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: NaN/inf -> None, numpy -> Python, tuples -> lists."""
        out: dict[str, Any] = to_plain(self)
        return out

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict` (strict JSON: no NaN)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Rebuild from :meth:`to_dict` output; unknown keys raise StatsInputError."""
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True, kw_only=True)
class ComparisonResult(ResultBase):
    """One variant against control on one metric (in one segment of one experiment).

    ``estimate`` is the treatment-minus-control difference (``effect="absolute"``) or the
    lift ``treatment / control - 1`` (``effect="relative"``). ``ci_lower``/``ci_upper`` is
    the ``1 - alpha`` interval; one-sided tests have an infinite side, serialized as
    ``None``. ``std_err`` is the standard error of ``estimate``; ``df`` the degrees of
    freedom (``None``/infinite for a z test). ``control_mean``/``treatment_mean`` are the
    arm estimates the effect is computed from (CUPED-adjusted when ``cuped`` is true).
    ``variance_reduction`` is the share of the effect's variance CUPED removed
    (``1 - var_adjusted / var_unadjusted``), ``None`` without CUPED. The ``adjusted_*``
    fields are filled by a multiple-comparison correction
    (:func:`proving.stats.multiple.adjust`).
    """

    experiment: str = ""
    metric: str
    segment: str = "all"
    variant: str
    control: str = "control"
    kind: Kind = "mean"
    effect: Effect = "relative"
    relative_method: RelativeMethod = "delta"
    method: Method = "welch"
    alternative: Alternative = "two-sided"
    alpha: float = 0.05
    estimate: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    p_value: float | None = None
    std_err: float | None = None
    statistic: float | None = None
    df: float | None = None
    control_mean: float | None = None
    treatment_mean: float | None = None
    n_control: float | None = None
    n_treatment: float | None = None
    cuped: bool = False
    covariates: tuple[str, ...] = ()
    variance_reduction: float | None = None
    family: Family = "primary"
    correction: str | None = None
    adjusted_p_value: float | None = None
    adjusted_ci_lower: float | None = None
    adjusted_ci_upper: float | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def has_answer(self) -> bool:
        """True when the comparison produced an estimate (no ``reason``)."""
        return self.reason is None and self.estimate is not None

    @property
    def significant(self) -> bool | None:
        """``p_value < alpha`` (adjusted p-value when corrected); None without an answer."""
        p = self.adjusted_p_value if self.adjusted_p_value is not None else self.p_value
        return None if p is None else p < self.alpha


_COMPARISON_FIELDS = tuple(f.name for f in dataclasses.fields(ComparisonResult))
_COMPARISON_DEFAULTS = {
    f.name: f.default
    for f in dataclasses.fields(ComparisonResult)
    if f.default is not dataclasses.MISSING
}
ComparisonColumns = Mapping[str, Sequence[Any]]


def comparisons_from_columns(columns: ComparisonColumns) -> tuple[ComparisonResult, ...]:
    """ComparisonResults from columns of plain values (one list per field, equal lengths).

    Fields without a column take their default. The values are used as given (plain
    Python: None rather than NaN, tuples for ``covariates`` and ``warnings``), as
    :func:`proving.stats.analyze` produces them; the objects equal those built with
    ``ComparisonResult(**row)`` and stay frozen. Building skips the dataclass ``__init__``
    (~35 attribute writes through ``object.__setattr__``): one dict per object instead,
    with the cyclic garbage collector paused (the objects are acyclic).
    """
    missing = [n for n in ("metric", "variant") if n not in columns]
    if missing:
        raise StatsInputError(f"comparisons_from_columns: the column(s) {missing} are required.")
    names = [n for n in _COMPARISON_FIELDS if n in columns]
    unknown = sorted(set(columns) - set(_COMPARISON_FIELDS))
    if unknown:
        raise StatsInputError(
            f"comparisons_from_columns: unknown field(s) {unknown}; known fields are "
            f"{sorted(_COMPARISON_FIELDS)}."
        )
    template = {n: v for n, v in _COMPARISON_DEFAULTS.items() if n not in columns}
    size = len(columns["metric"])
    if any(len(columns[n]) != size for n in names):
        raise StatsInputError("comparisons_from_columns: the columns differ in length.")
    enabled = gc.isenabled()
    gc.disable()
    try:
        # map() keeps every per-object step in C: instances, their dicts, the defaults.
        objects = tuple(map(object.__new__, repeat(ComparisonResult, size)))
        states = list(
            map(dict, map(zip, repeat(names), zip(*(columns[n] for n in names), strict=True)))
        )
        if template:
            deque(map(dict.update, states, repeat(template)), maxlen=0)
        deque(map(object.__setattr__, objects, repeat("__dict__"), states), maxlen=0)
    finally:
        if enabled:
            gc.enable()
    return objects


class _Comparisons:
    """``AnalysisResult.comparisons``: a tuple, built on first access for a columnar result.

    A data descriptor, so that the dataclass keeps ``comparisons`` as an ordinary field
    (``__init__``, ``==``, ``repr``, ``replace``, ``to_dict`` and pickling all see a tuple)
    while :meth:`AnalysisResult.from_columns` can defer creating thousands of objects
    until (and unless) someone reads them.
    """

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return ()  # the field's default
        state = obj.__dict__
        built = state.get("_comparisons")
        if built is None:
            built = comparisons_from_columns(state["_columns"]())
            state["_comparisons"] = built
            del state["_columns"]
        return built

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_comparisons"] = value


@dataclass(frozen=True)
class AnalysisResult(ResultBase):
    """Every comparison of an analysis, the sample-ratio checks and overall warnings.

    ``srm`` holds :class:`proving.stats.srm.SRMResult` objects (one per experiment and
    segment); it is typed loosely so that this module does not depend on the checks.
    ``srm_scope[i]`` is the ``(experiment, segment)`` that ``srm[i]`` checked.

    :func:`proving.stats.analyze` returns a columnar result (:meth:`from_columns`):
    :meth:`comparison_columns` gives every field as a list without creating an object per
    comparison; ``comparisons`` creates the objects on first access.
    """

    comparisons: tuple[ComparisonResult, ...] = _Comparisons()  # type: ignore[assignment]
    srm: tuple[Any, ...] = ()
    srm_scope: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisResult:
        """Rebuild from :meth:`to_dict` output (SRM entries as SRMResult when available)."""
        base = dataclass_from_dict(cls, data)
        srm_raw = data.get("srm") or ()
        srm: list[Any] = list(srm_raw)
        try:  # the SRM check lives in its own module; without it keep plain dicts
            from proving.stats.srm import SRMResult

            srm = [
                dataclass_from_dict(SRMResult, s) if isinstance(s, Mapping) else s for s in srm_raw
            ]
        except ImportError:
            pass
        return dataclasses.replace(base, srm=tuple(srm))

    @classmethod
    def from_columns(
        cls,
        columns: Callable[[], ComparisonColumns],
        *,
        srm: tuple[Any, ...] = (),
        srm_scope: tuple[tuple[str, str], ...] = (),
        warnings: tuple[str, ...] = (),
    ) -> AnalysisResult:
        """A result whose comparisons are columns: ``columns()`` returns them when needed.

        ``columns`` is called at most once for ``comparisons`` (see
        :func:`comparisons_from_columns` for the column format).
        """
        result = cls(srm=srm, srm_scope=srm_scope, warnings=warnings)
        del result.__dict__["_comparisons"]
        result.__dict__["_columns"] = columns
        return result

    def comparison_columns(self) -> dict[str, list[Any]]:
        """Every ComparisonResult field as a list, one entry per comparison.

        For a result from :func:`proving.stats.analyze` this skips creating the objects
        (a tenth of the cost at 10,000 comparisons); the values equal the objects' fields.
        """
        pending = self.__dict__.get("_columns")
        if pending is not None:
            given = pending()
            size = len(given["metric"])
            return {
                n: list(given[n]) if n in given else [_COMPARISON_DEFAULTS[n]] * size
                for n in _COMPARISON_FIELDS
            }
        return {n: [getattr(c, n) for c in self.comparisons] for n in _COMPARISON_FIELDS}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (and copy) with the comparisons built: the column source is a closure."""
        _ = self.comparisons
        return dict(self.__dict__)

    def find(
        self, metric: str, variant: str, *, segment: str = "all", experiment: str | None = None
    ) -> ComparisonResult:
        """The comparison of ``variant`` on ``metric`` (and segment); KeyError if absent."""
        for c in self.comparisons:
            if (
                c.metric == metric
                and c.variant == variant
                and c.segment == segment
                and (experiment is None or c.experiment == experiment)
            ):
                return c
        raise KeyError(f"no comparison for metric={metric!r}, variant={variant!r}")
