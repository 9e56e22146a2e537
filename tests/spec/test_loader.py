"""Loading specs from YAML: every problem reported with file, line, field and fix."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from proving.errors import SpecError, SpecValidationError
from proving.spec import (
    ExperimentSpec,
    ProgramSpec,
    SpecIssue,
    load_program,
    load_spec,
    parse_spec,
    spec_schema,
)

# Experiment specs; docs/examples/metrics*.yaml are metric definitions (proving.metrics) and
# judge-*.yaml canary-judge specs (proving judge).
EXAMPLES = sorted(
    p
    for p in (Path(__file__).parents[2] / "docs" / "examples").glob("*.yaml")
    if not p.name.startswith(("metrics", "judge-"))
)

GOOD = """\
name: checkout
variants:
  - name: control
  - name: treatment
"""


def _issues(text: str, tmp_path: Path) -> list[SpecIssue]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecValidationError) as info:
        load_spec(path)
    assert str(path) in str(info.value)
    issues = [i for i in info.value.issues if isinstance(i, SpecIssue)]
    assert issues and all(i.file == str(path) for i in issues)
    return issues


def _one(text: str, tmp_path: Path) -> SpecIssue:
    issues = _issues(text, tmp_path)
    assert len(issues) == 1, [i.render() for i in issues]
    return issues[0]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_spec_is_valid(path: Path) -> None:
    spec = parse_spec(path.read_text(), str(path))
    assert isinstance(spec, ExperimentSpec | ProgramSpec)


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 6


def test_weights_not_summing_to_one_names_line_field_and_normalized_fix(
    tmp_path: Path,
) -> None:
    issue = _one(GOOD + "weights: [0.5, 0.05]\n", tmp_path)
    assert issue.line == 5
    assert issue.field == "weights"
    assert "must sum to 1" in issue.message and "0.55" in issue.message
    assert "[0.909091, 0.090909]" in issue.fix


def test_unknown_field_lists_allowed_fields(tmp_path: Path) -> None:
    issue = _one(GOOD + "analysis:\n  alpha: 0.05\n  cupd: true\n", tmp_path)
    assert (issue.line, issue.field) == (7, "analysis.cupd")
    assert "unknown field `cupd`" in issue.message
    assert "cuped" in issue.fix and "remove `cupd`" in issue.fix


def test_out_of_range_value_gives_bound_and_value(tmp_path: Path) -> None:
    issue = _one(GOOD + "coverage: 1.5\n", tmp_path)
    assert (issue.line, issue.field) == (5, "coverage")
    assert "1.5" in issue.message
    assert "at most 1" in issue.fix


def test_nested_list_error_points_at_the_item_line(tmp_path: Path) -> None:
    text = GOOD + "metrics:\n  primary:\n    - name: ctr\n      kind: ratio\n"
    issue = _one(text, tmp_path)
    assert issue.field == "metrics.primary[0].kind"
    assert issue.line == 8
    assert "numerator" in issue.fix


def test_missing_required_field(tmp_path: Path) -> None:
    issue = _one("name: x\nunit: user_id\n", tmp_path)
    assert issue.field == "variants"
    assert "missing" in issue.message
    assert "add the field `variants`" in issue.fix


def test_every_problem_is_reported_sorted_by_line(tmp_path: Path) -> None:
    text = GOOD + "coverage: 2\nmode: abx\nhash_version: 3\n"
    issues = _issues(text, tmp_path)
    assert [i.field for i in issues] == ["coverage", "mode", "hash_version"]
    assert [i.line for i in issues] == [5, 6, 7]


def test_yaml_boolean_trap_gets_a_quote_fix(tmp_path: Path) -> None:
    text = "name: x\nvariants:\n  - name: off\n  - name: on\n"
    issues = _issues(text, tmp_path)
    assert [i.line for i in issues] == [3, 4]
    assert 'quote it, e.g. "off"' in issues[0].fix


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    issue = _one(GOOD + "coverage: 0.5\ncoverage: 0.9\n", tmp_path)
    assert (issue.line, issue.field) == (6, "coverage")
    assert "more than once" in issue.message


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    issue = _one("name: x\nvariants: [a, b\nmode: ab\n", tmp_path)
    assert issue.line is not None and issue.line >= 2
    assert "not valid YAML" in issue.message


def test_empty_and_non_mapping_documents(tmp_path: Path) -> None:
    assert "empty document" in _one("", tmp_path).message
    assert "got a list" in _one("- a\n- b\n", tmp_path).message


def test_rendered_message_has_file_line_field_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    path.write_text(GOOD + "control: baseline\n")
    with pytest.raises(
        SpecError, match=r"checkout\.yaml:5: control: control 'baseline' is not a variant.*Fix: "
    ):
        load_spec(path)


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_load_spec_from_a_program_needs_a_name() -> None:
    program = next(p for p in EXAMPLES if p.name == "search-program.yaml")
    with pytest.raises(SpecError, match=r"program with 5 experiments"):
        load_spec(program)
    with pytest.raises(SpecError, match=r"no experiment 'nope'"):
        load_spec(program, "nope")
    spec = load_spec(program, "ranker-neural")
    assert spec.layer is not None and spec.layer.range == (0.5, 1.0)
    assert spec.holdout is not None and spec.holdout.fraction == 0.05


def test_load_program_refuses_a_single_experiment() -> None:
    single = next(p for p in EXAMPLES if p.name == "checkout-ab.yaml")
    with pytest.raises(SpecError, match=r"not a program"):
        load_program(single)
    with pytest.raises(SpecError, match=r"not 'other'"):
        load_spec(single, "other")


def test_json_text_is_accepted() -> None:
    spec = parse_spec(json.dumps({"name": "j", "variants": [{"name": "a"}, {"name": "b"}]}))
    assert isinstance(spec, ExperimentSpec) and spec.name == "j"


@pytest.mark.parametrize("kind", ["experiment", "program"])
def test_schema_validates_the_examples(kind: str) -> None:
    """The JSON Schema is a valid schema and accepts every example of its kind
    (checked by an independent validator, jsonschema-rs)."""
    schema = spec_schema(kind)  # type: ignore[arg-type]
    assert jsonschema_rs.meta.is_valid(schema)
    validator = jsonschema_rs.Draft202012Validator(schema)
    checked = 0
    for path in EXAMPLES:
        data = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
        if ("experiments" in data) == (kind == "program"):
            errors = list(validator.iter_errors(data))
            assert not errors, (path.name, [e.message for e in errors])
            checked += 1
    assert checked >= 1
    # And rejects what the models reject for type reasons.
    bad = {"name": "x", "variants": [{"name": "a"}, {"name": "b"}], "coverage": "all"}
    if kind == "experiment":
        assert not validator.is_valid(bad)


PROGRAM = """\
name: search
domains:
  - name: main
    layers:
      - name: ranking
        experiments:
          a: [0.0, 0.6]
          b: [0.5, 1.0]
experiments:
  - name: a
    variants: [{name: c}, {name: t}]
  - name: b
    variants: [{name: c}, {name: t}]
    coverage: 2
"""


def test_program_errors_point_into_the_program(tmp_path: Path) -> None:
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM)
    with pytest.raises(SpecValidationError) as info:
        load_program(path)
    issues = [i for i in info.value.issues if isinstance(i, SpecIssue)]
    assert [(i.line, i.field) for i in issues] == [
        (8, "domains[0].layers[0].experiments.b"),
        (14, "experiments[1].coverage"),
    ]
    path.write_text(PROGRAM.replace("    coverage: 2\n", ""))
    with pytest.raises(SpecValidationError) as info:
        load_program(path)
    (issue,) = [i for i in info.value.issues if isinstance(i, SpecIssue)]
    assert (issue.line, issue.field) == (8, "domains[0].layers[0].experiments.b")
    assert "overlap in layer 'ranking'" in issue.message
