"""`proving telemetry ...` and `proving ingest`: move, count and receive events.

Examples:
    proving ingest --store events.duckdb --port 8700 --known-experiment checkout
    proving telemetry load --from nats://127.0.0.1:4222 --to postgresql://postgres@db/prod
    proving telemetry count --store events.duckdb --json
"""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from proving.errors import MissingDependencyError, TelemetryError

telemetry_app = typer.Typer(
    help="Move and inspect telemetry events (exposures, predictions, outcomes).",
    no_args_is_help=True,
)
_err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _load_privacy(path: Path | None) -> Any:
    from proving.telemetry.privacy import PrivacyPolicy

    if path is None:
        return PrivacyPolicy()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return PrivacyPolicy.model_validate(data)
    except OSError as exc:
        raise _fail(f"--privacy {path}: cannot read the file: {exc}.") from exc
    except yaml.YAMLError as exc:
        raise _fail(f"--privacy {path}: not valid YAML: {exc}.") from exc
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "policy"
        message = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
        raise _fail(f"--privacy {path}: field {where!r}: {message}.") from exc


def ingest_command(
    store: Annotated[str, typer.Option("--store", help="Store URL, e.g. events.duckdb.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    known_experiment: Annotated[
        list[str] | None,
        typer.Option("--known-experiment", help="Accept only these experiments (repeat)."),
    ] = None,
    privacy: Annotated[
        Path | None, typer.Option(help="YAML file of a PrivacyPolicy (sampling, hashing).")
    ] = None,
    max_future_skew: Annotated[
        float, typer.Option(help="Reject events timestamped this many seconds ahead.")
    ] = 300.0,
    max_events: Annotated[int, typer.Option(help="Largest batch accepted (413 above).")] = 10_000,
    flush_interval: Annotated[float, typer.Option(help="Writer flush interval (s).")] = 0.05,
) -> None:
    """Run the ingestion API (POST /v1/events, /v1/outcomes) in front of a store."""
    import uvicorn

    from proving.telemetry.ingest import IngestConfig, create_ingest_app
    from proving.telemetry.store import open_store
    from proving.telemetry.writer import BatchWriter

    if not 0 < port < 65536:
        raise _fail(f"--port must be in 1..65535; got {port}.")
    policy = _load_privacy(privacy)
    try:
        event_store = open_store(store)
    except (TelemetryError, MissingDependencyError) as exc:
        raise _fail(f"--store: {exc}") from exc
    writer = BatchWriter(event_store, flush_interval=flush_interval)
    config = IngestConfig(
        known_experiments=frozenset(known_experiment) if known_experiment else None,
        max_events=max_events,
        max_future_skew=timedelta(seconds=max_future_skew),
        privacy=policy,
    )
    app = create_ingest_app(writer, config, close_on_shutdown=True)
    _err.print(f"proving ingest: {event_store.url} on http://{host}:{port} (docs at /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _render_counts(counts: dict[str, int], title: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(counts))
        return
    table = Table(title=title)
    table.add_column("table")
    table.add_column("n", justify="right")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    Console().print(table)


@telemetry_app.command("count")
def count_command(
    store: Annotated[str, typer.Option("--store", help="Store URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Count the events of each table in a store."""
    from proving.telemetry.events import TABLES
    from proving.telemetry.store import open_store

    try:
        with open_store(store) as opened:
            counts: dict[str, int] = {table: opened.count(table) for table in TABLES}
            url = opened.url
    except (TelemetryError, MissingDependencyError) as exc:
        raise _fail(f"--store: {exc}") from exc
    _render_counts(counts, url, as_json)


@telemetry_app.command("load")
def load_command(
    source: Annotated[str, typer.Option("--from", help="Bus URL, nats://host:port.")],
    target: Annotated[str, typer.Option("--to", help="Store URL the events go to.")],
    stream: Annotated[str, typer.Option(help="JetStream stream name.")] = "PROVING",
    prefix: Annotated[str, typer.Option(help="Subject prefix.")] = "proving.events",
    durable: Annotated[str, typer.Option(help="Durable consumer name.")] = "proving-loader",
    batch_size: Annotated[int, typer.Option(help="Messages per committed batch.")] = 1000,
    ack_wait: Annotated[float, typer.Option(help="Seconds before redelivery.")] = 30.0,
    idle_exit: Annotated[
        float | None, typer.Option(help="Exit after this many idle seconds (default: run on).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Consume the NATS JetStream bus into a store; acknowledge only after commit."""
    from proving.telemetry.nats_bus import NatsLoader
    from proving.telemetry.store import open_store

    if not source.startswith("nats://"):
        raise _fail(f"--from must be a nats:// URL; got {source!r}. Fix: nats://host:4222.")
    if batch_size < 1:
        raise _fail(f"--batch-size must be >= 1; got {batch_size}.")
    try:
        store = open_store(target)
    except (TelemetryError, MissingDependencyError) as exc:
        raise _fail(f"--to: {exc}") from exc
    loader = NatsLoader(
        source,
        store,
        stream=stream,
        prefix=prefix,
        durable=durable,
        batch_size=batch_size,
        ack_wait=ack_wait,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await loader.run(idle_exit=idle_exit, stop=stop)

    try:
        asyncio.run(run())
    except TelemetryError as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    stats = loader.stats
    summary = {
        "fetched": stats.fetched,
        "stored": stats.stored,
        "rejected": stats.rejected,
        "batches": stats.batches,
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _err.print(
            f"loaded {stats.fetched:,} messages into {target}: {stats.stored:,} new, "
            f"{stats.rejected:,} rejected, {stats.batches:,} batches"
        )
