"""The prediction API's two routes, ``/v1/predict/{name}`` and ``/v1/rank/{name}``.

They are the gateway's hot path, so each is a plain ASGI app mounted in the FastAPI app
rather than a FastAPI endpoint: FastAPI's per-request layer (dependency solving, request
and response models) cost more CPU than everything the gateway does for a request
(BENCHMARKS.md, "Gateway overhead"). The body is validated in one pass by pydantic-core
(:mod:`proving.serve.protocol`), the answer encoded by pydantic-core, and the OpenAPI
description, which FastAPI cannot derive for a plain route, is written out from the same
request and response models (:func:`prediction_openapi`).

The request id comes from the ``X-Request-ID`` header when it is a plain token (letters,
digits, ``._:-``, up to 128 characters) and is generated otherwise; it is returned in the
body and in the ``X-Request-ID`` header of every answer, errors included.

Example:
    >>> paths, schemas = prediction_openapi()
    >>> sorted(paths), "PredictResponse" in schemas
    (['/v1/predict/{name}', '/v1/rank/{name}'], True)
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.types import Receive, Scope, Send

from proving.errors import HTTPError
from proving.serve.gateway import Gateway, RoutedResult
from proving.serve.limits import declared_length, too_large_message
from proving.serve.protocol import (
    ErrorBody,
    PredictRequest,
    PredictResponse,
    RankRequest,
    RankResponse,
)
from proving.telemetry.events import json_bytes

__all__ = ["PredictionEndpoint", "prediction_openapi", "request_id_of", "validation_message"]

logger = logging.getLogger(__name__)
Endpoint = Literal["predict", "rank"]
Model = TypeVar("Model", bound=BaseModel)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_JSON_FIX = 'Fix: send JSON such as {"unit_id": "u1", "features": {}}.'


def request_id_of(header: str | None) -> str:
    """The request id: the header's if it is a plain token, else a new one."""
    if header and _REQUEST_ID.match(header):
        return header
    # 128 random bits from the process's PRNG (seeded from os.urandom at start): unique
    # enough for a join key and ~10x cheaper than uuid4 under load (no syscall per id).
    return random.getrandbits(128).to_bytes(16).hex()


def validation_message(errors: Sequence[Any]) -> str:
    """One message for pydantic's errors: each field and its problem, then the fix."""
    problems = []
    for err in errors:
        if err.get("type") == "json_invalid":
            problems.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', '')})")
        else:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"`{where}`: {err.get('msg', 'invalid')}")
    return "; ".join(problems) + ". " + _JSON_FIX


class _DisconnectedError(Exception):
    """The client went away before sending the whole body: nobody to answer."""


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body; 413 as soon as it (or its declared length) passes ``limit``."""
    if declared_length(scope) > limit:
        raise HTTPError(413, too_large_message(limit))
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _DisconnectedError
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit:
        return body
    chunks, size = [body], len(body)
    while message.get("more_body", False) and size <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise HTTPError(413, too_large_message(limit))
    return b"".join(chunks)


async def _send_json(send: Send, status: int, content: Any, request_id: str) -> None:
    body = json_bytes(content)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class PredictionEndpoint:
    """``POST /v1/predict/{name}`` or ``POST /v1/rank/{name}`` as an ASGI app.

    Mount it with a Starlette ``Route`` (it reads ``path_params["name"]``). Errors are
    JSON ``{"error": message}``: 400 for malformed JSON or a missing/invalid field, 404
    for an unknown deployment, 413 for a body over ``ServeConfig.max_body_bytes``, 422
    when the model refuses the features, 502/504 when the champion fails, and 500 (logged,
    with the request id) for a bug; no exception escapes.
    """

    def __init__(self, gateway: Gateway, endpoint: Endpoint) -> None:
        self.gateway = gateway
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        gateway, name = self.gateway, scope["path_params"]["name"]
        header = None
        for key, value in scope["headers"]:  # a plain loop: a third of next(generator)'s cost
            if key == b"x-request-id":
                header = value.decode("latin-1")
                break
        request_id = request_id_of(header)
        try:
            body = await _read_body(scope, receive, gateway.config.max_body_bytes)
            if self.endpoint == "predict":
                out = await self._predict(name, body, request_id)
            else:
                out = await self._rank(name, body, request_id)
        except _DisconnectedError:
            return
        except HTTPError as exc:
            self._count_error(name)
            await _send_json(send, exc.status_code, {"error": exc.message}, request_id)
            return
        except Exception:  # a bug: answer 500 with the request id, keep serving
            logger.exception("%s %s failed (request id %s)", self.endpoint, name, request_id)
            self._count_error(name)
            error = f"internal error; request id {request_id}. Fix: see the gateway's log."
            await _send_json(send, 500, {"error": error}, request_id)
            return
        metrics = gateway.metrics
        labels = (name, out["variant"], out["model"], out["model_version"])
        metrics.request_seconds.labels(*labels).observe(time.perf_counter() - started)
        metrics.requests.labels(name, self.endpoint, out["variant"], "ok").inc()
        await _send_json(send, 200, out, request_id)

    def _count_error(self, name: str) -> None:
        # The deployment comes from the URL: count unknown names as one series, never as
        # themselves (a scanner would otherwise create a time series per path).
        metrics = self.gateway.metrics
        label = name if name in self.gateway.states else "unknown"
        metrics.requests.labels(label, self.endpoint, "", "error").inc()

    async def _predict(self, name: str, body: bytes, request_id: str) -> dict[str, Any]:
        request = _parse(PredictRequest, body)
        result = await self.gateway.predict(
            name, str(request.unit_id), request.attributes, request.features, request_id
        )
        out = _answer(result, name, request_id)
        out["prediction"] = result.served.output
        return out

    async def _rank(self, name: str, body: bytes, request_id: str) -> dict[str, Any]:
        request = _parse(RankRequest, body)
        ranker_input = {"features": request.features, "candidates": request.candidates}
        result = await self.gateway.rank(
            name, str(request.unit_id), request.attributes, ranker_input, request.length,
            request_id,
        )  # fmt: skip
        out = _answer(result, name, request_id)
        out["items"] = result.served.output
        out["teams"] = result.served.teams
        return out


def _parse(model: type[Model], body: bytes) -> Model:
    """Validate the raw body in one pass (pydantic-core parses the JSON itself)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPError(400, validation_message(exc.errors())) from None


def _answer(result: RoutedResult, name: str, request_id: str) -> dict[str, Any]:
    served, assignment = result.served, result.assignment
    return {
        "request_id": request_id,
        "deployment": name,
        "variant": served.variant,
        "assigned_variant": assignment.variant,
        "in_experiment": assignment.in_experiment,
        "reason": assignment.reason,
        "model": served.call.model,
        "model_version": served.call.version,
        "fallback": served.fallback,
        "spec_version": result.spec_version,
    }


# -- OpenAPI ----------------------------------------------------------------------------

_ERRORS = {
    "400": "Malformed JSON or an invalid field",
    "404": "Unknown deployment",
    "413": "Body too large",
    "422": "The model refused the features, or the deployment cannot rank",
    "500": "A bug in the gateway (logged with the request id)",
    "502": "The champion model failed",
    "504": "The champion model timed out",
}


def prediction_openapi() -> tuple[dict[str, Any], dict[str, Any]]:
    """The OpenAPI 3.1 paths of the two routes and the component schemas they refer to."""
    keys, definitions = models_json_schema(
        [
            (PredictRequest, "validation"),
            (PredictResponse, "serialization"),
            (RankRequest, "validation"),
            (RankResponse, "serialization"),
            (ErrorBody, "serialization"),
        ],
        ref_template="#/components/schemas/{model}",
    )

    def content(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        return {"application/json": {"schema": keys[(model, mode)]}}

    request_id = {"schema": {"type": "string"}, "description": "The request id."}
    errors = {
        code: {"description": text, "content": content(ErrorBody, "serialization")}
        for code, text in _ERRORS.items()
    }
    parameters = [
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "The deployment (the experiment's name)."},
        {"name": "X-Request-ID", "in": "header", "required": False,
         "schema": {"type": "string"},
         "description": "Your request id (a plain token); generated when absent."},
    ]  # fmt: skip

    def operation(
        endpoint: Endpoint, summary: str, request: type[BaseModel], answer: type[BaseModel]
    ) -> dict[str, Any]:
        ok = {
            "description": "Successful Response",
            "headers": {"X-Request-ID": request_id},
            "content": content(answer, "serialization"),
        }
        return {
            "post": {
                "tags": ["predict"],
                "summary": summary,
                "operationId": f"{endpoint}_v1_{endpoint}__name__post",
                "parameters": parameters,
                "requestBody": {"required": True, "content": content(request, "validation")},
                "responses": {"200": ok, **errors},
            }
        }

    paths = {
        "/v1/predict/{name}": operation(
            "predict", "Predict with the deployment's strategy", PredictRequest, PredictResponse
        ),
        "/v1/rank/{name}": operation(
            "rank", "Rank (team-draft interleaving in interleave mode)", RankRequest, RankResponse
        ),
    }
    return paths, definitions.get("$defs", {})
