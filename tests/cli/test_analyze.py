"""`proving analyze FILE`: Rich table, --json, and clear errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from proving.cli.app import app
from proving.stats.analyze import analyze

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "stats.csv"
runner = CliRunner(env={"COLUMNS": "200"})


def test_table_lists_every_comparison_and_the_srm_check():
    result = runner.invoke(app, ["analyze", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    for metric in ("conversion", "revenue", "clicks_per_session"):
        assert metric in result.output
    assert "SRM check" in result.output and "ok" in result.output
    assert "95% CI" in result.output


def test_json_output_equals_the_python_api():
    result = runner.invoke(app, ["analyze", str(EXAMPLE), "--json", "--effect", "absolute"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data == analyze(EXAMPLE, effect="absolute").to_dict()
    revenue = next(c for c in data["comparisons"] if c["metric"] == "revenue")
    assert revenue["cuped"] is True and revenue["variance_reduction"] > 0.3


def test_options_reach_the_analysis():
    args = ["analyze", str(EXAMPLE), "--json", "--no-cuped", "--alternative", "greater",
            "--method", "z", "--alpha", "0.1", "--correction", "holm"]  # fmt: skip
    data = json.loads(runner.invoke(app, args).output)
    for c in data["comparisons"]:
        assert c["cuped"] is False and c["variance_reduction"] is None
        assert c["alternative"] == "greater" and c["method"] == "z" and c["alpha"] == 0.1
        assert c["ci_upper"] is None and c["correction"] == "holm"


def test_control_option(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("variant,metric,n,sum,sum_squares\nold,m,10,5,4\nnew,m,12,7,6\n")
    result = runner.invoke(app, ["analyze", str(path), "--control", "old", "--json"])
    assert json.loads(result.output)["comparisons"][0]["variant"] == "new"


def test_missing_file_exits_2_without_a_traceback(tmp_path):
    result = runner.invoke(app, ["analyze", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "no such file" in result.output
    assert "Traceback" not in result.output


def test_malformed_file_names_the_line_and_field(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("variant,metric,n,sum,sum_squares\ncontrol,m,10,abc,5\n")
    result = runner.invoke(app, ["analyze", str(path)])
    assert result.exit_code == 2
    assert "line 2" in result.output and "`sum` must be a number" in result.output


def test_bad_option_value_exits_2_with_the_fix():
    result = runner.invoke(app, ["analyze", str(EXAMPLE), "--alpha", "0.7"])
    assert result.exit_code == 2
    assert "`alpha` must be a number in (0, 0.5]; got 0.7" in result.output
    result = runner.invoke(app, ["analyze", str(EXAMPLE), "--control", "baseline"])
    assert result.exit_code == 2 and "--control NAME" in result.output


def test_degenerate_rows_show_their_reason(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("variant,metric,n,sum,sum_squares\ncontrol,m,10,5,4\nb,m,1,1,1\n")
    result = runner.invoke(app, ["analyze", str(path)])
    assert result.exit_code == 0
    assert "fewer than 2 units" in " ".join(result.output.split())


def test_weights_option_feeds_the_srm_check():
    args = ["analyze", str(EXAMPLE), "--json"]
    even = json.loads(runner.invoke(app, args).output)["srm"][0]
    skewed = runner.invoke(app, [*args, "--weights", "control=10,treatment=90"])
    srm = json.loads(skewed.output)["srm"][0]
    assert even["alarm"] is False and srm["alarm"] is True
    assert srm["weights"] == [0.1, 0.9]
    bad = runner.invoke(app, ["analyze", str(EXAMPLE), "--weights", "control:1"])
    assert bad.exit_code == 2 and "VARIANT=WEIGHT" in bad.output
    missing = runner.invoke(app, ["analyze", str(EXAMPLE), "--weights", "control=1"])
    assert missing.exit_code == 2 and "no entry for variant(s) ['treatment']" in missing.output
