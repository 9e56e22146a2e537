"""The traffic driver: concurrency, request ids, outcomes posted back, retries, progress.

A small fake gateway (in-process, through ``httpx.ASGITransport``) records exactly what
the driver sent; the last test drives the real gateway app in shadow mode in-process.
"""

from __future__ import annotations

import asyncio
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rich.console import Console
from rich.progress import Progress

from proving.errors import ServeError
from proving.serve import create_app
from proving.simulate.traffic import PlannedRequest, drive
from proving.spec import parse_spec


@dataclass
class FakeState:
    inflight: int = 0
    max_inflight: int = 0
    headers: list[str] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    outcome_posts: int = 0
    fail_outcome_posts: int = 0
    outcomes: list[dict[str, Any]] = field(default_factory=list)


def fake_gateway(state: FakeState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/predict/{name}")
    async def predict(name: str, request: Request) -> JSONResponse:
        state.inflight += 1
        state.max_inflight = max(state.max_inflight, state.inflight)
        await asyncio.sleep(0.003)
        state.inflight -= 1
        body = await request.json()
        rid = request.headers["X-Request-ID"]
        state.headers.append(rid)
        state.bodies.append(body)
        if body["unit_id"] == "broken":
            return JSONResponse({"error": "`unit_id`: refused"}, status_code=400)
        answer = {
            "request_id": rid,
            "deployment": name,
            "variant": "a",
            "prediction": 2 * body["features"][0],
            "fallback": False,
            "spec_version": 1,
        }
        return JSONResponse(answer, headers={"X-Request-ID": rid})

    @app.post("/v1/outcomes")
    async def outcomes(request: Request) -> JSONResponse:
        state.outcome_posts += 1
        if state.fail_outcome_posts > 0:
            state.fail_outcome_posts -= 1
            return JSONResponse({"error": "writer queue full; retry"}, status_code=503)
        batch = (await request.json())["outcomes"]
        state.outcomes.extend(batch)
        accepted = [{"index": i, "event_id": e["event_id"], "status": "stored"}
                    for i, e in enumerate(batch)]  # fmt: skip
        return JSONResponse({"accepted": accepted, "rejected": [], "warnings": []})

    return app


def plan(n: int) -> list[PlannedRequest]:
    return [PlannedRequest(f"u-{i % 40}", {"country": "US"}, [float(i)], key=i) for i in range(n)]


def bought_if_even(request: PlannedRequest, answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "purchase", "value": answer["prediction"]}] if request.key % 2 == 0 else []


def run(state: FakeState, requests: list[PlannedRequest], **kwargs: Any) -> Any:
    transport = httpx.ASGITransport(app=fake_gateway(state))
    return asyncio.run(drive("http://gw", "ranker", requests, transport=transport, **kwargs))


def test_every_request_is_sent_once_with_its_own_id_and_bounded_concurrency() -> None:
    state = FakeState()
    result = run(state, plan(120), concurrency=5, phase="ab")
    assert len(result.records) == 120
    assert [r.index for r in result.records] == list(range(120))
    assert all(r.ok and r.error is None for r in result.records)  # id echoed in body + header
    assert [r.prediction for r in result.records] == [2.0 * i for i in range(120)]
    ids = [r.request_id for r in result.records]
    assert len(set(ids)) == 120 and sorted(ids) == sorted(state.headers)
    assert all(i.startswith("ab-") for i in ids)
    assert 1 < state.max_inflight <= 5
    summary = result.summary()
    assert summary.n_ok == 120 and summary.variants == {"a": 120}
    assert summary.latency_p50_ms is not None and summary.requests_per_second > 0


def test_outcomes_are_posted_back_in_batches_with_unit_and_request_ids() -> None:
    state = FakeState()
    result = run(state, plan(90), outcome=bought_if_even, outcome_batch_size=10)
    assert result.outcomes_posted == result.outcomes_accepted == 45
    assert state.outcome_posts == math.ceil(45 / 10)
    by_request = {r.request_id: r for r in result.records}
    for event in state.outcomes:
        record = by_request[event["request_id"]]
        assert event["unit_id"] == record.unit_id
        assert event["value"] == record.prediction
        assert event["event_id"] == f"{record.request_id}:purchase:0"
    assert {by_request[e["request_id"]].index % 2 for e in state.outcomes} == {0}


def test_a_503_is_retried_and_the_batch_stored_once() -> None:
    state = FakeState(fail_outcome_posts=2)
    result = run(state, plan(20), outcome=bought_if_even, outcome_batch_size=100)
    assert state.outcome_posts == 3
    assert result.outcomes_accepted == 10
    assert len({e["event_id"] for e in state.outcomes}) == len(state.outcomes) == 10
    assert result.outcome_errors == ()


def test_a_refused_request_is_a_failed_record_without_outcome() -> None:
    state = FakeState()
    requests = [*plan(3), PlannedRequest("broken", {}, [1.0], key=4)]
    result = run(state, requests, outcome=lambda r, a: [{"name": "purchase", "value": 1.0}])
    bad = result.records[3]
    assert bad.status_code == 400 and not bad.ok and "refused" in (bad.error or "")
    assert result.outcomes_accepted == 3
    summary = result.summary()
    assert summary.n_failed == 1 and "HTTP 400" in summary.errors[0]


def test_the_progress_bar_counts_every_request() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    with Progress(console=console) as progress:
        run(FakeState(), plan(30), progress=progress, phase="shadow")
        task = progress.tasks[0]
        assert task.completed == task.total == 30
        assert task.description.startswith("shadow")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"concurrency": 0}, "concurrency and outcome_batch_size must be >= 1; got 0 and 100")],
)
def test_bad_parameters_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ServeError, match=message):
        run(FakeState(), plan(2), **kwargs)


def test_the_real_gateway_in_shadow_mode_never_returns_the_shadow(tmp_path: Path) -> None:
    spec = parse_spec(
        "name: rec\nmode: shadow\nvariants:\n"
        "  - {name: champion, model: {name: double}}\n"
        "  - {name: challenger, model: {name: negate}}\n"
    )
    models = {"double": lambda f: 2 * f[0], "negate": lambda f: -f[0]}
    store = tmp_path / "events.duckdb"
    app = create_app([spec], store=str(store), models=models)

    async def main() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            return await drive("http://gw", "rec", plan(60), transport=transport, concurrency=4)

    result = asyncio.run(main())
    assert all(r.ok and r.variant == "champion" for r in result.records)
    assert [r.prediction for r in result.records] == [2.0 * i for i in range(60)]
    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.sql("select request_id, role, output from predictions").fetchall()
    shadow = {rid: float(out) for rid, role, out in rows if role == "shadow"}
    served = {rid: float(out) for rid, role, out in rows if role == "served"}
    assert set(served) == {r.request_id for r in result.records}
    assert set(shadow) == set(served)  # paired by request id
    for r in result.records:
        assert shadow[r.request_id] == -r.prediction / 2  # logged, never returned
