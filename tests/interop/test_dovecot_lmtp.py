"""LMTP delivery to Dovecot: a Dovecot started by the test on loopback (IMAP and LMTP, its own
mail_location), and a mailroom in the mail server mode with ``[local_delivery] lmtp`` pointing
at it. Mail accepted over SMTP for a local user is queued, handed to Dovecot over LMTP, and read
back over IMAP with imaplib; a user Dovecot does not know (550 5.1.1) and a user over Dovecot's
quota (552 5.2.2, answered after the message, for that recipient alone) come back to the sender
as a DSN that itself travels over LMTP into the sender's Dovecot mailbox.

Also the asyncio client itself against Dovecot's LMTP server: DATA and BDAT, TCP and the unix
socket."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import json
import os
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailroom.client import Client, MailOptions
from mailroom.testing import SMTPTestServer
from tests.delivery.dnsserver import dns_that_cannot_answer
from tests.interop.dovecot import (
    DOVECOT,
    MAIL_USER,
    free_port,
    running_dovecot,
    traversable_tmpdir,
)
from tests.live import NO_DNS_CHECKS, wait_for

LMTP_SERVER = Path("/usr/lib/dovecot/lmtp")
pytestmark = pytest.mark.skipif(
    not Path(DOVECOT).exists() or not LMTP_SERVER.exists() or os.geteuid() != 0,
    reason="needs Dovecot's LMTP server (Debian dovecot-lmtpd, dovecot-imapd) and root",
)

PASSWORD = "imap-secret"

DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap lmtp
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{root}/mail/%d/%n
mail_plugins = $mail_plugins quota
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
"""

# Dovecot's users: ghost@example.test is not among them (mailroom knows it; Dovecot answers
# 550 5.1.1), tiny@example.test has a quota no message fits in (552 5.2.2 after the data).
DOVECOT_USERS = {
    "alice@example.test": "",
    "bob@example.test": "",
    "tiny@example.test": "userdb_quota_rule=*:storage=100B",
}

MAILROOM_CONFIG = (
    """
hostname = "mx.example.test"
domains = ["example.test"]
# Tests never leave the machine: DNS asks a name server that answers SERVFAIL, remote mail goes
# to a closed port on loopback.
dns_servers = ["{dns}"]

[[listeners]]
address = "127.0.0.1:0"
role = "mx"

[users."alice@example.test"]
[users."bob@example.test"]
[users."ghost@example.test"]
[users."tiny@example.test"]

[aliases]
"team@example.test" = ["alice@example.test", "bob@example.test"]

[policy]
check_null_mx = false
check_sender_domain = false

[routes]
"remote.test" = "127.0.0.1:1"

[local_delivery]
lmtp = "{lmtp}"
"""
    + NO_DNS_CHECKS
)


@dataclass
class Dovecot:
    root: Path
    imap_port: int
    lmtp_port: int

    @property
    def lmtp_socket(self) -> Path:
        return self.root / "run" / "lmtp"

    def messages(self, user: str) -> list[bytes]:
        """Every message in the user's INBOX, over IMAP, oldest first."""
        imap = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        try:
            assert imap.login(user, PASSWORD)[0] == "OK"
            status, data = imap.select("INBOX", readonly=True)
            assert status == "OK"
            found = []
            for number in range(1, int(data[0] or b"0") + 1):
                status, fetched = imap.fetch(str(number), "(BODY.PEEK[])")
                assert status == "OK"
                raw = fetched[0][1]  # type: ignore[index]
                assert isinstance(raw, bytes)
                found.append(raw)
            return found
        finally:
            imap.logout()


@pytest.fixture
def workdir() -> Iterator[Path]:
    with traversable_tmpdir("mailroom-lmtp-") as path:
        yield path


@pytest.fixture
def dovecot(workdir: Path) -> Iterator[Dovecot]:
    root = workdir / "dovecot"
    for sub in ("run", "state", "home", "mail"):
        (root / sub).mkdir(parents=True)
    for sub in ("home", "mail"):
        os.chown(root / sub, MAIL_USER.pw_uid, MAIL_USER.pw_gid)
    uid, gid = MAIL_USER.pw_uid, MAIL_USER.pw_gid
    (root / "users").write_text(
        "".join(
            f"{user}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{root}/home/{user}::{extra}\n"
            for user, extra in DOVECOT_USERS.items()
        )
    )
    server = Dovecot(root, free_port(), free_port())
    config = DOVECOT_CONF.format(root=root, imap_port=server.imap_port, lmtp_port=server.lmtp_port)
    with running_dovecot(root, config, [server.imap_port, server.lmtp_port]):
        yield server


@pytest.fixture
def mail_server(workdir: Path, dovecot: Dovecot) -> Iterator[SMTPTestServer]:
    config = workdir / "mailroom.toml"
    config.write_text(
        MAILROOM_CONFIG.format(dns=dns_that_cannot_answer(), lmtp=f"127.0.0.1:{dovecot.lmtp_port}")
    )
    server = SMTPTestServer(
        workdir / "data", {"hostname": "mx.example.test"}, config_file=config
    ).start()
    yield server
    server.stop()


def queue_empty(server: SMTPTestServer) -> bool:
    return not list((Path(server.config.data) / "queue" / "active").glob("*.json"))


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def status_fields(report: EmailMessage) -> list[dict[str, str]]:
    """The per-recipient groups of a DSN's message/delivery-status part."""
    for part in report.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            assert isinstance(payload, list)
            return [{k.lower(): str(v) for k, v in group.items()} for group in payload[1:]]
    raise AssertionError("no message/delivery-status part")


MESSAGE = (
    b"From: Someone <someone@remote.test>\r\nTo: alice@example.test\r\n"
    b"Subject: over LMTP\r\nMessage-ID: <lmtp-1@remote.test>\r\n\r\n"
    b"Stored by Dovecot, read over IMAP.\r\n.leading dot\r\n"
)


def test_mail_for_local_users_goes_to_dovecot_over_lmtp(
    mail_server: SMTPTestServer, dovecot: Dovecot
) -> None:
    with smtplib.SMTP(*mail_server.address("mx"), timeout=10) as smtp:
        smtp.ehlo("client.remote.test")
        refused = smtp.sendmail(
            "someone@remote.test", ["alice@example.test", "team@example.test"], MESSAGE
        )
        assert refused == {}
    wait_for(lambda: queue_empty(mail_server), timeout=30)
    [alice] = dovecot.messages("alice@example.test")
    [bob] = dovecot.messages("bob@example.test")
    for raw in (alice, bob):
        # Dovecot's trace fields, then mailroom's Received field, then the bytes the client
        # sent, unchanged (the dot-stuffed line too).
        assert raw.endswith(MESSAGE)
        assert raw.startswith(b"Return-Path: <someone@remote.test>\r\n")
        head = raw[: -len(MESSAGE)]
        assert b"with LMTP" in head
        received = head[head.index(b"Received: from client.remote.test") :]
        assert b"by mx.example.test (mailroom) with ESMTP id " in received
    # Nothing in mailroom's own Maildirs: the store is Dovecot's.
    assert not list((Path(mail_server.config.data) / "mail").glob("**/new/*"))


def test_unknown_user_at_dovecot_bounces_to_the_local_sender_over_lmtp(
    mail_server: SMTPTestServer, dovecot: Dovecot
) -> None:
    # mailroom knows ghost; Dovecot does not, and answers 550 5.1.1 to its RCPT.
    with smtplib.SMTP(*mail_server.address("mx"), timeout=10) as smtp:
        refused = smtp.sendmail(
            "alice@example.test", ["ghost@example.test", "bob@example.test"], MESSAGE
        )
        assert refused == {}
    wait_for(
        lambda: queue_empty(mail_server) and dovecot.messages("alice@example.test"), timeout=30
    )
    [bob] = dovecot.messages("bob@example.test")
    assert bob.endswith(MESSAGE)
    [raw] = dovecot.messages("alice@example.test")
    assert raw.startswith(b"Return-Path: <>\r\n")  # a DSN has the null sender
    report = parse(raw)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    [ghost] = status_fields(report)
    assert ghost["final-recipient"] == "rfc822; ghost@example.test"
    assert ghost["action"] == "failed"
    assert ghost["status"] == "5.1.1"
    assert ghost["diagnostic-code"].startswith("smtp; 550 5.1.1 <ghost@example.test>")
    assert ghost["remote-mta"].startswith("dns; ")
    returned = raw.decode("utf-8", "replace")
    assert "Message-ID: <lmtp-1@remote.test>" in returned  # RET=FULL: the message comes back


def test_over_quota_after_the_message_fails_that_recipient_alone(
    mail_server: SMTPTestServer, dovecot: Dovecot
) -> None:
    # Dovecot checks the quota when it stores the message: after the data, bob's reply says
    # 250 and tiny's 552 5.2.2, one reply per recipient (RFC 2033 §4.2).
    with smtplib.SMTP(*mail_server.address("mx"), timeout=10) as smtp:
        refused = smtp.sendmail(
            "alice@example.test", ["bob@example.test", "tiny@example.test"], MESSAGE
        )
        assert refused == {}
    wait_for(
        lambda: queue_empty(mail_server) and dovecot.messages("alice@example.test"), timeout=30
    )
    [bob] = dovecot.messages("bob@example.test")
    assert bob.endswith(MESSAGE)
    assert dovecot.messages("tiny@example.test") == []
    [raw] = dovecot.messages("alice@example.test")
    [tiny] = status_fields(parse(raw))
    assert tiny["final-recipient"] == "rfc822; tiny@example.test"
    assert (tiny["action"], tiny["status"]) == ("failed", "5.2.2")
    assert tiny["diagnostic-code"].startswith("smtp; 552 5.2.2 <tiny@example.test> Quota")
    assert tiny["x-mailroom-reason"] == "mailboxfull"


def test_queue_entry_is_gone_only_after_dovecot_answered(
    mail_server: SMTPTestServer, dovecot: Dovecot
) -> None:
    # The entry keeps each recipient's outcome until the round settles; afterwards nothing
    # is left, and the delivered copy is Dovecot's.
    with smtplib.SMTP(*mail_server.address("mx"), timeout=10) as smtp:
        assert smtp.sendmail("someone@remote.test", ["alice@example.test"], MESSAGE) == {}
        active = Path(mail_server.config.data) / "queue" / "active"
        entries = [json.loads(p.read_text()) for p in active.glob("*.json")]
    # Either still queued (durable before the 250) or already delivered and removed.
    assert all(e["recipients"][0]["address"] == "alice@example.test" for e in entries)
    wait_for(lambda: queue_empty(mail_server), timeout=30)
    assert len(dovecot.messages("alice@example.test")) == 1


# -- the client itself ------------------------------------------------------------------------


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
@pytest.mark.parametrize("over", ["tcp", "unix"])
def test_client_speaks_lmtp_to_dovecot(dovecot: Dovecot, chunking: bool, over: str) -> None:
    async def send() -> object:
        if over == "unix":
            client = Client(
                socket_path=str(dovecot.lmtp_socket), lmtp=True, local_hostname="mx.example.test"
            )
        else:
            client = Client(
                "127.0.0.1", dovecot.lmtp_port, lmtp=True, local_hostname="mx.example.test"
            )
        async with client:
            assert client.extensions.pipelining and client.extensions.chunking
            return await client.send(
                MESSAGE,
                sender="someone@remote.test",
                recipients=["alice@example.test", "nobody@example.test", "tiny@example.test"],
                options=MailOptions(chunking=chunking),
            )

    result = asyncio.run(send())
    alice, nobody, tiny = result.recipients  # type: ignore[attr-defined]
    assert result.method == ("BDAT" if chunking else "DATA")  # type: ignore[attr-defined]
    assert alice.delivered and alice.command == "DATA"
    assert alice.reply.lines[0].startswith("<alice@example.test>")
    assert (nobody.reply.code, str(nobody.reply.status), nobody.command) == (550, "5.1.1", "RCPT")
    assert (tiny.reply.code, str(tiny.reply.status), tiny.command) == (552, "5.2.2", "DATA")
    assert len(result.data_replies) == 2  # type: ignore[attr-defined]
    [raw] = dovecot.messages("alice@example.test")
    assert raw.endswith(MESSAGE)
