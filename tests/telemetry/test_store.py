"""One suite for every event store: DuckDB, PostgreSQL (real server) and Parquet."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from proving.errors import EventValidationError, TelemetryError
from proving.telemetry.duckdb_store import DuckDBStore
from proving.telemetry.events import (
    SCHEMAS,
    TABLES,
    ExposureEvent,
    OutcomeEvent,
    PredictionEvent,
    TableName,
    to_record_batch,
)
from proving.telemetry.parquet_store import ParquetStore
from proving.telemetry.postgres_store import PostgresStore
from proving.telemetry.store import EventStore, dedupe, open_store

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
Opener = Callable[[], EventStore]


@pytest.fixture(params=["duckdb", "postgres", "parquet"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """A function that opens (and reopens) the same store; all opened stores are closed."""
    opened: list[EventStore] = []

    def open_again() -> EventStore:
        if request.param == "duckdb":
            store: EventStore = open_store(f"duckdb://{tmp_path / 'events.duckdb'}")
        elif request.param == "postgres":
            dsn = request.getfixturevalue("postgres_dsn")
            schema = request.getfixturevalue("postgres_schema")
            store = open_store(f"{dsn}?schema={schema}")
        else:
            store = open_store(f"parquet://{tmp_path / 'lake'}")
        opened.append(store)
        return store

    yield open_again
    for store in opened:
        store.close()


def exposures(n: int, prefix: str = "e", day: int = 0) -> list[ExposureEvent]:
    return [
        ExposureEvent(
            event_id=f"{prefix}{i}",
            experiment=f"exp-{i % 3}",
            variant="ab"[i % 2],
            unit_id=f"u{i}",
            timestamp=T0 + timedelta(days=day, minutes=i),
            attributes={"country": "de" if i % 2 else "fr", "age": i, "vip": i % 5 == 0},
        )
        for i in range(n)
    ]


def tricky_predictions() -> list[PredictionEvent]:
    return [
        PredictionEvent(
            event_id="p-quote",
            request_id="r1",
            unit_id=None,
            deployment="ranker",
            experiment=None,
            model="m",
            model_version="1.2.0",
            role="shadow",
            status="timeout",
            features={"text": 'comma, "quote"\nnewline \\ backslash', "emoji": "ü ✓"},
            output=[0.1, {"k": None}],
            score=None,
            latency_ms=0.0,
            timestamp=T0,
        ),
        PredictionEvent(
            event_id="p-empty",
            request_id="r2",
            unit_id="u1",
            deployment="ranker",
            experiment="exp-0",
            variant="b",
            model="m",
            model_version="2",
            features={"empty": ""},
            output="",
            score=-1.5e300,
            latency_ms=12.25,
            timestamp=T0,
        ),
    ]


def sort_rows(table: pa.Table) -> list[dict[str, object]]:
    rows = table.drop_columns(["received_at"]).to_pylist()
    return sorted(rows, key=lambda row: str(row["event_id"]))


def test_write_counts_new_rows_and_skips_duplicates(opener: Opener) -> None:
    store = opener()
    batch = to_record_batch("exposures", exposures(50))
    assert store.write("exposures", batch) == 50
    # The same batch again, and a batch with an id repeated inside it: nothing new twice.
    assert store.write("exposures", batch) == 0
    repeated = exposures(3, prefix="x") + exposures(3, prefix="x")
    assert store.write("exposures", to_record_batch("exposures", repeated)) == 3
    # A retry that overlaps what is stored: only the new ids count, and the store goes on.
    overlapping = exposures(60)[40:]
    assert store.write("exposures", to_record_batch("exposures", overlapping)) == 10
    assert store.count("exposures") == 63
    ids = store.read_table("exposures").column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == 63


def test_first_occurrence_wins_within_a_batch(opener: Opener) -> None:
    store = opener()
    first = ExposureEvent(event_id="same", experiment="e", variant="a", unit_id="u", timestamp=T0)
    second = first.model_copy(update={"variant": "b"})
    store.write("exposures", to_record_batch("exposures", [first, second]))
    assert store.read_table("exposures").column("variant").to_pylist() == ["a"]


def test_round_trip_preserves_every_column(opener: Opener) -> None:
    store = opener()
    written = {
        "exposures": to_record_batch("exposures", exposures(7)),
        "predictions": to_record_batch("predictions", tricky_predictions()),
        "outcomes": to_record_batch(
            "outcomes",
            [
                OutcomeEvent(event_id="o1", unit_id="u1", name="buy", value=9.99, timestamp=T0),
                OutcomeEvent(event_id="o2", request_id="r2", name="label", value=0.0),
            ],
        ),
    }
    for table, batch in written.items():
        store.write(table, batch)  # type: ignore[arg-type]
    for table, batch in written.items():
        back = store.read_table(table)  # type: ignore[arg-type]
        assert back.schema.equals(SCHEMAS[table]), table  # type: ignore[index]
        assert sort_rows(back) == sort_rows(pa.Table.from_batches([batch]))
        # received_at survives too (microsecond precision).
        assert sorted(back.column("received_at").to_pylist()) == sorted(
            batch.column("received_at").to_pylist()
        )


def test_reopen_keeps_rows_and_still_deduplicates(opener: Opener) -> None:
    store = opener()
    store.write(
        "outcomes", to_record_batch("outcomes", [OutcomeEvent(event_id="o", unit_id="u", name="n")])
    )
    store.close()
    again = opener()
    assert again.count("outcomes") == 1
    dup = [
        OutcomeEvent(event_id="o", unit_id="u", name="n"),
        OutcomeEvent(event_id="o2", unit_id="u", name="n"),
    ]
    assert again.write("outcomes", to_record_batch("outcomes", dup)) == 1
    assert again.count("outcomes") == 2


def test_first_exposures_is_the_minimum_per_unit(opener: Opener) -> None:
    store = opener()
    events = [
        *exposures(4, prefix="a", day=2),
        ExposureEvent(event_id="early", experiment="x", variant="a", unit_id="u1", timestamp=T0),
    ]
    store.write_events(events)
    first = store.first_exposures(["u1", "u2", "nobody"])
    assert first == {"u1": T0, "u2": T0 + timedelta(days=2, minutes=2)}
    assert store.first_exposures([]) == {}


def test_concurrent_writers_store_each_id_once(opener: Opener) -> None:
    store = opener()
    # Four threads write overlapping id ranges; the sum of "newly stored" must equal the
    # number of distinct ids (no id counted by two writers, none lost).
    results: list[int] = []
    errors: list[BaseException] = []

    def work(start: int) -> None:
        try:
            events = [
                OutcomeEvent(event_id=f"o{i}", unit_id=f"u{i}", name="n")
                for i in range(start, start + 300)
            ]
            results.append(store.write("outcomes", to_record_batch("outcomes", events)))
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 150,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(results) == store.count("outcomes") == 750


def test_empty_batch_and_bad_table(opener: Opener) -> None:
    store = opener()
    assert store.write("exposures", SCHEMAS["exposures"].empty_table()) == 0
    with pytest.raises(EventValidationError, match=r"table must be one of exposures"):
        store.write("clicks", SCHEMAS["exposures"].empty_table())  # type: ignore[arg-type]
    with pytest.raises(EventValidationError, match=r"columns \['experiment', 'variant', 'unit_id'"):
        store.write("exposures", pa.table({"event_id": ["a"]}))


def test_closed_store_refuses_writes(opener: Opener) -> None:
    store = opener()
    store.close()
    with pytest.raises(TelemetryError, match="closed"):
        store.write("outcomes", to_record_batch("outcomes", [OutcomeEvent(unit_id="u", name="n")]))


def test_duckdb_store_runs_on_one_thread(tmp_path: Path) -> None:
    # Small inserts cost a fifth less CPU on one thread (BENCHMARKS.md, "Event store writes").
    with DuckDBStore(tmp_path / "one.duckdb") as store:
        assert store.write("exposures", to_record_batch("exposures", exposures(5))) == 5
        threads = store._conn.execute("SELECT current_setting('threads')").fetchall()
        assert threads == [(1,)]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_state_table_keeps_documents(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "duckdb":
        store: EventStore = DuckDBStore(tmp_path / "state.duckdb")
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        store = PostgresStore(dsn, schema=request.getfixturevalue("postgres_schema"))
    with store:
        assert store.get_state("rollout", "checkout") is None
        store.put_state("rollout", "checkout", {"stage": 1, "weights": [0.9, 0.1]})
        store.put_state("rollout", "checkout", {"stage": 2})
        assert store.get_state("rollout", "checkout") == {"stage": 2}


def test_parquet_layout_is_hive_partitioned(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    events = [
        *exposures(6),
        ExposureEvent(event_id="slash", experiment="a/b c", variant="v", unit_id="u", timestamp=T0),
    ]
    store.write_events(events)
    store.write_events(tricky_predictions())
    dirs = {p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("*.parquet")}
    assert "exposures/date=2024-05-01/experiment=exp-0" in dirs
    assert "exposures/date=2024-05-01/experiment=a%2Fb%20c" in dirs
    assert "predictions/date=2024-05-01/experiment=__HIVE_DEFAULT_PARTITION__" in dirs
    with pytest.raises(TelemetryError, match="keeps no key-value state"):
        store.put_state("a", "b", {})
    # Another engine reads the lake with hive partitioning and gets the experiment back.
    import duckdb

    with duckdb.connect() as conn:
        rel = conn.sql(
            f"SELECT experiment, count(*) AS n FROM read_parquet("
            f"'{tmp_path}/exposures/**/*.parquet', hive_partitioning = true) "
            "GROUP BY experiment ORDER BY experiment"
        ).to_arrow_table()
    assert rel.to_pylist() == [
        {"experiment": "a/b c", "n": 1},
        {"experiment": "exp-0", "n": 2},
        {"experiment": "exp-1", "n": 2},
        {"experiment": "exp-2", "n": 2},
    ]


def test_dedupe_keeps_first_occurrences_in_order() -> None:
    data = pa.table({"event_id": ["b", "a", "b", "c", "a"], "v": [1, 2, 3, 4, 5]})
    assert dedupe(data).to_pydict() == {"event_id": ["b", "a", "c"], "v": [1, 2, 4]}


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("events.duckdb", DuckDBStore),
        ("duckdb://:memory:", DuckDBStore),
        (":memory:", DuckDBStore),
    ],
)
def test_open_store_recognises_urls(
    url: str, kind: type[EventStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store(url) as store:
        assert isinstance(store, kind)


def test_open_store_duckdb_absolute_and_parquet(tmp_path: Path) -> None:
    with open_store(f"duckdb://{tmp_path}/a.duckdb") as store:
        assert store.url == f"duckdb://{tmp_path}/a.duckdb"
    assert (tmp_path / "a.duckdb").exists()
    with open_store(f"parquet://{tmp_path}/lake") as lake:
        assert isinstance(lake, ParquetStore)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "must be a non-empty string"),
        ("events.csv", "a bare path must end in .duckdb"),
        ("mysql://h/db", "unknown scheme 'mysql'"),
        ("parquet://", "has no directory"),
    ],
)
def test_open_store_rejects_bad_urls(url: str, message: str) -> None:
    with pytest.raises(TelemetryError, match=message):
        open_store(url)


def test_postgres_unreachable_is_a_clear_error() -> None:
    with pytest.raises(
        TelemetryError, match=r"cannot connect to .*Fix: check that the server runs"
    ):
        PostgresStore("postgresql://postgres@127.0.0.1:1/none")


def test_tables_are_the_documented_three() -> None:
    assert TABLES == ("exposures", "predictions", "outcomes")
    name: TableName = "outcomes"
    assert SCHEMAS[name].names == [
        "event_id",
        "unit_id",
        "request_id",
        "name",
        "value",
        "timestamp",
        "received_at",
    ]


def test_postgres_recovers_after_a_failed_batch(postgres_dsn: str, postgres_schema: str) -> None:
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    good = to_record_batch("outcomes", [OutcomeEvent(event_id="ok", unit_id="u", name="n")])
    # PostgreSQL text cannot hold NUL: the whole batch fails, nothing of it is stored.
    bad = pa.Table.from_batches([good]).set_column(0, "event_id", pa.array(["a\x00b"]))
    with pytest.raises(TelemetryError, match=r"Nothing of this batch was stored; retry it"):
        store.write("outcomes", bad)
    assert store.write("outcomes", good) == 1
    store.close()
