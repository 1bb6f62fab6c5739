"""``mailroom db``: migrate a new database, report its state; and ``mailroom serve`` refusing
several worker processes on a fleet's store (tests/postgres/test_queue_command.py has
``mailroom queue`` on a fleet)."""

from __future__ import annotations

import os
import smtplib
import stat
import subprocess

import psycopg

from tests.live import ServeProcess, mailroom_command, run_cli
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


def test_serve_refuses_several_workers_on_a_fleets_store(pg_url, tmp_path) -> None:
    # A node on PostgreSQL runs one process (a fleet grows by nodes): --workers 2 is refused
    # at start, with a reason, before anything listens.
    done = subprocess.run(
        mailroom_command(
            "serve",
            "--store",
            pg_url,
            "--workers",
            "2",
            "--smtp",
            "127.0.0.1:0",
            "--data",
            str(tmp_path / "data"),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "runs one process" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_workers_0_means_one_process_on_a_fleets_store(pg_url, tmp_path) -> None:
    from mailroom.config import Config

    assert Config(store=pg_url, workers=0).validate().worker_count == 1
    assert Config(store=pg_url, workers=1).validate().worker_count == 1


def test_a_node_s_data_directory_is_private_whatever_the_umask(pg_url, tmp_path) -> None:
    """A node on PostgreSQL keeps a large message's spill file in DATA/tmp until it is
    committed: that directory was made with mkdir's umask mode (0777 under umask 000, 0755
    under 022), not 0700 as every directory of the data directory."""
    data = tmp_path / "data"
    previous = os.umask(0)
    try:
        server = ServeProcess(
            ["--store", pg_url, "--data", str(data), "--smtp", "127.0.0.1:0", "--web", "off"],
            tmp_path / "serve.log",
        ).wait_started()
        try:
            big = b"Subject: large\r\n\r\n" + (b"x" * 76 + b"\r\n") * 20_000  # spilled
            with smtplib.SMTP(*server.smtp, timeout=30) as client:
                client.sendmail("a@example.test", ["b@example.test"], big)
        finally:
            assert server.terminate() == 0, server.stderr
    finally:
        os.umask(previous)
    wrong = {
        str(path): oct(stat.S_IMODE(path.lstat().st_mode))
        for path in [data, *data.rglob("*")]
        if stat.S_IMODE(path.lstat().st_mode) != (0o700 if path.is_dir() else 0o600)
    }
    assert (data / "tmp").is_dir()
    assert wrong == {}


def test_serve_on_a_database_without_the_schema_says_what_to_do(pg_server, tmp_path) -> None:
    """A database not yet migrated: the reason and the command came as the last line of a
    traceback (SchemaError); now as mailroom serve's one line of error, exit status 2."""
    url = pg_server.create_database()
    done = subprocess.run(
        mailroom_command(
            "serve", "--store", url, "--smtp", "127.0.0.1:0", "--data", str(tmp_path / "data")
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2
    assert "lacks schema version(s) 1, 2: run `mailroom db migrate --store URL`" in done.stderr
