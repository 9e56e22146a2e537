"""PlanOut-style random operators for scripted experiments (Bakshy, Eckles and Bernstein,
"Designing and Deploying Online Field Experiments", WWW 2014).

Each operator draws a parameter value deterministically from a hash of
``(experiment salt, parameter salt, unit)``, exactly as PlanOut's reference
implementation does (``planout/ops/random.py``): the string
``"<experiment_salt>.<parameter_salt>.<unit>"`` (a list unit is joined with ``.``) is
hashed with SHA-1 and its first 15 hex digits read as an integer ``h``; the uniform draw
is ``h / 0xFFFFFFFFFFFFFFF``. Parameters with different salts therefore vary
independently for the same unit (the test suite checks it with a chi-square test), and a
parameter assigned in PlanOut gets the same value here.

Example:
    >>> color = uniform_choice(["red", "blue"], unit="u1", salt="color", experiment_salt="e")
    >>> color == uniform_choice(["red", "blue"], unit="u1", salt="color", experiment_salt="e")
    True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Final, TypeVar

from proving.errors import AssignmentError

__all__ = [
    "bernoulli_trial",
    "planout_hash",
    "random_float",
    "random_integer",
    "sample",
    "uniform_choice",
    "weighted_choice",
]

T = TypeVar("T")
LONG_SCALE: Final = float(0xFFFFFFFFFFFFFFF)

Unit = str | int | Sequence[str | int]


def _unit_text(unit: Unit, appended: int | None) -> str:
    parts = [unit] if isinstance(unit, str | int) else list(unit)
    if appended is not None:
        parts = [*parts, appended]
    return ".".join(str(p) for p in parts)


def planout_hash(unit: Unit, salt: str, experiment_salt: str, appended: int | None = None) -> int:
    """PlanOut's hash: the first 15 hex digits of SHA-1 of ``"exp.param.unit"``.

    Args:
        unit: the unit id, or several ids (hashed joined by ``.``).
        salt: the parameter salt (PlanOut's default is the parameter name).
        experiment_salt: the experiment salt (PlanOut's default is the experiment name).
        appended: an extra unit component (``sample`` uses the position being shuffled).

    Returns:
        An integer in [0, 16**15).
    """
    text = f"{experiment_salt}.{salt}.{_unit_text(unit, appended)}"
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:15], 16)


def _uniform(
    unit: Unit, salt: str, experiment_salt: str, lo: float = 0.0, hi: float = 1.0
) -> float:
    return lo + (hi - lo) * (planout_hash(unit, salt, experiment_salt) / LONG_SCALE)


def uniform_choice(choices: Sequence[T], *, unit: Unit, salt: str, experiment_salt: str) -> T:
    """One of ``choices``, each with the same probability.

    Raises:
        AssignmentError: ``choices`` is empty.
    """
    if len(choices) == 0:
        raise AssignmentError(
            f"uniform_choice '{salt}': `choices` is empty. Give at least one choice."
        )
    return choices[planout_hash(unit, salt, experiment_salt) % len(choices)]


def weighted_choice(
    choices: Sequence[T],
    weights: Sequence[float],
    *,
    unit: Unit,
    salt: str,
    experiment_salt: str,
) -> T:
    """One of ``choices`` with probability proportional to its weight.

    Raises:
        AssignmentError: empty choices, a length mismatch, or a negative, non-finite or
            all-zero weight vector.
    """
    if len(choices) == 0 or len(choices) != len(weights):
        raise AssignmentError(
            f"weighted_choice '{salt}': need one weight per choice; got {len(choices)} "
            f"choices and {len(weights)} weights. Give matching, non-empty lists."
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise AssignmentError(
            f"weighted_choice '{salt}': weights must be finite, non-negative and not all "
            f"zero; got {list(weights)}. Use e.g. [0.8, 0.2]."
        )
    cumulative: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    stop = _uniform(unit, salt, experiment_salt, 0.0, total)
    for choice, edge in zip(choices, cumulative, strict=True):
        if stop <= edge:
            return choice
    return choices[-1]  # unreachable: stop <= total; kept for float safety


def bernoulli_trial(p: float, *, unit: Unit, salt: str, experiment_salt: str) -> int:
    """1 with probability ``p``, else 0.

    Raises:
        AssignmentError: ``p`` is outside [0, 1].
    """
    if not 0.0 <= p <= 1.0:
        raise AssignmentError(
            f"bernoulli_trial '{salt}': `p` must be in [0, 1]; got {p}. Use e.g. 0.1."
        )
    return 1 if _uniform(unit, salt, experiment_salt) <= p else 0


def random_integer(
    min_value: int, max_value: int, *, unit: Unit, salt: str, experiment_salt: str
) -> int:
    """An integer in ``[min_value, max_value]`` (both inclusive), uniformly.

    Raises:
        AssignmentError: ``max_value < min_value``.
    """
    if max_value < min_value:
        raise AssignmentError(
            f"random_integer '{salt}': max_value ({max_value}) is below min_value "
            f"({min_value}). Swap them."
        )
    return min_value + planout_hash(unit, salt, experiment_salt) % (max_value - min_value + 1)


def random_float(
    min_value: float, max_value: float, *, unit: Unit, salt: str, experiment_salt: str
) -> float:
    """A float in ``[min_value, max_value]``, uniformly."""
    if max_value < min_value:
        raise AssignmentError(
            f"random_float '{salt}': max_value ({max_value}) is below min_value "
            f"({min_value}). Swap them."
        )
    return _uniform(unit, salt, experiment_salt, min_value, max_value)


def sample(
    choices: Sequence[T],
    draws: int | None = None,
    *,
    unit: Unit,
    salt: str,
    experiment_salt: str,
) -> list[T]:
    """``draws`` distinct elements of ``choices`` in random order (all when omitted).

    A Fisher-Yates shuffle whose swap at position ``i`` hashes the unit with ``i``
    appended, as in PlanOut's ``Sample``.

    Raises:
        AssignmentError: ``draws`` is negative or larger than the number of choices.
    """
    items = list(choices)
    n_draws = len(items) if draws is None else draws
    if not 0 <= n_draws <= len(items):
        raise AssignmentError(
            f"sample '{salt}': cannot make {n_draws} draws from {len(items)} choices. Use "
            f"draws between 0 and {len(items)}."
        )
    for i in range(len(items) - 1, 0, -1):
        j = planout_hash(unit, salt, experiment_salt, appended=i) % (i + 1)
        items[i], items[j] = items[j], items[i]
    return items[:n_draws]
