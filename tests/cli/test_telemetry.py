"""`proving telemetry count|load` and `proving ingest` argument handling (CliRunner)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from proving.cli.app import app
from proving.telemetry.duckdb_store import DuckDBStore
from proving.telemetry.events import ExposureEvent, OutcomeEvent
from proving.telemetry.nats_bus import NatsStore

runner = CliRunner()


def test_count_prints_every_table(tmp_path: Path) -> None:
    db = tmp_path / "e.duckdb"
    with DuckDBStore(db) as store:
        store.write_events(
            [ExposureEvent(experiment="x", variant="a", unit_id=f"u{i}") for i in range(3)]
        )
        store.write_events([OutcomeEvent(unit_id="u1", name="buy")])
    result = runner.invoke(app, ["telemetry", "count", "--store", str(db), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"exposures": 3, "predictions": 0, "outcomes": 1}
    table = runner.invoke(app, ["telemetry", "count", "--store", f"duckdb://{db}"])
    assert table.exit_code == 0 and "exposures" in table.stdout and "3" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["telemetry", "count", "--store", "events.csv"], "a bare path must end in .duckdb"),
        (["telemetry", "count", "--store", "mysql://h/db"], "unknown scheme 'mysql'"),
        (
            ["telemetry", "load", "--from", "kafka://h", "--to", ":memory:"],
            "--from must be a nats:// URL",
        ),
        (
            ["telemetry", "load", "--from", "nats://h:1", "--to", ":memory:", "--batch-size", "0"],
            "--batch-size must be >= 1; got 0",
        ),
        (
            ["ingest", "--store", ":memory:", "--port", "70000"],
            "--port must be in 1..65535; got 70000",
        ),
        (["ingest", "--store", "s3://bucket"], "unknown scheme 's3'"),
    ],
)
def test_bad_arguments_exit_2_with_the_fix(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_privacy_file_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "privacy.yaml"
    bad.write_text("hash_fields: [attributes.email]\n")
    result = runner.invoke(app, ["ingest", "--store", ":memory:", "--privacy", str(bad)])
    assert result.exit_code == 2
    assert "salt is empty" in " ".join(result.output.split())
    bad.write_text("sample_rates: {exposure: 3}\n")
    result = runner.invoke(app, ["ingest", "--store", ":memory:", "--privacy", str(bad)])
    text = " ".join(result.output.split())
    assert "field 'sample_rates': sample rate of 'exposure' must be in [0, 1]; got 3.0" in text
    missing = runner.invoke(
        app, ["ingest", "--store", ":memory:", "--privacy", str(tmp_path / "none.yaml")]
    )
    assert missing.exit_code == 2 and "cannot read the file" in " ".join(missing.output.split())


def test_load_moves_the_bus_into_a_store(nats_url: str, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:10]
    stream, prefix = f"CLI_{token}", f"cli.{token}"
    try:
        with NatsStore(nats_url, stream=stream, prefix=prefix) as bus:
            bus.write_events([OutcomeEvent(unit_id=f"u{i}", name="buy") for i in range(25)])
        db = tmp_path / "loaded.duckdb"
        args = [
            "telemetry",
            "load",
            "--from",
            nats_url,
            "--to",
            str(db),
            "--stream",
            stream,
            "--prefix",
            prefix,
            "--idle-exit",
            "1",
            "--json",
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.strip().splitlines()[-1])["stored"] == 25
        with DuckDBStore(db) as store:
            assert store.count("outcomes") == 25
    finally:

        async def drop() -> None:
            import nats

            nc = await nats.connect(nats_url)
            await nc.jetstream().delete_stream(stream)
            await nc.close()

        asyncio.run(drop())
