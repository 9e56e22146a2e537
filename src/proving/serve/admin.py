"""The admin API (``/admin``): specs, weights, kill switch, promote, rollback, blue/green.

Separate from the prediction API (its own router and prefix, so a proxy can keep it off
the public listener) and behind a bearer token compared in constant time
(:func:`hmac.compare_digest`). Without a configured token every admin call is refused.

=========================================================  =================================
``GET  /admin/deployments``                                every deployment's state
``GET  /admin/deployments/{name}``                         one deployment, with backends
``PUT  /admin/deployments/{name}/spec``                    a new spec version (JSON)
``POST /admin/deployments/{name}/rollback``                back to an earlier spec version
``PUT  /admin/deployments/{name}/weights``                 A/B weights or canary share
``PUT  /admin/deployments/{name}/kill-switch``             experiment off (all to control)
``POST /admin/deployments/{name}/promote``                 every unit to one variant
``POST /admin/deployments/{name}/switch``                  blue/green: switch colour
``POST /admin/deployments/{name}/switch/undo``             blue/green: switch back
``POST /admin/reload``                                     re-read the spec files now
=========================================================  =================================

Every change answers with the deployment's new state and takes effect on the next request.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from proving.errors import HTTPError
from proving.serve.gateway import Gateway
from proving.serve.reload import SpecWatcher
from proving.serve.state import DeploymentState
from proving.spec.experiment import ExperimentSpec

__all__ = ["create_admin_router"]

_bearer = HTTPBearer(auto_error=False, description="PROVING_ADMIN_TOKEN")


class WeightsBody(BaseModel):
    """New weights: ``weights`` for A/B/n, ``canary_weight`` for a canary."""

    model_config = ConfigDict(extra="forbid")
    weights: list[float] | None = None
    canary_weight: float | None = Field(default=None, ge=0.0, le=1.0)


class KillSwitchBody(BaseModel):
    """``killed: true`` sends every unit to the control."""

    model_config = ConfigDict(extra="forbid")
    killed: bool


class PromoteBody(BaseModel):
    """The variant every unit gets; null undoes the promotion."""

    model_config = ConfigDict(extra="forbid")
    variant: str | None


class RollbackBody(BaseModel):
    """The spec version to return to (default: the previous one)."""

    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(default=None, ge=1)


class SwitchBody(BaseModel):
    """The colour to serve (default: the other one)."""

    model_config = ConfigDict(extra="forbid")
    active: str | None = None


class DeploymentView(BaseModel):
    """A deployment's state."""

    deployment: str
    revision: int
    spec_version: int
    mode: str
    overrides: dict[str, Any]
    history_versions: list[int]
    spec: dict[str, Any]
    backends: dict[str, Any] | None = None


def _view(state: DeploymentState, backends: dict[str, Any] | None = None) -> DeploymentView:
    return DeploymentView(
        deployment=state.name,
        revision=state.revision,
        spec_version=state.spec.version,
        mode=state.spec.mode,
        overrides=state.overrides.to_dict(),
        history_versions=[s.version for s in state.history],
        spec=state.spec.model_dump(mode="json"),
        backends=backends,
    )


def _auth(token: str | None) -> Any:
    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if token is None:
            raise HTTPError(
                401, "the admin API is disabled: no admin token is configured. Fix: set "
                "PROVING_ADMIN_TOKEN or pass --admin-token-file to `proving serve`.",
            )  # fmt: skip
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPError(
                401, "admin call without a valid bearer token. Fix: send the header "
                "`Authorization: Bearer <PROVING_ADMIN_TOKEN>`.",
            )  # fmt: skip

    return check


def create_admin_router(
    gateway: Gateway, token: str | None, watcher: SpecWatcher | None = None
) -> APIRouter:
    """The ``/admin`` router for ``gateway``, guarded by ``token``."""
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(_auth(token))])

    async def changed(name: str, operation: Any) -> DeploymentView:
        await gateway.change(name, operation)
        return _view(gateway.states[name])

    @router.get("/deployments", summary="Every deployment's state")
    async def deployments() -> list[DeploymentView]:
        return [_view(s) for s in gateway.states.values()]

    @router.get("/deployments/{name}", summary="One deployment's state and backends")
    async def deployment(name: str) -> DeploymentView:
        state, dep = gateway.lookup(name)
        return _view(state, dep.describe())

    @router.put("/deployments/{name}/spec", summary="Serve a new spec version")
    async def put_spec(name: str, spec: ExperimentSpec) -> DeploymentView:
        if spec.name != name:
            raise HTTPError(422, f"the spec is named '{spec.name}', not '{name}'.")
        return await changed(name, lambda s: s.set_spec(spec))

    @router.post("/deployments/{name}/rollback", summary="Return to an earlier spec version")
    async def rollback(name: str, body: RollbackBody) -> DeploymentView:
        return await changed(name, lambda s: s.rollback(body.version))

    @router.put("/deployments/{name}/weights", summary="Set A/B weights or the canary share")
    async def weights(name: str, body: WeightsBody) -> DeploymentView:
        if (body.weights is None) == (body.canary_weight is None):
            raise HTTPError(422, "give exactly one of `weights` (ab) or `canary_weight` (canary).")
        if body.weights is not None:
            values = body.weights
            return await changed(name, lambda s: s.set_weights(values))
        share = float(body.canary_weight or 0.0)
        return await changed(name, lambda s: s.set_canary_weight(share))

    @router.put("/deployments/{name}/kill-switch", summary="Turn the experiment off or on")
    async def kill_switch(name: str, body: KillSwitchBody) -> DeploymentView:
        return await changed(name, lambda s: s.set_killed(body.killed))

    @router.post("/deployments/{name}/promote", summary="Send every unit to one variant")
    async def promote(name: str, body: PromoteBody) -> DeploymentView:
        return await changed(name, lambda s: s.promote(body.variant))

    @router.post("/deployments/{name}/switch", summary="Blue/green: switch colour")
    async def switch(name: str, body: SwitchBody) -> DeploymentView:
        return await changed(name, lambda s: s.switch(body.active))

    @router.post("/deployments/{name}/switch/undo", summary="Blue/green: undo the last switch")
    async def undo(name: str) -> DeploymentView:
        return await changed(name, lambda s: s.undo_switch())

    @router.post("/reload", summary="Re-read the spec files now")
    async def reload() -> dict[str, Any]:
        applied = await watcher.check() if watcher is not None else []
        return {"applied": applied, "errors": dict(watcher.errors) if watcher else {}}

    return router
