"""`proving serve`: bad input exits 2 with the problem named (the running server is
exercised end to end in tests/serve/test_e2e.py)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from proving.cli.app import app

runner = CliRunner()


def test_missing_spec_file_exits_2_naming_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--spec", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml" in result.output


def test_empty_admin_token_file_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nvariants: [{name: a}, {name: b}]\n")
    token = tmp_path / "token"
    token.write_text("")
    result = runner.invoke(
        app, ["serve", "--spec", str(spec), "--admin-token-file", str(token), "--store", ":memory:"]
    )
    assert result.exit_code == 2 and "is empty" in result.output


def test_bad_store_url_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nvariants: [{name: a}, {name: b}]\n")
    result = runner.invoke(app, ["serve", "--spec", str(spec), "--store", "ftp://x"])
    assert result.exit_code == 2 and "unknown scheme" in result.output


def test_telemetry_nice_out_of_range_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nvariants: [{name: a}, {name: b}]\n")
    result = runner.invoke(
        app, ["serve", "--spec", str(spec), "--store", ":memory:", "--telemetry-nice", "20"]
    )
    assert result.exit_code == 2 and "--telemetry-nice" in result.output
