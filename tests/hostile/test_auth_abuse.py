"""AUTH abuse against a running server: brute force from one address is slowed (every failure
is answered late, without holding up other sessions), cut off per session (421 4.7.0) and then
refused per address (454 4.7.0) whatever the credentials; malformed SASL and huge base64 get
their protocol replies and cost nothing."""

from __future__ import annotations

import base64
import select
import socket
import time
from pathlib import Path

import pytest

from mailroom.policy.credentials import password_line
from tests.hostile.tools import all_replies, raise_open_files
from tests.live import LineClient, LiveServer, wait_for

GOOD = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret")
WRONG = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0guess")
INVALID = b"535 5.7.8 Authentication credentials invalid\r\n"
TOO_MANY = b"454 4.7.0 Error: too many failed authentications, try again later\r\n"
CLOSING = b"421 4.7.0 mx.test Error: too many failed authentications, closing connection\r\n"
SUCCEEDED = b"235 2.7.0 Authentication successful\r\n"


@pytest.fixture
def passwords(tmp_path: Path) -> Path:
    path = tmp_path / "passwords"
    path.write_text(password_line("alice", "secret") + "\n")
    return path


def start(serve, passwords: Path, **settings) -> LiveServer:
    settings.setdefault("auth_failure_delay", 0.1)
    return serve(auth=str(passwords), allow_insecure_auth=True, **settings)


def session(live: LiveServer, source: str = "127.0.0.1") -> LineClient:
    client = LineClient.__new__(LineClient)
    client.sock = socket.create_connection(live.smtp, timeout=15, source_address=(source, 0))
    client.file = client.sock.makefile("rb")
    assert client.reply().startswith(b"220 ")
    assert client.command(b"EHLO client.example.test").startswith(b"250-")
    return client


def test_brute_force_is_cut_off_per_session_then_refused_per_address(serve, passwords) -> None:
    live = start(serve, passwords)
    # One session: two failures, and the third closes it.
    first = session(live)
    assert first.command(WRONG) == INVALID
    assert first.command(WRONG) == INVALID
    assert first.command(WRONG) == CLOSING
    assert first.closed()
    first.close()
    # The next session from the same address: the fourth and fifth failures...
    second = session(live)
    assert second.command(WRONG) == INVALID
    assert second.command(WRONG) == INVALID
    # ... and now the address is refused, even with the right password (a guesser must not
    # learn that a guess was right); it counts against the session, which ends.
    assert second.command(GOOD) == CLOSING
    assert second.closed()
    second.close()
    third = session(live)
    assert third.command(GOOD) == TOO_MANY
    assert third.command(b"AUTH LOGIN") == TOO_MANY  # refused before any challenge
    # The session itself goes on: mail without AUTH is still taken (AUTH is not required).
    assert third.command(b"MAIL FROM:<alice@example.test>") == b"250 2.1.0 Ok\r\n"
    assert third.command(b"RSET") == b"250 2.0.0 Ok\r\n"
    assert third.command(GOOD) == CLOSING
    third.close()
    # Another client address is not held responsible.
    other = session(live, source="127.0.0.2")
    assert other.command(GOOD) == SUCCEEDED
    other.close()
    # When the failures age out of the window, the address may try again.
    guard = live.mail_server.auth_guard
    guard.clock = lambda: time.monotonic() + 601
    fourth = session(live)
    assert fourth.command(GOOD) == SUCCEEDED
    fourth.close()


def test_every_mechanism_counts(serve, passwords) -> None:
    live = start(serve, passwords, max_auth_failures_per_session=0)
    client = session(live)
    login = [b"AUTH LOGIN", base64.b64encode(b"alice"), base64.b64encode(b"guess")]
    assert [client.command(line) for line in login] == [
        b"334 VXNlcm5hbWU6\r\n",
        b"334 UGFzc3dvcmQ6\r\n",
        INVALID,
    ]
    for _ in range(4):
        assert client.command(WRONG) == INVALID
    assert client.command(b"AUTH LOGIN") == TOO_MANY
    assert client.command(b"AUTH SCRAM-SHA-256") == TOO_MANY
    client.close()


def test_the_tarpit_holds_one_session_and_no_other(serve, passwords) -> None:
    live = start(serve, passwords, auth_failure_delay=3.0)
    slow, other = session(live), session(live)
    slow.send(WRONG + b"\r\n")
    # While the failure waits out its delay, another session is answered at once...
    assert other.command(b"NOOP") == b"250 2.0.0 Ok\r\n"
    assert other.command(GOOD) == SUCCEEDED
    # ... and the slowed one has heard nothing yet.
    readable, _, _ = select.select([slow.sock], [], [], 0)
    assert readable == []
    assert slow.reply() == INVALID
    slow.close()
    other.close()


def test_state_stays_bounded(serve, passwords) -> None:
    """Sessions that failed and went away leave nothing behind; an address keeps at most
    max_auth_failures timestamps however often it fails."""
    live = start(serve, passwords, auth_failure_delay=0)
    for attempt in range(20):
        client = session(live, source="127.0.0.3")
        client.send(WRONG + b"\r\nQUIT\r\n")
        expected = INVALID if attempt < 5 else TOO_MANY
        assert all_replies(client) == [expected, b"221 2.0.0 Bye\r\n"]
        client.close()
    wait_for(lambda: not live.mail_server.smtp.sessions)
    guard = live.mail_server.auth_guard
    assert len(guard.failures) == 1
    assert len(guard.failures._seen["127.0.0.3"]) == 5


MALFORMED = [
    ([b"AUTH PLAIN !!!"], [b"501 5.5.2 Cannot Base64-decode Client responses\r\n"]),
    (
        [b"AUTH PLAIN", b"***"],
        [b"334 \r\n", b"501 5.5.2 Cannot Base64-decode Client responses\r\n"],
    ),
    ([b"AUTH PLAIN", b"*"], [b"334 \r\n", b"501 5.7.0 Authentication cancelled\r\n"]),
    (
        [b"AUTH PLAIN " + base64.b64encode(b"no nuls here")],
        [b"501 5.5.2 Malformed authentication response\r\n"],
    ),
    (
        [b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret\0extra")],
        [b"501 5.5.2 Malformed authentication response\r\n"],
    ),
    ([b"AUTH PLAIN ="], [b"501 5.5.2 Malformed authentication response\r\n"]),
    (
        [b"AUTH PLAIN " + base64.b64encode(b"\0\xff\xfe\0secret")],
        [b"501 5.5.2 Malformed authentication response\r\n"],
    ),
    (
        [b"AUTH LOGIN", base64.b64encode(b"\xff\xfe")],
        [b"334 VXNlcm5hbWU6\r\n", b"501 5.5.2 Malformed authentication response\r\n"],
    ),
    ([b"AUTH XYZ"], [b"504 5.5.4 Unrecognized authentication type\r\n"]),
    ([b"AUTH CRAM-MD5 abc"], [b"504 5.5.4 Unrecognized authentication type\r\n"]),
    ([b"AUTH"], [b"501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"]),
    ([b"AUTH PLAIN a b"], [b"501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"]),
    # Huge base64: over max_auth_line (12,288 octets, RFC 4954 §4) in the AUTH line and as a
    # response, up to a megabyte; dropped as it arrives.
    (
        [b"AUTH PLAIN " + base64.b64encode(b"\0alice\0" + b"x" * 20_000)],
        [b"500 5.5.6 Authentication Exchange line is too long\r\n"],
    ),
    (
        [b"AUTH LOGIN", base64.b64encode(b"x" * 750_000)],
        [b"334 VXNlcm5hbWU6\r\n", b"500 5.5.6 Authentication Exchange line is too long\r\n"],
    ),
    (
        [b"AUTH PLAIN", b"A" * 1_000_000],
        [b"334 \r\n", b"500 5.5.6 Authentication Exchange line is too long\r\n"],
    ),
]


def test_malformed_sasl_and_huge_base64(serve, passwords) -> None:
    live = start(serve, passwords)
    client = session(live)
    for lines, replies in MALFORMED:
        assert [client.command(line) for line in lines] == replies, lines[0][:40]
    # None of them was a failed authentication: the right password still works.
    assert client.command(GOOD) == SUCCEEDED
    client.close()
    assert len(live.mail_server.auth_guard.failures) == 0


# -- the race: many sessions from one address send AUTH at the same moment ------------------


async def _auth_at_once(address: tuple[str, int], attempts: list[str], source: str) -> list[int]:
    """One aiosmtplib session per password, all connected and greeted first, then every AUTH
    PLAIN sent at the same moment; the reply code each got."""
    import asyncio

    import aiosmtplib

    clients = [
        aiosmtplib.SMTP(
            hostname=address[0],
            port=address[1],
            source_address=(source, 0),
            start_tls=False,
            timeout=120,
        )
        for _ in attempts
    ]
    await asyncio.gather(*(client.connect() for client in clients))
    await asyncio.gather(*(client.ehlo() for client in clients))
    start = asyncio.Event()

    async def attempt(client: aiosmtplib.SMTP, password: str) -> int:
        await start.wait()
        try:
            response = await client.auth_plain("alice", password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            return exc.code
        except aiosmtplib.SMTPServerDisconnected:
            return 0
        return response.code

    tasks = [asyncio.ensure_future(attempt(c, p)) for c, p in zip(clients, attempts, strict=True)]
    await asyncio.sleep(0)
    start.set()
    codes = await asyncio.gather(*tasks)
    for client in clients:
        client.close()
    return list(codes)


def _race(live: LiveServer, sessions: int, source: str = "127.0.0.1") -> list[int]:
    import asyncio

    # The right password last: on a server that checks them all, it gets 235.
    attempts = [f"guess-{n}" for n in range(sessions - 1)] + ["secret"]
    return asyncio.run(_auth_at_once(live.smtp, attempts, source))


@pytest.mark.parametrize("sessions", [120, pytest.param(400, marks=pytest.mark.hostile)])
def test_concurrent_auth_from_one_address_checks_at_most_the_limit(
    serve, passwords, sessions: int
) -> None:
    """Every session from one address sends AUTH at once: no more passwords are checked than
    max_auth_failures (5) allows in the window; the rest are refused with 454 4.7.0 unread.
    A 535 or a 235 is a password that was checked."""
    raise_open_files(sessions * 2 + 200)
    live = start(serve, passwords, max_connections_per_ip=0, max_connections=sessions + 50)
    codes = _race(live, sessions)
    checked = [code for code in codes if code in (235, 535)]
    assert len(checked) <= 5, sorted(codes)
    assert len(checked) >= 1  # the first ones were checked
    assert 235 not in codes[:-1]
    assert codes.count(454) == sessions - len(checked), sorted(codes)
    # Another round from the same address, once the first has settled: refused unread.
    again = _race(live, 20)
    assert again == [454] * 20
    # Another address is not held responsible, and its own race is bounded the same way.
    other = _race(live, 50, source="127.0.0.2")
    assert len([code for code in other if code in (235, 535)]) <= 5
