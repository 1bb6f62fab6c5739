"""Files another local user could read: the data directory holds every user's mail, addresses
and body text (the index and the web's cache hold them too), the queue, the TLS key. Whatever
the umask mailroom starts with (022, the usual; 000, the careless), the data directory and
every directory in it are 0700 and every file 0600, the SQLite files and their journals
included."""

from __future__ import annotations

import base64
import json
import os
import smtplib
import ssl
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mailroom.policy.credentials import password_line
from tests.delivery.dnsserver import dns_that_cannot_answer
from tests.live import ServeProcess, wait_for

PASSWORD = "correct horse battery staple"
CONFIG = """
hostname = "mx.example.test"
data = "{data}"
tls = "self-signed"
domains = ["example.test"]
dns_servers = ["{dns}"]
web = "127.0.0.1:0"
web_auth = "admin:web-secret"

[[listeners]]
address = "127.0.0.1:0"
role = "mx"
[[listeners]]
address = "127.0.0.1:0"
role = "submission"

[users."alice@example.test"]
password = "{hash}"
scram = "{scram}"

[aliases]
"dave@example.test" = "dave@remote.test"

[policy]
# No DNS here (a server that answers SERVFAIL): the sender domain check would answer 451 4.1.8.
check_sender_domain = false

[routes]
"remote.test" = "127.0.0.1:1"
"""


def _modes(data: Path) -> dict[str, str]:
    """Every path under ``data`` (itself included) whose mode is not 0700 (a directory) or
    0600 (a file), with its mode."""
    wrong = {}
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        wanted = 0o700 if path.is_dir() else 0o600
        if mode != wanted:
            wrong[str(path.relative_to(data.parent))] = oct(mode)
    return wrong


def _mailroom(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mailroom", *args], capture_output=True, timeout=60, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_data_directory_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    _, hashed, scram = password_line("alice@example.test", PASSWORD).split(":", 2)
    data = tmp_path / "data"
    config = tmp_path / "mailroom.toml"
    config.write_text(
        CONFIG.format(data=data, hash=hashed, scram=scram, dns=dns_that_cannot_answer())
    )
    previous = os.umask(umask)  # inherited by the server and the commands below
    try:
        server = ServeProcess(["--config", str(config)], tmp_path / "serve.log").wait_started()
        try:
            mx, submission = server.addresses[:2]
            client = smtplib.SMTP(*mx, timeout=10)
            # To a local user (her Maildir) and to an alias that forwards off-site (the queue).
            client.sendmail("x@sender.test", ["alice@example.test"], b"Subject: 1\r\n\r\nx\r\n")
            client.sendmail("x@sender.test", ["dave@example.test"], b"Subject: 2\r\n\r\nx\r\n")
            client.quit()
            context = ssl.create_default_context(cafile=str(data / "tls" / "self-signed.pem"))
            client = smtplib.SMTP(*submission, timeout=10)
            client.starttls(context=context)
            client.login("alice@example.test", PASSWORD)
            client.sendmail("alice@example.test", ["bob@remote.test"], b"Subject: 3\r\n\r\nx\r\n")
            client.quit()
            # The web's own database, made on its first look at the messages.
            url = wait_for(lambda: _web_url(server.stderr))
            request = urllib.request.Request(
                url + "api/v1/search?query=x",
                headers={
                    "Authorization": "Basic " + base64.b64encode(b"admin:web-secret").decode()
                },
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert json.loads(response.read())["messages_count"] >= 1
            # A request to the queue's runner, as `mailroom queue retry` leaves it.
            _mailroom("queue", "retry", "--no-wait", "--data", str(data))
        finally:
            assert server.terminate() == 0, server.stderr
        _mailroom("reindex", "--data", str(data))
    finally:
        os.umask(previous)
    names = {p.name for p in data.rglob("*")}
    for expected in (
        "index.sqlite",
        "web.sqlite",
        "transcripts.sqlite",
        "self-signed.key",
        "self-signed.pem",
    ):
        assert expected in names, sorted(names)
    assert list((data / "mail" / "example.test" / "alice" / "new").iterdir())
    assert list((data / "queue").rglob("*.json"))
    assert _modes(data) == {}


def _web_url(stderr: str) -> str | None:
    marker = "mailroom: web UI and API on "
    for line in stderr.splitlines():
        if line.startswith(marker):
            return line[len(marker) :].strip()
    return None


def test_a_data_directory_left_readable_is_made_private(serve, tmp_path: Path) -> None:
    """What an older version (or another umask) left readable is put right at start."""
    data = tmp_path / "data"
    box = data / "mail" / "catchall"
    for sub in ("tmp", "new", "cur"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "1.old.mx.test,S=3").write_bytes(b"old")
    (data / "index.sqlite").write_bytes(b"")
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    serve(data=data)
    assert _modes(data) == {}


def test_dkim_keygen_makes_a_private_data_directory(tmp_path: Path) -> None:
    """`mailroom dkim keygen` before the first start makes the data directory: it was made
    with the umask's mode (0777 under umask 000) around its 0700 key folder, until a later
    start put it right."""
    data = tmp_path / "data"
    previous = os.umask(0)
    try:
        _mailroom("dkim", "keygen", "example.test", "--data", str(data))
    finally:
        os.umask(previous)
    assert list((data / "dkim" / "example.test").glob("*.key"))
    assert _modes(data) == {}
