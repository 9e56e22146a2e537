"""Runtime state: overrides fold into the spec the assignment reads; changes persist."""

from __future__ import annotations

import asyncio

import pytest

from proving.assign import assign
from proving.errors import HTTPError
from proving.serve.gateway import Gateway
from proving.serve.state import DeploymentState
from proving.spec import parse_spec
from proving.telemetry.duckdb_store import DuckDBStore
from proving.telemetry.writer import BatchWriter

AB = parse_spec(
    "name: ab\nvariants: [{name: a, value: 1}, {name: b, value: 2}, {name: c, value: 3}]"
)
CANARY = parse_spec(
    "name: can\nmode: canary\nvariants: [{name: a}, {name: b}]\ncanary: {weight: 0.1}"
)


def test_weights_override_changes_the_assignment_engine_input() -> None:
    state = DeploymentState(AB)
    state.set_weights([0.0, 0.0, 1.0])
    units = [f"u{i}" for i in range(200)]
    assert {assign(u, {}, state.effective_spec()).variant for u in units} == {"c"}
    with pytest.raises(HTTPError, match="weights must sum to 1") as info:
        state.set_weights([0.5, 0.6, 0.0])
    assert info.value.status_code == 422


def test_canary_only_rises_and_the_ramp_is_monotone() -> None:
    state = DeploymentState(CANARY)
    units = [f"u{i}" for i in range(2000)]
    seen = set()
    for weight in (0.1, 0.3, 0.6, 1.0):
        state.set_canary_weight(weight)
        now = {u for u in units if assign(u, {}, state.effective_spec()).variant == "b"}
        assert seen <= now and abs(len(now) / len(units) - weight) < 0.04
        seen = now
    with pytest.raises(HTTPError, match="ramps only rise") as info:
        state.set_canary_weight(0.5)
    assert info.value.status_code == 409


def test_switch_undo_rollback_and_errors() -> None:
    bg = DeploymentState(
        parse_spec("name: bg\nmode: bluegreen\nvariants: [{name: blue}, {name: green}]")
    )
    assert bg.active_colour() == "blue"
    assert bg.switch() == "green" and bg.undo_switch() == "blue"
    with pytest.raises(HTTPError, match="'purple' is not a variant"):
        bg.switch("purple")
    state = DeploymentState(AB)
    with pytest.raises(HTTPError, match="no earlier spec version"):
        state.rollback()
    state.set_spec(AB.model_copy(update={"version": 2}))
    with pytest.raises(HTTPError, match="not newer than the running version 2"):
        state.set_spec(AB.model_copy(update={"version": 2}))
    assert state.rollback().version == 1 and state.history == []


def test_state_survives_a_restart_through_the_store(tmp_path: object) -> None:
    path = f"{tmp_path}/state.duckdb"

    async def first() -> None:
        store = DuckDBStore(path)
        writer = BatchWriter(store)
        gw = Gateway([CANARY], writer=writer, state_store=store)
        await gw.start()
        await gw.change("can", lambda s: s.set_canary_weight(0.4))
        await gw.change("can", lambda s: s.set_killed(True))
        await gw.close()
        writer.close()
        store.close()

    async def second() -> DeploymentState:
        store = DuckDBStore(path)
        writer = BatchWriter(store)
        gw = Gateway([CANARY], writer=writer, state_store=store)
        await gw.start()
        state = gw.states["can"]
        await gw.close()
        writer.close()
        store.close()
        return state

    asyncio.run(first())
    resumed = asyncio.run(second())
    assert resumed.overrides.canary_weight == 0.4 and resumed.overrides.killed
    assert resumed.revision == 2


def test_serve_examples_load_and_resolve() -> None:
    from pathlib import Path

    from proving.spec import load_spec

    examples = sorted((Path(__file__).parents[2] / "docs" / "examples").glob("serve-*.yaml"))
    assert len(examples) >= 4
    for path in examples:
        spec = load_spec(path)
        assert DeploymentState(spec).effective_spec() is spec
