"""Messages whose MIME structure is the attack: very many parts, very deep nesting."""

from __future__ import annotations

__all__ = ["deep", "wide"]


def wide(parts: int, size: int) -> bytes:
    """A message of about ``size`` octets holding ``parts`` small text parts."""
    per = max(8, size // parts - 40)
    body = b"".join(
        b"--b\r\nContent-Type: text/plain\r\n\r\n" + b"p%07d " % n + b"x" * per + b"\r\n"
        for n in range(parts)
    )
    return (
        b"From: bomb@example.test\r\nTo: victim@example.test\r\nSubject: wide\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + body
        + b"--b--\r\n"
    )


def deep(levels: int) -> bytes:
    """A message of ``levels`` multiparts, each inside the one before."""
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (n, n)
        for n in range(levels)
    )
    tail = b"".join(b"\r\n--b%d--\r\n" % n for n in reversed(range(levels)))
    return (
        b"From: bomb@example.test\r\nTo: victim@example.test\r\nSubject: deep\r\n"
        b"MIME-Version: 1.0\r\n" + head + b"Content-Type: text/plain\r\n\r\nthe bottom" + tail
    )
