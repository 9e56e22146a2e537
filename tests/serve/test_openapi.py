"""Schemathesis against the gateway's OpenAPI spec: no input produces a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from proving.serve import create_app
from proving.spec import parse_spec
from proving.testing import FakeModel

SPECS = [
    parse_spec(
        "name: ab\nvariants:\n  - {name: champion, model: {name: champ}}\n"
        "  - {name: challenger, model: {name: chall}}\n"
    ),
    parse_spec(
        "name: il\nmode: interleave\nvariants:\n  - {name: a, model: {name: ra}}\n"
        "  - {name: b, model: {name: rb}}\n"
    ),
]
MODELS = {
    "champ": FakeModel(1.0),
    "chall": FakeModel(2.0),
    "ra": FakeModel(lambda f: ["x", "y", "z"]),
    "rb": FakeModel(lambda f: ["z", "w"]),
}


@pytest.fixture(scope="module")
def gateway_app() -> Iterator[Any]:
    app = create_app(SPECS, models=MODELS, admin_token="t")
    yield app
    app.state.writer.close()
    app.state.store.close()


def test_no_server_errors(gateway_app: Any) -> None:
    api = schemathesis.openapi.from_asgi("/openapi.json", gateway_app)
    checked = []
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": "Bearer t"})
            assert response.status_code < 500, (case.method, case.path, response.text)

        check()
        checked.append(operation.label)
    assert (
        "POST /v1/predict/{name}" in checked and "PUT /admin/deployments/{name}/weights" in checked
    )
