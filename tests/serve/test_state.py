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


@pytest.mark.services
def test_replicas_sharing_postgres_converge(postgres_dsn: str, postgres_schema: str) -> None:
    from proving.telemetry.postgres_store import PostgresStore

    async def main() -> tuple[DeploymentState, DeploymentState]:
        stores = [PostgresStore(postgres_dsn, schema=postgres_schema) for _ in range(2)]
        writers = [BatchWriter(s) for s in stores]
        replicas = [
            Gateway([CANARY], writer=w, state_store=s) for w, s in zip(writers, stores, strict=True)
        ]
        for gw in replicas:
            await gw.start()
        await replicas[0].change("can", lambda s: s.set_canary_weight(0.5))
        assert await replicas[1].sync_state() == ["can"]
        assert await replicas[1].sync_state() == []  # nothing newer the second time
        states = (replicas[0].states["can"], replicas[1].states["can"])
        for gw, w, s in zip(replicas, writers, stores, strict=True):
            await gw.close()
            w.close()
            s.close()
        return states

    first, second = asyncio.run(main())
    assert second.overrides.canary_weight == 0.5 and second.revision == first.revision


def test_a_broken_spec_file_is_reported_and_the_old_version_keeps_serving(tmp_path: object) -> None:
    from pathlib import Path

    from proving.serve.reload import SpecWatcher

    path = Path(str(tmp_path)) / "ab.yaml"
    path.write_text(
        "name: ab\nvariants: [{name: a, value: 1}, {name: b, value: 2}, {name: c, value: 3}]\n"
    )

    async def main() -> tuple[list[str], list[str], int, int]:
        store = DuckDBStore(":memory:")
        writer = BatchWriter(store)
        gw = Gateway([AB], writer=writer)
        await gw.start()
        watcher = SpecWatcher(gw, {"ab": path}, interval=0.1)
        path.write_text(
            "name: ab\nversion: 2\nweights: [0.5, 0.6, 0.0]\n"
            "variants: [{name: a}, {name: b}, {name: c}]\n"
        )
        broken = await watcher.check()
        assert "weights must sum to 1" in watcher.errors["ab"]
        version_after_broken = gw.states["ab"].spec.version
        path.write_text("name: ab\nversion: 2\nvariants: [{name: a}, {name: b}, {name: c}]\n")
        fixed = await watcher.check()
        version_after_fix = gw.states["ab"].spec.version
        await gw.close()
        writer.close()
        store.close()
        return broken, fixed, version_after_broken, version_after_fix

    broken, fixed, v1, v2 = asyncio.run(main())
    assert (broken, v1) == ([], 1) and (fixed, v2) == (["ab"], 2)
