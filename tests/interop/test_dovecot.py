"""Dovecot serves what mailroom delivered: mail for a local user lands in
<data>/mail/<domain>/<user>/, a Dovecot started by the test on loopback points its
mail_location there, and imaplib reads the message back over IMAP."""

from __future__ import annotations

import imaplib
import os
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.testing import SMTPTestServer
from tests.interop.dovecot import (
    DOVECOT,
    MAIL_USER,
    free_port,
    running_dovecot,
    traversable_tmpdir,
)
from tests.mailserver.conftest import write_config

pytestmark = pytest.mark.skipif(
    not Path(DOVECOT).exists() or os.geteuid() != 0,
    reason="needs Dovecot (Debian dovecot-imapd) and root to start it",
)

DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{data}/mail/%d/%n
passdb {{
  driver = static
  args = password=imap-secret
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


# Dovecot will not read mail as root: the test hands the delivered Maildir to an unprivileged
# user, as a real installation runs mailroom as the mail user in the first place.


def give_to_mail_user(path: Path) -> None:
    """Dovecot serves mail as the mail user, who must own the Maildir and be able to reach
    it: mailroom keeps its data directory private (0700 all the way down), so Dovecot runs as
    the user mailroom runs as (here mailroom runs as root, and the data directory is handed
    to the mail user)."""
    for place in [path, *path.rglob("*")]:
        os.chown(place, MAIL_USER.pw_uid, MAIL_USER.pw_gid)
    for parent in path.parents:
        os.chown(parent, MAIL_USER.pw_uid, MAIL_USER.pw_gid)
        if parent.name == "data":
            break


@pytest.fixture
def workdir() -> Iterator[Path]:
    with traversable_tmpdir("mailroom-dovecot-") as path:
        yield path


@pytest.fixture
def mail_server(workdir: Path) -> Iterator[SMTPTestServer]:
    config = write_config(workdir / "mailroom.toml")
    server = SMTPTestServer(workdir / "data", config_file=config).start()
    yield server
    server.stop()


@pytest.fixture
def dovecot(workdir: Path, mail_server: SMTPTestServer) -> Iterator[int]:
    root = workdir / "dovecot"
    for sub in ("run", "state", "home"):
        (root / sub).mkdir(parents=True)
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            root=root,
            data=mail_server.config.data,
            port=port,
            uid=MAIL_USER.pw_uid,
            gid=MAIL_USER.pw_gid,
        )
    )
    config = DOVECOT_CONF.format(
        root=root,
        data=mail_server.config.data,
        port=port,
        uid=MAIL_USER.pw_uid,
        gid=MAIL_USER.pw_gid,
    )
    with running_dovecot(root, config, [port]):
        yield port


def test_dovecot_reads_what_mailroom_delivered(mail_server: SMTPTestServer, dovecot: int) -> None:
    message = (
        b"From: sender@remote.test\r\nTo: alice@example.test\r\n"
        b"Subject: via imap\r\nMessage-ID: <imap-1@remote.test>\r\n\r\n"
        b"Read me over IMAP.\r\n"
    )
    with smtplib.SMTP(*mail_server.address("mx"), timeout=10) as smtp:
        assert smtp.sendmail("sender@remote.test", ["alice@example.test"], message) == {}
    give_to_mail_user(Path(mail_server.config.data) / "mail" / "example.test" / "alice")
    (Path(mail_server.config.data).parent / "dovecot" / "home").chmod(0o777)
    imap = imaplib.IMAP4("127.0.0.1", dovecot, timeout=10)
    try:
        assert imap.login("alice@example.test", "imap-secret")[0] == "OK"
        status, data = imap.select("INBOX")
        assert status == "OK" and data == [b"1"]
        status, fetched = imap.fetch("1", "(BODY.PEEK[])")
        assert status == "OK"
        raw = fetched[0][1]
        assert isinstance(raw, bytes)
        assert raw.endswith(message)
        assert raw.startswith(
            b"Return-Path: <sender@remote.test>\r\n"
            b"Delivered-To: alice@example.test\r\nReceived: from "
        )
        status, found = imap.search(None, '(HEADER Message-ID "<imap-1@remote.test>")')
        assert status == "OK" and found == [b"1"]
    finally:
        imap.logout()
