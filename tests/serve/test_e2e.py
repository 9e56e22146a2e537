"""End to end over real HTTP: `proving serve` in a subprocess, a remote model server in
another, PostgreSQL as the event store (read while the gateway runs)."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from proving.assign import assign
from proving.spec import parse_spec
from proving.testing import ModelServerProcess
from proving.testing.model_server import free_port
from tests.serve.gateway_process import TOKEN, GatewayProcess

pytestmark = pytest.mark.services

CHALLENGER_TIMEOUT_MS = 500
CHAMPION = "tests.serve.e2e_models:champion"
DEPLOYMENTS = ("split", "down", "shadow", "canary", "bluegreen", "interleave")
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def _specs(tmp: Path, remote: str) -> dict[str, str]:
    dead = f"http://127.0.0.1:{free_port()}/predict"  # nothing listens there
    texts = {
        "split": f"""name: split
variants:
  - {{name: champion, model: {{name: champ, version: "1", entry_point: "{CHAMPION}"}}}}
  - {{name: challenger, model: {{name: remote, version: "2", uri: "{remote}"}}}}
""",
        "down": f"""name: down
variants:
  - {{name: champion, model: {{name: champ, version: "1", entry_point: "{CHAMPION}"}}}}
  - {{name: challenger, model: {{name: dead, version: "9", uri: "{dead}"}}}}
""",
        "shadow": f"""name: shadow
mode: shadow
variants:
  - {{name: champion, model: {{name: champ, version: "1", entry_point: "{CHAMPION}"}}}}
  - {{name: challenger, model: {{name: remote, version: "2", uri: "{remote}"}}}}
shadow: {{sample_rate: 1.0, max_concurrency: 16, timeout_ms: 1500}}
""",
        "canary": f"""name: canary
mode: canary
variants:
  - {{name: champion, model: {{name: champ, version: "1", entry_point: "{CHAMPION}"}}}}
  - {{name: challenger, model: {{name: remote, version: "2", uri: "{remote}"}}}}
canary: {{weight: 0.1}}
""",
        "bluegreen": """name: bluegreen
mode: bluegreen
variants: [{name: blue, value: blue}, {name: green, value: green}]
""",
        "interleave": f"""name: interleave
mode: interleave
variants:
  - {{name: production, model: {{name: asc, uri: "{remote}"}}}}
  - {{name: candidate, model: {{name: desc, entry_point: "tests.serve.e2e_models:reverse_ranker"}}}}
interleave: {{list_length: 6}}
""",
    }
    for name, text in texts.items():
        (tmp / f"{name}.yaml").write_text(text)
    return texts


@pytest.fixture(scope="module")
def remote() -> Iterator[ModelServerProcess]:
    with ModelServerProcess(bias=10.0) as server:
        yield server


@pytest.fixture(scope="module")
def pg_store(postgres_dsn: str) -> Iterator[tuple[str, str]]:
    import psycopg

    schema = f"serve_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'create schema "{schema}"')
    yield f"{postgres_dsn}?schema={schema}", schema
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'drop schema "{schema}" cascade')


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, remote: ModelServerProcess, pg_store: tuple[str, str]
) -> Iterator[tuple[GatewayProcess, Path]]:
    tmp = tmp_path_factory.mktemp("specs")
    _specs(tmp, remote.predict_url)
    gw = GatewayProcess(
        [tmp / f"{n}.yaml" for n in DEPLOYMENTS], pg_store[0],
        "--challenger-timeout-ms", str(CHALLENGER_TIMEOUT_MS), "--max-body-bytes", "65536",
    )  # fmt: skip
    yield gw, tmp
    assert gw.terminate() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after draining


def _rows(dsn_schema: tuple[str, str], sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    dsn, schema = dsn_schema
    with psycopg.connect(dsn.split("?")[0]) as conn:
        conn.execute(f'set search_path to "{schema}"')
        return list(conn.execute(sql).fetchall())


def _wait_rows(dsn_schema: tuple[str, str], sql: str, count: int) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + 5.0
    rows = _rows(dsn_schema, sql)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = _rows(dsn_schema, sql)
    return rows


def _unit(spec_text: str, variant: str) -> str:
    spec = parse_spec(spec_text)
    return next(
        u for u in (f"user-{i}" for i in range(1000)) if assign(u, {}, spec).variant == variant
    )


def test_split_end_to_end_with_remote_challenger(
    gateway: tuple[GatewayProcess, Path], remote: ModelServerProcess
) -> None:
    gw, tmp = gateway
    remote.set_mode("ok")
    text = (tmp / "split.yaml").read_text()
    unit = _unit(text, "challenger")
    r = gw.post(
        "/v1/predict/split",
        json={"unit_id": unit, "features": {"x": 2.5}},
        headers={"X-Request-ID": "e2e-split-1"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["variant"], body["prediction"], body["fallback"]) == ("challenger", 12.5, False)
    assert r.headers["x-request-id"] == "e2e-split-1"
    champ = _unit(text, "champion")
    r = gw.post("/v1/predict/split", json={"unit_id": champ, "features": {"x": 2.5}})
    assert (r.json()["variant"], r.json()["prediction"]) == ("champion", 1.0)
    assert len(r.json()["request_id"]) == 32  # generated


@pytest.mark.parametrize("mode", ["error", "hang", "slow", "down"])
def test_challenger_failure_never_fails_or_delays_the_response(
    gateway: tuple[GatewayProcess, Path],
    remote: ModelServerProcess,
    pg_store: tuple[str, str],
    mode: str,
) -> None:
    gw, tmp = gateway
    deployment = "down" if mode == "down" else "split"
    remote.set_mode("ok" if mode == "down" else mode, delay=2.0)  # type: ignore[arg-type]
    unit = _unit((tmp / f"{deployment}.yaml").read_text(), "challenger")
    rid = f"e2e-fail-{mode}"
    start = time.perf_counter()
    r = gw.post(
        f"/v1/predict/{deployment}",
        json={"unit_id": unit, "features": {"x": 1}},
        headers={"X-Request-ID": rid},
    )
    elapsed = time.perf_counter() - start
    remote.set_mode("ok")
    assert r.status_code == 200, r.text
    assert (r.json()["variant"], r.json()["fallback"], r.json()["prediction"]) == (
        "champion",
        True,
        1.0,
    )
    # bounded by the challenger deadline (slack for a loaded machine), not the 2 s delay
    assert elapsed < CHALLENGER_TIMEOUT_MS / 1000 + 0.5
    rows = _wait_rows(
        pg_store,
        f"select variant, status from predictions where request_id = '{rid}' order by variant",
        2,
    )
    assert rows[0] == ("challenger", "timeout" if mode in ("hang", "slow") else "error")
    assert rows[1] == ("champion", "fallback")


def test_shadow_is_logged_with_the_request_id_and_never_returned(
    gateway: tuple[GatewayProcess, Path], remote: ModelServerProcess, pg_store: tuple[str, str]
) -> None:
    gw, _ = gateway
    remote.set_mode("ok")
    r = gw.post(
        "/v1/predict/shadow",
        json={"unit_id": "u-shadow", "features": {"x": 3}},
        headers={"X-Request-ID": "e2e-shadow"},
    )
    assert r.status_code == 200 and r.json()["prediction"] == 1.0 and "13" not in r.text
    rows = _wait_rows(
        pg_store,
        "select role, variant, score from predictions where request_id = 'e2e-shadow' "
        "order by role",
        2,
    )
    assert rows == [("served", "champion", 1.0), ("shadow", "challenger", 13.0)]
    remote.set_mode("hang")
    start = time.perf_counter()
    r = gw.post("/v1/predict/shadow", json={"unit_id": "u-shadow-2"})
    assert r.status_code == 200 and time.perf_counter() - start < 0.5  # the shadow hangs 1.5 s
    remote.set_mode("ok")


def test_bad_input_and_auth_over_http(gateway: tuple[GatewayProcess, Path]) -> None:
    gw, _ = gateway
    r = gw.post("/v1/predict/split", content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = gw.post("/v1/predict/split", json={"features": {}})
    assert r.status_code == 400 and "unit_id" in r.json()["error"]
    r = gw.post(
        "/v1/predict/split", content=b"x" * 70_000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    r = gw.post("/v1/predict/nope", json={"unit_id": "u"})
    assert r.status_code == 404
    assert httpx.get(f"{gw.url}/admin/deployments").status_code == 401
    ok = httpx.get(f"{gw.url}/admin/deployments", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and {d["deployment"] for d in ok.json()} == set(DEPLOYMENTS)


def test_hot_reload_from_file_without_failing_in_flight_requests(
    gateway: tuple[GatewayProcess, Path],
) -> None:
    gw, tmp = gateway
    path = tmp / "split.yaml"
    text = path.read_text()
    unit = _unit(text, "challenger")
    stop = time.monotonic() + 1.5

    def hammer() -> list[int]:
        codes = []
        while time.monotonic() < stop:
            codes.append(gw.post("/v1/predict/split", json={"unit_id": unit}).status_code)
        return codes

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer) for _ in range(4)]
        time.sleep(0.3)
        path.write_text("version: 2\nweights: [1.0, 0.0]\n" + text)
        codes = [c for f in futures for c in f.result()]
    assert codes and set(codes) == {200}
    r = gw.post("/v1/predict/split", json={"unit_id": unit})
    assert (r.json()["spec_version"], r.json()["variant"]) == (2, "champion")


def test_canary_ramp_over_http_is_monotone(gateway: tuple[GatewayProcess, Path]) -> None:
    gw, _ = gateway
    units = [f"c{i}" for i in range(150)]

    def canaried() -> set[str]:
        return {
            u for u in units
            if gw.post("/v1/predict/canary", json={"unit_id": u}).json()["variant"] == "challenger"
        }  # fmt: skip

    before = canaried()
    r = gw.put("/admin/deployments/canary/weights", json={"canary_weight": 0.6}, headers=ADMIN)
    assert r.status_code == 200, r.text
    after = canaried()
    assert before < after and len(before) < 40 < len(after)


def test_bluegreen_switch_and_undo_over_http(gateway: tuple[GatewayProcess, Path]) -> None:
    gw, _ = gateway

    def colour() -> str:
        return str(gw.post("/v1/predict/bluegreen", json={"unit_id": "r"}).json()["prediction"])

    assert colour() == "blue"
    assert gw.post("/admin/deployments/bluegreen/switch", json={}, headers=ADMIN).status_code == 200
    assert colour() == "green"
    assert gw.post("/admin/deployments/bluegreen/switch/undo", headers=ADMIN).status_code == 200
    assert colour() == "blue"


def test_interleave_over_http_is_a_team_draft_merge(
    gateway: tuple[GatewayProcess, Path], remote: ModelServerProcess, pg_store: tuple[str, str]
) -> None:
    gw, tmp = gateway
    remote.set_mode("ok")
    spec = parse_spec((tmp / "interleave.yaml").read_text())
    unit = next(
        u for u in (f"s{i}" for i in range(100)) if assign(u, {}, spec).reason == "interleave"
    )
    candidates = [f"d{i}" for i in range(8)]
    r = gw.post("/v1/rank/interleave", json={"unit_id": unit, "candidates": candidates},
                headers={"X-Request-ID": "e2e-rank"})  # fmt: skip
    assert r.status_code == 200, r.text
    items, teams = r.json()["items"], r.json()["teams"]
    asc, desc = sorted(candidates), sorted(candidates, reverse=True)
    assert len(items) == len(set(items)) == 6
    for team, ranking in (("production", asc), ("candidate", desc)):
        for pos, (item, t) in enumerate(zip(items, teams, strict=True)):
            if t == team:
                assert item == next(x for x in ranking if x not in items[:pos])
    for k in range(2, 7, 2):
        assert teams[:k].count("production") == k // 2
    rows = _wait_rows(pg_store, "select output from predictions where request_id = 'e2e-rank' "
                      "and model = 'team_draft'", 1)  # fmt: skip
    assert rows and '"teams"' in str(rows[0][0])
