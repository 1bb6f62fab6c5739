"""``mailroom db``: migrate a new database, report its state; and ``mailroom queue`` refusing
a fleet's configuration rather than show an empty directory as its queue."""

from __future__ import annotations

import subprocess

import psycopg

from tests.live import mailroom_command, run_cli
from tests.pgserver import PostgresServer


def test_db_migrate_creates_the_schema_once_and_status_reports_it(
    pg_server: PostgresServer, tmp_path
) -> None:
    url = pg_server.create_database()
    pending = subprocess.run(
        mailroom_command("db", "status", "--store", url), capture_output=True, text=True
    )
    assert pending.returncode == 1 and "0001_initial: pending" in pending.stdout
    first = run_cli("db", "migrate", "--store", url).decode()
    assert "applied 0001_initial" in first and "applied 0002_rate_limit" in first
    assert "up to date" in run_cli("db", "migrate", "--store", url).decode()
    config = tmp_path / "node.toml"
    config.write_text(f'store = "{url}"\n')
    status = run_cli("db", "status", "--config", str(config)).decode()
    assert status.splitlines() == ["0001_initial: applied", "0002_rate_limit: applied"]
    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM mailroom_migrations")]
    assert sorted(versions) == [1, 2]


def test_queue_command_refuses_a_fleets_configuration(pg_url, tmp_path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f'store = "{pg_url}"\n')
    done = subprocess.run(
        mailroom_command("queue", "list", "--config", str(config)), capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "keeps its queue in PostgreSQL" in done.stderr
