"""Hot reload: watch the spec files (and the shared state table) and apply new versions.

Every ``interval`` seconds the watcher looks at each spec file's modification time and
size; when either changed it reads the file again. A valid spec with a higher
``version`` is applied through :meth:`Gateway.apply_spec
<proving.serve.gateway.Gateway.apply_spec>` (backends load first; in-flight requests finish
on the old version). A file that fails validation, or changed without a version bump, is
reported in the log and the running version keeps serving: a half-saved file never takes a
deployment down. Polling (rather than inotify) works the same on every filesystem,
including the bind mounts and ConfigMap volumes where specs live in Kubernetes.

The same loop calls :meth:`Gateway.sync_state` so replicas sharing a PostgreSQL state
table adopt each other's admin changes within one interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from proving.errors import ProvingError
from proving.serve.gateway import Gateway
from proving.spec.loader import load_spec

__all__ = ["SpecWatcher"]

logger = logging.getLogger(__name__)


class SpecWatcher:
    """Polls spec files and the state table; applies what changed.

    Args:
        gateway: the gateway to update.
        paths: spec file of each deployment, by deployment name.
        interval: seconds between polls.
    """

    def __init__(self, gateway: Gateway, paths: Mapping[str, Path], interval: float) -> None:
        self.gateway = gateway
        self.paths = dict(paths)
        self.interval = interval
        self._seen = {name: self._signature(path) for name, path in self.paths.items()}
        self._task: asyncio.Task[None] | None = None
        self.errors: dict[str, str] = {}

    @staticmethod
    def _signature(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def check(self) -> list[str]:
        """Check once; return the deployments that moved to a new spec version."""
        applied: list[str] = []
        for name, path in self.paths.items():
            signature = self._signature(path)
            if signature is None or signature == self._seen.get(name):
                continue
            self._seen[name] = signature
            try:
                spec = await asyncio.to_thread(load_spec, path)
                if spec.name != name:
                    raise ProvingError(
                        f"{path}: the spec is now named '{spec.name}', not '{name}'. Fix: a "
                        "deployment keeps its name; start a new deployment for a new name."
                    )
                if await self.gateway.apply_spec(spec):
                    applied.append(name)
                    self.errors.pop(name, None)
                elif spec != self.gateway.states[name].spec:
                    self.errors[name] = (
                        f"{path} changed but its version {spec.version} is not above the "
                        f"running {self.gateway.states[name].spec.version}; not applied. "
                        "Fix: bump `version`."
                    )
                    logger.warning(self.errors[name])
            except (ProvingError, ValueError, OSError) as exc:
                self.errors[name] = f"{path}: not applied: {exc}"
                logger.error(self.errors[name])
        applied.extend(n for n in await self.gateway.sync_state() if n not in applied)
        return applied

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # the watcher must outlive any one bad poll
                logger.exception("spec reload check failed")

    def start(self) -> None:
        """Start polling in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
