"""Shared fixtures: real services, found or skipped with a reason.

Where a service is absent the tests that need it skip; CI sets PROVING_REQUIRE_SERVICES=1
so that there its absence fails the run instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_DSN = os.environ.get("PROVING_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("PROVING_TEST_NATS", "nats://127.0.0.1:4222")


def _require_services() -> bool:
    return os.environ.get("PROVING_REQUIRE_SERVICES", "") not in ("", "0", "false")


def service_unavailable(name: str, reason: str) -> None:
    """Skip, or fail where CI requires the service."""
    message = f"{name} is not reachable: {reason}"
    if _require_services():
        pytest.fail(f"{message} (PROVING_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(message)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of a real PostgreSQL database (trust auth on 127.0.0.1:5432, database `test`)."""
    try:
        import psycopg
    except ImportError:
        service_unavailable(
            "PostgreSQL", "psycopg is not installed (pip install 'proving[postgres]')"
        )
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # any connection failure means the service is absent
        service_unavailable("PostgreSQL", f"{POSTGRES_DSN}: {exc}")
    return POSTGRES_DSN


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'create schema "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'drop schema "{schema}" cascade')


@pytest.fixture(scope="session")
def nats_url() -> str:
    """URL of a real NATS server with JetStream (127.0.0.1:4222)."""
    try:
        import nats  # noqa: F401
    except ImportError:
        service_unavailable("NATS", "nats-py is not installed (pip install 'proving[nats]')")
    if not _port_open("127.0.0.1", 4222):
        service_unavailable("NATS", f"nothing listens at {NATS_URL}")
    return NATS_URL
