"""The prediction API's plain-ASGI endpoints: request ids, body limits, the router path
(other methods, a root path), 500s, client disconnects and the OpenAPI description.

The 400/404/413 basics are in test_app.py; these tests cover what the shortcut past
FastAPI's stack must still do by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from proving.errors import ServeError
from proving.serve.deployment import ServeConfig
from proving.serve.prediction_api import request_id_of
from proving.serve.protocol import PredictResponse, RankResponse
from tests.serve.test_app import AB, Harness, _models, _unit_for, client, run

HEX32 = re.compile(r"^[0-9a-f]{32}$")
LIMIT = 256


def _sample(h: Harness, name: str, labels: dict[str, str]) -> float | None:
    value = h.app.state.gateway.metrics.registry.get_sample_value(name, labels)
    return None if value is None else float(value)


def _errors(h: Harness, deployment: str, endpoint: str = "predict") -> float | None:
    labels = {"deployment": deployment, "endpoint": endpoint, "variant": "", "status": "error"}
    return _sample(h, "proving_serve_requests_total", labels)


def _in_harness(body: Any, **config: Any) -> Harness:
    harness = Harness(_models(), **{"max_body_bytes": LIMIT, **config})

    async def main() -> None:
        async with client(harness) as c:
            await body(c, harness)

    run(main())
    return harness


# -- request ids ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "echoed"),
    [
        ("req-1.a:b_c", True),
        ("x" * 128, True),  # the longest plain token
        ("has spaces", False),
        ("x" * 129, False),
        ("x" * 200, False),
        ("semi;colon", False),
        (None, False),
    ],
)
def test_request_id_is_echoed_when_plain_and_generated_otherwise_on_every_answer(
    header: str | None, echoed: bool
) -> None:
    headers = {} if header is None else {"X-Request-ID": header}

    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        answers = [
            (200, await c.post("/v1/predict/ab", json={"unit_id": "u1"}, headers=headers)),
            (200, await c.post("/v1/rank/il", json={"unit_id": "u1"}, headers=headers)),
            (400, await c.post("/v1/predict/ab", json={"features": {}}, headers=headers)),
            (404, await c.post("/v1/predict/nope", json={"unit_id": "u1"}, headers=headers)),
            (413, await c.post("/v1/predict/ab", content=b"x" * (LIMIT + 1), headers=headers)),
        ]
        ids = set()
        for status, r in answers:
            assert r.status_code == status, r.text
            assert r.headers["content-type"] == "application/json"
            rid = r.headers["X-Request-ID"]
            if echoed:
                assert rid == header
            else:
                assert HEX32.match(rid), rid
            if status == 200:
                assert r.json()["request_id"] == rid  # body and header agree
            else:
                assert set(r.json()) == {"error"}
            ids.add(rid)
        # generated ids are fresh per request
        assert len(ids) == (1 if echoed else len(answers))

    _in_harness(body)


def test_request_id_of() -> None:
    assert request_id_of("abc-1") == "abc-1"
    for bad in (None, "", " ", "a b", "é", "x" * 129, "a\x00b"):
        generated = request_id_of(bad)
        assert HEX32.match(generated), (bad, generated)
    assert len({request_id_of(None) for _ in range(10_000)}) == 10_000


# -- body limit -------------------------------------------------------------------------


def test_chunked_body_over_the_limit_is_413_without_reading_it_all() -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):  # 3000 bytes, 30 at a time
            pulled += 1
            yield b"x" * 30

    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        r = await c.post("/v1/predict/ab", content=chunks(), headers={"X-Request-ID": "big"})
        assert "content-length" not in r.request.headers  # chunked: no declared length
        assert r.status_code == 413, r.text
        assert f"exceeds {LIMIT} bytes" in r.json()["error"]
        assert r.headers["X-Request-ID"] == "big"
        # refused as soon as the count passed the limit (9 chunks > 256 bytes), not at the end
        assert pulled <= LIMIT // 30 + 2
        assert _errors(h, "ab") == 1.0

    _in_harness(body)


def test_chunked_body_under_the_limit_is_joined_and_served() -> None:
    payload = json.dumps({"unit_id": "u1", "features": {"x": "y" * 100}}).encode()
    assert len(payload) < LIMIT

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 7):
            yield payload[i : i + 7]

    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        r = await c.post("/v1/predict/ab", content=chunks())
        assert "content-length" not in r.request.headers
        assert r.status_code == 200, r.text
        served = h.models["champ"].calls + h.models["chall"].calls
        assert served == [{"x": "y" * 100}]  # the model got the whole body's features

    _in_harness(body)


def test_declared_content_length_over_the_limit_is_413_before_reading() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        # a small body that claims to be large: refused on the header alone
        r = await c.post(
            "/v1/predict/ab",
            content=b'{"unit_id": "u1"}',
            headers={"content-length": str(LIMIT + 1), "X-Request-ID": "declared"},
        )
        assert r.status_code == 413 and f"exceeds {LIMIT} bytes" in r.json()["error"]
        assert r.headers["X-Request-ID"] == "declared"
        assert not h.models["champ"].calls and not h.models["chall"].calls

    _in_harness(body)


# -- the router path: other methods, a root path ----------------------------------------


def test_get_on_a_prediction_path_is_a_405_json() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        for path in ("/v1/predict/ab", "/v1/rank/il"):
            r = await c.get(path)
            assert r.status_code == 405, r.text
            assert r.headers["content-type"] == "application/json"
            assert r.json() == {"error": "Method Not Allowed"}

    _in_harness(body)


def test_under_a_root_path_the_router_serves_the_same_answers() -> None:
    unit = _unit_for(AB, "challenger")

    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        direct = await c.post(
            "/v1/predict/ab", json={"unit_id": unit}, headers={"X-Request-ID": "d1"}
        )
        transport = httpx.ASGITransport(app=h.app, root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as proxied:
            routed = await proxied.post(
                "/api/v1/predict/ab", json={"unit_id": unit}, headers={"X-Request-ID": "r1"}
            )
            missing = await proxied.post(
                "/api/v1/predict/nope", json={"unit_id": unit}, headers={"X-Request-ID": "r2"}
            )
            bad = await proxied.post("/api/v1/rank/il", json={}, headers={"X-Request-ID": "r3"})
            ranked = await proxied.post("/api/v1/rank/il", json={"unit_id": unit})
        assert direct.status_code == routed.status_code == 200, routed.text
        assert routed.headers["X-Request-ID"] == "r1"
        a, b = direct.json(), routed.json()
        assert set(a) == set(b)
        assert (a.pop("request_id"), b.pop("request_id")) == ("d1", "r1")
        assert a == b and b["variant"] == "challenger" and b["prediction"] == 2.0
        assert missing.status_code == 404 and "unknown deployment" in missing.json()["error"]
        assert missing.headers["X-Request-ID"] == "r2"
        assert bad.status_code == 400 and "unit_id" in bad.json()["error"]
        assert bad.headers["X-Request-ID"] == "r3"
        assert ranked.status_code == 200 and len(ranked.json()["items"]) == 6
        assert HEX32.match(ranked.headers["X-Request-ID"])

    _in_harness(body)


def test_under_a_root_path_the_endpoint_answers_its_own_413() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        transport = httpx.ASGITransport(app=h.app, root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as proxied:
            r = await proxied.post(
                "/api/v1/predict/ab",
                json={"unit_id": "u", "features": "x" * 300},
                headers={"X-Request-ID": "big-1"},
            )
        assert r.status_code == 413 and "exceeds 100 bytes" in r.json()["error"]
        # The endpoint's answer (the middleware's would carry no request id, count nothing).
        assert r.headers["X-Request-ID"] == "big-1"
        assert _errors(h, "ab") == 1.0

    _in_harness(body, max_body_bytes=100)


def test_ranking_with_a_predictors_deployment_is_a_422_naming_the_fix() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        r = await c.post("/v1/rank/ab", json={"unit_id": "u1"}, headers={"X-Request-ID": "rk"})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert "deployment 'ab' cannot rank" in error and "answered float" in error
        assert "/v1/predict/ab" in error and r.headers["X-Request-ID"] == "rk"

    _in_harness(body)


def test_a_negative_exposure_cache_size_is_refused_with_the_fix() -> None:
    with pytest.raises(ServeError, match="exposure_cache_size must be >= 0"):
        ServeConfig(exposure_cache_size=-1)


@pytest.mark.parametrize("nice", [-1, 20])
def test_a_telemetry_nice_out_of_range_is_refused_naming_the_range(nice: int) -> None:
    message = rf"telemetry_nice must be between 0 .* and 19; got {nice}\."
    with pytest.raises(ServeError, match=message):
        ServeConfig(telemetry_nice=nice)


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_the_gateway_runs_its_telemetry_threads_nicer_than_the_event_loop() -> None:
    if os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) >= 19:
        pytest.skip("this process already runs at the lowest priority, nice 19")

    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        r = await c.post("/v1/predict/ab", json={"unit_id": "u1"})
        assert r.status_code == 200, r.text
        assert len(h.rows("predictions")) == 1  # a commit: both threads are running
        loop = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        for thread in (h.writer._thread, h.writer._committer):
            niceness = os.getpriority(os.PRIO_PROCESS, thread.native_id)
            assert niceness > loop and niceness == min(19, loop + ServeConfig().telemetry_nice)

    _in_harness(body)


# -- a bug in the gateway: 500, counted, and the next request is served ----------------


def test_an_unexpected_exception_is_a_500_naming_the_request_id_and_serving_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        gateway = h.app.state.gateway
        real = gateway.predict
        failures = [RuntimeError("a bug")]

        async def predict_once_broken(*args: Any) -> Any:
            if failures:
                raise failures.pop()
            return await real(*args)

        gateway.predict = predict_once_broken
        with caplog.at_level(logging.ERROR, logger="proving.serve.prediction_api"):
            r = await c.post(
                "/v1/predict/ab", json={"unit_id": "u1"}, headers={"X-Request-ID": "b1"}
            )
        assert r.status_code == 500, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.headers["X-Request-ID"] == "b1"
        error = r.json()["error"]
        assert "request id b1" in error and "a bug" not in error  # no internals leaked
        assert _errors(h, "ab") == 1.0
        logged = [rec for rec in caplog.records if "b1" in rec.getMessage()]
        assert logged and logged[0].exc_info is not None  # the traceback is in the log
        again = await c.post("/v1/predict/ab", json={"unit_id": "u1"})
        assert again.status_code == 200 and again.json()["deployment"] == "ab"
        ok = {"deployment": "ab", "endpoint": "predict", "status": "ok"}
        ok["variant"] = again.json()["variant"]
        assert _sample(h, "proving_serve_requests_total", ok) == 1.0
        assert _errors(h, "ab") == 1.0

    _in_harness(body)


def test_an_unexpected_exception_for_an_unknown_name_is_counted_as_unknown() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        async def broken(*args: Any) -> Any:
            raise RuntimeError("a bug")

        h.app.state.gateway.rank = broken
        r = await c.post("/v1/rank/scanner-probe", json={"unit_id": "u1"})
        assert r.status_code == 500
        assert _errors(h, "unknown", "rank") == 1.0
        assert "scanner-probe" not in (await c.get("/metrics")).text

    _in_harness(body)


# -- a client that goes away -------------------------------------------------------------


@pytest.mark.parametrize("chunks_before", [0, 1])
def test_a_client_disconnect_before_the_body_sends_nothing_and_does_not_raise(
    chunks_before: int,
) -> None:
    harness = Harness(_models(), max_body_bytes=LIMIT)
    endpoint = harness.app.prediction_endpoints["predict"]
    messages = [{"type": "http.request", "body": b'{"unit_', "more_body": True}] * chunks_before
    messages.append({"type": "http.disconnect"})
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/predict/ab",
        "root_path": "",
        "headers": [(b"x-request-id", b"gone")],
        "path_params": {"name": "ab"},
    }

    async def main() -> None:
        async with harness.app.router.lifespan_context(harness.app):
            await endpoint(scope, receive, send)

    run(main())
    assert sent == [] and messages == []
    assert _errors(harness, "ab") is None  # not an error of the gateway
    assert not harness.models["champ"].calls and not harness.models["chall"].calls


# -- OpenAPI -----------------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_describes_both_routes_and_matches_the_answers() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        doc = (await c.get("/openapi.json")).json()
        schemas = doc["components"]["schemas"]
        # every $ref anywhere in the document resolves
        for ref in _refs(doc):
            assert ref.startswith("#/components/schemas/"), ref
            assert ref.rsplit("/", 1)[1] in schemas, ref
        answers = {
            "predict": await c.post("/v1/predict/ab", json={"unit_id": "u1"}),
            "rank": await c.post("/v1/rank/il", json={"unit_id": "u1"}),
        }
        expected = {
            "predict": ("PredictRequest", "PredictResponse"),
            "rank": ("RankRequest", "RankResponse"),
        }
        operation_ids = set()
        for endpoint, (request_model, response_model) in expected.items():
            op = doc["paths"][f"/v1/{endpoint}/{{name}}"]["post"]
            assert set(doc["paths"][f"/v1/{endpoint}/{{name}}"]) == {"post"}
            operation_ids.add(op["operationId"])
            assert endpoint in op["operationId"]
            assert {p["name"] for p in op["parameters"]} == {"name", "X-Request-ID"}
            request_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert request_ref == f"#/components/schemas/{request_model}"
            assert "unit_id" in schemas[request_model]["required"]
            ok = op["responses"]["200"]
            assert "X-Request-ID" in ok["headers"]
            response_ref = ok["content"]["application/json"]["schema"]["$ref"]
            assert response_ref == f"#/components/schemas/{response_model}"
            for code in ("400", "404", "413", "500"):
                error = op["responses"][code]["content"]["application/json"]["schema"]
                assert error["$ref"] == "#/components/schemas/ErrorBody"
            # the documented answer is the one the endpoint sends
            r = answers[endpoint]
            assert r.status_code == 200, r.text
            properties = set(schemas[response_model]["properties"])
            assert properties == set(r.json()) == set(schemas[response_model]["required"])
        assert len(operation_ids) == 2  # unique
        # and the models agree with the wire format
        PredictResponse.model_validate(answers["predict"].json())
        RankResponse.model_validate(answers["rank"].json())

    _in_harness(body)


def test_a_non_finite_model_output_still_gives_a_valid_json_body() -> None:
    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        h.models["champ"].output = h.models["chall"].output = float("nan")
        r = await c.post("/v1/predict/ab", json={"unit_id": "u1"})
        json.loads(r.content, parse_constant=refuse)  # strict JSON (RFC 8259)

    _in_harness(body)


def test_concurrent_requests_keep_their_own_request_ids() -> None:
    async def body(c: httpx.AsyncClient, h: Harness) -> None:
        rs = await asyncio.gather(
            *(
                c.post(
                    "/v1/predict/ab", json={"unit_id": f"u{i}"}, headers={"X-Request-ID": f"c{i}"}
                )
                for i in range(20)
            )
        )
        for i, r in enumerate(rs):
            assert r.status_code == 200
            assert r.headers["X-Request-ID"] == r.json()["request_id"] == f"c{i}"

    _in_harness(body)
