"""How a problem in a spec is described: where it is, what rule it breaks, how to fix it.

Validators in :mod:`proving.spec` raise :func:`rule_error`, a pydantic custom error that
carries the fix in its context, so the loader can report every problem of a file at once
as a :class:`SpecIssue` (file, line, field path, message, fix). Errors pydantic raises
itself (a missing field, a wrong type, an unknown key) get their fix from
:func:`fix_for`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError

__all__ = ["SpecIssue", "field_path", "fix_for", "rule_error"]

RULE_ERROR_TYPE = "spec_rule"


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a spec.

    Attributes:
        file: the spec file, or ``"<string>"`` for text not read from a file.
        line: the 1-based line the problem is on, when the YAML gives one.
        field: the field path, e.g. ``variants[1].weight``.
        message: the rule broken and the value received.
        fix: what to change.
    """

    file: str
    line: int | None
    field: str
    message: str
    fix: str

    def render(self) -> str:
        """One line, ``file:line: field: message. Fix: fix``."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = self.field or "(top level)"
        return f"{where}: {field}: {self.message} Fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "fix": self.fix,
        }


def rule_error(message: str, fix: str, at: tuple[int | str, ...] = ()) -> PydanticCustomError:
    """A validation error for a broken spec rule, with its fix attached.

    Args:
        message: the rule and the value received, e.g. "weights must sum to 1; got 1.2".
        fix: what to change, e.g. "use [0.5, 0.5]".
        at: the field the rule is about, relative to the model that raises it (model
            validators have no location of their own), e.g. ``("weights",)``.

    Returns:
        An exception to ``raise`` inside a pydantic validator.
    """
    # The text shown by pydantic carries the fix too, for specs built in Python; the loader
    # reads the plain message and the fix from the context. Braces would be read as
    # template placeholders by pydantic-core.
    text = f"{message}. Fix: {fix}".replace("{", "(").replace("}", ")")
    context = {"message": message, "fix": fix, "at": list(at)}
    return PydanticCustomError(RULE_ERROR_TYPE, text, context)


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("variants", 1, "weight")`` -> ``"variants[1].weight"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_FIXES: dict[str, str] = {
    "missing": "add the field `{field}`.",
    "extra_forbidden": "remove `{field}` or correct its spelling; allowed here: {allowed}.",
    "literal_error": "use one of {expected}.",
    "enum": "use one of {expected}.",
    "string_type": "write a string (quote it if YAML reads it as a number or date).",
    "string_too_short": "write a non-empty string.",
    "string_too_long": "shorten it to at most {max_length} characters.",
    "string_pattern_mismatch": "use letters, digits, '_', '-' or '.', starting with a "
    "letter or digit.",
    "int_type": "write a whole number.",
    "int_parsing": "write a whole number.",
    "int_from_float": "write a whole number.",
    "float_type": "write a number.",
    "float_parsing": "write a number.",
    "bool_type": "write true or false.",
    "bool_parsing": "write true or false.",
    "list_type": "write a list (YAML `- item` lines or `[a, b]`).",
    "tuple_type": "write a list (YAML `[a, b]`).",
    "dict_type": "write a mapping (YAML `key: value` lines).",
    "model_type": "write a mapping (YAML `key: value` lines).",
    "model_attributes_type": "write a mapping (YAML `key: value` lines).",
    "too_short": "give at least {min_length} item(s).",
    "too_long": "give at most {max_length} item(s).",
    "greater_than": "use a value greater than {gt}.",
    "greater_than_equal": "use a value of at least {ge}.",
    "less_than": "use a value less than {lt}.",
    "less_than_equal": "use a value of at most {le}.",
    "datetime_type": "write an ISO 8601 date-time with a zone, e.g. 2026-01-31T09:00:00Z.",
    "datetime_parsing": "write an ISO 8601 date-time with a zone, e.g. 2026-01-31T09:00:00Z.",
    "datetime_from_date_parsing": "write an ISO 8601 date-time with a zone, e.g. "
    "2026-01-31T09:00:00Z.",
    "timezone_aware": "add a zone, e.g. 2026-01-31T09:00:00Z or +02:00.",
    "time_delta_type": "write a duration such as 30m, 1h, 1h30m, 2d or 3600 (seconds).",
    "time_delta_parsing": "write a duration such as 30m, 1h, 1h30m, 2d or 3600 (seconds).",
    "union_tag_invalid": "use one of {expected_tags}.",
    "json_invalid": "write valid JSON.",
}


def fix_for(error_type: str, ctx: dict[str, Any], field: str, allowed: list[str]) -> str:
    """The fix for a pydantic error type (or a rule error's own fix).

    Args:
        error_type: pydantic's ``type`` of the error, e.g. ``"missing"``.
        ctx: the error's ``ctx`` dict (limits, expected values, a rule's fix).
        field: the field path, used in the fix text.
        allowed: the fields allowed in the enclosing mapping (for unknown keys).

    Returns:
        One sentence.
    """
    if error_type == RULE_ERROR_TYPE and "fix" in ctx:
        return str(ctx["fix"])
    template = _FIXES.get(error_type)
    if template is None:
        return "correct the value as the message says (see `proving spec schema`)."
    values = {k: v for k, v in ctx.items()}
    values.setdefault("field", field.rsplit(".", 1)[-1])
    values["allowed"] = ", ".join(allowed) if allowed else "(see `proving spec schema`)"
    try:
        return template.format(**values)
    except (KeyError, IndexError):
        return template
