import json
from pathlib import Path

from typer.testing import CliRunner

from proving.cli.app import app

runner = CliRunner()


def test_demo_prints_the_report_and_writes_html(tmp_path: Path) -> None:
    out = tmp_path / "demo.html"
    result = runner.invoke(
        app, ["demo", "--units", "20000", "--seed", "3", "--no-live", "--report", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "revenue" in result.output and "Sequential monitor" in result.output
    assert "Truth recovered on" in result.output
    assert out.exists() and "plotly" in out.read_text()


def test_demo_json_is_machine_readable() -> None:
    result = runner.invoke(app, ["demo", "--units", "20000", "--no-live", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["n_units"] == 20000


def test_demo_rejects_a_tiny_world() -> None:
    result = runner.invoke(app, ["demo", "--units", "10"])
    assert result.exit_code == 2
    assert "--units" in result.output
