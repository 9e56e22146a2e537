"""Programs: domains and layers checked at load, placements resolved per experiment."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from proving.spec import ProgramSpec


def exp(name: str, **kwargs: Any) -> dict[str, Any]:
    return {"name": name, "variants": [{"name": "c"}, {"name": "t"}], **kwargs}


def program(**kwargs: Any) -> ProgramSpec:
    data: dict[str, Any] = {
        "name": "p",
        "domains": [
            {
                "name": "main",
                "range": [0.0, 0.8],
                "holdout": {"name": "h", "fraction": 0.1},
                "layers": [
                    {"name": "ranking", "experiments": {"a": [0.0, 0.5], "b": [0.5, 1.0]}},
                    {"name": "ui", "salt": "ui-2026", "experiments": {"c": [0.0, 1.0]}},
                ],
            }
        ],
        "launch_layers": [{"name": "launches", "experiments": {"l": [0.0, 1.0]}}],
        "experiments": [exp("a"), exp("b"), exp("c"), exp("l"), exp("free")],
    }
    data.update(kwargs)
    return ProgramSpec.model_validate(data)


def test_placements_are_resolved() -> None:
    p = program()
    a = p.experiment("a")
    assert a.domain is not None and a.domain.range == (0.0, 0.8) and a.domain.salt == "domains"
    assert a.layer is not None and (a.layer.name, a.layer.range) == ("ranking", (0.0, 0.5))
    assert a.holdout is not None and a.holdout.fraction == 0.1
    c = p.experiment("c")
    assert c.layer is not None and c.layer.hash_salt == "ui-2026"
    launch = p.experiment("l")
    assert launch.layer is not None and launch.layer.launch
    assert launch.domain is None and launch.holdout is None
    free = p.experiment("free")
    assert free.layer is None and free.domain is None
    assert [e.name for e in p.resolved_experiments()] == ["a", "b", "c", "l", "free"]


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            {"launch_layers": [{"name": "x", "experiments": {"l": [0.0, 0.6], "free": [0.5, 1]}}]},
            r"experiments 'l' \[0\.0, 0\.6\] and 'free' \[0\.5, 1\.0\] overlap in layer 'x'",
        ),
        (
            {"launch_layers": [{"name": "x", "experiments": {"l": [0.6, 0.2]}}]},
            r"slice of 'l' in layer 'x' must be \[start, end\)",
        ),
        (
            {"launch_layers": [{"name": "x", "experiments": {"ghost": [0, 1]}}]},
            r"allocates a slice to 'ghost', which is not among `experiments`",
        ),
        (
            {"launch_layers": [{"name": "x", "experiments": {"a": [0, 1]}}]},
            r"'a' has slices in more than one layer",
        ),
        (
            {"launch_layers": [{"name": "ranking", "experiments": {}}]},
            r"layer names must be unique across the program; \['ranking'\]",
        ),
        (
            {
                "domains": [
                    {"name": "d1", "range": [0, 0.6]},
                    {"name": "d2", "range": [0.5, 1]},
                ]
            },
            r"domains 'd1' and 'd2' overlap",
        ),
        ({"experiments": [exp("a"), exp("a")]}, r"experiment names must be unique"),
        ({"experiments": []}, r"at least 1 item"),
    ],
)
def test_program_rules(change: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        program(**change)


def test_experiment_placed_twice_is_refused() -> None:
    experiments = [exp("a", layer={"name": "mine"}), exp("b"), exp("c"), exp("l"), exp("free")]
    with pytest.raises(ValidationError, match=r"placed by the program's layers but also sets"):
        program(experiments=experiments)


def test_unknown_experiment_name() -> None:
    with pytest.raises(KeyError):
        program().experiment("zzz")
