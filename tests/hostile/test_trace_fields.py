"""What a client names itself in HELO/EHLO goes into the ``Received:`` field mailroom adds. A
name that is no domain (unbalanced parentheses, backslashes, quotes) must not break the field's
structure (RFC 5321 §4.4: ``from`` takes a domain; comments nest and quote ``(``, ``)`` and
``\\``), or a later reader of the trace sees clauses the client wrote."""

from __future__ import annotations

import smtplib

import pytest

from tests.hostile.tools import parse
from tests.live import LiveServer, queue_id_of, stored

HELO_NAMES = [
    "evil)",
    "evil)(by",
    "(evil",
    "ev\\il)",
    'a"b)',
    "x;by",
    "client.example.test",
]


def _comments_balance(text: str) -> bool:
    """Parentheses outside quoted pairs nest properly (RFC 5322 §3.2.2)."""
    depth = 0
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and depth:
            escaped = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


@pytest.mark.parametrize("name", HELO_NAMES)
def test_helo_name_cannot_break_the_received_field(serve, name: str) -> None:
    live: LiveServer = serve()
    client = smtplib.SMTP(*live.smtp, timeout=10)
    code, _ = client.ehlo(name)
    assert code == 250
    client.mail("a@example.test")
    client.rcpt("b@example.test")
    code, reply = client.data(b"Subject: trace\r\n\r\nhello\r\n")
    client.quit()
    assert code == 250
    raw = stored(live.data, queue_id_of(reply.decode()))
    received = " ".join(str(parse(raw)["Received"]).split())
    assert _comments_balance(received), received
    # "from" names a domain: the client's own when it is one, else "unknown" and the name as
    # given inside the comment with the address.
    words = received.split()
    assert words[0] == "from"
    if name == "client.example.test":
        assert received.startswith("from client.example.test ([127.0.0.1])")
    else:
        assert words[1] == "unknown", received
        assert received.startswith("from unknown ([127.0.0.1] helo="), received
    assert received.count(" by mx.test (mailroom) with ESMTP ") == 1
    # The index, rebuilt from the files alone, still knows the message and the name.
    from mailroom.store.reindex import rebuild_index

    assert rebuild_index(live.data) == 1
    [row] = live.mail_server.store.index.list()
    assert (row.helo, row.client_ip) == (name, "127.0.0.1")
