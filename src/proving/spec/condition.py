"""Static checks of GrowthBook-style targeting conditions, at load time.

A condition is a Mongo-style query over unit attributes (GrowthBook's ``evalCondition``).
Evaluating it is :func:`proving.assign.conditions.eval_condition`'s job; here we only
catch mistakes early: an unknown operator (``$gte `` or ``$regx``), a ``$in`` that is not a
list, a ``$regex`` that does not compile, a logical operator without a list. An unknown
operator would otherwise evaluate to false silently and target nobody.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["OPERATORS", "condition_problems"]

LOGICAL: Final = frozenset({"$and", "$or", "$nor"})
LIST_OPERATORS: Final = frozenset({"$in", "$nin", "$ini", "$nini", "$all", "$alli"})
OPERATORS: Final = frozenset(
    {
        "$eq", "$ne", "$lt", "$lte", "$gt", "$gte",
        "$veq", "$vne", "$vlt", "$vlte", "$vgt", "$vgte",
        "$in", "$nin", "$ini", "$nini", "$all", "$alli",
        "$regex", "$regexi", "$exists", "$type", "$size", "$elemMatch", "$not",
        "$inGroup", "$notInGroup",
    }
)  # fmt: skip
TYPES: Final = frozenset({"string", "number", "boolean", "array", "object", "null", "undefined"})


def condition_problems(condition: Any, path: str = "targeting") -> list[str]:
    """Every mistake found in a condition, each naming where it is and how to fix it.

    Args:
        condition: the condition (a mapping).
        path: where it sits in the spec, for the messages.

    Returns:
        Messages; empty when the condition is well formed.

    Example:
        >>> condition_problems({"country": {"$in": "US"}})
        ["targeting.country.$in: $in takes a list; got 'US'"]
    """
    if not isinstance(condition, dict):
        return [f"{path}: a condition must be a mapping; got {type(condition).__name__}"]
    problems: list[str] = []
    for key, value in condition.items():
        where = f"{path}.{key}"
        if key in LOGICAL:
            if not isinstance(value, list):
                problems.append(f"{where}: {key} takes a list of conditions")
                continue
            for i, sub in enumerate(value):
                problems.extend(condition_problems(sub, f"{where}[{i}]"))
        elif key == "$not":
            problems.extend(condition_problems(value, where))
        elif key in OPERATORS:
            # Any other "$name" is an attribute (GrowthBook's own suite uses "$groups").
            problems.append(
                f"{where}: operator {key} cannot be used at the top of a condition; "
                "use it under an attribute name, e.g. {{country: {{{key}: ...}}}}"
            )
        elif isinstance(value, dict) and any(str(k).startswith("$") for k in value):
            problems.extend(_operator_problems(value, where))
    return problems


def _operator_problems(ops: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    for op, arg in ops.items():
        where = f"{path}.{op}"
        if op not in OPERATORS:
            problems.append(
                f"{where}: unknown operator '{op}'; use one of {', '.join(sorted(OPERATORS))}"
            )
        elif op in LIST_OPERATORS and not isinstance(arg, list):
            problems.append(f"{where}: {op} takes a list; got {arg!r}")
        elif op in {"$regex", "$regexi"}:
            try:
                re.compile(str(arg))
            except re.error as exc:
                problems.append(f"{where}: the regular expression {arg!r} is invalid: {exc}")
        elif op == "$type" and arg not in TYPES:
            problems.append(f"{where}: $type must be one of {', '.join(sorted(TYPES))}")
        elif op == "$exists" and not isinstance(arg, bool):
            problems.append(f"{where}: $exists takes true or false; got {arg!r}")
        elif op == "$size" and not isinstance(arg, int | dict):
            problems.append(f"{where}: $size takes a number or a condition; got {arg!r}")
        elif op in {"$elemMatch", "$not"} and isinstance(arg, dict):
            if any(str(k).startswith("$") for k in arg):
                problems.extend(_operator_problems(arg, where))
            else:
                problems.extend(condition_problems(arg, where))
        elif op in {"$inGroup", "$notInGroup"} and not isinstance(arg, str):
            problems.append(f"{where}: {op} takes a saved-group id (a string); got {arg!r}")
    return problems
