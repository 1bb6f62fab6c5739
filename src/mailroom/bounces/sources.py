"""Where bounces come from: one message, an mbox, a Maildir, a directory of message files, or
standard input — each message once, as bytes with the name of where it was found.

- A directory with ``cur``/``new`` is a Maildir: the messages in ``new`` and ``cur`` (not
  ``tmp``, where files are still being written), each file once.
- Another directory: every file in it and below, each read as a message or an mbox.
- A file (or standard input) that starts with an mbox ``From`` line is an mbox (mboxo and
  mboxrd: ``>From`` quoting is undone for the mboxrd lines it marks); otherwise one message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["messages", "messages_in_bytes"]

_FROM_LINE = re.compile(rb"^From \S*.*$")
_QUOTED_FROM = re.compile(rb"^>(>*From )")


def _looks_like_mbox(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    return bool(_FROM_LINE.match(first)) and not first.startswith(b"From: ")


def _split_mbox(data: bytes, name: str) -> Iterator[tuple[str, bytes]]:
    """The messages of an mbox: a ``From `` line after a blank line (or at the start) begins
    a message; the blank line before it belongs to the separator."""
    lines = data.splitlines(keepends=True)
    current: list[bytes] = []
    count = 0
    previous_blank = True
    for line in lines:
        bare = line.rstrip(b"\r\n")
        if previous_blank and bare.startswith(b"From ") and _FROM_LINE.match(bare):
            if current:
                count += 1
                yield f"{name}#{count}", _finish(current)
            current = []
            previous_blank = False
            continue
        current.append(_QUOTED_FROM.sub(rb"\1", line))
        previous_blank = bare == b""
    if current:
        count += 1
        yield f"{name}#{count}", _finish(current)


def _finish(lines: list[bytes]) -> bytes:
    if lines and lines[-1].strip() == b"":
        lines = lines[:-1]  # the separator's blank line
    return b"".join(lines)


def messages_in_bytes(data: bytes, name: str) -> Iterator[tuple[str, bytes]]:
    """The messages in ``data``: an mbox's, or ``data`` itself as one message."""
    if _looks_like_mbox(data[:1000]):
        yield from _split_mbox(data, name)
    elif data.strip():
        yield name, data


def _maildir(path: Path) -> Iterator[tuple[str, bytes]]:
    seen: set[tuple[int, int]] = set()
    for folder in ("new", "cur"):
        directory = path / folder
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            stat = entry.stat()
            if (stat.st_dev, stat.st_ino) in seen:  # the same file linked twice
                continue
            seen.add((stat.st_dev, stat.st_ino))
            yield str(entry), entry.read_bytes()


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def messages(source: str | os.PathLike[str] | BinaryIO) -> Iterator[tuple[str, bytes]]:
    """Every message in ``source`` (a path, ``"-"`` for standard input, or a binary file)."""
    if not isinstance(source, str | os.PathLike):
        data = source.read()
        yield from messages_in_bytes(data, getattr(source, "name", "-") or "-")
        return
    if str(source) == "-":
        import sys

        yield from messages_in_bytes(sys.stdin.buffer.read(), "-")
        return
    path = Path(source)
    if path.is_dir():
        if _is_maildir(path):
            yield from _maildir(path)
            return
        for root, directories, files in os.walk(path):
            directories.sort()
            here = Path(root)
            if _is_maildir(here):
                yield from _maildir(here)
                directories.clear()
                continue
            for name in sorted(files):
                if name.startswith("."):
                    continue
                yield from messages_in_bytes((here / name).read_bytes(), str(here / name))
        return
    yield from messages_in_bytes(path.read_bytes(), str(path))
