"""The `proving` command line: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from proving import __version__

app = typer.Typer(
    name="proving",
    help="Test machine-learning models in production, with statistical rigor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"proving {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Test machine-learning models in production, with statistical rigor."""


# Command registration: each command group lives in its own module under proving.cli.
# (added below as the stages land)
from proving.cli.demo import demo_command  # noqa: E402

app.command("demo")(demo_command)
from proving.cli.analyze import analyze_command  # noqa: E402

app.command("analyze")(analyze_command)
from proving.cli.telemetry import ingest_command, telemetry_app  # noqa: E402

app.add_typer(telemetry_app, name="telemetry")
app.command("ingest")(ingest_command)

from proving.cli.spec import spec_app  # noqa: E402

app.add_typer(spec_app, name="spec")
from proving.cli.assign import assign_command  # noqa: E402

app.command("assign")(assign_command)

from proving.cli.sequential import monitor_command  # noqa: E402

app.command("monitor")(monitor_command)
from proving.cli.plan import plan_command  # noqa: E402

app.command("plan")(plan_command)
from proving.cli.judge import judge_command  # noqa: E402

app.command("judge")(judge_command)
from proving.cli.serve import serve_command  # noqa: E402

app.command("serve")(serve_command)
from proving.cli.metrics import metrics_app  # noqa: E402

app.add_typer(metrics_app, name="metrics")


def main() -> None:
    """Entry point of the `proving` console script."""
    app()
