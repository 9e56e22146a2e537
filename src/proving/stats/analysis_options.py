"""The options of an analysis: their validation and the frozen set every comparison shares.

:func:`check_options` validates what :func:`~proving.stats.analyze.analyze` is given (the
effect options through :func:`proving.stats.effects.validate_options`, then ``correction``,
``srm_threshold`` and ``families``) before any data is read, so a bad parameter raises
:class:`~proving.errors.StatsInputError` naming it, whatever the table.

Example:
    >>> check_options(0.05, "relative", "delta", "welch", "two-sided", "holm", None, 0.001)
    >>> check_options(0.05, "relative", "delta", "welch", "two-sided", "bonf", None, 0.001)
    Traceback (most recent call last):
    ...
    proving.errors.StatsInputError: `correction` must be one of 'none', 'holm', 'bh'; got 'bonf'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from proving.errors import StatsInputError
from proving.stats.effects import validate_options
from proving.stats.results import Alternative, Effect, Family, Method, RelativeMethod

__all__ = ["AnalysisOptions", "Correction", "check_options"]

Correction = Literal["none", "holm", "bh"]


def check_options(
    alpha: float,
    effect: str,
    relative_method: str,
    method: str,
    alternative: str,
    correction: str,
    families: Mapping[str, str] | None,
    srm_threshold: float,
) -> None:
    """Check the parameters of :func:`~proving.stats.analyze.analyze` before any work.

    Raises:
        StatsInputError: naming the parameter, the rule, the value received and the fix.
    """
    validate_options(
        alpha=alpha,
        effect=effect,
        relative_method=relative_method,
        method=method,
        alternative=alternative,
    )
    if correction not in get_args(Correction):
        raise StatsInputError(
            f"`correction` must be one of 'none', 'holm', 'bh'; got {correction!r}."
        )
    if not (isinstance(srm_threshold, (int, float)) and 0 < srm_threshold < 1):
        raise StatsInputError(
            f"`srm_threshold` must be in (0, 1); got {srm_threshold!r}. Use 0.001."
        )
    for metric, fam in (families or {}).items():
        if fam not in get_args(Family):
            raise StatsInputError(
                f"families[{metric!r}] must be one of {', '.join(get_args(Family))}; got {fam!r}."
            )


@dataclass(frozen=True)
class AnalysisOptions:
    """The options every comparison of one analysis shares (``alpha`` already a float)."""

    control: str
    alpha: float
    effect: Effect
    relative_method: RelativeMethod
    method: Method
    alternative: Alternative
