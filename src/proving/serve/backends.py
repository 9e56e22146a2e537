"""Model backends: how the gateway calls a model.

Four transports, one interface (:class:`ModelBackend`: ``await predict(features)``,
``await predict_batch(instances)``, ``await aclose()``):

=====================  =================================================================
:class:`CallableBackend`  an in-process Python callable, sync or async
:class:`SklearnBackend`   a scikit-learn estimator (object, or a joblib/pickle file)
entry point            ``package.module:attr`` naming either of the above
:class:`RemoteBackend`    a remote HTTP model server speaking the KServe V1 protocol
                          (``POST {"instances": [...]}`` -> ``{"predictions": [...]}``)
=====================  =================================================================

:func:`load_backend` turns a spec's :class:`~proving.spec.ModelRefSpec` into a backend:
``uri: http(s)://...`` is remote, ``uri: file://...`` (or a path ending in ``.joblib``,
``.pkl``, ``.pickle``) is loaded with joblib, ``entry_point`` is imported, and a model with
neither is looked up by ``name:version`` then ``name`` in the ``models`` mapping given to
the gateway (how tests and embedded deployments pass objects in).

Remote calls go through one pool of keep-alive HTTP/1.1 connections per backend
(httpcore's protocol code on plain asyncio sockets: about a third of the CPU of
:class:`httpx.AsyncClient`, see ``benchmarks/remote_client.py``), with a total timeout per
call. Retries are safe only where the request cannot have been processed twice: a
connection that was never established is always retried; a 502/503/504 or a read error
only when the backend is declared ``idempotent`` (a pure prediction endpoint). A
:class:`~proving.serve.breaker.CircuitBreaker` refuses calls to a backend that keeps
failing (an error, a timeout, or a caller that gave up waiting), so a dead or hung
challenger costs no timeout per request.

Example:
    >>> import asyncio
    >>> backend = CallableBackend(lambda features: 2 * features["x"], name="double")
    >>> asyncio.run(backend.predict({"x": 21}))
    42
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import httpx
import pydantic_core

from proving.errors import ServeError, require
from proving.serve.breaker import CircuitBreaker, CircuitOpenError
from proving.serve.http_client import ConnectionPool, Sender, TransportSender, environment_proxy
from proving.spec.experiment import ModelRefSpec

__all__ = [
    "BackendError",
    "BadFeaturesError",
    "CallableBackend",
    "ModelBackend",
    "RemoteBackend",
    "SklearnBackend",
    "load_backend",
]

FailureKind = Literal["error", "timeout", "unavailable"]
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class BackendError(ServeError):
    """A model call failed; ``kind`` is ``error``, ``timeout`` or ``unavailable``."""

    def __init__(self, message: str, kind: FailureKind = "error") -> None:
        super().__init__(message)
        self.kind: FailureKind = kind


class BadFeaturesError(BackendError):
    """The model refused the features as malformed: the caller's fault (HTTP 422)."""


class ModelBackend(abc.ABC):
    """A model the gateway can call. Subclasses implement :meth:`predict`."""

    name: str = "model"
    version: str = "0"
    inline: bool = False
    """True when :meth:`predict_inline` answers synchronously on the event loop. The
    gateway then calls it directly: no coroutine, no timer (nothing could interrupt it),
    and no task for a shadow copy."""

    @abc.abstractmethod
    async def predict(self, features: Any) -> Any:
        """The model's output for one instance (any JSON value)."""

    def predict_inline(self, features: Any) -> Any:
        """:meth:`predict`, synchronously; only for backends whose ``inline`` is True."""
        raise NotImplementedError(
            f"{type(self).__name__} '{self.name}' is not inline (its `inline` is False). "
            "Fix: await predict() instead."
        )

    async def predict_batch(self, instances: Sequence[Any]) -> list[Any]:
        """Outputs for several instances, in order (default: one call each, concurrently)."""
        return list(await asyncio.gather(*(self.predict(x) for x in instances)))

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections and threads."""

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (admin API)."""
        return {"kind": type(self).__name__, "name": self.name, "version": self.version}


class CallableBackend(ModelBackend):
    """An in-process callable: ``fn(features) -> output``, plain or ``async def``.

    A plain function runs on the event loop (no thread hop: the fastest path for models
    that take microseconds). Pass ``threaded=True`` for a model that takes milliseconds,
    so it runs in a worker thread and cannot stall other requests (and a timeout can
    abandon it). ``batch_fn(instances) -> outputs`` is used by micro-batching if given.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        name: str = "model",
        version: str = "0",
        threaded: bool = False,
        batch_fn: Callable[[Sequence[Any]], Sequence[Any]] | None = None,
    ) -> None:
        if not callable(fn):
            raise ServeError(f"CallableBackend '{name}': fn must be callable; got {fn!r}.")
        self.fn = fn
        self.batch_fn = batch_fn
        self.name = name
        self.version = version
        self.threaded = threaded
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - objects with an async __call__
        )
        self.inline = not self._is_async and not threaded

    async def predict(self, features: Any) -> Any:
        if self._is_async:
            return await cast(Callable[[Any], Awaitable[Any]], self.fn)(features)
        if self.threaded:
            return await asyncio.to_thread(self.fn, features)
        return self.fn(features)

    def predict_inline(self, features: Any) -> Any:
        if not self.inline:
            return super().predict_inline(features)
        return self.fn(features)

    async def predict_batch(self, instances: Sequence[Any]) -> list[Any]:
        if self.batch_fn is None:
            return await super().predict_batch(instances)
        if self.threaded:
            return list(await asyncio.to_thread(self.batch_fn, instances))
        return list(self.batch_fn(instances))


class SklearnBackend(ModelBackend):
    """A scikit-learn estimator (or anything with ``predict``).

    Features are a list of numbers (one row) or a dict; a dict is ordered by the
    estimator's ``feature_names_in_`` (set when it was fitted on a DataFrame) or by
    ``feature_order``. ``method="predict_proba"`` returns the positive-class probability
    of a binary classifier (the list of class probabilities otherwise).
    """

    def __init__(
        self,
        estimator: Any,
        *,
        name: str = "model",
        version: str = "0",
        method: Literal["predict", "predict_proba"] = "predict",
        feature_order: Sequence[str] | None = None,
        threaded: bool = False,
    ) -> None:
        if not callable(getattr(estimator, method, None)):
            raise ServeError(
                f"model '{name}': {type(estimator).__name__} has no `{method}` method. "
                "Fix: pass a fitted scikit-learn estimator (or set method='predict')."
            )
        self.estimator = estimator
        self.method = method
        self.name = name
        self.version = version
        self.threaded = threaded
        self.inline = not threaded
        names = getattr(estimator, "feature_names_in_", None)
        self.feature_order = list(feature_order or (names if names is not None else []))

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> SklearnBackend:
        """Load an estimator saved with ``joblib.dump`` or ``pickle`` (trusted files only)."""
        joblib = cast(Any, require("joblib", "models"))
        target = Path(path)
        if not target.is_file():
            raise ServeError(
                f"model file {str(target)!r} does not exist. Fix: check the `uri` of the model."
            )
        return cls(joblib.load(target), **kwargs)

    def _row(self, features: Any) -> list[Any]:
        if isinstance(features, Mapping):
            if not self.feature_order:
                raise BadFeaturesError(
                    f"model '{self.name}': features are a dict but the estimator has no "
                    "feature_names_in_. Fix: send a list of numbers, or fit on a DataFrame."
                )
            missing = [f for f in self.feature_order if f not in features]
            if missing:
                raise BadFeaturesError(f"model '{self.name}': features {missing} are missing.")
            return [features[f] for f in self.feature_order]
        if isinstance(features, list | tuple):
            return list(features)
        raise BadFeaturesError(
            f"model '{self.name}': features must be a list or an object; got "
            f"{type(features).__name__}."
        )

    def _run(self, rows: list[list[Any]]) -> list[Any]:
        import numpy as np

        data: Any = np.asarray(rows, dtype=float)
        if getattr(self.estimator, "feature_names_in_", None) is not None:
            # Fitted on a DataFrame: pass one with the same columns (sklearn checks names).
            import pandas as pd

            data = pd.DataFrame(data, columns=self.feature_order)
        out = np.asarray(getattr(self.estimator, self.method)(data))
        if self.method == "predict_proba" and out.ndim == 2 and out.shape[1] == 2:
            out = out[:, 1]
        return cast(list[Any], out.tolist())

    def _outputs(self, instances: Sequence[Any]) -> list[Any]:
        rows = [self._row(x) for x in instances]
        try:
            return self._run(rows)
        except ValueError as exc:  # sklearn's input validation
            raise BadFeaturesError(f"model '{self.name}': {exc}") from exc

    async def predict(self, features: Any) -> Any:
        return (await self.predict_batch([features]))[0]

    def predict_inline(self, features: Any) -> Any:
        if not self.inline:
            return super().predict_inline(features)
        return self._outputs([features])[0]

    async def predict_batch(self, instances: Sequence[Any]) -> list[Any]:
        if self.threaded:
            return await asyncio.to_thread(self._outputs, instances)
        return self._outputs(instances)


class RemoteBackend(ModelBackend):
    """A remote model server speaking the KServe V1 protocol, over a pooled client.

    Args:
        url: the predict endpoint, e.g. ``http://fraud-v4:8080/v1/models/fraud:predict``.
        timeout: seconds for one call, all retries included (connecting, waiting for a
            free connection of the pool, sending and reading).
        retries: extra attempts (see the module docstring for when they happen).
        idempotent: the endpoint is a pure function, so a 502/503/504 or read error may be
            retried; otherwise only connections never established are.
        max_connections: size of the connection pool (calls beyond it wait for a free one).
        breaker: the circuit breaker (default: 5 failures open it for 5 s).
        transport: an httpx transport to send through instead of the built-in pool (tests
            pass :class:`httpx.MockTransport`).
        keepalive_expiry: seconds an idle pooled connection is kept open.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "model",
        version: str = "0",
        timeout: float = 1.0,
        retries: int = 1,
        idempotent: bool = False,
        max_connections: int = 100,
        breaker: CircuitBreaker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        keepalive_expiry: float = 5.0,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ServeError(f"model '{name}': url must be http(s); got {url!r}.")
        if not timeout > 0:
            raise ServeError(f"model '{name}': timeout must be > 0 seconds; got {timeout}.")
        if retries < 0:
            raise ServeError(f"model '{name}': retries must be >= 0; got {retries}.")
        if max_connections < 1:
            raise ServeError(
                f"model '{name}': max_connections must be >= 1; got {max_connections}."
            )
        self.url = url
        self.name = name
        self.version = version
        self.timeout = timeout
        self.retries = retries
        self.idempotent = idempotent
        self.breaker = breaker or CircuitBreaker()
        target = httpx.URL(url)
        proxy = environment_proxy(target) if transport is None else None
        if proxy is not None:  # rare inside a cluster: httpx's own proxy-aware pool
            limits = httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=keepalive_expiry,
            )
            transport = httpx.AsyncHTTPTransport(proxy=proxy, limits=limits)
        self._sender: Sender = (
            ConnectionPool(
                target,
                max_connections=max_connections,
                connect_timeout=timeout,
                keepalive_expiry=keepalive_expiry,
            )
            if transport is None
            else TransportSender(target, transport)
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "url": self.url, "breaker": self.breaker.state}

    async def predict(self, features: Any) -> Any:
        return (await self.predict_batch((features,)))[0]

    async def predict_batch(self, instances: Sequence[Any]) -> list[Any]:
        body = self._encode(instances)
        if not self.breaker.allow():
            raise CircuitOpenError(
                f"model '{self.name}' at {self.url}: circuit breaker open after repeated "
                "failures; not called."
            )
        try:
            async with asyncio.timeout(self.timeout):
                result = await self._call(body, len(instances))
        except TimeoutError:
            self.breaker.record_failure()
            raise BackendError(
                f"model '{self.name}' at {self.url}: no answer within {self.timeout} s.",
                "timeout",
            ) from None
        except BadFeaturesError:
            self.breaker.record_success()  # the server is up; the input was wrong
            raise
        except BaseException:
            # A BackendError, or the caller gave up first (cancelled by its own, shorter
            # deadline): no answer in time is a failure, and a half-open trial that was
            # abandoned must not keep the breaker's one trial slot forever.
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return result

    def _encode(self, instances: Sequence[Any]) -> bytes:
        # What httpx's `json=` sends: compact UTF-8, and no NaN/Infinity (not JSON).
        try:
            text = json.dumps(
                {"instances": list(instances)},
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
            )
        except (TypeError, ValueError) as exc:
            raise BadFeaturesError(
                f"model '{self.name}' at {self.url}: the features cannot be sent as JSON "
                f"({exc}). Fix: send numbers, strings, booleans, null, lists and objects "
                "only (no NaN or infinity)."
            ) from exc
        return text.encode()

    async def _call(self, body: bytes, expected: int) -> list[Any]:
        attempt = 0
        while True:
            try:
                status, content = await self._sender.post(body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never reached the server: retrying cannot run it twice.
                if attempt < self.retries:
                    attempt += 1
                    continue
                raise BackendError(
                    f"model '{self.name}' at {self.url}: cannot connect ({exc}).", "unavailable"
                ) from exc
            except httpx.HTTPError as exc:
                if self.idempotent and attempt < self.retries:
                    attempt += 1
                    continue
                raise BackendError(f"model '{self.name}' at {self.url}: {exc!r}.") from exc
            retryable = status in (502, 503, 504) and self.idempotent
            if retryable and attempt < self.retries:
                attempt += 1
                continue
            return self._parse(status, content, expected)

    def _parse(self, status: int, content: bytes, expected: int) -> list[Any]:
        if status in (400, 422):
            raise BadFeaturesError(
                f"model '{self.name}' at {self.url} refused the features: "
                f"HTTP {status}: {_snippet(content)}"
            )
        if status != 200:
            raise BackendError(
                f"model '{self.name}' at {self.url}: HTTP {status}: {_snippet(content)}"
            )
        try:
            predictions = pydantic_core.from_json(content)["predictions"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"model '{self.name}' at {self.url}: the answer is not KServe V1 "
                '(`{"predictions": [...]}`).'
            ) from exc
        if not isinstance(predictions, list) or len(predictions) != expected:
            raise BackendError(
                f"model '{self.name}' at {self.url}: expected {expected} predictions."
            )
        return predictions

    async def aclose(self) -> None:
        await self._sender.aclose()


def _snippet(content: bytes) -> str:
    return content[:200].decode("utf-8", "replace")


def _import_entry_point(entry_point: str) -> Any:
    module_name, _, attr = entry_point.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ServeError(
            f"entry point {entry_point!r}: cannot import module {module_name!r} ({exc}). "
            "Fix: install the package or correct `entry_point`."
        ) from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ServeError(
                f"entry point {entry_point!r}: {module_name!r} has no attribute {attr!r}. "
                "Fix: correct `entry_point` (package.module:attribute)."
            )
        target = getattr(target, part)
    return target


def wrap_object(obj: Any, name: str, version: str, threaded: bool = False) -> ModelBackend:
    """A backend for a Python object: a backend itself, an estimator or a callable."""
    if isinstance(obj, ModelBackend):
        return obj
    if callable(getattr(obj, "predict", None)):
        return SklearnBackend(obj, name=name, version=version, threaded=threaded)
    if callable(obj):
        return CallableBackend(obj, name=name, version=version, threaded=threaded)
    raise ServeError(
        f"model '{name}': {type(obj).__name__} is neither a ModelBackend, an estimator with "
        "`predict`, nor a callable. Fix: point the model at one of those."
    )


def load_backend(
    ref: ModelRefSpec,
    models: Mapping[str, Any] | None = None,
    *,
    timeout: float = 1.0,
    threaded: bool = False,
) -> ModelBackend:
    """The backend for a spec's model reference (see the module docstring for the rules).

    Raises:
        ServeError: the model cannot be found or loaded; the message names the fix.
    """
    version = ref.version or "0"
    if ref.uri is not None:
        parts = urlsplit(ref.uri)
        if parts.scheme in ("http", "https"):
            return RemoteBackend(ref.uri, name=ref.name, version=version, timeout=timeout)
        path = parts.netloc + parts.path if parts.scheme == "file" else ref.uri
        if parts.scheme in ("file", "") and path.endswith(_PICKLE_SUFFIXES):
            return SklearnBackend.from_file(path, name=ref.name, version=version)
        raise ServeError(
            f"model '{ref.name}': cannot serve uri {ref.uri!r}. Fix: use http(s):// for a "
            "model server, or file:///path/model.joblib (or .pkl) for a saved estimator."
        )
    if ref.entry_point is not None:
        return wrap_object(_import_entry_point(ref.entry_point), ref.name, version, threaded)
    models = models or {}
    for key in (f"{ref.name}:{version}", ref.name):
        if key in models:
            return wrap_object(models[key], ref.name, version, threaded)
    raise ServeError(
        f"model '{ref.name}' (version {version}) has no `uri` or `entry_point` and is not "
        f"among the registered models {sorted(models)}. Fix: give the model a uri or "
        "entry_point in the spec, or pass it to the gateway in `models`."
    )
