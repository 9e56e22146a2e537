"""`proving spec validate FILE` and `proving spec schema`: check specs before they ship.

``validate`` exits 0 with a summary of the spec, or 2 with every problem, each naming
``file:line``, the field path and the fix. ``schema`` prints the JSON Schema (for editors
and CI linters).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from proving.errors import SpecError, SpecValidationError
from proving.spec.experiment import ExperimentSpec
from proving.spec.issues import SpecIssue
from proving.spec.loader import read_spec, spec_schema
from proving.spec.program import ProgramSpec

spec_app = typer.Typer(
    help="Validate experiment specs and print their JSON Schema.", no_args_is_help=True
)

EXIT_INVALID = 2


def _experiment_summary(spec: ExperimentSpec) -> dict[str, Any]:
    weights = spec.resolved_weights()
    return {
        "name": spec.name,
        "version": spec.version,
        "mode": spec.mode,
        "unit": spec.unit,
        "enabled": spec.enabled,
        "control": spec.control_name,
        "variants": [
            {
                "name": v.name,
                "weight": weights[i] if spec.mode == "ab" or spec.mode == "switchback" else None,
                "model": None if v.model is None else v.model.model_dump(),
            }
            for i, v in enumerate(spec.variants)
        ],
        "coverage": spec.coverage,
        "targeting": spec.targeting is not None,
        "layer": None if spec.layer is None else spec.layer.model_dump(),
        "metrics": {
            "primary": [m.name for m in spec.metrics.primary],
            "secondary": [m.name for m in spec.metrics.secondary],
            "guardrails": [m.name for m in spec.metrics.guardrails],
        },
    }


def _summary(spec: ExperimentSpec | ProgramSpec) -> dict[str, Any]:
    if isinstance(spec, ExperimentSpec):
        return {"kind": "experiment", "experiments": [_experiment_summary(spec)]}
    return {
        "kind": "program",
        "name": spec.name,
        "version": spec.version,
        "domains": [d.name for d in spec.domains],
        "layers": [lyr.name for d in spec.domains for lyr in d.layers]
        + [lyr.name for lyr in spec.launch_layers],
        "experiments": [_experiment_summary(e) for e in spec.resolved_experiments()],
    }


def _print_summary(path: Path, summary: dict[str, Any], console: Console) -> None:
    console.print(f"[green]valid[/] {path}: {summary['kind']}")
    table = Table()
    widest = max(len(e["name"]) for e in summary["experiments"])
    table.add_column("experiment", no_wrap=True, min_width=widest)
    for column in ("version", "mode", "variants", "coverage", "layer", "metrics"):
        table.add_column(column, overflow="fold")
    for e in summary["experiments"]:
        variants = ", ".join(
            v["name"] + ("" if v["weight"] is None else f" ({v['weight']:.3g})")
            for v in e["variants"]
        )
        layer = e["layer"]
        where = "-" if layer is None else f"{layer['name']} {list(layer['range'])}"
        metrics = ", ".join(e["metrics"]["primary"]) or "-"
        state = "" if e["enabled"] else " [red](disabled)[/]"
        table.add_row(
            e["name"] + state,
            str(e["version"]),
            e["mode"],
            variants,
            f"{e['coverage']:g}",
            where,
            metrics,
        )
    console.print(table)


def _print_issues(issues: list[SpecIssue], console: Console) -> None:
    console.print(f"[red]invalid[/] spec: {len(issues)} problem(s)")
    for issue in issues:
        where = issue.file if issue.line is None else f"{issue.file}:{issue.line}"
        console.print(f"  [bold]{where}[/] [cyan]{issue.field or '(top level)'}[/]")
        console.print(f"    {issue.message}", markup=False, highlight=False)
        console.print(f"    Fix: {issue.fix}", markup=False, highlight=False)


@spec_app.command("validate")
def validate_command(
    file: Annotated[Path, typer.Argument(help="The spec file (YAML or JSON).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Validate a spec file: exit 0 with a summary, or 2 naming file:line, field and fix."""
    console = Console(soft_wrap=True)
    try:
        spec = read_spec(file)
    except SpecValidationError as exc:
        issues = [i for i in exc.issues if isinstance(i, SpecIssue)]
        if as_json:
            typer.echo(json.dumps({"valid": False, "issues": [i.to_dict() for i in issues]}))
        else:
            _print_issues(issues, Console(stderr=True, soft_wrap=True))
        raise typer.Exit(EXIT_INVALID) from None
    except SpecError as exc:
        if as_json:
            typer.echo(json.dumps({"valid": False, "issues": [], "error": str(exc)}))
        else:
            Console(stderr=True, soft_wrap=True).print(f"[red]error[/] {exc}", markup=True)
        raise typer.Exit(EXIT_INVALID) from None
    summary = _summary(spec)
    if as_json:
        typer.echo(json.dumps({"valid": True, **summary}, default=str))
        return
    _print_summary(file, summary, console)


@spec_app.command("schema")
def schema_command(
    program: Annotated[
        bool, typer.Option("--program", help="The schema of a program file (domains, layers).")
    ] = False,
) -> None:
    """Print the JSON Schema of an experiment spec (or of a program with --program)."""
    typer.echo(json.dumps(spec_schema("program" if program else "experiment"), indent=2))
