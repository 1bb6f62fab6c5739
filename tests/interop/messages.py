"""Messages the interop tests send, each exactly as it should lie in the Maildir after the trace
header fields: CRLF line endings, and ending in CRLF, so no client has to change a byte."""

from __future__ import annotations

SENDER = "alice@example.test"
RECIPIENT = "bob@example.test"


def message(subject: str, body: bytes = b"Hello Bob.\r\n", *, extra: bytes = b"") -> bytes:
    return (
        b"From: Alice <alice@example.test>\r\n"
        b"To: Bob <bob@example.test>\r\n"
        b"Subject: " + subject.encode() + b"\r\n"
        b"Message-ID: <"
        + subject.replace(" ", "-").encode()
        + b"@example.test>\r\n"
        + extra
        + b"\r\n"
        + body
    )


# Lines that begin with dots, including one that would end the data if it were not stuffed,
# and the characters of the end-of-data sequence split over lines.
DOT_BODY = (
    b".\r\n"
    b"..\r\n"
    b"...\r\n"
    b".leading dot\r\n"
    b"..two leading dots\r\n"
    b"middle . dot\r\n"
    b" .\r\n"
    b".\r\n"
    b"\r\n"
    b".\r\n"
    b"last line\r\n"
)

UTF8_SENDER = "jörg@exämple.test"
UTF8_RECIPIENT = "zoë@exämple.test"
UTF8_MESSAGE = (
    "From: Jörg <jörg@exämple.test>\r\n"
    "To: Zoë <zoë@exämple.test>\r\n"
    "Subject: Grüße aus Köln ✓\r\n"
    "Message-ID: <utf8@exämple.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Ünïcödé text, 8-bit: \u00e9\u00e8\u00ea, and beyond the BMP: \U0001f4e8.\r\n"
).encode("utf-8")

# 8BITMIME without SMTPUTF8: octets over 127 that are not UTF-8 (ISO-8859-1 here).
LATIN1_MESSAGE = message(
    "latin-1",
    "Gr\u00fc\u00dfe, caf\u00e9, \u00ff\r\n".encode("latin-1"),
    extra=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n",
)
