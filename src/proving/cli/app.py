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


def main() -> None:
    """Entry point of the `proving` console script."""
    app()
