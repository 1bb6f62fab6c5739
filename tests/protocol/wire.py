"""Literal client lines and server replies that many transcripts share."""

from __future__ import annotations

EHLO = b"EHLO client.example.test\r\n"
HELO = b"HELO client.example.test\r\n"
MAIL = b"MAIL FROM:<alice@example.test>\r\n"
RCPT = b"RCPT TO:<bob@example.test>\r\n"

GREETING = b"220 mx.example.test ESMTP mailroom\r\n"
EHLO_KEYWORDS = (
    b"250-PIPELINING\r\n"
    b"250-SIZE 52428800\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-8BITMIME\r\n"
    b"250-DSN\r\n"
    b"250-SMTPUTF8\r\n"
    b"250-CHUNKING\r\n"
    b"250 BINARYMIME\r\n"
)
EHLO_OK = b"250-mx.example.test Hello client.example.test\r\n" + EHLO_KEYWORDS
HELO_OK = b"250 mx.example.test Hello client.example.test\r\n"
SENDER_OK = b"250 2.1.0 Ok\r\n"
RECIPIENT_OK = b"250 2.1.5 Ok\r\n"
GO_AHEAD = b"354 End data with <CR><LF>.<CR><LF>\r\n"
QUEUED = b"250 2.0.0 Ok: queued as Q1\r\n"
OK = b"250 2.0.0 Ok\r\n"
BYE = b"221 2.0.0 Bye\r\n"
HELP = b"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP\r\n"
CANNOT_VRFY = b"252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"

NEED_HELLO = b"503 5.5.1 Error: send HELO/EHLO first\r\n"
NESTED_MAIL = b"503 5.5.1 Error: nested MAIL command\r\n"
NEED_MAIL = b"503 5.5.1 Error: need MAIL command\r\n"
NEED_RCPT = b"503 5.5.1 Error: need RCPT command\r\n"
EHLO_FIRST = b"503 5.5.1 Error: send EHLO first\r\n"
IN_TRANSACTION = b"503 5.5.1 Error: MAIL transaction in progress\r\n"
UNKNOWN = b"500 5.5.1 Error: command not recognized\r\n"
NOT_IMPLEMENTED = b"502 5.5.1 Error: command not implemented\r\n"
LINE_TOO_LONG = b"500 5.5.2 Error: line too long (limit 512 octets)\r\n"
BAD_CHARACTERS = (
    b"500 5.5.2 Error: command holds NUL, bare CR/LF or bytes that are not valid here\r\n"
)
TOO_BIG = b"552 5.3.4 Error: message exceeds fixed maximum message size\r\n"
BARE_LINE_ENDING = (
    b"554 5.6.0 Error: bare <CR> or <LF> in message data (see RFC 5321 section 2.3.8)\r\n"
)
NUL_IN_DATA = (
    b"554 5.6.0 Error: NUL character in message data (declare BODY=BINARYMIME for binary "
    b"content)\r\n"
)
TLS_REQUIRED = b"530 5.7.0 Must issue a STARTTLS command first\r\n"
TLS_NOT_AVAILABLE = b"454 4.7.0 TLS not available due to temporary reason\r\n"
READY_TLS = b"220 2.0.0 Ready to start TLS\r\n"
AUTH_OK = b"235 2.7.0 Authentication successful\r\n"
AUTH_REQUIRED = b"530 5.7.0 Authentication required\r\n"
NOOP = (b"NOOP\r\n", OK)
