"""The server side's states and the table of which command may come when.

This file knows nothing of bytes. ``SEQUENCE[verb][state]`` is None where the command is in
sequence, or the catalogue reply that refuses it (RFC 5321 §4.1.4, RFC 3207, RFC 4954,
RFC 3030). Where a command moves the session on, the move happens only when the caller's reply
says so (a 250 to MAIL starts a transaction; a 550 does not): see ``ServerConnection.send``.
"""

from __future__ import annotations

from enum import Enum

from mailroom.codes import catalogue as replies
from mailroom.codes.template import ReplyTemplate

__all__ = ["AUTH_EXEMPT", "NOT_IMPLEMENTED", "SEQUENCE", "TLS_EXEMPT", "State"]


class State(Enum):
    GREETING = "greeting"  # connected; the caller has not sent the greeting yet
    NO_SERVICE = "no service"  # greeted with 554 or 521: only QUIT is answered in kind
    NEED_HELLO = "need hello"  # greeted, or TLS just started: EHLO/HELO expected
    READY = "ready"  # hello done, no mail transaction
    MAIL = "mail"  # MAIL accepted, no recipient accepted yet
    RCPT = "rcpt"  # at least one recipient accepted
    DATA = "data"  # reading message data after 354
    BDAT = "bdat"  # reading the octets of a BDAT chunk
    AUTH = "auth"  # a SASL exchange waits for the client's next response
    TLS_PENDING = "tls pending"  # 220 to STARTTLS sent; the caller runs the handshake
    CLOSED = "closed"  # QUIT answered, 421 sent, or the client went away

    # States are looked up in the sequence table on every command; Enum's own __hash__ is
    # written in Python. Members are singletons compared by identity, so the identity hash
    # of object is the same contract, in C.
    __hash__ = object.__hash__


_IN_TRANSACTION = (State.MAIL, State.RCPT)

SEQUENCE: dict[str, dict[State, ReplyTemplate | None]] = {
    "EHLO": {},
    "HELO": {},
    "MAIL": {
        State.NEED_HELLO: replies.NEED_HELLO,
        State.MAIL: replies.NESTED_MAIL,
        State.RCPT: replies.NESTED_MAIL,
    },
    "RCPT": {State.NEED_HELLO: replies.NEED_MAIL, State.READY: replies.NEED_MAIL},
    "DATA": {
        State.NEED_HELLO: replies.NEED_RCPT,
        State.READY: replies.NEED_RCPT,
        State.MAIL: replies.NEED_RCPT,
    },
    "BDAT": {
        State.NEED_HELLO: replies.EHLO_FIRST,
        State.READY: replies.NEED_RCPT,
        State.MAIL: replies.NEED_RCPT,
    },
    # BURL (RFC 4468) is a BDAT whose chunk is fetched: the same places in a transaction.
    "BURL": {
        State.NEED_HELLO: replies.EHLO_FIRST,
        State.READY: replies.NEED_RCPT,
        State.MAIL: replies.NEED_RCPT,
    },
    "RSET": {},
    "NOOP": {},
    "QUIT": {},
    "HELP": {},
    "VRFY": {},
    "EXPN": {},
    "STARTTLS": {state: replies.TRANSACTION_IN_PROGRESS for state in _IN_TRANSACTION},
    "AUTH": {
        State.NEED_HELLO: replies.EHLO_FIRST,
        **{state: replies.TRANSACTION_IN_PROGRESS for state in _IN_TRANSACTION},
    },
}

# Verbs of SMTP and its extensions that mailroom knows but does not implement: 502, not 500.
NOT_IMPLEMENTED = frozenset(
    {"TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML", "BURL", "XCLIENT", "XFORWARD"}
)

# HTTP methods (RFC 9110 §9, and PATCH): no SMTP verb, and the first line of a browser's
# request when a web page posts a form to an SMTP port (browsers refuse port 25, 465 and 587,
# not 1025 or 2525). The form's body, read line by line, would be SMTP commands that send mail
# as the browser's host: the session ends at the request line instead, as Postfix's
# smtpd_forbidden_commands does.
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

# RFC 3207 §4: with TLS required, every command but these gets 530 5.7.0 before STARTTLS.
TLS_EXEMPT = frozenset({"NOOP", "EHLO", "STARTTLS", "QUIT"})
# RFC 4954 §6: with AUTH required, every command but these gets 530 5.7.0 before AUTH.
# STARTTLS is exempt as well, or a client could never reach mechanisms offered only over TLS.
AUTH_EXEMPT = frozenset({"AUTH", "EHLO", "HELO", "NOOP", "RSET", "QUIT", "STARTTLS"})
