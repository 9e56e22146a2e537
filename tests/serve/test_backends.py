"""Model backends: in-process callables, scikit-learn (object and joblib file), entry points,
and the remote backend's retries, timeouts and circuit breaker (httpx MockTransport)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from proving.errors import ServeError
from proving.serve.backends import (
    BackendError,
    BadFeaturesError,
    CallableBackend,
    RemoteBackend,
    SklearnBackend,
    load_backend,
)
from proving.serve.breaker import CircuitBreaker, CircuitOpenError
from proving.spec import ModelRefSpec


def _fitted() -> LogisticRegression:
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (x["a"] - x["b"] > 0).astype(int)
    return LogisticRegression().fit(x, y)


def test_sklearn_backend_matches_the_estimator_and_orders_dict_features(tmp_path: Path) -> None:
    model = _fitted()
    backend = SklearnBackend(model, method="predict_proba")
    rows = [{"b": 0.5, "a": 1.0}, {"a": -2.0, "b": 0.1}]
    got = asyncio.run(backend.predict_batch(rows))
    expected = model.predict_proba(pd.DataFrame(rows)[["a", "b"]])[:, 1]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = load_backend(ModelRefSpec(name="m", version="3", uri=f"file://{path}"))
    assert isinstance(loaded, SklearnBackend) and loaded.version == "3"
    expected_one = model.predict(pd.DataFrame({"a": [1.0], "b": [0.5]}))[0]
    assert asyncio.run(loaded.predict([1.0, 0.5])) == expected_one
    with pytest.raises(BadFeaturesError, match=r"features \['b'\] are missing"):
        asyncio.run(backend.predict({"a": 1.0}))


def test_entry_point_and_registered_models() -> None:
    ref = ModelRefSpec(name="c", entry_point="tests.serve.e2e_models:champion")
    assert asyncio.run(load_backend(ref).predict({})) == 1.0
    backend = load_backend(ModelRefSpec(name="x", version="2"), {"x:2": lambda f: f["v"] * 3})
    assert asyncio.run(backend.predict({"v": 2})) == 6
    threaded = CallableBackend(lambda f: f + 1, threaded=True)
    assert asyncio.run(threaded.predict(1)) == 2
    with pytest.raises(ServeError, match="has no attribute 'nope'"):
        load_backend(ModelRefSpec(name="c", entry_point="tests.serve.e2e_models:nope"))
    with pytest.raises(ServeError, match="not among the registered models"):
        load_backend(ModelRefSpec(name="ghost"))
    with pytest.raises(ServeError, match="cannot serve uri 's3://b/m'"):
        load_backend(ModelRefSpec(name="s", uri="s3://b/m"))


def _remote(handler: Any, **kwargs: Any) -> RemoteBackend:
    return RemoteBackend("http://model/predict", transport=httpx.MockTransport(handler), **kwargs)


def test_remote_speaks_kserve_v1() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        import json

        instances = json.loads(request.content)["instances"]
        return httpx.Response(200, json={"predictions": [x["v"] * 2 for x in instances]})

    assert asyncio.run(_remote(handler).predict_batch([{"v": 1}, {"v": 4}])) == [2, 8]


def test_remote_retries_only_what_is_safe() -> None:
    calls: list[str] = []

    def connect_fails_once(request: httpx.Request) -> httpx.Response:
        calls.append("c")
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json={"predictions": [1]})

    assert asyncio.run(_remote(connect_fails_once, retries=1).predict({})) == 1
    assert len(calls) == 2  # a connection never made is always retried

    calls.clear()

    def unavailable(request: httpx.Request) -> httpx.Response:
        calls.append("u")
        return httpx.Response(503, text="busy")

    with pytest.raises(BackendError, match="HTTP 503"):
        asyncio.run(_remote(unavailable, retries=2).predict({}))
    assert len(calls) == 1  # not idempotent: a 503 may have run it, no retry
    calls.clear()
    with pytest.raises(BackendError, match="HTTP 503"):
        asyncio.run(_remote(unavailable, retries=2, idempotent=True).predict({}))
    assert len(calls) == 3


def test_remote_bad_input_timeout_and_breaker() -> None:
    def refuses(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": "bad"})

    with pytest.raises(BadFeaturesError, match="refused the features"):
        asyncio.run(_remote(refuses).predict({}))

    async def hangs(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    backend = _remote(hangs, timeout=0.05, breaker=CircuitBreaker(failure_threshold=2))

    async def twice() -> None:
        for _ in range(2):
            with pytest.raises(BackendError, match=r"no answer within 0\.05 s") as info:
                await backend.predict({})
            assert info.value.kind == "timeout"
        with pytest.raises(CircuitOpenError, match=r"circuit breaker open"):
            await backend.predict({})

    asyncio.run(twice())
