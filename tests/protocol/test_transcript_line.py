"""ServerConnection.last_line: the command as a transcript shows it, secrets redacted."""

from mailroom.protocol import SessionSettings
from tests.protocol.transcript import Session

AUTH = SessionSettings(
    hostname="mx.example.test",
    auth_mechanisms=("PLAIN", "LOGIN"),
    auth_plaintext_without_tls=True,
)


def test_plain_command_lines_are_shown_as_sent():
    session = Session()
    session.feed(b"EHLO client.example.test\r\n")
    assert session.conn.last_line == "EHLO client.example.test"
    session.feed(b"MAIL FROM:<a@example.test> SIZE=10\r\n")
    assert session.conn.last_line == "MAIL FROM:<a@example.test> SIZE=10"


def test_auth_initial_response_and_sasl_responses_are_redacted():
    session = Session(settings=AUTH)
    session.feed(b"EHLO c\r\n")
    session.feed(b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n")
    assert session.conn.last_line == "AUTH PLAIN <redacted>"
    assert "AGJv" not in session.conn.last_line
    session = Session(settings=AUTH)
    session.feed(b"EHLO c\r\nAUTH LOGIN\r\n")
    assert session.conn.last_line == "AUTH LOGIN"
    session.feed(b"Ym9i\r\n")
    assert session.conn.last_line == "<redacted>"
    session.feed(b"*\r\n")
    assert session.conn.last_line == "*"


def test_control_bytes_are_escaped_and_long_lines_cut():
    session = Session()
    session.feed(b"NOOP \x01 hi\xff\r\n")
    assert session.conn.last_line == "NOOP \\x01 hi\\xff"
    session.feed(b"NOOP " + b"x" * 2000 + b"\r\n")
    assert session.conn.last_line.startswith("NOOP x")
    assert session.conn.last_line.endswith("... (too long)")
    assert len(session.conn.last_line) < 100
