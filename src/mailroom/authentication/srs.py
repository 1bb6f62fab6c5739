"""SRS, the Sender Rewriting Scheme: mail that a local alias forwards off-site leaves with a
sender address in a local domain (``SRS0=HHHH=TT=orig.example=alice@example.test``), so the
next server's SPF check sees this server's domain, and a bounce to that address comes back here
to be decoded and sent on to the original sender.

The scheme is libsrs2's "guarded" one (what postsrsd and Exim speak), from ``srslib``: an
HMAC-SHA1 hash over the address and a day stamp, valid for 21 days, compared without regard to
case. The secret is ``<data>/srs.key`` (made on first use, mode 0600).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import srslib

from mailroom.filemodes import private_dir

__all__ = ["SRS", "load_secret"]


def load_secret(data_dir: Path) -> bytes:
    path = data_dir / "srs.key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    private_dir(data_dir)
    secret = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()  # another process made it first
    with os.fdopen(fd, "wb") as out:
        out.write(secret + b"\n")
    return secret


class SRS:
    def __init__(self, secret: bytes, domain: str) -> None:
        self.domain = domain.lower().rstrip(".")
        self._srs = srslib.SRS(secret)

    def forward(self, sender: str) -> str:
        """The rewritten sender for mail forwarded from ``sender`` (the null sender stays)."""
        if not sender or "@" not in sender:
            return sender
        return str(self._srs.forward(sender, self.domain))

    @staticmethod
    def is_srs(address: str) -> bool:
        local = address.rpartition("@")[0]
        return local[:5].upper() in ("SRS0=", "SRS0-", "SRS0+", "SRS1=", "SRS1-", "SRS1+")

    def reverse(self, address: str) -> str | None:
        """Where a bounce to an SRS address goes; None if it is not one of ours (a bad hash, an
        expired stamp, or not SRS at all)."""
        if not self.is_srs(address):
            return None
        try:
            return str(self._srs.reverse(address))
        except srslib.Error:
            return None
