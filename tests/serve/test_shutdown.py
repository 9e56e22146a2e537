"""SIGTERM drains in-flight requests and flushes telemetry: no acknowledged event is lost."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from proving.telemetry.duckdb_store import DuckDBStore
from tests.serve.gateway_process import GatewayProcess

SPEC = """name: slow
variants:
  - {name: champion, model: {name: champ, entry_point: "tests.serve.e2e_models:slow_champion"}}
  - {name: other, model: {name: champ2, entry_point: "tests.serve.e2e_models:slow_champion"}}
"""


def test_sigterm_drains_in_flight_requests_and_flushes_every_event(tmp_path: Path) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text(SPEC)
    db = tmp_path / "events.duckdb"
    gw = GatewayProcess([spec], f"duckdb://{db}", "--challenger-timeout-ms", "2000")

    def predict(i: int) -> httpx.Response:
        return gw.post(
            "/v1/predict/slow", json={"unit_id": f"u{i}"}, headers={"X-Request-ID": f"drain-{i}"}
        )

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(predict, i) for i in range(20)]
        outcome = gw.post(
            "/v1/outcomes",
            json={"outcomes": [{"unit_id": "u1", "name": "click", "event_id": "oc-1"}]},
        )
        assert outcome.status_code == 200  # acknowledged: committed
        time.sleep(0.15)  # the 20 predictions (400 ms each) are in flight now
        gw.process.send_signal(signal.SIGTERM)
        responses = [f.result() for f in futures]
    assert gw.process.wait(20) in (0, -signal.SIGTERM)
    assert [r.status_code for r in responses] == [200] * 20
    with DuckDBStore(str(db)) as store:
        preds = store.read_table("predictions").to_pylist()
        outcomes = store.read_table("outcomes").to_pylist()
        exposures = store.read_table("exposures").to_pylist()
    assert sorted(p["request_id"] for p in preds) == sorted(f"drain-{i}" for i in range(20))
    assert len(exposures) == 20
    assert [o["event_id"] for o in outcomes] == ["oc-1"]
