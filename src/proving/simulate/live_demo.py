"""The live loop: a real gateway, real HTTP traffic, outcomes, metrics from stored events.

:func:`run_live_demo` does what a team would do in production, on a simulated world with
known truth (:mod:`proving.simulate.serving`):

1. train a champion and a challenger on the world's randomized impression log and save
   them with joblib;
2. start ``proving serve`` as a real uvicorn subprocess on a free 127.0.0.1 port, with a
   temporary DuckDB event store and a spec file in **shadow** mode (the champion answers,
   the challenger gets a copy off the response path);
3. send the shadow phase's requests (:func:`proving.simulate.traffic.drive`) and post the
   users' purchases back to ``/v1/outcomes``;
4. rewrite the spec file as version 2 in **A/B** mode and apply it by hot reload
   (``POST /admin/reload`` with the bearer token), confirmed with ``GET /admin/...``;
5. send the A/B phase's requests (new users) with their outcomes;
6. stop the gateway with SIGTERM (it drains and commits every queued event);
7. read the store: the shadow pairs (served and shadow predictions sharing a request id)
   give the agreement and latency comparison; the A/B metrics are computed from the
   stored exposures, predictions and outcomes by :mod:`proving.metrics` (exposures from
   the switch on) and analysed by :func:`proving.stats.analyze`;
8. check the store against what callers got back, and the analysis against the truth.

Example:
    >>> result = run_live_demo(n_requests=1_000, seed=1)  # doctest: +SKIP
    >>> result.truth_recovered  # doctest: +SKIP
    True
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import yaml

from proving.errors import ServeError, StatsInputError
from proving.simulate.readback import (
    LatencyStats,
    ShadowComparison,
    StoredCounts,
    compare_shadow,
    count_stored,
)
from proving.simulate.serving import ChampionKind, ServingTruth, ServingWorld, TrainedModels
from proving.simulate.traffic import OutcomeFn, PhaseRun, PlannedRequest, TrafficSummary, drive
from proving.stats.analyze import analyze
from proving.stats.results import ComparisonResult, ResultBase

if TYPE_CHECKING:
    from rich.console import Console

    from proving.metrics.definitions import MetricsSpec

__all__ = [
    "LatencyStats",
    "LiveDemoResult",
    "LiveMetricOutcome",
    "ShadowComparison",
    "StoredCounts",
    "run_live_demo",
]

DEPLOYMENT = "live-recommender"
CONTROL, TREATMENT = "champion", "challenger"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class LiveMetricOutcome(ResultBase):
    """One A/B metric computed from the stored events, against the world's truth."""

    metric: str
    kind: str
    result: ComparisonResult
    true_lift: float | None = None
    true_control_mean: float | None = None
    true_treatment_mean: float | None = None

    @property
    def covered(self) -> bool | None:
        """The interval contains the true lift (None: no truth for this metric)."""
        r = self.result
        if self.true_lift is None or r.ci_lower is None or r.ci_upper is None:
            return None if self.true_lift is None else False
        return r.ci_lower <= self.true_lift <= r.ci_upper

    @property
    def recovered(self) -> bool | None:
        """Covered the truth and called the effect significant exactly when it is nonzero."""
        if self.true_lift is None:
            return None
        significant = bool(self.result.significant)
        return bool(self.covered) and significant == (self.true_lift != 0.0)


@dataclass(frozen=True)
class LiveDemoResult(ResultBase):
    """Everything the live loop did and found (JSON-serializable)."""

    deployment: str
    seed: int
    champion_model: str
    challenger_model: str
    n_history: int
    traffic: tuple[TrafficSummary, ...]
    shadow: ShadowComparison
    ab: tuple[LiveMetricOutcome, ...]
    srm_p_value: float | None
    stored: StoredCounts
    truth: ServingTruth
    spec_versions: tuple[int, int]
    switch: str
    gateway_exit_code: int | None
    duration_s: float
    warnings: tuple[str, ...] = field(default=())

    @property
    def truth_recovered(self) -> bool:
        """Every metric with a known truth was recovered."""
        verdicts = [m.recovered for m in self.ab if m.recovered is not None]
        return bool(verdicts) and all(verdicts)


def _spec(
    models: dict[str, Path], names: TrainedModels, *, mode: str, version: int
) -> dict[str, Any]:
    variants = [
        {"name": CONTROL, "model": {"name": names.champion_name, "version": "1",
                                    "uri": models[CONTROL].as_uri()}},
        {"name": TREATMENT, "model": {"name": names.challenger_name, "version": "1",
                                      "uri": models[TREATMENT].as_uri()}},
    ]  # fmt: skip
    spec: dict[str, Any] = {
        "name": DEPLOYMENT,
        "version": version,
        "description": f"live demo, phase {version}: {mode}",
        "unit": "user_id",
        "mode": mode,
        "variants": variants,
    }
    if mode == "shadow":
        spec["shadow"] = {"sample_rate": 1.0, "max_concurrency": 256, "timeout_ms": 2000}
    else:
        spec["weights"] = [0.5, 0.5]
    return spec


def metrics_spec() -> MetricsSpec:
    """The A/B metrics, defined over the stored events like any team's metrics file."""
    from proving.metrics.definitions import MetricsSpec

    served = [{"column": "role", "op": "eq", "value": "served"}]
    return MetricsSpec.model_validate(
        {
            "experiment": DEPLOYMENT,
            "multiple_exposures": "exclude",
            "metrics": [
                {"name": "converted", "kind": "proportion", "family": "primary",
                 "event": "purchase"},
                {"name": "revenue", "kind": "mean", "family": "primary", "event": "purchase",
                 "value": "value"},
                {"name": "latency_ms", "kind": "ratio", "family": "guardrail",
                 "numerator": {"source": "predictions", "value": "latency_ms",
                               "aggregation": "sum", "filters": served},
                 "denominator": {"source": "predictions", "aggregation": "count",
                                 "filters": served}},
            ],
        }
    )  # fmt: skip


class _GatewayProcess:
    """``proving serve`` in a subprocess: started, reloaded and stopped with SIGTERM."""

    # The `proving serve` command itself, without importing every other CLI command.
    _SERVE = "import typer; from proving.cli.serve import serve_command; typer.run(serve_command)"

    def __init__(self, spec: Path, store: str, log: Path) -> None:
        self.token = secrets.token_hex(16)
        self.spec, self.store, self.log = spec, store, log
        self._spawn()

    def _spawn(self) -> None:
        from proving.testing.model_server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-c", self._SERVE,
            "--spec", str(self.spec), "--store", self.store, "--port", str(self.port),
            "--log-level", "warning", "--reload-interval", "0.5",
        ]  # fmt: skip
        env = {**os.environ, "PROVING_ADMIN_TOKEN": self.token}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=out)

    def wait_ready(self, timeout: float = 60.0, attempts: int = 3) -> None:
        """Wait until ``/readyz`` answers 200 (models loaded, writer running).

        The port was free when chosen but another process may take it before uvicorn
        binds it; then the gateway is started again on a new port.
        """
        from proving.testing.model_server import wait_until_up

        for attempt in range(attempts):
            try:
                wait_until_up(f"{self.url}/readyz", timeout=timeout, process=self.process)
                return
            except RuntimeError as exc:
                self.kill()
                lost_port = "address already in use" in self.log_tail().lower()
                if not lost_port or attempt == attempts - 1:
                    raise ServeError(
                        f"the gateway did not start: {exc}\n{self.log_tail()}"
                    ) from None
                self._spawn()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the gateway printed."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def admin(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Call the admin API with the bearer token."""
        headers = {"Authorization": f"Bearer {self.token}"}
        response = httpx.request(
            method, f"{self.url}/admin{path}", headers=headers, timeout=10, **kwargs
        )
        if response.status_code != 200:
            raise ServeError(f"admin {method} {path}: HTTP {response.status_code}: {response.text}")
        body: dict[str, Any] = response.json()
        return body

    def switch_to(self, spec_file: Path, spec: dict[str, Any], timeout: float = 15.0) -> str:
        """Write a new spec version and hot-reload it; return how it was applied."""
        spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        applied = self.admin("POST", "/reload").get("applied", [])
        deadline = time.monotonic() + timeout
        while True:  # the file watcher may have applied it just before our call
            state = self.admin("GET", f"/deployments/{DEPLOYMENT}")
            if state["spec_version"] == spec["version"] and state["mode"] == spec["mode"]:
                break
            if time.monotonic() > deadline:
                raise ServeError(
                    f"the gateway did not apply spec version {spec['version']}: it serves "
                    f"{state['spec_version']} ({state['mode']}).\n{self.log_tail()}"
                )
            time.sleep(0.1)
        how = "POST /admin/reload" if DEPLOYMENT in applied else "file watcher"
        return f"hot reload of spec version {spec['version']} ({spec['mode']}) by {how}"

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait: uvicorn drains requests and the writer commits its queue."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.process.returncode

    def kill(self) -> None:
        """Last resort (the stored events may then be incomplete)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="proving-live-") as tmp:
        yield Path(tmp)


def plan_requests(
    world: ServingWorld, n_requests: int, prefix: str, *, phase_key: int = 0
) -> list[PlannedRequest]:
    """About ``n_requests`` requests from new users (each sends all of its), shuffled.

    Users are ``{prefix}-{k}``; ``phase_key`` keeps outcome draws of phases apart.
    """
    per_user = 1.0 + world.repeat_rate
    users = world.users(int(np.ceil(n_requests / per_user * 1.3)) + 10, prefix=prefix)
    keep = int(np.searchsorted(np.cumsum(users.requests), n_requests, side="right"))
    order = np.repeat(np.arange(keep), users.requests[:keep])
    np.random.default_rng([world.seed, phase_key, n_requests]).shuffle(order)
    base = phase_key << 32  # distinct outcome keys per phase
    return [
        PlannedRequest(users.unit_ids[i], users.attributes(i), users.feature_row(i), base + k)
        for k, i in enumerate(order.tolist())
    ]


def _outcome_fn(world: ServingWorld) -> OutcomeFn:
    def outcome(request: PlannedRequest, answer: dict[str, Any]) -> list[dict[str, Any]]:
        bought, value = world.outcome(request.features, answer["prediction"], request.key)
        return [{"name": "purchase", "value": value}] if bought else []

    return outcome


def _ab_outcomes(
    result_rows: Any, truth: ServingTruth
) -> tuple[tuple[LiveMetricOutcome, ...], float | None, list[str]]:
    analysis = analyze(
        list(result_rows), control=CONTROL, effect="relative", cuped=False,
        weights={CONTROL: 0.5, TREATMENT: 0.5},
    )  # fmt: skip
    out = []
    for c in analysis.comparisons:
        if c.segment != "all":
            continue
        t = truth.metrics.get(c.metric)
        out.append(
            LiveMetricOutcome(
                metric=c.metric,
                kind=c.kind,
                result=c,
                true_lift=None if t is None else t.relative_lift,
                true_control_mean=None if t is None else t.control_mean,
                true_treatment_mean=None if t is None else t.treatment_mean,
            )
        )
    srm = analysis.srm[0] if analysis.srm else None
    return tuple(out), getattr(srm, "p_value", None), list(analysis.warnings)


def run_live_demo(
    n_requests: int = 5_000,
    *,
    seed: int = 2026,
    shadow_share: float = 0.2,
    champion: ChampionKind = "logistic",
    n_history: int = 20_000,
    concurrency: int = 8,
    workdir: Path | None = None,
    console: Console | None = None,
    progress: Progress | None = None,
) -> LiveDemoResult:
    """Run the live loop (see the module docstring) and return what it found.

    Args:
        n_requests: about how many prediction requests to send in total.
        seed: seeds the world, the users and their outcomes.
        shadow_share: share of the requests sent in the shadow phase.
        champion: ``logistic`` or ``popularity`` (a much weaker champion: a large effect).
        n_history: size of the randomized impression log the models are trained on.
        concurrency: requests in flight at most.
        workdir: keep the specs, models, event store and gateway log here (default: a
            temporary directory, removed afterwards).
        console: show Rich progress bars on this console.
        progress: called with a message at each step.

    Raises:
        StatsInputError: a parameter is out of range.
        ServeError: the gateway could not be started, switched or stopped.
    """
    if n_requests < 100 or not (0.05 <= shadow_share <= 0.95):
        raise StatsInputError(
            f"run_live_demo: n_requests must be >= 100 and shadow_share in [0.05, 0.95]; got "
            f"{n_requests} and {shadow_share}. Use e.g. n_requests=5000, shadow_share=0.2."
        )
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    world = ServingWorld(seed=seed)
    say(f"training the champion and challenger on {n_history:,} logged impressions")
    trained = world.train_models(n_history, champion=champion)
    n_shadow = max(20, round(n_requests * shadow_share))
    sizes = {"shadow": n_shadow, "ab": n_requests - n_shadow}
    with _workdir(workdir) as wd:
        return _run_in(wd, world, trained, sizes, concurrency, console, say, started)


def _run_in(
    wd: Path,
    world: ServingWorld,
    trained: TrainedModels,
    sizes: dict[str, int],
    concurrency: int,
    console: Console | None,
    say: Progress,
    started: float,
) -> LiveDemoResult:
    import joblib

    from proving.metrics import compute_metrics, connect

    models = {CONTROL: wd / "champion.joblib", TREATMENT: wd / "challenger.joblib"}
    joblib.dump(trained.champion, models[CONTROL])
    joblib.dump(trained.challenger, models[TREATMENT])
    spec_file, store_path = wd / "live-recommender.yaml", wd / "events.duckdb"
    shadow_spec = _spec(models, trained, mode="shadow", version=1)
    spec_file.write_text(yaml.safe_dump(shadow_spec, sort_keys=False))
    say("starting the gateway (uvicorn subprocess, DuckDB store)")
    gateway = _GatewayProcess(spec_file, f"duckdb:///{store_path}", wd / "gateway.log")
    runs: dict[str, PhaseRun] = {}
    try:
        # While the gateway boots: the truth, and the users of both phases.
        truth = world.truth(trained)
        plans = {
            "shadow": plan_requests(world, sizes["shadow"], "s", phase_key=1),
            "ab": plan_requests(world, sizes["ab"], "u", phase_key=2),
        }
        gateway.wait_ready()
        runs["shadow"] = _phase(gateway.url, "shadow", plans, world, concurrency, console, say)
        say("switching to the A/B phase by hot reload")
        switch = gateway.switch_to(spec_file, _spec(models, trained, mode="ab", version=2))
        ab_start = datetime.now(UTC)
        runs["ab"] = _phase(gateway.url, "ab", plans, world, concurrency, console, say)
    finally:
        say("stopping the gateway (SIGTERM: drain, flush telemetry)")
        exit_code = gateway.stop()
    clean = exit_code in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after its shutdown
    warnings = [] if clean else [f"the gateway did not shut down cleanly (exit code {exit_code})"]
    say("computing metrics from the stored events and analysing them")
    engine = connect(f"duckdb:///{store_path}")
    try:
        shadow = compare_shadow(engine, runs["shadow"], truth.agreement, CONTROL, TREATMENT)
        stored = count_stored(engine, list(runs.values()), DEPLOYMENT)
        metrics = compute_metrics(engine, metrics_spec(), start=ab_start)
    finally:
        engine.backend.disconnect()
    ab, srm_p, more = _ab_outcomes(metrics.rows, truth)
    if not stored.consistent:
        warnings.append(f"the event store does not match the answers users got: {stored}")
    if shadow.returned_from_shadow:
        warnings.append(f"{shadow.returned_from_shadow} answers came from the shadow model")
    if srm_p is not None and srm_p < 0.001:
        warnings.append(f"sample-ratio mismatch in the A/B phase (p = {srm_p:.3g})")
    return LiveDemoResult(
        deployment=DEPLOYMENT,
        seed=world.seed,
        champion_model=trained.champion_name,
        challenger_model=trained.challenger_name,
        n_history=trained.n_history,
        traffic=tuple(r.summary() for r in runs.values()),
        shadow=shadow,
        ab=ab,
        srm_p_value=srm_p,
        stored=stored,
        truth=truth,
        spec_versions=(1, 2),
        switch=switch,
        gateway_exit_code=exit_code,
        duration_s=time.perf_counter() - started,
        warnings=tuple(warnings + list(metrics.warnings) + more),
    )


def _phase(
    url: str,
    phase: str,
    plans: dict[str, list[PlannedRequest]],
    world: ServingWorld,
    concurrency: int,
    console: Console | None,
    say: Progress,
) -> PhaseRun:
    plan = plans[phase]
    say(f"{phase} phase: {len(plan):,} requests over HTTP")
    outcome = _outcome_fn(world)
    if console is None:
        return asyncio.run(
            drive(url, DEPLOYMENT, plan, outcome=outcome, phase=phase, concurrency=concurrency)
        )
    from rich import progress as rp

    columns = (
        rp.TextColumn("{task.description}"),
        rp.BarColumn(),
        rp.MofNCompleteColumn(),
        rp.TimeElapsedColumn(),
    )
    with rp.Progress(*columns, console=console) as bar:
        return asyncio.run(
            drive(url, DEPLOYMENT, plan, outcome=outcome, phase=phase,
                  concurrency=concurrency, progress=bar)
        )  # fmt: skip
