"""Rebuild the index from the Maildirs alone (``mailroom reindex``)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from mailroom.sqlite_files import set_aside
from mailroom.store.headers import summarize_headers, trace_fields
from mailroom.store.ids import queue_id_time
from mailroom.store.index import DamagedIndex, Index, IndexRow
from mailroom.store.tags import tags_from_header

__all__ = ["rebuild_index", "scan_maildirs"]

_RECEIVED = re.compile(
    r"from (?P<helo>\S+) \(\[(?:IPv6:)?(?P<ip>[^\]]*)\]"
    # A HELO name that is no domain is kept, quoted, in the comment (envelope._from_clause).
    r"(?: helo=(?P<quoted_helo>(?:[^()\\]|\\.)*))?\)"
    r"(?: \(Authenticated sender: (?P<auth>(?:[^()\\]|\\.)*)\))?"
    r".*? by \S+ \(mailroom\) with (?P<proto>\S+) id (?P<id>[0-9A-Z]+)"
)
HEAD_BYTES = 65536


def _row(data_dir: Path, path: Path) -> IndexRow | None:
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
    size = path.stat().st_size
    sender = ""
    recipients: list[str] = []
    received = None
    for name, value in trace_fields(head):
        if name == "return-path" and not sender:
            sender = value.strip().removeprefix("<").removesuffix(">")
        elif name == "delivered-to":
            recipients.append(value.strip())
        elif name == "received" and received is None:
            received = _RECEIVED.search(value)
    if received is None:
        return None  # not a message mailroom stored
    queue_id = received["id"]
    summary = summarize_headers(head)
    mailbox_dir = path.parent.parent
    return IndexRow(
        id=queue_id,
        received=queue_id_time(queue_id),
        mailbox=str(mailbox_dir.relative_to(data_dir / "mail")),
        path=str(path.relative_to(data_dir)),
        sender=sender,
        recipients=recipients,
        size=size,
        from_header=summary.from_,
        to_header=summary.to,
        cc_header=summary.cc,
        subject=summary.subject,
        message_id=summary.message_id,
        tags=tags_from_header(summary.x_tags),
        client_ip=received["ip"],
        helo=_unquote(received["quoted_helo"]) or _helo(received["helo"]),
        auth_user=_unquote(received["auth"]),
        tls=_with_tls(received["proto"]),
    )


def _helo(name: str) -> str:
    return "" if name == "unknown" else name  # "unknown": the client said no name


def _unquote(comment: str | None) -> str | None:
    # The quoted pairs of a comment (RFC 5322 §3.2.2), as envelope.py writes them.
    return None if comment is None else re.sub(r"\\(.)", r"\1", comment)


def _with_tls(protocol: str) -> bool:
    # RFC 3848 / RFC 6531: ESMTP or UTF8SMTP, then "S" for TLS, then "A" for AUTH.
    for base in ("UTF8SMTP", "ESMTP"):
        if protocol.startswith(base):
            return protocol[len(base) :].startswith("S")
    return False


def scan_maildirs(data_dir: Path) -> Iterator[IndexRow]:
    mail = data_dir / "mail"
    for sub in ("new", "cur"):
        for path in sorted(mail.glob(f"**/{sub}/*")):
            if path.is_file():
                row = _row(data_dir, path)
                if row is not None:
                    yield row


def rebuild_index(data_dir: Path) -> int:
    """Make the index anew from the Maildirs; the number of messages. A damaged index file is
    set aside (``index.sqlite.damaged-TIME``, with its journals) for whoever wants to look, and
    a new one made in its place."""
    path = data_dir / "index.sqlite"
    index = Index(path)
    try:
        try:
            return index.replace_all(scan_maildirs(data_dir))
        except (DamagedIndex, sqlite3.DatabaseError) as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, disk full: not damage
                raise
            index.close()
            set_aside(path)
            index = Index(path)
            return index.replace_all(scan_maildirs(data_dir))
    finally:
        index.close()
