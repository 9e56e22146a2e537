"""Load specs from YAML (or JSON) with errors that name the file, the line, the field and the fix.

The YAML is composed into a node tree first (PyYAML keeps each node's start mark), then
constructed into plain data and validated by pydantic. Every pydantic error is mapped
back to the line of the key it concerns by walking the node tree along the error's
location, so one run reports every problem of the file. Duplicate keys, which PyYAML
accepts silently (the last wins), are reported as errors too.

A file holding ``experiments:`` at the top level is a program
(:class:`~proving.spec.program.ProgramSpec`); any other is one experiment
(:class:`~proving.spec.experiment.ExperimentSpec`).
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from proving.errors import SpecError, SpecValidationError
from proving.spec.experiment import ExperimentSpec
from proving.spec.issues import SpecIssue, field_path, fix_for
from proving.spec.program import ProgramSpec

__all__ = ["load_program", "load_spec", "parse_spec", "read_spec", "spec_schema"]

SpecKind = Literal["experiment", "program"]


def _raise(issues: list[SpecIssue]) -> typing.NoReturn:
    issues = sorted(issues, key=lambda i: (i.line is None, i.line or 0))
    source = issues[0].file
    lines = "\n".join(f"  - {issue.render()}" for issue in issues)
    count = f"{len(issues)} problem" + ("s" if len(issues) != 1 else "")
    raise SpecValidationError(f"invalid spec {source}: {count}:\n{lines}", issues)


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The node tree and the constructed data of a YAML document."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        duplicates = list(_duplicate_keys(node))
        if duplicates:
            _raise(
                [
                    SpecIssue(
                        source,
                        key.start_mark.line + 1,
                        path,
                        f"the key `{key.value}` appears more than once in this mapping "
                        "(YAML would silently keep the last)",
                        "keep one of them.",
                    )
                    for path, key in duplicates
                ]
            )
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        _raise(
            [
                SpecIssue(
                    source,
                    line,
                    "",
                    f"the file is not valid YAML: {problem}.",
                    "check the indentation and quoting on that line (a value with `: ` "
                    "or starting with `{`, `[`, `*` or `&` needs quotes).",
                )
            ]
        )
    finally:
        loader.dispose()


def _duplicate_keys(node: yaml.Node, path: str = "") -> typing.Iterator[tuple[str, yaml.Node]]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            child = f"{path}.{name}" if path else name
            if name in seen:
                yield child, key
            seen.add(name)
            yield from _duplicate_keys(value, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{path}[{i}]")


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest node on ``loc`` (the key's line for mapping entries)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if str(kv[0].value) == str(part)), None)
            if match is None:
                continue  # a union tag or a missing key: stay on the enclosing mapping
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class at ``loc`` (to list the fields allowed there), if any."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (list, tuple, dict):
            args = typing.get_args(current)
            current = args[-1] if args else Any
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    if origin is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _issues(
    exc: ValidationError, node: yaml.Node | None, source: str, root: type[BaseModel]
) -> list[SpecIssue]:
    issues: list[SpecIssue] = []
    for err in exc.errors(include_url=False):
        ctx: dict[str, Any] = dict(err.get("ctx") or {})
        loc = tuple(err["loc"]) + tuple(ctx.get("at") or ())
        path = field_path(loc)
        message = str(ctx.get("message") or err["msg"])
        if err["type"] == "extra_forbidden":
            message = f"unknown field `{loc[-1]}`."
        elif err["type"] == "missing":
            message = f"the required field `{loc[-1]}` is missing."
        elif err["type"] != "spec_rule":
            message = f"{message}; got {_short(err.get('input'))}."
        elif not message.endswith("."):
            message += "."
        model = _model_at(root, loc[:-1]) if err["type"] == "extra_forbidden" else None
        allowed = sorted(model.model_fields) if model is not None else []
        fix = fix_for(str(err["type"]), ctx, path, allowed)
        if err["type"] == "string_type" and isinstance(err.get("input"), bool | int | float):
            fix = (
                f'quote it, e.g. "{_yaml_word(err.get("input"))}": YAML reads on/off, yes/no, '
                "true/false and bare numbers as booleans and numbers."
            )
        issues.append(SpecIssue(source, _line_of(node, loc), path, message, fix))
    return issues


def _yaml_word(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_spec(text: str, source: str = "<string>") -> ExperimentSpec | ProgramSpec:
    """Parse and validate a spec from YAML or JSON text.

    Args:
        text: the document.
        source: the name used in error messages (a path).

    Returns:
        A :class:`ProgramSpec` when the document has top-level ``experiments``, else an
        :class:`ExperimentSpec`.

    Raises:
        SpecValidationError: every problem of the document, each with its line, field path
            and fix (``exc.issues``).

    Example:
        >>> spec = parse_spec("name: demo\\nvariants: [{name: control}, {name: treatment}]")
        >>> spec.variant_names
        ['control', 'treatment']
    """
    node, data = _compose(text, source)
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        _raise(
            [
                SpecIssue(
                    source,
                    None if node is None else node.start_mark.line + 1,
                    "",
                    f"a spec must be a YAML mapping; got {got}.",
                    "start from `proving spec schema` or docs/examples/*.yaml.",
                )
            ]
        )
    root: type[ExperimentSpec | ProgramSpec] = (
        ProgramSpec if "experiments" in data else ExperimentSpec
    )
    try:
        return root.model_validate(data)
    except ValidationError as exc:
        _raise(_issues(exc, node, source, root))


def read_spec(path: str | Path) -> ExperimentSpec | ProgramSpec:
    """Read a spec file: one experiment or a program, whichever the file holds.

    Raises:
        SpecError: the file cannot be read.
        SpecValidationError: the spec is invalid (every problem, with lines and fixes).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"spec file {p} does not exist. Check the path (relative paths start from "
            f"{Path.cwd()})."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"spec file {p} cannot be read: {exc}. Pass a UTF-8 text file.") from None
    return parse_spec(text, str(p))


def load_spec(path: str | Path, experiment: str | None = None) -> ExperimentSpec:
    """Load one experiment from a YAML file (an experiment file or a program file).

    Args:
        path: the file.
        experiment: which experiment, when the file is a program; may be omitted when the
            program holds exactly one.

    Returns:
        The validated experiment, with its layer placement resolved for programs.

    Raises:
        SpecError: the file is missing, or names no such experiment.
        SpecValidationError: the spec is invalid; the message lists each problem as
            ``file:line: field: message Fix: ...``.

    Example:
        >>> spec = load_spec("docs/examples/checkout-ab.yaml")  # doctest: +SKIP
        >>> spec.mode  # doctest: +SKIP
        'ab'
    """
    spec = read_spec(path)
    if isinstance(spec, ExperimentSpec):
        if experiment is not None and experiment != spec.name:
            raise SpecError(
                f"{path} holds experiment '{spec.name}', not '{experiment}'. Pass "
                f"experiment='{spec.name}' or none."
            )
        return spec
    names = [e.name for e in spec.experiments]
    if experiment is None:
        if len(names) == 1:
            return spec.experiment(names[0])
        raise SpecError(
            f"{path} is a program with {len(names)} experiments: {names}. Name the one "
            "you want (experiment=... in Python, --experiment on the command line)."
        )
    if experiment not in names:
        raise SpecError(
            f"{path} has no experiment '{experiment}'; it has {names}. Use one of those."
        )
    return spec.experiment(experiment)


def load_program(path: str | Path) -> ProgramSpec:
    """Load a program file (domains, layers and experiments).

    Raises:
        SpecError: the file is missing or holds a single experiment.
        SpecValidationError: the program is invalid.
    """
    spec = read_spec(path)
    if not isinstance(spec, ProgramSpec):
        raise SpecError(
            f"{path} holds a single experiment ('{spec.name}'), not a program. Use "
            "load_spec(), or wrap it as `experiments: [...]` with domains and layers."
        )
    return spec


def spec_schema(kind: SpecKind = "experiment") -> dict[str, Any]:
    """The JSON Schema of an experiment spec or a program spec.

    Example:
        >>> spec_schema()["title"]
        'ExperimentSpec'
    """
    model: type[BaseModel] = ExperimentSpec if kind == "experiment" else ProgramSpec
    return model.model_json_schema()
