"""`proving assign`: which variant a unit gets, and why.

Example::

    proving assign --spec docs/examples/checkout-ab.yaml --unit user-42 \\
        --attrs '{"country": "US"}' --now 2026-03-01T12:00:00Z
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from proving.assign.assignment import Assignment, assign
from proving.assign.layers import assign_program
from proving.errors import AssignmentError, SpecError, SpecValidationError
from proving.spec.issues import SpecIssue
from proving.spec.loader import load_spec, read_spec
from proving.spec.program import ProgramSpec

EXIT_USAGE = 2


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(EXIT_USAGE)


def _parse_attrs(text: str) -> dict[str, Any]:
    try:
        attrs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(
            f"--attrs is not valid JSON ({exc.msg} at column {exc.colno}); got {text!r}. "
            """Write a JSON object, e.g. --attrs '{"country": "US"}'."""
        ) from None
    if not isinstance(attrs, dict):
        raise _fail(
            f"--attrs must be a JSON object; got {type(attrs).__name__}. "
            """Write e.g. --attrs '{"country": "US"}'."""
        )
    return attrs


def _parse_now(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        now = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(
            f"--now is not an ISO 8601 date-time; got {text!r}. Use e.g. 2026-03-01T12:00:00Z."
        ) from None
    if now.tzinfo is None:
        raise _fail(f"--now needs a time zone; got {text!r}. Add Z or +00:00.")
    return now


def _render(a: Assignment, console: Console) -> None:
    status = "[green]in the experiment[/]" if a.in_experiment else "[yellow]not in it[/]"
    console.print(
        f"unit [bold]{a.unit_id}[/] -> variant [bold]{a.variant}[/] ({status}; "
        f"reason: [cyan]{a.reason}[/])"
    )
    table = Table(show_header=False)
    table.add_column("field")
    table.add_column("value")
    rows: list[tuple[str, str]] = [
        ("experiment", f"{a.experiment} (version {a.version})"),
        ("bucket", "-" if a.bucket is None else f"{a.bucket:.4f}"),
        ("layer bucket", "-" if a.layer_bucket is None else f"{a.layer_bucket:.4f}"),
    ]
    if a.model is not None:
        rows.append(("model", json.dumps(dict(a.model), default=str)))
    if a.value is not None:
        rows.append(("value", json.dumps(a.value, default=str)))
    if a.shadow_variants:
        rows.append(("mirrored to", ", ".join(a.shadow_variants)))
    if a.interleave_variants:
        rows.append(("interleaved", ", ".join(a.interleave_variants)))
    if a.window is not None:
        rows.append(("window", f"{a.window.cluster} #{a.window.index} {a.window.start} ->"
                     f" {a.window.end}"))  # fmt: skip
        rows.append(("in buffer", str(a.in_buffer)))
    for field, value in rows:
        table.add_row(field, value)
    console.print(table)
    console.print("why:")
    for i, step in enumerate(a.explanation, 1):
        console.print(f"  {i}. {step}", markup=False, highlight=False)


def assign_command(
    spec: Annotated[Path, typer.Option("--spec", help="The spec file (experiment or program).")],
    unit: Annotated[
        str | None, typer.Option("--unit", help="The unit id (else read from --attrs).")
    ] = None,
    attrs: Annotated[
        str, typer.Option("--attrs", help="The unit's attributes, a JSON object.")
    ] = "{}",
    now: Annotated[
        str | None,
        typer.Option("--now", help="Current time, ISO 8601 with a zone (schedules, switchback)."),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", help="Which experiment, when the spec is a program."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Assign a unit and explain the answer: which rule, which bucket, why in or out.

    With a program file and no --experiment, assigns the unit in every experiment of the
    program and shows the merged parameters (launch layers overridden by experiments).
    """
    attributes = _parse_attrs(attrs)
    when = _parse_now(now)
    try:
        loaded = read_spec(spec)
        if isinstance(loaded, ProgramSpec) and experiment is None:
            _assign_program(loaded, unit, attributes, when, as_json)
            return
        exp = load_spec(spec, experiment)
    except SpecValidationError as exc:
        lines = [i.render() for i in exc.issues if isinstance(i, SpecIssue)]
        raise _fail("the spec is invalid:\n  " + "\n  ".join(lines)) from None
    except SpecError as exc:
        raise _fail(str(exc)) from None
    try:
        result = assign(unit, attributes, exp, now=when, explain=True)
    except AssignmentError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), default=str))
        return
    _render(result, Console(soft_wrap=True))


def _assign_program(
    program: ProgramSpec,
    unit: str | None,
    attributes: dict[str, Any],
    when: datetime | None,
    as_json: bool,
) -> None:
    try:
        result = assign_program(unit, attributes, program, now=when)
    except AssignmentError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), default=str))
        return
    console = Console(soft_wrap=True)
    console.print(f"unit [bold]{result.unit_id}[/] in program [bold]{program.name}[/]")
    table = Table()
    widest = max(len(name) for name in result.assignments)
    table.add_column("experiment", no_wrap=True, min_width=widest)
    for column in ("layer", "variant", "in", "reason", "bucket"):
        table.add_column(column, overflow="fold")
    for name, a in result.assignments.items():
        layer = program.experiment(name).layer
        table.add_row(
            name,
            "-" if layer is None else layer.name + (" (launch)" if layer.launch else ""),
            a.variant,
            "yes" if a.in_experiment else "no",
            a.reason,
            "-" if a.bucket is None else f"{a.bucket:.4f}",
        )
    console.print(table)
    console.print("parameters: " + json.dumps(result.parameters, default=str), markup=False)
