"""Each command in each state: the literal bytes in, the literal reply out.

Every row is played lockstep and pipelined, fed whole and one byte at a time (see
``transcript.run``), and ends with a NOOP to show the session goes on (or, after QUIT, that
nothing more is answered).
"""

from __future__ import annotations

import pytest

from mailroom.codes import catalogue as replies
from mailroom.protocol import (
    PAUSED,
    ConnectionClosed,
    Expand,
    Hello,
    ProtocolUsageError,
    ServerConnection,
    State,
    Verify,
)
from tests.protocol import wire as w
from tests.protocol.transcript import HOST, Session, default_policy, make_settings, run

# How to reach each state, and what the server says on the way.
PREFIXES: dict[str, list[tuple[bytes, bytes]]] = {
    "greeted": [],
    "ehlo": [(w.EHLO, w.EHLO_OK)],
    "helo": [(w.HELO, w.HELO_OK)],
    "mail": [(w.EHLO, w.EHLO_OK), (w.MAIL, w.SENDER_OK)],
    "rcpt": [(w.EHLO, w.EHLO_OK), (w.MAIL, w.SENDER_OK), (w.RCPT, w.RECIPIENT_OK)],
}
STATES = {
    "greeted": State.NEED_HELLO,
    "ehlo": State.READY,
    "helo": State.READY,
    "mail": State.MAIL,
    "rcpt": State.RCPT,
}

HELO_OTHER = b"HELO other.example.test\r\n"
HELO_OTHER_OK = b"250 mx.example.test Hello other.example.test\r\n"
EHLO_OTHER = b"EHLO other.example.test\r\n"
EHLO_OTHER_OK = b"250-mx.example.test Hello other.example.test\r\n" + w.EHLO_KEYWORDS
MAIL2 = b"MAIL FROM:<carol@example.test>\r\n"
RCPT2 = b"RCPT TO:<dave@example.test>\r\n"
BDAT = b"BDAT 5 LAST\r\nhi!\r\n"
VRFY = b"VRFY bob\r\n"
EXPN = b"EXPN staff\r\n"
AUTH = b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"
AUTH_NOT_ENABLED = b"503 5.5.1 Error: authentication not enabled\r\n"
CANNOT_EXPN = b"252 2.5.0 Cannot EXPN list, but will accept message and attempt delivery\r\n"

# (state, client line, reply, state afterwards)
TABLE: list[tuple[str, bytes, bytes, State]] = [
    # HELO and EHLO: accepted in every state; they end any transaction.
    *[(s, HELO_OTHER, HELO_OTHER_OK, State.READY) for s in PREFIXES],
    *[(s, EHLO_OTHER, EHLO_OTHER_OK, State.READY) for s in PREFIXES],
    # MAIL
    ("greeted", MAIL2, w.NEED_HELLO, State.NEED_HELLO),
    ("ehlo", MAIL2, w.SENDER_OK, State.MAIL),
    ("helo", MAIL2, w.SENDER_OK, State.MAIL),
    ("mail", MAIL2, w.NESTED_MAIL, State.MAIL),
    ("rcpt", MAIL2, w.NESTED_MAIL, State.RCPT),
    # RCPT
    ("greeted", RCPT2, w.NEED_MAIL, State.NEED_HELLO),
    ("ehlo", RCPT2, w.NEED_MAIL, State.READY),
    ("helo", RCPT2, w.NEED_MAIL, State.READY),
    ("mail", RCPT2, w.RECIPIENT_OK, State.RCPT),
    ("rcpt", RCPT2, w.RECIPIENT_OK, State.RCPT),
    # DATA (the whole message in the row for the one state that accepts it)
    ("greeted", b"DATA\r\n", w.NEED_RCPT, State.NEED_HELLO),
    ("ehlo", b"DATA\r\n", w.NEED_RCPT, State.READY),
    ("helo", b"DATA\r\n", w.NEED_RCPT, State.READY),
    ("mail", b"DATA\r\n", w.NEED_RCPT, State.MAIL),
    ("rcpt", b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n", w.GO_AHEAD + w.QUEUED, State.READY),
    # BDAT: a refused chunk is read and dropped, never taken for commands
    ("greeted", BDAT, w.EHLO_FIRST, State.NEED_HELLO),
    ("ehlo", BDAT, w.NEED_RCPT, State.READY),
    ("helo", BDAT, w.EHLO_FIRST, State.READY),
    ("mail", BDAT, w.NEED_RCPT, State.MAIL),
    ("rcpt", BDAT, w.QUEUED, State.READY),
    # RSET: always 250; ends the transaction
    ("greeted", b"RSET\r\n", w.OK, State.NEED_HELLO),
    ("ehlo", b"RSET\r\n", w.OK, State.READY),
    ("helo", b"RSET\r\n", w.OK, State.READY),
    ("mail", b"RSET\r\n", w.OK, State.READY),
    ("rcpt", b"RSET\r\n", w.OK, State.READY),
    # NOOP, HELP, VRFY, EXPN: answered alike everywhere, change nothing
    *[(s, b"NOOP\r\n", w.OK, STATES[s]) for s in PREFIXES],
    *[(s, b"NOOP with an argument\r\n", w.OK, STATES[s]) for s in PREFIXES],
    *[(s, b"HELP\r\n", w.HELP, STATES[s]) for s in PREFIXES],
    *[(s, b"HELP MAIL\r\n", w.HELP, STATES[s]) for s in PREFIXES],
    *[(s, VRFY, w.CANNOT_VRFY, STATES[s]) for s in PREFIXES],
    *[(s, EXPN, CANNOT_EXPN, STATES[s]) for s in PREFIXES],
    # STARTTLS with no certificate configured
    *[(s, b"STARTTLS\r\n", w.TLS_NOT_AVAILABLE, STATES[s]) for s in PREFIXES],
    # AUTH with no mechanism configured
    *[(s, AUTH, AUTH_NOT_ENABLED, STATES[s]) for s in PREFIXES],
    # Unknown and unimplemented verbs
    *[(s, b"FOO bar\r\n", w.UNKNOWN, STATES[s]) for s in PREFIXES],
    *[(s, b"TURN\r\n", w.NOT_IMPLEMENTED, STATES[s]) for s in PREFIXES],
]


def _id(row: tuple[str, bytes, bytes, State]) -> str:
    state, line, _, _ = row
    return f"{state}-{line.split(b' ')[0].strip().decode()}"


@pytest.mark.parametrize("row", TABLE, ids=[_id(r) for r in TABLE])
def test_command_in_state(row):
    state, line, reply, after = row
    session = run([*PREFIXES[state], (line, reply), w.NOOP])
    assert session.conn.state is after
    assert not session.conn.closed


@pytest.mark.parametrize("state", list(PREFIXES))
def test_quit_in_every_state(state):
    session = run([*PREFIXES[state], (b"QUIT\r\n", w.BYE), (b"NOOP\r\n", b"")])
    assert session.conn.closed


@pytest.mark.parametrize("state", list(PREFIXES))
def test_verbs_are_case_insensitive(state):
    run([*PREFIXES[state], (b"nOoP\r\n", w.OK), (b"rset\r\n", w.OK), (b"quit\r\n", w.BYE)])


@pytest.mark.parametrize(
    "verb",
    [b"TURN", b"ETRN example.test", b"ATRN", b"SEND FROM:<a@b>", b"SOML", b"SAML", b"BURL x"],
)
def test_known_but_unimplemented_verbs_get_502(verb):
    run([(w.EHLO, w.EHLO_OK), (verb + b"\r\n", w.NOT_IMPLEMENTED), w.NOOP])


@pytest.mark.parametrize(
    "line",
    [b"FOO\r\n", b"MAILFROM:<a@b>\r\n", b"\r\n", b" NOOP\r\n", b"XYZZY plugh\r\n", b"NOOP\tx\r\n"],
)
def test_unknown_verbs_get_500(line):
    run([(w.EHLO, w.EHLO_OK), (line, w.UNKNOWN), w.NOOP])


@pytest.mark.parametrize("line", [b"POST / HTTP/1.1", b"GET /", b"CONNECT a.test:25 HTTP/1.1"])
def test_an_http_request_line_ends_the_session(line):
    """A browser's request (a web page posting a form to the SMTP port): 421, nothing more
    read, whatever the state."""
    http_request = (
        b"421 4.7.0 mx.example.test Error: an HTTP request is not SMTP, closing connection\r\n"
    )
    session = run([(line + b"\r\n", http_request), (w.EHLO, b"")])
    assert session.conn.closed
    session = run([(w.EHLO, w.EHLO_OK), (w.MAIL, w.SENDER_OK), (line + b"\r\n", http_request)])
    assert session.conn.closed


@pytest.mark.parametrize(
    "line",
    [
        # Unicode case mapping must not turn a non-ASCII verb into an SMTP one:
        # "ı".upper() == "I" and "ſ".upper() == "S".
        "maıl FROM:<a@example.test>\r\n".encode(),
        "ſtarttls\r\n".encode(),
        "quıt\r\n".encode(),
    ],
)
def test_verbs_are_ascii_only(line):
    run([(w.EHLO, w.EHLO_OK), (line, w.UNKNOWN), w.NOOP])


def test_arguments_to_commands_that_take_none():
    run(
        [
            (w.EHLO, w.EHLO_OK),
            (b"RSET now\r\n", b"501 5.5.4 Syntax: RSET\r\n"),
            (b"QUIT now\r\n", b"501 5.5.4 Syntax: QUIT\r\n"),
            (w.MAIL, w.SENDER_OK),
            (w.RCPT, w.RECIPIENT_OK),
            (b"DATA now\r\n", b"501 5.5.4 Syntax: DATA\r\n"),
            (b"VRFY\r\n", b"501 5.5.4 Syntax: VRFY user-or-mailbox\r\n"),
            (b"EXPN\r\n", b"501 5.5.4 Syntax: EXPN mailing-list\r\n"),
            (b"QUIT\r\n", w.BYE),
        ]
    )


@pytest.mark.parametrize(
    "line, reply",
    [
        (b"EHLO\r\n", b"501 5.5.4 Syntax: EHLO hostname\r\n"),
        (b"HELO\r\n", b"501 5.5.4 Syntax: HELO hostname\r\n"),
        (b"EHLO   \r\n", b"501 5.5.4 Syntax: EHLO hostname\r\n"),
        ("EHLO bücher.example\r\n".encode(), b"501 5.5.4 Syntax: EHLO hostname\r\n"),
        # RFC 5321 §4.1.4: a server must not refuse a HELO/EHLO for a name that does not
        # resolve or look right: bare names, underscores and address literals pass.
        (b"EHLO [192.0.2.1]\r\n", b"250-mx.example.test Hello [192.0.2.1]\r\n" + w.EHLO_KEYWORDS),
        (
            b"EHLO [IPv6:2001:db8::1]\r\n",
            b"250-mx.example.test Hello [IPv6:2001:db8::1]\r\n" + w.EHLO_KEYWORDS,
        ),
        (b"HELO WIN_PC01\r\n", b"250 mx.example.test Hello WIN_PC01\r\n"),
        (b"HELO localhost extra words\r\n", b"250 mx.example.test Hello localhost\r\n"),
        # A name longer than any domain (255 octets) is refused: it would only be echoed back.
        (b"HELO " + b"a" * 256 + b"\r\n", b"501 5.5.4 Syntax: HELO hostname\r\n"),
    ],
)
def test_hello_arguments(line, reply):
    run([(line, reply), w.NOOP])


def test_helo_session_offers_no_extensions():
    run(
        [
            (w.HELO, w.HELO_OK),
            (
                b"MAIL FROM:<a@example.test> SIZE=10\r\n",
                b"555 5.5.4 Unsupported parameter: SIZE\r\n",
            ),
            (
                b"MAIL FROM:<a@example.test> BODY=8BITMIME\r\n",
                b"555 5.5.4 Unsupported parameter: BODY\r\n",
            ),
            (b"AUTH PLAIN\r\n", b"503 5.5.1 Error: authentication not enabled\r\n"),
            (w.MAIL, w.SENDER_OK),
            (w.RCPT, w.RECIPIENT_OK),
            (b"BDAT 3 LAST\r\nabc", w.EHLO_FIRST),
            (b"DATA\r\n.\r\n", w.GO_AHEAD + w.QUEUED),
        ]
    )


def test_greeting():
    assert Session().greeting == w.GREETING


def test_a_whole_session():
    session = run(
        [
            (w.EHLO, w.EHLO_OK),
            (w.MAIL, w.SENDER_OK),
            (w.RCPT, w.RECIPIENT_OK),
            (RCPT2, w.RECIPIENT_OK),
            (b"DATA\r\n", w.GO_AHEAD),
            (b"Subject: hello\r\n\r\nHi Bob.\r\n..\r\n.\r\n", w.QUEUED),
            (MAIL2, w.SENDER_OK),
            (RCPT2, w.RECIPIENT_OK),
            (b"BDAT 6\r\nSubjec", b"250 2.0.0 Ok: 6 octets received\r\n"),
            (b"BDAT 11 LAST\r\nt: x\r\n\r\nx\r\n", w.QUEUED),
            (b"QUIT\r\n", w.BYE),
        ]
    )
    assert session.messages == [
        b"Subject: hello\r\n\r\nHi Bob.\r\n.\r\n",
        b"Subject: x\r\n\r\nx\r\n",
    ]


def test_pipelined_batch_gets_its_replies_in_order():
    # RFC 2920: one batch, every reply in the order of the commands.
    batch = (
        b"MAIL FROM:<a@example.test>\r\n"
        b"RCPT TO:<b@example.test>\r\n"
        b"RCPT TO:<bad@@example.test>\r\n"
        b"RCPT TO:<c@example.test>\r\n"
        b"DATA\r\n"
    )
    session = Session(make_settings())
    assert session.feed(w.EHLO) == w.EHLO_OK
    assert session.feed(batch) == (
        w.SENDER_OK
        + w.RECIPIENT_OK
        + b"501 5.1.3 <bad@@example.test>: Bad recipient address syntax\r\n"
        + w.RECIPIENT_OK
        + w.GO_AHEAD
    )
    assert session.feed(b"x\r\n.\r\nQUIT\r\n") == w.QUEUED + w.BYE


TOO_MANY_ERRORS = b"421 4.7.0 mx.example.test Error: too many errors, closing connection\r\n"
NO_SERVICE = b"503 5.5.1 Error: no SMTP service here, say QUIT\r\n"


NO_MAIL = b"521 5.3.2 mx.example.test does not accept mail\r\n"


@pytest.mark.parametrize(
    "greeting, wire, answer",
    [
        # RFC 5321 §3.1: after 554, 503 to every command but QUIT
        (
            replies.NO_SMTP_SERVICE(hostname=HOST),
            b"554 5.7.1 mx.example.test No SMTP service here\r\n",
            NO_SERVICE,
        ),
        # RFC 7504 §3: after 521, 521 again (or close the connection), never 503
        (replies.NO_MAIL_ACCEPTED(hostname=HOST), NO_MAIL, NO_MAIL),
    ],
)
def test_refusing_greeting_answers_all_but_quit(greeting, wire, answer):
    lines = [
        w.EHLO,
        w.HELO,
        w.MAIL,
        b"NOOP\r\n",
        b"RSET\r\n",
        b"STARTTLS\r\n",
        b"FOO\r\n",
        b"x" * 3000 + b"\r\n",
    ]
    session = run(
        [*((line, answer) for line in lines), (b"quit\r\n", w.BYE), (w.EHLO, b"")],
        greeting_reply=greeting,
    )
    assert session.greeting == wire
    assert session.conn.closed


def test_refusing_greeting_still_counts_bad_commands():
    settings = make_settings(max_bad_commands=3)
    session = run(
        [
            (w.EHLO, NO_SERVICE),
            (w.EHLO, NO_SERVICE),
            (w.EHLO, NO_SERVICE),
            (w.EHLO, TOO_MANY_ERRORS),
        ],
        settings=settings,
        greeting_reply=replies.NO_SMTP_SERVICE(hostname=HOST),
    )
    assert session.conn.closed


def test_421_greeting_closes_at_once():
    session = Session(make_settings(), greeting_reply=replies.TOO_MANY_CONNECTIONS(hostname=HOST))
    assert (
        session.greeting
        == b"421 4.7.0 mx.example.test Error: too many connections, try again later\r\n"
    )
    assert session.conn.closed
    assert session.feed(w.EHLO) == b""


def test_greeting_is_sent_once():
    session = Session(make_settings())
    with pytest.raises(ProtocolUsageError):
        session.conn.greet(replies.GREETING(hostname=HOST))


def test_nothing_is_read_before_the_greeting():
    conn = ServerConnection(make_settings())
    conn.receive_data(w.EHLO)
    assert conn.next_event() is PAUSED
    conn.greet(replies.GREETING(hostname=HOST))
    assert isinstance(conn.next_event(), Hello)


def test_without_enhanced_status_codes():
    settings = make_settings(enhanced_status_codes=False)
    ehlo = w.EHLO_OK.replace(b"250-ENHANCEDSTATUSCODES\r\n", b"")
    run(
        [
            (w.EHLO, ehlo),
            (w.MAIL, b"250 Ok\r\n"),
            (w.MAIL, b"503 Error: nested MAIL command\r\n"),
            (w.RCPT, b"250 Ok\r\n"),
            (b"DATA\r\n", w.GO_AHEAD),
            (b".\r\n", b"250 Ok: queued as Q1\r\n"),
            (b"QUIT\r\n", b"221 Bye\r\n"),
        ],
        settings=settings,
    )


def test_enhanced_codes_in_helo_sessions_too():
    # RFC 2034 allows them and they are harmless; mailroom sends the same replies to HELO.
    run([(w.HELO, w.HELO_OK), (w.MAIL, w.SENDER_OK), (b"FOO\r\n", w.UNKNOWN)])


def test_eof_closes():
    session = Session(make_settings())
    assert session.feed(w.EHLO + w.MAIL + b"RCPT TO:<half") == w.EHLO_OK + w.SENDER_OK
    assert session.close() == b""
    assert isinstance(session.events[-1], ConnectionClosed)
    assert session.conn.closed
    # once only
    assert session.conn.next_event() is PAUSED


def test_reply_out_of_turn():
    session = Session(make_settings())
    with pytest.raises(ProtocolUsageError):
        session.conn.send(replies.NOOP_OK())


@pytest.mark.parametrize(
    "reply, wire",
    [
        (
            replies.IDLE_TIMEOUT(hostname=HOST),
            b"421 4.4.2 mx.example.test Error: timeout exceeded, closing connection\r\n",
        ),
        (
            replies.SHUTTING_DOWN(hostname=HOST),
            b"421 4.3.2 mx.example.test Service shutting down, closing transmission channel\r\n",
        ),
        (
            replies.TLS_HANDSHAKE_FAILED(hostname=HOST),
            b"421 4.7.0 mx.example.test Error: TLS handshake failed, closing connection\r\n",
        ),
    ],
    ids=["idle", "shutdown", "tls"],
)
@pytest.mark.parametrize(
    "pending", [b"", b"MAIL FROM:<a@example.test>\r\n", b"DATA\r\npart of a mess"]
)
def test_server_initiated_close(reply, wire, pending):
    session = Session(make_settings())
    session.feed(w.EHLO + w.MAIL + w.RCPT)
    conn = session.conn
    if pending:
        conn.receive_data(pending)  # read, maybe waiting for a reply, but not answered
    conn.next_event()
    assert conn.close(reply) == wire
    assert conn.closed
    assert session.feed(b"NOOP\r\n") == b""
    assert [type(e) for e in session.events[-1:]] == [ConnectionClosed]
    assert conn.close(reply) == b""


def test_server_closes_only_with_421():
    with pytest.raises(ProtocolUsageError):
        Session(make_settings()).conn.close(replies.BYE())


HELLO_LINE = b"250-mx.example.test Hello client.example.test\r\n"


@pytest.mark.parametrize(
    "changes, tls, keywords",
    [
        ({}, False, w.EHLO_KEYWORDS),
        (
            {"tls_available": True, "auth_mechanisms": ("PLAIN", "LOGIN", "CRAM-MD5")},
            False,
            b"250-PIPELINING\r\n250-SIZE 52428800\r\n250-STARTTLS\r\n250-AUTH CRAM-MD5\r\n"
            b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
            b"250-CHUNKING\r\n250 BINARYMIME\r\n",
        ),
        (
            {"tls_available": True, "auth_mechanisms": ("PLAIN", "LOGIN", "CRAM-MD5")},
            True,
            b"250-PIPELINING\r\n250-SIZE 52428800\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
            b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
            b"250-CHUNKING\r\n250 BINARYMIME\r\n",
        ),
        (
            {
                "auth_mechanisms": ("PLAIN",),
                "auth_plaintext_without_tls": True,
                "max_message_size": 0,
            },
            False,
            b"250-PIPELINING\r\n250-SIZE\r\n250-AUTH PLAIN\r\n250-ENHANCEDSTATUSCODES\r\n"
            b"250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 BINARYMIME\r\n",
        ),
        (
            {"binarymime": False, "dsn": False, "pipelining": False},
            False,
            b"250-SIZE 52428800\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
            b"250 CHUNKING\r\n",
        ),
        # BINARYMIME needs 8BITMIME as well as CHUNKING (RFC 3030 §3)
        (
            {"eightbitmime": False, "smtputf8": False, "size": False},
            False,
            b"250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 CHUNKING\r\n",
        ),
    ],
    ids=["default", "tls-offered", "over-tls", "plaintext-allowed", "fewer", "no-8bitmime"],
)
def test_ehlo_keywords(changes, tls, keywords):
    run([(w.EHLO, HELLO_LINE + keywords)], settings=make_settings(**changes), tls=tls)


@pytest.mark.parametrize(
    "changes, tls, listed",
    [
        ({}, False, b""),
        (
            {"tls_available": True, "auth_mechanisms": ("PLAIN", "CRAM-MD5")},
            False,
            b" STARTTLS AUTH",
        ),
        # over TLS, STARTTLS is no longer a command to give
        ({"tls_available": True, "auth_mechanisms": ("PLAIN",)}, True, b" AUTH"),
        # PLAIN alone is not offered in the clear: no AUTH to list
        ({"tls_available": True, "auth_mechanisms": ("PLAIN",)}, False, b" STARTTLS"),
        ({"chunking": False, "burl": ("imap",)}, False, b" BURL"),
    ],
    ids=["default", "tls-offered", "over-tls", "no-mechanism-yet", "burl"],
)
def test_help_lists_the_commands_offered_now(changes, tls, listed):
    verbs = (
        b"HELO EHLO MAIL RCPT DATA BDAT"
        if changes.get("chunking", True)
        else b"HELO EHLO MAIL RCPT DATA"
    )
    help_ = b"214 2.0.0 Commands: " + verbs + b" RSET NOOP QUIT VRFY EXPN HELP" + listed + b"\r\n"
    run([(b"HELP\r\n", help_)], settings=make_settings(**changes), tls=tls)


def test_ehlo_with_no_extension_at_all():
    settings = make_settings(
        pipelining=False,
        size=False,
        eightbitmime=False,
        smtputf8=False,
        enhanced_status_codes=False,
        chunking=False,
        dsn=False,
    )
    run(
        [
            (w.EHLO, b"250 mx.example.test Hello client.example.test\r\n"),
            (b"NOOP\r\n", b"250 Ok\r\n"),
        ],
        settings=settings,
    )


def _verifying_policy(event):
    if isinstance(event, Verify):
        if event.argument == "bob":
            return replies.VERIFIED(address="Bob <bob@example.test>")
        return replies.VERIFY_UNKNOWN(address=f"<{event.argument}>")
    if isinstance(event, Expand):
        return replies.EXPAND_DISABLED()
    return default_policy(event)


def test_vrfy_and_expn_answers_come_from_policy():
    run(
        [
            (b"VRFY bob\r\n", b"250 2.1.5 Bob <bob@example.test>\r\n"),
            (b"VRFY eve\r\n", b"550 5.1.1 <eve>: Recipient address rejected: User unknown\r\n"),
            (b"EXPN staff\r\n", b"502 5.5.1 Error: EXPN command is disabled\r\n"),
        ],
        policy=_verifying_policy,
    )
