"""``[local_delivery] lmtp``: the configuration is read and checked, and mail for local users
is queued durably (before the 250) for the LMTP server, as each user's full address, instead
of being written to Maildirs. The LMTP server here is a closed port on loopback, so the mail
stays queued; tests/interop/test_dovecot_lmtp.py delivers to a real Dovecot."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.config import ConfigError, load_config
from mailroom.testing import SMTPTestServer
from tests.interop.test_dovecot import free_port
from tests.mailserver.conftest import write_config

MESSAGE = b"From: someone@remote.test\r\nSubject: for the store\r\n\r\nHello.\r\n"


def lmtp_config(path: Path, section: str) -> Path:
    write_config(path)
    with path.open("a") as out:
        out.write("\n" + section + "\n")
    return path


@pytest.fixture
def closed_port() -> int:
    return free_port()  # nothing listens there: deliveries are deferred, the mail stays queued


@pytest.fixture
def lmtp_server(tmp_path: Path, closed_port: int) -> Iterator[SMTPTestServer]:
    config = lmtp_config(
        tmp_path / "mailroom.toml", f'[local_delivery]\nlmtp = "127.0.0.1:{closed_port}"'
    )
    server = SMTPTestServer(tmp_path / "data", config_file=config).start()
    yield server
    server.stop()


def queued(server: SMTPTestServer) -> list[dict[str, object]]:
    active = Path(server.config.data) / "queue" / "active"
    return [json.loads(p.read_text()) for p in sorted(active.glob("*.json"))]


# -- the configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ('"127.0.0.1:2424"', ("127.0.0.1", 2424, None)),
        ('"127.0.0.1"', ("127.0.0.1", 24, None)),
        ('"lmtp://[::1]:2424"', ("::1", 2424, None)),
        ('"unix:/var/run/dovecot/lmtp"', ("localhost", 0, "/var/run/dovecot/lmtp")),
        ('{ address = "10.0.0.7:24", tls = "starttls" }', ("10.0.0.7", 24, None)),
    ],
)
def test_local_delivery_lmtp_is_read(tmp_path: Path, value: str, expected: tuple[object]) -> None:
    config = load_config(lmtp_config(tmp_path / "m.toml", f"[local_delivery]\nlmtp = {value}"))
    mail = config.mail
    assert mail is not None and mail.lmtp is not None
    assert mail.lmtp.lmtp
    assert (mail.lmtp.host, mail.lmtp.port, mail.lmtp.socket) == expected
    assert mail.rules.local_delivery == "lmtp"
    assert mail.queue.local_lmtp == mail.lmtp
    assert mail.queue.local_domains == {"example.test", "example.org"}


def test_without_local_delivery_local_mail_goes_to_maildirs(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "m.toml"))
    assert config.mail is not None and config.mail.lmtp is None
    assert config.mail.rules.local_delivery == "maildir"
    assert config.mail.queue.local_lmtp is None
    empty = load_config(lmtp_config(tmp_path / "e.toml", "[local_delivery]"))
    assert empty.mail is not None and empty.mail.lmtp is None


@pytest.mark.parametrize(
    "section, error",
    [
        ('[local_delivery]\nlmtp = "127.0.0.1:25"', "port 25"),
        ('[local_delivery]\nlmtp = "smtp://127.0.0.1:2424"', "LMTP, not SMTP"),
        ('[local_delivery]\nlmtp = "unix:relative/path"', "absolute path"),
        ("[local_delivery]\nlmtp = 24", "lmtp is an address"),
        ('[local_delivery]\nmaildir = "/var/mail"', "unknown setting 'maildir'"),
    ],
)
def test_local_delivery_errors_name_their_line(tmp_path: Path, section: str, error: str) -> None:
    path = lmtp_config(tmp_path / "m.toml", section)
    line = path.read_text().splitlines().index(section.splitlines()[-1]) + 1
    with pytest.raises(ConfigError, match=error) as caught:
        load_config(path)
    assert f"m.toml:{line}:" in str(caught.value)


def test_local_delivery_is_a_table(tmp_path: Path) -> None:
    path = write_config(tmp_path / "m.toml")
    path.write_text('local_delivery = "lmtp"\n' + path.read_text())
    with pytest.raises(ConfigError, match="local_delivery: a table") as caught:
        load_config(path)
    assert "m.toml:1:" in str(caught.value)


def test_a_route_for_a_local_domain_conflicts_with_lmtp(tmp_path: Path) -> None:
    path = write_config(tmp_path / "m.toml")
    text = path.read_text().replace(
        "[routes]\n",
        '[local_delivery]\nlmtp = "127.0.0.1:2424"\n\n[routes]\n"example.org" = "127.0.0.1:1"\n',
    )
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"example\.org is a local domain"):
        load_config(path)


def test_the_example_configs_lmtp_line_works_uncommented(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "mailroom.toml"
    text = example.read_text()
    assert "\n# local_delivery = " in text
    path = tmp_path / "mailroom.toml"
    path.write_text(text.replace("\n# local_delivery = ", "\nlocal_delivery = "))
    mail = load_config(path).mail
    assert mail is not None and mail.lmtp is not None
    assert (mail.lmtp.host, mail.lmtp.port, mail.lmtp.protocol) == ("127.0.0.1", 24, "lmtp")


def test_check_config_accepts_it(tmp_path: Path) -> None:
    good = lmtp_config(tmp_path / "good.toml", '[local_delivery]\nlmtp = "127.0.0.1:24"')
    bad = lmtp_config(tmp_path / "bad.toml", '[local_delivery]\nlmtp = "lmtp://127.0.0.1:25"')
    for path, status in ((good, 0), (bad, 2)):
        result = subprocess.run(
            [sys.executable, "-m", "mailroom", "check-config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == status, result.stderr
    assert "port 25" in result.stderr and "bad.toml:" in result.stderr


# -- receiving: queued for the LMTP server, not written to Maildirs ----------------------------


def test_local_mail_is_queued_for_lmtp_by_full_address(lmtp_server: SMTPTestServer) -> None:
    with smtplib.SMTP(*lmtp_server.address("mx"), timeout=10) as smtp:
        refused = smtp.sendmail(
            "someone@remote.test",
            ["ALICE@Example.TEST", "team@example.test", "anyone@example.org"],
            MESSAGE,
        )
        assert refused == {}
        # The 250 came after the queue files were synced: the entry is there now.
        [entry] = queued(lmtp_server)
    # Each local user once, by the address the LMTP server knows them by: alice by herself
    # and through team, bob through team and the catch-all of example.org.
    recipients = [r["address"] for r in entry["recipients"]]  # type: ignore[attr-defined]
    assert recipients == ["alice@example.test", "bob@example.test"]
    assert entry["sender"] == "someone@remote.test"
    data = Path(lmtp_server.config.data)
    message = (data / "queue" / "active" / f"{entry['id']}.eml").read_bytes()
    assert message.startswith(b"Received: from ") and message.endswith(MESSAGE)
    assert not list((data / "mail").glob("example.test/*/new/*"))  # no Maildir copy


def test_local_and_remote_recipients_share_one_queue_entry(lmtp_server: SMTPTestServer) -> None:
    # dave@example.test forwards to dave@remote.test (routed to a closed port too).
    with smtplib.SMTP(*lmtp_server.address("mx"), timeout=10) as smtp:
        assert smtp.sendmail("x@remote.test", ["bob@example.test", "dave@example.test"], b"x") == {}
        [entry] = queued(lmtp_server)
    recipients = [r["address"] for r in entry["recipients"]]  # type: ignore[attr-defined]
    assert recipients == ["bob@example.test", "dave@remote.test"]


def test_unknown_local_user_is_still_refused_at_rcpt(lmtp_server: SMTPTestServer) -> None:
    with smtplib.SMTP(*lmtp_server.address("mx"), timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail("x@remote.test")
        code, text = smtp.rcpt("nobody@example.test")
    assert (code, text[:5]) == (550, b"5.1.1")
    assert queued(lmtp_server) == []


def test_a_bounce_for_a_local_sender_goes_to_the_queue_too(lmtp_server: SMTPTestServer) -> None:
    bounce = b"From: MAILER-DAEMON@mx.example.test\r\nSubject: Undelivered\r\n\r\nSorry.\r\n"
    lmtp_server._call(lmtp_server.server.inject("", ["alice@example.test"], bounce))
    [entry] = queued(lmtp_server)
    assert entry["sender"] == ""
    assert [r["address"] for r in entry["recipients"]] == ["alice@example.test"]  # type: ignore[attr-defined]
