"""The gateway app in-process (httpx.ASGITransport): strategies, events, errors, admin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from proving.assign import assign
from proving.serve import ServeConfig, create_app
from proving.serve.backends import SklearnBackend
from proving.spec import parse_spec
from proving.telemetry.duckdb_store import DuckDBStore
from proving.testing import FakeModel

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _spec(text: str) -> Any:
    return parse_spec(text)


AB = _spec(
    "name: ab\nvariants:\n"
    "  - {name: champion, model: {name: champ, version: '1'}}\n"
    "  - {name: challenger, model: {name: chall, version: '2'}}\n"
)
SHADOW = _spec(
    "name: sh\nmode: shadow\nvariants:\n"
    "  - {name: champion, model: {name: champ, version: '1'}}\n"
    "  - {name: challenger, model: {name: chall, version: '2'}}\n"
    "shadow: {sample_rate: 1.0, max_concurrency: 4, timeout_ms: 1000}\n"
)
CANARY = _spec(
    "name: can\nmode: canary\nvariants:\n"
    "  - {name: champion, model: {name: champ, version: '1'}}\n"
    "  - {name: challenger, model: {name: chall, version: '2'}}\n"
    "canary: {weight: 0.1}\n"
)
BLUEGREEN = _spec(
    "name: bg\nmode: bluegreen\nvariants:\n"
    "  - {name: blue, value: 'blue'}\n  - {name: green, value: 'green'}\n"
)
INTERLEAVE = _spec(
    "name: il\nmode: interleave\nvariants:\n"
    "  - {name: prod, model: {name: ranker-a}}\n  - {name: cand, model: {name: ranker-b}}\n"
    "interleave: {list_length: 6}\n"
)


SHADOW_RANK = _spec(
    "name: shr\nmode: shadow\nvariants:\n"
    "  - {name: prod, model: {name: ranker-a}}\n  - {name: cand, model: {name: ranker-b}}\n"
)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


class Harness:
    def __init__(self, models: dict[str, Any], **config: Any) -> None:
        self.models = models
        self.store = DuckDBStore(":memory:")
        self.app = create_app(
            [AB, SHADOW, CANARY, BLUEGREEN, INTERLEAVE, SHADOW_RANK],
            store=self.store,
            models=models,
            admin_token=TOKEN,
            # a long challenger deadline unless a test sets one: no fallback on a slow CI box
            config=ServeConfig(**{"challenger_timeout_ms": 2000.0, **config}),
            writer_options={"flush_interval": 0.02},
        )
        self.writer = self.app.state.writer

    def rows(self, table: str) -> list[dict[str, Any]]:
        self.writer.flush(5)
        return list(self.store.read_table(table).to_pylist())


def _models() -> dict[str, FakeModel]:
    return {
        "champ": FakeModel(output=1.0, name="champ", version="1"),
        "chall": FakeModel(output=2.0, name="chall", version="2"),
        "ranker-a": FakeModel(output=lambda f: [f"a{i}" for i in range(8)], name="ranker-a"),
        "ranker-b": FakeModel(output=lambda f: [f"b{i}" for i in range(8)], name="ranker-b"),
    }


@asynccontextmanager
async def client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    async with harness.app.router.lifespan_context(harness.app):
        transport = httpx.ASGITransport(app=harness.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            yield c


def _unit_for(spec: Any, variant: str) -> str:
    for i in range(10_000):
        if assign(f"u{i}", {}, spec).variant == variant:
            return f"u{i}"
    raise AssertionError(variant)


def with_client(
    fn: Callable[[httpx.AsyncClient, Harness], Coroutine[Any, Any, None]], **cfg: Any
) -> None:
    harness = Harness(_models(), **cfg)

    async def main() -> None:
        async with client(harness) as c:
            await fn(c, harness)

    run(main())


def test_split_serves_the_assigned_variant_and_logs_exposure_and_prediction() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        unit = _unit_for(AB, "challenger")
        r = await c.post(
            "/v1/predict/ab",
            json={"unit_id": unit, "features": {"x": 1}},
            headers={"X-Request-ID": "req-1"},
        )
        assert r.status_code == 200, r.text
        data = r.json()
        assert (data["variant"], data["prediction"], data["request_id"]) == (
            "challenger",
            2.0,
            "req-1",
        )
        assert r.headers["X-Request-ID"] == "req-1"
        exposures = h.rows("exposures")
        assert [(e["unit_id"], e["variant"]) for e in exposures] == [(unit, "challenger")]
        preds = h.rows("predictions")
        assert [(p["request_id"], p["variant"], p["role"], p["status"]) for p in preds] == [
            ("req-1", "challenger", "served", "ok")
        ]

    with_client(body)


def test_shadow_prediction_is_logged_with_the_same_request_id_and_never_returned() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        r = await c.post(
            "/v1/predict/sh",
            json={"unit_id": "u1", "features": {"x": 1}},
            headers={"X-Request-ID": "shadow-1"},
        )
        assert r.status_code == 200
        data = r.json()
        assert (data["variant"], data["prediction"]) == ("champion", 1.0)
        assert "2.0" not in r.text  # the challenger's answer is nowhere in the response
        await asyncio.sleep(0.05)
        preds = sorted(h.rows("predictions"), key=lambda p: p["role"])
        assert [(p["request_id"], p["variant"], p["role"], p["score"]) for p in preds] == [
            ("shadow-1", "champion", "served", 1.0),
            ("shadow-1", "challenger", "shadow", 2.0),
        ]

    with_client(body)


def test_a_shadow_that_raises_or_hangs_is_invisible() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        for mode in ("fail", "hang"):
            h.models["chall"].fail = mode == "fail"
            h.models["chall"].hang = mode == "hang"
            start = asyncio.get_running_loop().time()
            r = await c.post("/v1/predict/sh", json={"unit_id": "u2", "features": {}})
            assert r.status_code == 200 and r.json()["prediction"] == 1.0
            # the hanging shadow takes its full 1 s deadline: the answer did not wait for it
            assert asyncio.get_running_loop().time() - start < 0.5
            await asyncio.sleep(0.02)  # let the shadow copy start before the next change
        await asyncio.sleep(1.1)  # the hanging shadow times out at 1 s
        shadows = [p for p in h.rows("predictions") if p["role"] == "shadow"]
        assert sorted(p["status"] for p in shadows) == ["error", "timeout"]

    with_client(body)


@pytest.mark.parametrize("threaded", [False, True], ids=["inline", "task"])
def test_a_shadow_runs_after_the_response_is_sent_and_logs_its_failures(threaded: bool) -> None:
    """An inline challenger is mirrored without a task; either way, after the answer."""
    order: list[str] = []

    class Doubler:  # an "estimator" that doubles its one feature, and fails at -1
        def predict(self, rows: Any) -> Any:
            order.append("shadow")
            if rows[0, 0] == -1:
                raise RuntimeError("challenger broke")
            return rows[:, 0] * 2

    challenger = SklearnBackend(
        Doubler(), name="chall", version="2", feature_order=["x"], threaded=threaded
    )
    harness = Harness({**_models(), "champ": lambda features: 1.0, "chall": challenger})

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def send_and_note(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body":
                order.append("response")

        await harness.app(scope, receive, send_and_note)

    async def main() -> None:
        async with harness.app.router.lifespan_context(harness.app):
            transport = httpx.ASGITransport(app=recording)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                for rid, features in (("ok", {"x": 3.0}), ("err", {"x": -1}), ("bad", {})):
                    r = await c.post(
                        "/v1/predict/sh",
                        json={"unit_id": "u1", "features": features},
                        headers={"X-Request-ID": rid},
                    )
                    assert (r.status_code, r.json()["prediction"]) == (200, 1.0)
                await asyncio.sleep(0.3)
            rows = harness.rows("predictions")
        # The k-th shadow call came after the k-th response was sent (the third request's
        # features are refused before the estimator is reached).
        responses = [i for i, event in enumerate(order) if event == "response"]
        shadow_calls = [i for i, event in enumerate(order) if event == "shadow"]
        assert len(responses) == 3 and len(shadow_calls) == 2
        assert all(s > r for s, r in zip(shadow_calls, responses, strict=False))
        shadows = {p["request_id"]: p for p in rows if p["role"] == "shadow"}
        assert (shadows["ok"]["status"], shadows["ok"]["score"]) == ("ok", 6.0)
        assert shadows["err"]["status"] == "error"
        assert "RuntimeError: challenger broke" in shadows["err"]["output"]
        # Features the challenger refuses are its error: the caller was already answered.
        assert shadows["bad"]["status"] == "error"
        assert "features ['x'] are missing" in shadows["bad"]["output"]

    run(main())


def test_shadow_concurrency_cap_skips_and_counts() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        h.models["chall"].latency = 0.15
        rs = await asyncio.gather(
            *(c.post("/v1/predict/sh", json={"unit_id": f"u{i}"}) for i in range(10))
        )
        assert all(r.status_code == 200 for r in rs)
        metrics = (await c.get("/metrics")).text
        assert (
            'proving_serve_shadow_skipped_total{deployment="sh",reason="concurrency",'
            'variant="challenger"} 6.0' in metrics
        )

    with_client(body)


@pytest.mark.parametrize("failure", ["fail", "hang", "slow"])
def test_failing_challenger_falls_back_to_the_champion(failure: str) -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        chall = h.models["chall"]
        chall.fail, chall.hang = failure == "fail", failure == "hang"
        chall.latency = 2.0 if failure == "slow" else 0.0
        unit = _unit_for(AB, "challenger")
        start = asyncio.get_running_loop().time()
        r = await c.post("/v1/predict/ab", json={"unit_id": unit}, headers={"X-Request-ID": "fb"})
        elapsed = asyncio.get_running_loop().time() - start
        assert r.status_code == 200
        data = r.json()
        assert (
            data["variant"],
            data["assigned_variant"],
            data["fallback"],
            data["prediction"],
        ) == ("champion", "challenger", True, 1.0)
        # bounded by the 50 ms challenger deadline (slack for a loaded CI machine), far
        # below the 2 s the slow challenger would take
        assert elapsed < 0.6
        statuses = sorted((p["variant"], p["status"]) for p in h.rows("predictions"))
        expected = "error" if failure == "fail" else "timeout"
        assert statuses == [("challenger", expected), ("champion", "fallback")]
        assert h.rows("exposures")[0]["variant"] == "challenger"  # intent to treat

    with_client(body, challenger_timeout_ms=50.0)


def test_champion_failure_is_a_502_with_the_request_id() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        h.models["champ"].fail = True
        r = await c.post(
            "/v1/predict/ab",
            json={"unit_id": _unit_for(AB, "champion")},
            headers={"X-Request-ID": "boom"},
        )
        assert r.status_code == 502 and "boom" in r.json()["error"]

    with_client(body)


def test_canary_weight_changes_at_runtime_and_only_rises() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        units = [f"user-{i}" for i in range(400)]

        async def canaried() -> set[str]:
            rs = await asyncio.gather(
                *(c.post("/v1/predict/can", json={"unit_id": u}) for u in units)
            )
            return {
                u for u, r in zip(units, rs, strict=True) if r.json()["variant"] == "challenger"
            }

        before = await canaried()
        r = await c.put("/admin/deployments/can/weights", json={"canary_weight": 0.5}, headers=AUTH)
        assert r.status_code == 200, r.text
        after = await canaried()
        assert before < after  # monotone: everyone who had the canary keeps it
        assert 0.4 < len(after) / len(units) < 0.6 and len(before) / len(units) < 0.2
        r = await c.put("/admin/deployments/can/weights", json={"canary_weight": 0.2}, headers=AUTH)
        assert r.status_code == 409 and "only rise" in r.json()["error"]

    with_client(body)


def test_bluegreen_switch_and_undo_take_effect_on_the_next_request() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        async def colour() -> str:
            return str((await c.post("/v1/predict/bg", json={"unit_id": "u"})).json()["prediction"])

        assert await colour() == "blue"
        assert (
            await c.post("/admin/deployments/bg/switch", json={}, headers=AUTH)
        ).status_code == 200
        assert await colour() == "green"
        assert (await c.post("/admin/deployments/bg/switch/undo", headers=AUTH)).status_code == 200
        assert await colour() == "blue"

    with_client(body)


def test_interleaved_list_is_a_valid_team_draft_merge_with_teams_logged() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        unit = next(
            u
            for u in (f"s{i}" for i in range(100))
            if assign(u, {}, INTERLEAVE).reason == "interleave"
        )
        r = await c.post(
            "/v1/rank/il", json={"unit_id": unit, "candidates": []}, headers={"X-Request-ID": "r1"}
        )
        assert r.status_code == 200, r.text
        data = r.json()
        items, teams = data["items"], data["teams"]
        assert len(items) == 6 and len(set(items)) == 6
        # Each team's items appear in its ranker's order, and after every pair of picks the
        # teams are balanced (team draft's invariant).
        for team, prefix in (("prod", "a"), ("cand", "b")):
            picked = [i for i, t in zip(items, teams, strict=True) if t == team]
            assert picked == [f"{prefix}{k}" for k in range(len(picked))]
        for k in range(2, 7, 2):
            assert teams[:k].count("prod") == k // 2
        logged = [p for p in h.rows("predictions") if p["model"] == "team_draft"]
        assert len(logged) == 1 and '"teams"' in logged[0]["output"]

    with_client(body)


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ({"json": {"features": {}}}, 400, "unit_id"),
        ({"json": {"unit_id": "  "}}, 400, "unit_id"),
        ({"json": {"unit_id": "u", "featurez": {}}}, 400, "featurez"),
        ({"json": {"unit_id": "u", "features": "x" * 5000}}, 413, "exceeds 4096 bytes"),
    ],
)
def test_bad_input_gets_a_clear_4xx(kwargs: dict[str, Any], status: int, message: str) -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        r = await c.post("/v1/predict/ab", **kwargs)
        assert r.status_code == status and message in r.json()["error"], r.text

    with_client(body, max_body_bytes=4096)


def test_unknown_deployment_404_and_admin_without_token_401() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        r = await c.post("/v1/predict/nope", json={"unit_id": "u"})
        assert r.status_code == 404 and "unknown deployment 'nope'" in r.json()["error"]
        r = await c.get("/admin/deployments")
        assert r.status_code == 401 and "bearer token" in r.json()["error"]
        r = await c.get("/admin/deployments", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401

    with_client(body)


def test_admin_spec_update_kill_switch_promote_and_rollback() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        unit = _unit_for(AB, "challenger")

        async def variant() -> str:
            return str((await c.post("/v1/predict/ab", json={"unit_id": unit})).json()["variant"])

        new = AB.model_dump(mode="json") | {"version": 2, "weights": [1.0, 0.0]}
        r = await c.put("/admin/deployments/ab/spec", json=new, headers=AUTH)
        assert r.status_code == 200 and r.json()["spec_version"] == 2
        assert await variant() == "champion"
        r = await c.put("/admin/deployments/ab/spec", json=new, headers=AUTH)
        assert r.status_code == 409 and "bump `version`" in r.json()["error"]
        r = await c.post("/admin/deployments/ab/rollback", json={}, headers=AUTH)
        assert r.status_code == 200 and r.json()["spec_version"] == 1
        assert await variant() == "challenger"
        await c.put("/admin/deployments/ab/kill-switch", json={"killed": True}, headers=AUTH)
        assert await variant() == "champion"
        await c.put("/admin/deployments/ab/kill-switch", json={"killed": False}, headers=AUTH)
        await c.post("/admin/deployments/ab/promote", json={"variant": "challenger"}, headers=AUTH)
        assert await variant() == "challenger"
        other = _unit_for(AB, "champion")
        r = await c.post("/v1/predict/ab", json={"unit_id": other})
        assert (r.json()["variant"], r.json()["in_experiment"]) == ("challenger", False)
        state = h.store.get_state("serve", "ab")
        assert state is not None and state["overrides"]["pinned"] == "challenger"

    with_client(body)


def test_metrics_are_labelled_by_deployment_variant_model_version_not_by_unit() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        await c.post(
            "/v1/predict/ab", json={"unit_id": "unit-zzz"}, headers={"X-Request-ID": "rid-zzz"}
        )
        text = (await c.get("/metrics")).text
        assert 'proving_serve_model_calls_total{deployment="ab"' in text
        assert 'model="champ"' in text or 'model="chall"' in text
        assert "unit-zzz" not in text and "rid-zzz" not in text
        assert (await c.get("/healthz")).status_code == 200
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["deployments"]["ab"] == 1

    with_client(body)


def test_micro_batches_never_mix_variants() -> None:
    seen: list[tuple[str, ...]] = []

    class Recording(FakeModel):
        async def predict_batch(self, instances: Any) -> list[Any]:
            seen.append(tuple(x["arm"] for x in instances))
            return await super().predict_batch(instances)

    shared = Recording(output=1.0, name="shared")
    spec = _spec(
        "name: mb\nvariants:\n  - {name: a, model: {name: shared}}\n"
        "  - {name: b, model: {name: shared}}\n"
    )
    app = create_app(
        [spec],
        models={"shared": shared},
        config=ServeConfig(batch_max_size=16, batch_max_wait_ms=20, challenger_timeout_ms=10_000),
    )

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                units = [f"u{i}" for i in range(40)]
                arms = [assign(u, {}, spec).variant for u in units]
                rs = await asyncio.gather(
                    *(
                        c.post("/v1/predict/mb", json={"unit_id": u, "features": {"arm": a}})
                        for u, a in zip(units, arms, strict=True)
                    )
                )
                # no fallback (the deadline is long), so every request ran on its own arm
                assert [r.json()["variant"] for r in rs] == arms
                assert set(arms) == {"a", "b"}

    run(main())
    assert sum(len(b) for b in seen) == 40, seen
    assert max(len(b) for b in seen) > 1  # batching happened
    assert all(len(set(b)) == 1 for b in seen)  # and no batch mixed the arms


def test_a_spec_whose_model_cannot_load_is_refused_and_the_old_version_serves() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        new = AB.model_dump(mode="json") | {"version": 2}
        new["variants"][1]["model"] = {"name": "ghost", "version": "9"}
        r = await c.put("/admin/deployments/ab/spec", json=new, headers=AUTH)
        assert r.status_code == 422 and "model 'ghost'" in r.json()["error"]
        r = await c.post("/v1/predict/ab", json={"unit_id": "u1"})
        assert r.status_code == 200 and r.json()["spec_version"] == 1

    with_client(body)


def test_rank_in_shadow_mode_serves_the_control_list_and_mirrors_the_challenger() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        r = await c.post(
            "/v1/rank/shr", json={"unit_id": "s1", "length": 3}, headers={"X-Request-ID": "sr"}
        )
        assert r.status_code == 200 and r.json()["items"] == ["a0", "a1", "a2"]
        assert r.json()["teams"] is None
        await asyncio.sleep(0.05)
        roles = sorted((p["role"], p["variant"]) for p in h.rows("predictions"))
        assert roles == [("served", "prod"), ("shadow", "cand")]

    with_client(body)
