"""Spec issues: field paths, fixes and rendering."""

from __future__ import annotations

from proving.spec.issues import SpecIssue, field_path, fix_for, rule_error


def test_field_path() -> None:
    assert field_path(("variants", 1, "weight")) == "variants[1].weight"
    assert field_path(()) == ""
    assert field_path(("a", "b")) == "a.b"


def test_render_and_dict() -> None:
    issue = SpecIssue("x.yaml", 3, "coverage", "too big.", "use 1.")
    assert issue.render() == "x.yaml:3: coverage: too big. Fix: use 1."
    assert SpecIssue("x.yaml", None, "", "m.", "f.").render() == "x.yaml: (top level): m. Fix: f."
    assert issue.to_dict()["line"] == 3


def test_fixes() -> None:
    assert fix_for("missing", {}, "variants", []) == "add the field `variants`."
    assert "allowed here: a, b" in fix_for("extra_forbidden", {}, "x.cupd", ["a", "b"])
    assert fix_for("less_than_equal", {"le": 1}, "coverage", []) == "use a value of at most 1."
    assert fix_for("spec_rule", {"fix": "do this."}, "f", []) == "do this."
    assert "proving spec schema" in fix_for("some_new_type", {}, "f", [])


def test_rule_error_escapes_braces() -> None:
    err = rule_error("got {x}", "write {y}", ("a",))
    assert "got (x)" in str(err)
    assert err.context is not None and err.context["at"] == ["a"]
