"""One real PostgreSQL server for the session (tests/pgserver.py), and a fresh database with
mailroom's schema for each test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailroom.postgres.migrate import migrate
from tests.live import client_timeouts, serve
from tests.pgserver import PostgresServer

__all__ = ["client_timeouts", "pg_server", "pg_url", "serve"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A new database with mailroom's schema."""
    if not pg_server.running:  # a test that stopped it and failed before starting it again
        pg_server.start()
        pg_server.wait_ready()
    url = pg_server.create_database()
    migrate(url)
    return url
