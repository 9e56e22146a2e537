"""`proving serve`: run the gateway (FastAPI on uvicorn).

Example::

    PROVING_ADMIN_TOKEN=secret proving serve --spec docs/examples/serve-split.yaml \\
        --store duckdb:///events.duckdb --port 8000

Each ``--spec`` file is one deployment, named after its experiment, watched for new
versions. The admin token comes from ``PROVING_ADMIN_TOKEN`` or ``--admin-token-file``;
without one the admin API refuses every call. SIGTERM drains in-flight requests and
commits every queued event before exit.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from proving.errors import ProvingError, SpecError

EXIT_USAGE = 2


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(EXIT_USAGE)


def _token(token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise _fail(f"--admin-token-file {token_file}: cannot read it ({exc}).") from None
        if not token:
            raise _fail(f"--admin-token-file {token_file} is empty. Put the token in it.")
        return token
    return os.environ.get("PROVING_ADMIN_TOKEN") or None


def serve_command(
    spec: Annotated[list[Path], typer.Option("--spec", help="Spec file (repeat for several).")],
    store: Annotated[
        str, typer.Option(help="Event and state store URL (duckdb, postgresql, parquet, nats).")
    ] = "proving.duckdb",
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8000,
    admin_token_file: Annotated[
        Path | None, typer.Option(help="File holding the admin bearer token.")
    ] = None,
    challenger_timeout_ms: Annotated[
        float, typer.Option(help="Deadline of a challenger call before the champion answers.")
    ] = 250.0,
    champion_timeout_ms: Annotated[float, typer.Option(help="Deadline of the champion.")] = 2000.0,
    max_body_bytes: Annotated[int, typer.Option(help="Larger bodies get 413.")] = 1 << 20,
    batch_max_size: Annotated[
        int | None, typer.Option(help="Turn on micro-batching with this batch size.")
    ] = None,
    reload_interval: Annotated[float, typer.Option(help="Seconds between spec checks.")] = 1.0,
    drain_timeout: Annotated[float, typer.Option(help="Seconds to drain at shutdown.")] = 10.0,
    threaded_models: Annotated[
        bool, typer.Option(help="Run plain in-process models in worker threads.")
    ] = False,
    log_features: Annotated[
        bool, typer.Option(help="Include request features in prediction events.")
    ] = True,
    exposure_cache_size: Annotated[
        int,
        typer.Option(
            help="Units remembered as exposed (a repeat request logs no new exposure); 0: "
            "log every request's exposure.",
            min=0,
        ),
    ] = 100_000,
    telemetry_nice: Annotated[
        int,
        typer.Option(
            help="How much nicer the telemetry threads run than the event loop (Linux), so "
            "that event-store commits do not take its core; 0: as the loop.",
            min=0,
            max=19,
        ),
    ] = 10,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the gateway: predict, rank, ingest, metrics and the admin API."""
    # The web stack loads with this command, not with every start of the command line.
    import uvicorn

    from proving.serve.app import create_app
    from proving.serve.deployment import ServeConfig
    from proving.spec.loader import load_spec

    specs = []
    for path in spec:
        try:
            specs.append(load_spec(path))
        except (SpecError, OSError) as exc:
            raise _fail(str(exc)) from None
    if challenger_timeout_ms <= 0 or champion_timeout_ms <= 0:
        raise _fail("--challenger-timeout-ms and --champion-timeout-ms must be > 0.")
    config = ServeConfig(
        challenger_timeout_ms=challenger_timeout_ms,
        champion_timeout_ms=champion_timeout_ms,
        max_body_bytes=max_body_bytes,
        batch_max_size=batch_max_size,
        reload_interval=reload_interval,
        drain_timeout=drain_timeout,
        threaded_models=threaded_models,
        log_features=log_features,
        exposure_cache_size=exposure_cache_size,
        telemetry_nice=telemetry_nice,
    )
    try:
        app = create_app(
            specs,
            store=store,
            config=config,
            admin_token=_token(admin_token_file),
            spec_paths={s.name: p for s, p in zip(specs, spec, strict=True)},
        )
    except ProvingError as exc:
        raise _fail(str(exc)) from None
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=max(1, math.ceil(drain_timeout)),
    )


if __name__ == "__main__":  # `python -m proving.cli.serve ...`: the command alone
    typer.run(serve_command)
