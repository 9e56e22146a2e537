"""`proving spec validate` and `proving spec schema` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from proving.cli.app import app
from proving.spec import ExperimentSpec

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples"
runner = CliRunner()


def test_validate_a_good_spec_exits_0_with_a_summary() -> None:
    result = runner.invoke(app, ["spec", "validate", str(EXAMPLES / "checkout-ab.yaml")])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout and "checkout-ranker" in result.stdout


def test_validate_json_summary_of_a_program() -> None:
    result = runner.invoke(
        app, ["spec", "validate", str(EXAMPLES / "search-program.yaml"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["valid"] and data["kind"] == "program"
    names = [e["name"] for e in data["experiments"]]
    assert "ranker-neural" in names and len(names) == 5
    neural = next(e for e in data["experiments"] if e["name"] == "ranker-neural")
    assert neural["layer"]["name"] == "ranking"


def test_validate_a_bad_spec_exits_2_naming_file_line_field_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: checkout\nvariants:\n  - name: control\n  - name: treatment\n"
        "weights: [0.5, 0.05]\nanalysis:\n  cupd: true\n"
    )
    result = runner.invoke(app, ["spec", "validate", str(path)])
    assert result.exit_code == 2
    err = result.stderr
    assert f"{path}:5" in err and "weights" in err and "must sum to 1" in err
    assert "Fix: make them sum to 1" in err
    assert f"{path}:7" in err and "analysis.cupd" in err and "cuped" in err
    assert "Traceback" not in result.output


def test_validate_json_issues(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nvariants: [{name: a}, {name: b}]\ncoverage: 3\n")
    result = runner.invoke(app, ["spec", "validate", str(path), "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["valid"] is False
    (issue,) = data["issues"]
    assert (issue["file"], issue["line"], issue["field"]) == (str(path), 3, "coverage")
    assert "at most 1" in issue["fix"]


def test_validate_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["spec", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_schema_is_the_models_json_schema() -> None:
    result = runner.invoke(app, ["spec", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == ExperimentSpec.model_json_schema()
    program = runner.invoke(app, ["spec", "schema", "--program"])
    assert json.loads(program.stdout)["title"] == "ProgramSpec"
