"""STARTTLS (RFC 3207): offered only before TLS and when configured, plaintext pipelined after
it never executed (CVE-2011-0411), everything forgotten once TLS is up, and TLS required by
policy."""

from __future__ import annotations

import pytest

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol import Event, MailFrom, ProtocolUsageError, StartTLS, State
from tests.protocol import wire as w
from tests.protocol.transcript import Session, default_policy, make_settings, run

TLS = make_settings(tls_available=True)
EHLO_TLS = w.EHLO_OK.replace(b"250-ENHANCED", b"250-STARTTLS\r\n250-ENHANCED")
TLS_ACTIVE = b"503 5.5.1 Error: TLS already active\r\n"


def test_starttls_is_offered_only_when_configured_and_before_tls():
    run([(w.EHLO, EHLO_TLS)], settings=TLS)
    run([(w.EHLO, w.EHLO_OK)], settings=TLS, tls=True)
    run([(w.EHLO, w.EHLO_OK)])


def _start_tls(session: Session, before: bytes, step: int | None) -> bytes:
    out = session.feed(before, step=step)
    assert session.conn.state is State.TLS_PENDING
    return out


@pytest.mark.parametrize("step", [None, 1, 5])
def test_plaintext_after_starttls_is_never_executed(step):
    # CVE-2011-0411: commands injected after STARTTLS in the clear.
    session = Session(TLS)
    assert session.feed(w.EHLO, step=step) == EHLO_TLS
    injected = b"STARTTLS\r\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<victim@example.test>\r\n"
    assert _start_tls(session, injected, step) == w.READY_TLS
    # more plaintext before the handshake completes: dropped as well
    assert session.feed(b"RSET\r\nMAIL FROM:<evil2@example.test>\r\n", step=step) == b""
    session.conn.tls_started()
    assert session.conn.buffered == 0
    assert session.feed(w.RCPT, step=step) == w.NEED_MAIL
    assert session.feed(w.MAIL, step=step) == w.NEED_HELLO
    assert not any(isinstance(e, MailFrom) for e in session.events)
    assert session.feed(w.EHLO, step=step) == w.EHLO_OK
    assert session.feed(w.MAIL, step=step) == w.SENDER_OK


def test_state_is_forgotten_after_the_handshake():
    settings = make_settings(tls_available=True, auth_mechanisms=("CRAM-MD5",))
    session = Session(settings)
    ehlo = EHLO_TLS.replace(b"250-STARTTLS\r\n", b"250-STARTTLS\r\n250-AUTH CRAM-MD5\r\n")
    assert session.feed(w.EHLO) == ehlo
    # a CRAM-MD5 exchange that the accept-all policy takes
    assert session.feed(b"AUTH CRAM-MD5\r\n").startswith(b"334 ")
    assert session.feed(b"Ym9iIDAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm\r\n") == w.AUTH_OK
    assert session.conn.authenticated == "bob"
    assert session.feed(b"STARTTLS\r\n") == w.READY_TLS
    session.conn.tls_started()
    assert session.conn.state is State.NEED_HELLO
    assert (session.conn.hello_domain, session.conn.authenticated) == (None, None)
    assert session.conn.tls_active
    assert session.feed(b"STARTTLS\r\n") == TLS_ACTIVE
    assert session.feed(w.EHLO) == w.EHLO_OK.replace(
        b"250-ENHANCED", b"250-AUTH CRAM-MD5\r\n250-ENHANCED"
    )


@pytest.mark.parametrize(
    "steps",
    [
        [(b"STARTTLS now\r\n", b"501 5.5.4 Syntax: STARTTLS\r\n")],
        [(w.EHLO, EHLO_TLS), (b"STARTTLS now\r\n", b"501 5.5.4 Syntax: STARTTLS\r\n")],
        [(w.EHLO, EHLO_TLS), (w.MAIL, w.SENDER_OK), (b"STARTTLS\r\n", w.IN_TRANSACTION)],
        [(w.HELO, w.HELO_OK), (b"STARTTLS\r\n", w.EHLO_FIRST)],
    ],
    ids=["parameter-before-ehlo", "parameter", "in-transaction", "after-helo"],
)
def test_starttls_refused(steps):
    run([*steps, w.NOOP], settings=TLS)


def test_starttls_before_ehlo_is_accepted():
    session = Session(TLS)
    assert session.feed(b"STARTTLS\r\n") == w.READY_TLS
    session.conn.tls_started()
    assert session.feed(w.EHLO) == w.EHLO_OK


def test_starttls_with_tls_on():
    run([(w.EHLO, w.EHLO_OK), (b"STARTTLS\r\n", TLS_ACTIVE), w.NOOP], settings=TLS, tls=True)


def test_starttls_not_available():
    run(
        [(w.EHLO, w.EHLO_OK), (b"STARTTLS\r\n", w.TLS_NOT_AVAILABLE), w.NOOP, (w.MAIL, w.SENDER_OK)]
    )


def _no_tls_now(event: Event) -> Reply:
    if isinstance(event, StartTLS):
        return replies.TLS_NOT_AVAILABLE()
    return default_policy(event)


def test_starttls_refused_by_policy_changes_nothing():
    session = run(
        [(w.EHLO, EHLO_TLS), (b"STARTTLS\r\n", w.TLS_NOT_AVAILABLE), (w.MAIL, w.SENDER_OK)],
        settings=TLS,
        policy=_no_tls_now,
    )
    assert not session.conn.tls_active


def test_tls_started_out_of_turn():
    session = Session(TLS)
    with pytest.raises(ProtocolUsageError):
        session.conn.tls_started()


REQUIRE = make_settings(tls_available=True, require_tls=True)


@pytest.mark.parametrize(
    "line",
    [
        w.HELO,
        w.MAIL,
        w.RCPT,
        b"DATA\r\n",
        b"RSET\r\n",
        b"VRFY bob\r\n",
        b"EXPN staff\r\n",
        b"HELP\r\n",
        b"AUTH PLAIN\r\n",
        b"BDAT 4 LAST\r\nQUIT",
    ],
)
def test_tls_required_refuses_all_but_noop_ehlo_starttls_quit(line):
    session = run([(w.EHLO, EHLO_TLS), (line, w.TLS_REQUIRED), w.NOOP], settings=REQUIRE)
    assert session.conn.state is State.READY


def test_tls_required_allows_noop_ehlo_starttls_quit():
    run([(b"NOOP\r\n", w.OK), (w.EHLO, EHLO_TLS), (b"QUIT\r\n", w.BYE)], settings=REQUIRE)
    session = Session(REQUIRE)
    assert session.feed(w.EHLO + b"NOOP\r\n" + b"STARTTLS\r\n") == EHLO_TLS + w.OK + w.READY_TLS
    session.conn.tls_started()
    assert session.feed(w.EHLO + w.MAIL + w.RCPT) == w.EHLO_OK + w.SENDER_OK + w.RECIPIENT_OK


def test_tls_required_even_before_ehlo():
    run(
        [(w.MAIL, w.TLS_REQUIRED), (b"FOO\r\n", w.UNKNOWN), (b"STARTTLS\r\n", w.READY_TLS)],
        settings=REQUIRE,
    )


def test_with_tls_required_no_auth_is_offered_before_it():
    settings = make_settings(
        tls_available=True, require_tls=True, auth_mechanisms=("SCRAM-SHA-256", "PLAIN")
    )
    session = Session(settings)
    assert session.feed(w.EHLO) == EHLO_TLS
    starttls_first = b"530 5.7.0 Must issue a STARTTLS command first\r\n"
    assert session.feed(b"AUTH SCRAM-SHA-256\r\n") == starttls_first
    assert session.feed(w.MAIL) == starttls_first
    assert session.feed(b"STARTTLS\r\n") == w.READY_TLS
    session.conn.tls_started()
    assert b"250-AUTH SCRAM-SHA-256 PLAIN\r\n" in session.feed(w.EHLO)
