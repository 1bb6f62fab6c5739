"""Random sessions for property tests and fuzzing: byte streams built from SMTP fragments and
noise, a choice of settings, and a policy that sometimes refuses. ``play`` runs one through a
ServerConnection and records every reply; ``check_reply`` holds a reply to the catalogue's
rules."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol import (
    NEED_DATA,
    PAUSED,
    Authenticate,
    AuthSecretNeeded,
    ChunkReceived,
    DataCommand,
    Event,
    MailFrom,
    MessageComplete,
    MessageData,
    RcptTo,
    ScramSecret,
    ServerConnection,
    SessionSettings,
    StartTLS,
    State,
)

HOST = "mx.example.test"
ALL_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256")
SECRET = ScramSecret.from_password("pencil", salt=b"0123456789abcdef", iterations=64)


def _settings(**changes: object) -> SessionSettings:
    return SessionSettings(hostname=HOST, nonce=lambda: "n0nce", **changes)  # type: ignore[arg-type]


SETTINGS = [
    _settings(),
    _settings(auth_mechanisms=ALL_MECHANISMS, tls_available=True),
    _settings(auth_mechanisms=ALL_MECHANISMS, auth_plaintext_without_tls=True, require_auth=True),
    _settings(tls_available=True, require_tls=True, auth_mechanisms=("PLAIN",)),
    _settings(
        max_message_size=40,
        max_recipients=2,
        max_bad_commands=4,
        max_command_line=40,
        max_text_line=12,
        max_auth_line=30,
        auth_mechanisms=ALL_MECHANISMS,
        auth_plaintext_without_tls=True,
    ),
    _settings(bare_line_endings="normalize", long_lines="accept", max_text_line=8),
    _settings(
        enhanced_status_codes=False,
        pipelining=False,
        chunking=False,
        dsn=False,
        smtputf8=False,
        eightbitmime=False,
        size=False,
        max_message_size=0,
    ),
]

FRAGMENTS = [
    b"EHLO client.example\r\n",
    b"HELO client\r\n",
    b"EHLO [192.0.2.1]\r\n",
    b"MAIL FROM:<a@example.test>\r\n",
    b"MAIL FROM:<> SIZE=10 BODY=8BITMIME RET=HDRS ENVID=x+2B\r\n",
    b"MAIL FROM:<a@example.test> BODY=BINARYMIME\r\n",
    "MAIL FROM:<jörg@example.test> SMTPUTF8\r\n".encode(),
    b"MAIL FROM:<a@example.test> AUTH=<>\r\n",
    b"RCPT TO:<b@example.test>\r\n",
    b"RCPT TO:<postmaster>\r\n",
    b"RCPT TO:<b@example.test> NOTIFY=SUCCESS ORCPT=rfc822;b@example.test\r\n",
    b'RCPT TO:<"q u"@[IPv6:2001:db8::1]>\r\n',
    "RCPT TO:<δ@example.test>\r\n".encode(),
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT 0 LAST\r\n",
    b"BDAT 99999999\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"VRFY bob\r\n",
    b"EXPN staff\r\n",
    b"HELP\r\n",
    b"TURN\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
    b"AUTH LOGIN\r\n",
    b"AUTH CRAM-MD5\r\n",
    b"AUTH SCRAM-SHA-256\r\n",
    b"AGJvYgBzZWNyZXQ=\r\n",
    base64.b64encode(b"n,,n=user,r=abc") + b"\r\n",
    base64.b64encode(b"c=biws,r=abcn0nce,p=AAAA") + b"\r\n",
    base64.b64encode(b"bob 0123456789abcdef0123456789abcdef") + b"\r\n",
    b"=\r\n",
    b"*\r\n",
    b"\r\n.\r\n",
    b".\r\n",
    b"..\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"\x00",
    b"\xff",
    b" ",
    b"x" * 70,
    b"y" * 1300,
]

_piece = st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12))
streams = st.lists(_piece, max_size=40).map(b"".join)


@dataclass(frozen=True)
class Scenario:
    settings: SessionSettings
    tls: bool
    greeting: Reply
    # per reply-needing event: 0 accept, 1 refuse, 2 answer 421, 3 close unasked (421)
    decisions: tuple[int, ...]


scenarios = st.builds(
    Scenario,
    settings=st.sampled_from(SETTINGS),
    tls=st.booleans(),
    greeting=st.sampled_from(
        [replies.GREETING(hostname=HOST)] * 4 + [replies.NO_SMTP_SERVICE(hostname=HOST)]
    ),
    decisions=st.lists(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]), max_size=30).map(tuple),
)


def _refusal(event: Event) -> Reply | None:
    if isinstance(event, MailFrom | RcptTo):
        return replies.LOCAL_ERROR()
    if isinstance(event, DataCommand):
        return replies.NO_VALID_RECIPIENTS()
    if isinstance(event, MessageComplete | ChunkReceived):
        return replies.STORAGE_FULL()
    if isinstance(event, Authenticate):
        return replies.AUTH_INVALID_CREDENTIALS()
    if isinstance(event, StartTLS):
        return replies.TLS_NOT_AVAILABLE()
    return None


def decide(event: Event, decision: int) -> Reply:
    if decision == 2:
        return replies.SHUTTING_DOWN(hostname=HOST)
    if decision == 1 and (refusal := _refusal(event)) is not None:
        return refusal
    if isinstance(event, MessageComplete):
        return replies.MESSAGE_ACCEPTED(queue_id="Q1")
    if isinstance(event, Authenticate):
        return replies.AUTH_SUCCEEDED()
    assert event.reply is not None, event
    return event.reply


@dataclass
class Outcome:
    replies: list[bytes] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    events: list[str] = field(default_factory=list)  # event types, MessageData left out
    state: State | None = None  # the connection's state after EOF


def pieces(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length) into non-empty pieces."""
    if not data:
        return []
    points = sorted({0, len(data), *(c % len(data) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def play(scenario: Scenario, data_pieces: Sequence[bytes]) -> Outcome:
    """Feed the pieces, then EOF, answering every event; any exception propagates."""
    conn = ServerConnection(scenario.settings, client_address="192.0.2.1", tls=scenario.tls)
    outcome = Outcome()
    outcome.replies.append(conn.greet(scenario.greeting))
    answered = 0
    for piece in [*data_pieces, b""]:
        conn.receive_data(piece)
        while True:
            event = conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                break
            assert isinstance(event, Event)
            if isinstance(event, MessageData):
                outcome.body += event.data
                continue
            outcome.events.append(type(event).__name__)
            if isinstance(event, AuthSecretNeeded):
                conn.send_auth_secret(SECRET if event.username == "user" else None)
                continue
            if not event.needs_reply:
                continue
            decisions = scenario.decisions
            decision = decisions[answered] if answered < len(decisions) else 0
            answered += 1
            if decision == 3:  # the server gives up on the session (idle, shutdown)
                outcome.replies.append(conn.close(replies.IDLE_TIMEOUT(hostname=HOST)))
                continue
            outcome.replies.append(conn.send(decide(event, decision)))
    outcome.state = conn.state
    return outcome


def check_reply(wire: bytes, *, enhanced: bool) -> Reply:
    """The rules every reply mailroom sends keeps (RFC 5321 §4.2, §4.5.3.1.5; RFC 3463;
    RFC 2034); returns the parsed reply."""
    assert wire.endswith(b"\r\n"), wire
    assert wire.isascii(), wire
    lines = wire[:-2].split(b"\r\n")
    assert all(len(line) + 2 <= 512 for line in lines), wire
    reply = Reply.parse(wire)  # one well-formed reply, class-consistent
    if reply.status is not None:
        assert reply.status.is_registered, wire
        assert reply.status.status_class == reply.code // 100, wire
        assert enhanced, wire
    elif enhanced:
        # RFC 2034 §3: only the greeting, EHLO/HELO replies and class 3 go without one.
        first = lines[0]
        assert reply.code // 100 == 3 or b"Hello" in first or first.startswith(b"220 "), wire
    return reply
