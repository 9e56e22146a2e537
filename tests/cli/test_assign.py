"""`proving assign` through typer's CliRunner: the answer and its explanation."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from proving.assign import assign
from proving.cli.app import app
from proving.spec import load_spec

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples"
CHECKOUT = str(EXAMPLES / "checkout-ab.yaml")
runner = CliRunner()
NOW = "2026-03-02T10:00:00Z"


def _json(args: list[str]) -> dict[str, object]:
    result = runner.invoke(app, ["assign", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_json_answer_equals_the_library() -> None:
    attrs = {"country": "US", "app_version": "4.3.0"}
    spec = load_spec(CHECKOUT)
    expected = assign("user-9", attrs, spec, now=datetime.fromisoformat(NOW), explain=True)
    data = _json(
        ["--spec", CHECKOUT, "--unit", "user-9", "--attrs", json.dumps(attrs), "--now", NOW]
    )
    assert data == json.loads(json.dumps(expected.to_dict()))


def test_reasons_through_the_cli() -> None:
    base = ["--spec", CHECKOUT, "--now", NOW]
    assert _json([*base, "--unit", "qa-alice"])["reason"] == "forced"
    assert (
        _json([*base, "--unit", "u1", "--attrs", '{"country": "FR"}'])["reason"] == "not_targeted"
    )
    early = _json(["--spec", CHECKOUT, "--unit", "u1", "--now", "2026-01-01T00:00:00Z"])
    assert early["reason"] == "not_started" and early["variant"] == "control"
    beta = _json([*base, "--unit", "beta-bob", "--attrs", '{"country": "FR"}'])
    assert beta["reason"] == "allowlist" and beta["in_experiment"] is True


def test_unit_read_from_attributes() -> None:
    data = _json(["--spec", str(EXAMPLES / "ranker-canary.yaml"), "--attrs", '{"user_id": "u7"}'])
    assert data["unit_id"] == "u7" and data["reason"] in ("bucket", "coverage")


def test_human_output_explains_rule_bucket_and_why() -> None:
    program = str(EXAMPLES / "search-program.yaml")
    result = runner.invoke(
        app, ["assign", "--spec", program, "--experiment", "ranker-bm25-boost", "--unit", "user-7"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "unit user-7 -> variant" in out and "reason:" in out
    assert "why:" in out and "layer hash" in out and "domain hash" in out


def test_human_output_shows_the_variant_model() -> None:
    # Regression: the model reference (a read-only mapping) once crashed the human output.
    spec = str(EXAMPLES / "checkout-ab.yaml")
    attrs = '{"country": "US", "app_version": "4.3.0"}'
    args = ["assign", "--spec", spec, "--unit", "u1", "--attrs", attrs]
    result = runner.invoke(app, [*args, "--now", "2026-03-10T12:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "checkout-ranker" in result.stdout and '"version": "' in result.stdout


def test_switchback_shows_the_window() -> None:
    args = ["--spec", str(EXAMPLES / "pricing-switchback.yaml"), "--unit", "r1"]
    data = _json([*args, "--attrs", '{"city": "paris"}', "--now", "2026-01-05T03:20:00Z"])
    window = data["window"]
    assert isinstance(window, dict) and window["cluster"] == "paris"
    assert window["start"] == "2026-01-05T03:00:00+00:00"


def test_user_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    cases = [
        (["--spec", CHECKOUT, "--unit", "u1", "--attrs", "{bad"], "--attrs is not valid JSON"),
        (["--spec", CHECKOUT, "--unit", "u1", "--attrs", "[1]"], "must be a JSON object"),
        (["--spec", CHECKOUT, "--unit", "u1", "--now", "yesterday"], "not an ISO 8601"),
        (["--spec", CHECKOUT, "--unit", "u1", "--now", "2026-03-02T10:00:00"], "time zone"),
        (["--spec", CHECKOUT, "--unit", "u1"], "`now` is missing"),
        (["--spec", str(tmp_path / "none.yaml"), "--unit", "u1"], "does not exist"),
        (["--spec", str(EXAMPLES / "search-program.yaml"), "--experiment", "x"], "no experiment"),
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariants: [{name: a}]\n")
    cases.append((["--spec", str(bad), "--unit", "u1"], "bad.yaml:2: variants"))
    for args, message in cases:
        result = runner.invoke(app, ["assign", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output


def test_a_program_without_experiment_assigns_every_experiment() -> None:
    program = str(EXAMPLES / "search-program.yaml")
    data = _json(["--spec", program, "--unit", "user-7"])
    assignments = data["assignments"]
    assert isinstance(assignments, dict) and len(assignments) == 5
    ranking = [assignments[n]["in_experiment"] for n in ("ranker-bm25-boost", "ranker-neural")]
    assert sum(ranking) <= 1
    assert isinstance(data["parameters"], dict) and "spellcheck" in data["parameters"]
    human = runner.invoke(app, ["assign", "--spec", program, "--unit", "user-7"])
    assert human.exit_code == 0 and "parameters:" in human.stdout
    assert "(launch)" in human.stdout and "spellcheck-launch" in human.stdout
