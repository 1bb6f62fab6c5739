"""What a fleet's nodes share besides messages: the directory (a user added in the database
works on every node at once), greylisting, rates and AUTH failures counted fleet-wide, so a
client meets the same answers whichever node it reaches."""

from __future__ import annotations

import base64
import smtplib
import time
from pathlib import Path

import psycopg

from mailroom.policy.credentials import password_line
from tests.delivery.dnsserver import dns_that_cannot_answer
from tests.fleet import fleet
from tests.live import NO_DNS_CHECKS, run_cli, wait_for

__all__ = ["fleet"]

MAIL_CONFIG = (
    """
hostname = "mx.example.test"
dns_servers = ["{dns}"]

[directory]
source = "postgresql"
cache = "30s"

[policy]
check_null_mx = false
check_sender_domain = false
{policy}
"""
    + NO_DNS_CHECKS
)


def _config(tmp_path: Path, policy: str = "") -> str:
    path = tmp_path / "mailroom.toml"
    path.write_text(MAIL_CONFIG.format(dns=dns_that_cannot_answer(), policy=policy))
    return str(path)


def _rcpt(address: tuple[str, int], recipient: str) -> tuple[int, bytes]:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("someone@sender.test")
        return client.rcpt(recipient)


def test_a_user_added_in_the_database_receives_on_every_node_at_once(
    fleet, pg_url, tmp_path
) -> None:
    config = _config(tmp_path)
    a = fleet("a", "127.0.0.2", pg_url, "--config", config)
    b = fleet("b", "127.0.0.3", pg_url, "--config", config)
    # No local domain yet: the address is someone else's, and relaying is refused.
    assert _rcpt(a.smtp, "alice@example.test")[0] == 550
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO domains (name) VALUES ('example.test')")
        conn.execute("INSERT INTO users (address) VALUES ('alice@example.test')")
        conn.execute(
            "INSERT INTO aliases (address, target) VALUES ('team@example.test', 'alice@example.test')"
        )
    # The change notification reaches both nodes well before the 30-second cache runs out.
    started = time.monotonic()
    for node in (a, b):
        wait_for(lambda node=node: _rcpt(node.smtp, "alice@example.test")[0] == 250, timeout=10)
        assert _rcpt(node.smtp, "team@example.test")[0] == 250
        code, text = _rcpt(node.smtp, "nobody@example.test")
        assert (code, text[:5]) == (550, b"5.1.1"), text
    assert time.monotonic() - started < 10
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE address = 'alice@example.test'")
    wait_for(lambda: _rcpt(b.smtp, "alice@example.test")[0] == 550, timeout=10)


def test_import_directory_copies_a_configuration_files_tables(pg_url, tmp_path) -> None:
    source = tmp_path / "source.toml"
    source.write_text(
        f'store = "{pg_url}"\n'
        'domains = ["example.test"]\n'
        '[users."alice@example.test"]\nquota = "1M"\n'
        '[aliases]\n"team@example.test" = ["alice@example.test", "bob@remote.test"]\n'
        '"carol@example.test" = { moved_to = "carol@elsewhere.test" }\n'
    )
    output = run_cli("db", "import-directory", "--config", str(source)).decode()
    assert "1 domains, 1 users, 3 aliases" in output
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT address, quota FROM users").fetchall() == [
            ("alice@example.test", 1024 * 1024)
        ]
        assert sorted(conn.execute("SELECT address, target, moved_to FROM aliases")) == [
            ("carol@example.test", None, "carol@elsewhere.test"),
            ("team@example.test", "alice@example.test", None),
            ("team@example.test", "bob@remote.test", None),
        ]


def _with_alice(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO domains (name) VALUES ('example.test')")
        conn.execute("INSERT INTO users (address) VALUES ('alice@example.test')")


def test_greylisting_is_shared_a_retry_on_another_node_passes(fleet, pg_url, tmp_path) -> None:
    _with_alice(pg_url)
    config = _config(tmp_path, 'greylisting = true\ngreylist_delay = "2s"')
    a = fleet("a", "127.0.0.2", pg_url, "--config", config)
    b = fleet("b", "127.0.0.3", pg_url, "--config", config)
    code, text = _rcpt(a.smtp, "alice@example.test")
    assert (code, text[:5]) == (450, b"4.7.1"), text
    # Another node knows the triple: still too early there too.
    code, text = _rcpt(b.smtp, "alice@example.test")
    assert (code, text[:5]) == (450, b"4.7.1"), text
    time.sleep(2.2)
    assert _rcpt(b.smtp, "alice@example.test")[0] == 250
    assert _rcpt(a.smtp, "alice@example.test")[0] == 250  # and it stays passed on every node


def test_rate_limit_counts_across_nodes(fleet, pg_url, tmp_path) -> None:
    _with_alice(pg_url)
    config = _config(tmp_path, "max_messages_per_minute = 3")
    a = fleet("a", "127.0.0.2", pg_url, "--config", config)
    b = fleet("b", "127.0.0.3", pg_url, "--config", config)
    assert _rcpt(a.smtp, "alice@example.test")[0] == 250
    assert _rcpt(b.smtp, "alice@example.test")[0] == 250
    assert _rcpt(a.smtp, "alice@example.test")[0] == 250
    code, text = _rcpt(b.smtp, "alice@example.test")
    assert (code, text[:5]) == (450, b"4.7.1"), text
    assert b"too many messages" in text


def test_auth_failures_count_across_nodes(fleet, pg_url, tmp_path) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text(password_line("alice", "right password") + "\n")
    flags = [
        "--auth",
        str(passwords),
        "--allow-insecure-auth",
        "--max-auth-failures",
        "2",
        "--auth-failure-delay",
        "0",
    ]
    a = fleet("a", "127.0.0.2", pg_url, *flags)
    b = fleet("b", "127.0.0.3", pg_url, *flags)

    def auth(address: tuple[str, int], password: str) -> tuple[int, bytes]:
        with smtplib.SMTP(*address, timeout=30) as client:
            client.ehlo("client.test")
            token = base64.b64encode(f"\0alice\0{password}".encode()).decode()
            return client.docmd("AUTH", f"PLAIN {token}")

    assert auth(b.smtp, "right password")[0] == 235
    assert auth(a.smtp, "wrong")[0] == 535
    assert auth(a.smtp, "wrong")[0] == 535
    # The third try, on the other node, with the right password: blocked all the same.
    code, text = auth(b.smtp, "right password")
    assert (code, text[:5]) == (454, b"4.7.0"), text
