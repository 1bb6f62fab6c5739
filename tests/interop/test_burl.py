"""BURL (RFC 4468) end to end, with Dovecot's IMAP URLAUTH (Debian dovecot-imapd) as the IMAP
server: imaplib puts a message in alice's mailbox and asks Dovecot for its URLAUTH URL
(GENURLAUTH, RFC 4467); mailroom's own client submits it with BURL; mailroom fetches it with
URLFETCH and delivers it. Each way it can fail gets its code: 451 4.4.1 (IMAP server
unreachable), 554 5.7.14 (no trust relationship), 554 5.6.6 (URL does not resolve), 554 5.3.4
(too big), 554 5.3.3 (not an imap URL).

The trust relationship here is a Dovecot master user: mailroom logs in as "<user>*submit", so
the IMAP session is the SMTP user's own and URLs resolve only to that user's messages. (The
other arrangement RFC 4468 describes, a plain submit user fetching "submit+submit" URLs through
Dovecot's imap-urlauth service, needs that service's login, which panics in Debian 12's
Dovecot 2.3.19 on the DOVECOT-TOKEN mechanism; mailroom supports both by the login setting.)"""

from __future__ import annotations

import imaplib
import os
import smtplib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailroom.client import MailOptions, SyncClient
from mailroom.policy.credentials import password_line
from mailroom.testing import SMTPTestServer
from tests.delivery.dnsserver import dns_that_cannot_answer
from tests.interop.dovecot import (
    DOVECOT,
    MAIL_USER,
    free_port,
    running_dovecot,
    traversable_tmpdir,
)

imaplib.Commands.setdefault("GENURLAUTH", ("AUTH", "SELECTED"))

PASSWORD = "correct horse battery staple"
_HASH, _SCRAM = password_line("alice@example.test", PASSWORD).split(":", 2)[1:]
URL_HOST = "imap.example.test"

DOVECOT_CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_master_user_separator = *
mail_location = maildir:~/Maildir
mail_attribute_dict = file:%h/dovecot-attributes
imap_urlauth_host = {url_host}
imap_urlauth_port = 143
passdb {{
  driver = passwd-file
  master = yes
  args = scheme=PLAIN username_format=%u {root}/masters
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""

MAILROOM_CONF = """
hostname = "mx.example.test"
tls = "self-signed"
domains = ["example.test"]
dns_servers = ["{dns}"]
max_message_size = "{max_size}"

[[listeners]]
address = "127.0.0.1:0"
role = "submission"
[[listeners]]
address = "127.0.0.1:0"
role = "mx"

[users."alice@example.test"]
password = "{hash}"
scram = "{scram}"
[users."bob@example.test"]

[policy]
check_null_mx = false
check_sender_domain = false

{burl}
"""


def _require_dovecot() -> None:
    if not Path(DOVECOT).exists() or os.geteuid() != 0:
        reason = "needs Dovecot (Debian dovecot-imapd) and root to start it"
        if os.environ.get("MAILROOM_ALLOW_SKIP") == "1":
            pytest.skip(reason)
        pytest.fail(reason)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[int]:
    _require_dovecot()
    with traversable_tmpdir("mailroom-burl-") as root:
        for sub in ("run", "state", "home"):
            (root / sub).mkdir()
        os.chown(root / "home", MAIL_USER.pw_uid, MAIL_USER.pw_gid)
        (root / "passwd").write_text("alice@example.test:{PLAIN}alice-imap-secret\n")
        (root / "masters").write_text("submit:{PLAIN}submit-secret\n")
        port = free_port()
        config = DOVECOT_CONF.format(
            root=root, port=port, uid=MAIL_USER.pw_uid, gid=MAIL_USER.pw_gid, url_host=URL_HOST
        )
        with running_dovecot(root, config, [port]):
            yield port


def stored_url(port: int, message: bytes, access: str = "user+alice@example.test") -> str:
    """Put ``message`` in alice's INBOX and ask Dovecot for its URLAUTH URL (RFC 4467 §3.2)."""
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login("alice@example.test", "alice-imap-secret")
    typ, data = imap.append("INBOX", None, None, message)
    assert typ == "OK", data
    uid = data[0].decode().split("APPENDUID ", 1)[1].split()[1].rstrip("]")
    imap.select("INBOX")
    validity = imap.response("UIDVALIDITY")[1][0].decode()
    rump = (
        f"imap://alice%40example.test@{URL_HOST}/INBOX;UIDVALIDITY={validity}/;UID={uid}"
        f";urlauth={access}"
    )
    typ, data = imap._simple_command("GENURLAUTH", f'"{rump}"', "INTERNAL")
    assert typ == "OK", data
    url = imap.untagged_responses.pop("GENURLAUTH")[0].decode().strip('"')
    imap.logout()
    return url


@pytest.fixture
def mailroom_factory(tmp_path: Path) -> Iterator[Callable[..., SMTPTestServer]]:
    started: list[SMTPTestServer] = []

    def make(burl: str, max_size: str = "50M") -> SMTPTestServer:
        directory = tmp_path / f"mailroom{len(started)}"
        directory.mkdir()
        config = directory / "mailroom.toml"
        config.write_text(
            MAILROOM_CONF.format(
                dns=dns_that_cannot_answer(), hash=_HASH, scram=_SCRAM, burl=burl, max_size=max_size
            )
        )
        server = SMTPTestServer(directory / "data", config_file=config)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


def burl_table(port: int, password: str = "submit-secret") -> str:
    return (
        f'[burl]\nimap = "127.0.0.1:{port}"\nurl_host = "{URL_HOST}"\n'
        f'login = "{{user}}*submit"\npassword = "{password}"\ntimeout = "10s"\n'
    )


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def submit_with_burl(server: SMTPTestServer, url: str, recipient: str = "bob@example.test"):  # type: ignore[no-untyped-def]
    """mailroom's own client: STARTTLS, AUTH, then BURL <url> LAST for the message."""
    with SyncClient(
        *server.address("submission"), tls="starttls", ssl_context=_context(), timeout=30
    ) as client:
        client.login("alice@example.test", PASSWORD)
        return client.send(
            b"", sender="alice@example.test", recipients=[recipient], options=MailOptions(burl=url)
        )


def session(server: SMTPTestServer) -> smtplib.SMTP:
    client = smtplib.SMTP(*server.address("submission"), timeout=30)
    client.starttls(context=_context())
    client.ehlo("client.example.test")
    client.login("alice@example.test", PASSWORD)
    return client


def bobs_messages(server: SMTPTestServer) -> list[bytes]:
    folder = Path(server.config.data) / "mail" / "example.test" / "bob" / "new"
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.exists() else []


def test_burl_is_offered_only_where_it_is_configured(
    dovecot: int, mailroom_factory: Callable[..., SMTPTestServer]
) -> None:
    with_burl = mailroom_factory(burl_table(dovecot))
    assert session(with_burl).esmtp_features.get("burl") == "imap"
    mx = smtplib.SMTP(*with_burl.address("mx"), timeout=30)
    mx.ehlo("client.example.test")
    assert not mx.has_extn("burl")
    assert mx.docmd("BURL imap://x LAST")[0] == 502
    mx.quit()
    without = mailroom_factory("")
    assert not session(without).has_extn("burl")


def test_a_message_submitted_by_burl_is_fetched_and_delivered(
    dovecot: int, mailroom_factory: Callable[..., SMTPTestServer]
) -> None:
    message = (
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: by BURL\r\n\r\nHi Bob.\r\n"
    )
    url = stored_url(dovecot, message)
    server = mailroom_factory(burl_table(dovecot))
    result = submit_with_burl(server, url)
    assert result.method == "BURL"
    assert result.data_reply is not None and result.data_reply.code == 250
    [stored] = bobs_messages(server)
    assert stored.endswith(message)
    # The transcript keeps the command, but not the URLAUTH token that would read the message.
    commands = [
        e["text"] for t in server.transcripts for e in t["entries"] if e["from"] == "client"
    ]
    burl = next(c for c in commands if c.startswith("BURL "))
    assert burl.endswith(":internal:<redacted> LAST") and url.rsplit(":", 1)[1] not in burl


def test_burl_parts_and_bdat_chunks_make_one_message(
    dovecot: int, mailroom_factory: Callable[..., SMTPTestServer]
) -> None:
    header = b"From: alice@example.test\r\nSubject: forwarded\r\n\r\nMy note.\r\n"
    part = b"> the forwarded text\r\n"
    url = stored_url(dovecot, part)
    server = mailroom_factory(burl_table(dovecot))
    client = session(server)
    assert client.mail("alice@example.test")[0] == 250
    assert client.rcpt("bob@example.test")[0] == 250
    client.send(f"BDAT {len(header)}\r\n".encode() + header)
    assert client.getreply() == (250, f"2.0.0 Ok: {len(header)} octets received".encode())
    assert client.docmd(f"BURL {url}") == (
        250,
        f"2.5.0 Ok: {len(part)} octets fetched, waiting for more BURL or BDAT".encode(),
    )
    code, text = client.docmd("BDAT 0 LAST")
    assert (code, text[:6]) == (250, b"2.0.0 ")
    client.quit()
    [stored] = bobs_messages(server)
    assert stored.endswith(header + part)


def _refusal(server: SMTPTestServer, url: str) -> tuple[int, bytes]:
    client = session(server)
    assert client.mail("alice@example.test")[0] == 250
    assert client.rcpt("bob@example.test")[0] == 250
    reply = client.docmd(f"BURL {url} LAST")
    # A refused BURL ends the message: nothing is stored, the session goes on.
    assert client.noop()[0] == 250
    client.quit()
    assert bobs_messages(server) == []
    return reply


def test_an_imap_server_that_cannot_be_reached(
    dovecot: int, mailroom_factory: Callable[..., SMTPTestServer]
) -> None:
    url = stored_url(dovecot, b"Subject: x\r\n\r\nx\r\n")
    server = mailroom_factory(burl_table(free_port()))  # nobody listens there
    code, text = _refusal(server, url)
    assert (code, text[:30]) == (451, b"4.4.1 IMAP server unavailable:")


def test_no_trust_relationship(
    dovecot: int, mailroom_factory: Callable[..., SMTPTestServer]
) -> None:
    url = stored_url(dovecot, b"Subject: x\r\n\r\nx\r\n")
    refused_login = mailroom_factory(burl_table(dovecot, password="not-the-master-password"))
    code, text = _refusal(refused_login, url)
    assert (code, text[:50]) == (554, b"5.7.14 URL resolution requires trust relationship:")
    assert b"refused the login of alice@example.test*submit" in text
    other_server = mailroom_factory(burl_table(dovecot))
    code, text = _refusal(other_server, url.replace(URL_HOST, "imap.elsewhere.test"))
    assert (code, text) == (
        554,
        b"5.7.14 URL resolution requires trust relationship: this server trusts no IMAP "
        b"server at imap.elsewhere.test",
    )


def test_a_url_that_does_not_resolve(
    dovecot: int, mailroom_factory: Callable[..., SMTPTestServer]
) -> None:
    url = stored_url(dovecot, b"Subject: x\r\n\r\nx\r\n")
    server = mailroom_factory(burl_table(dovecot))
    token = url.rsplit(":", 1)[1]
    forged = url[: -len(token)] + ("0" if token[-1] != "0" else "1") * len(token)
    code, text = _refusal(server, forged)
    assert (code, text[:33]) == (554, b"5.6.6 IMAP URL resolution failed:")
    code, text = _refusal(server, url.split(";urlauth=")[0])
    assert (code, text) == (
        554,
        b"5.6.6 IMAP URL resolution failed: the URL carries no URLAUTH (RFC 4467): nothing "
        b"authorizes fetching it",
    )


def test_a_part_too_big_for_the_message(
    dovecot: int, mailroom_factory: Callable[..., SMTPTestServer]
) -> None:
    big = b"Subject: big\r\n\r\n" + b"x" * 70 * 40 + b"\r\n"
    url = stored_url(dovecot, big)
    server = mailroom_factory(burl_table(dovecot), max_size="1K")
    code, text = _refusal(server, url)
    assert (code, text) == (
        554,
        f"5.3.4 Message too big for system: the message part of {len(big)} octets would pass "
        "the limit of 1024".encode(),
    )


def test_a_url_of_another_scheme(
    dovecot: int, mailroom_factory: Callable[..., SMTPTestServer]
) -> None:
    server = mailroom_factory(burl_table(dovecot))
    assert _refusal(server, "https://files.example.test/message.eml") == (
        554,
        b"5.3.3 URL scheme https not supported: this server fetches imap URLs",
    )
