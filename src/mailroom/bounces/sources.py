"""Where bounces come from: one message, an mbox, a Maildir, a directory of message files, or
standard input — each message once, as bytes with the name of where it was found.

- A directory with ``cur``/``new`` is a Maildir: the messages in ``new`` and ``cur`` (not
  ``tmp``, where files are still being written), each file once.
- Another directory: every file in it and below, each read as a message or an mbox.
- A file (or standard input) that starts with an mbox ``From`` line is an mbox (mboxo and
  mboxrd: ``>From`` quoting is undone for the mboxrd lines it marks); otherwise one message.

A message is handed on as its first bytes, as many as the reader reads, and an mbox is read
line by line: a mailbox of several gigabytes takes no more memory than its largest message's
first megabyte.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["messages"]

_FROM_LINE = re.compile(rb"^From \S*.*$")
_QUOTED_FROM = re.compile(rb"^>(>*From )")
# How much of a line is read at once: a line longer than this comes in pieces.
_PIECE = 64 * 1024
_MBOX_PEEK = 1000


def _looks_like_mbox(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    return bool(_FROM_LINE.match(first)) and not first.startswith(b"From: ")


def _lines(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """The stream's lines, each as pieces of at most ``_PIECE`` bytes, with whether the piece
    begins a line (so that a 1 GB line never has to be held whole)."""
    begins = True
    while piece := stream.readline(_PIECE):
        yield piece, begins
        begins = piece.endswith(b"\n")


class _Message:
    """One message of an mbox as it is read: its first ``limit`` bytes (the line that
    crosses the limit whole), and whether anything after them was left out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: list[bytes] = []
        self.size = 0
        self.cut = False

    def add(self, line: bytes) -> None:
        if self.size >= self.limit:
            self.cut = True
            return
        self.lines.append(line)
        self.size += len(line)

    def finish(self) -> bytes:
        lines = self.lines
        # The blank line before the next "From " belongs to the separator: left out when it
        # is the message's last line (and, when the message was cut, it is not among these).
        if not self.cut and lines and lines[-1].strip() == b"":
            lines = lines[:-1]
        return b"".join(lines)


def _split_mbox(stream: BinaryIO, name: str, limit: int) -> Iterator[tuple[str, bytes]]:
    """The messages of an mbox, read as a stream: a ``From `` line after a blank line (or at
    the start) begins a message; the blank line before it belongs to the separator."""
    current: _Message | None = None
    count = 0
    previous_blank = True
    in_separator = False  # the rest of a ``From `` line longer than one piece
    for piece, begins in _lines(stream):
        if not begins:
            if not in_separator and current is not None:
                current.add(piece)
            previous_blank = False
            continue
        in_separator = False
        bare = piece.rstrip(b"\r\n")
        if previous_blank and bare.startswith(b"From ") and _FROM_LINE.match(bare):
            if current is not None and current.lines:
                count += 1
                yield f"{name}#{count}", current.finish()
            current = _Message(limit)
            previous_blank = False
            in_separator = not piece.endswith(b"\n")
            continue
        if current is None:
            current = _Message(limit)
        current.add(_QUOTED_FROM.sub(rb"\1", piece))
        previous_blank = bare == b""
    if current is not None and current.lines:
        count += 1
        yield f"{name}#{count}", current.finish()


def _messages_in_stream(stream: BinaryIO, name: str, limit: int) -> Iterator[tuple[str, bytes]]:
    """The messages in ``stream``: an mbox's, or the stream as one message (its first
    ``limit`` bytes)."""
    head = stream.read(_MBOX_PEEK)
    rest = io.BufferedReader(_Joined(head, stream)) if head else stream
    if _looks_like_mbox(head):
        yield from _split_mbox(rest, name, limit)
        return
    data = rest.read(limit)
    if data.strip():
        yield name, data


class _Joined(io.RawIOBase):
    """``head`` (bytes already read from ``stream``) followed by the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _file_messages(path: Path, limit: int) -> Iterator[tuple[str, bytes]]:
    with path.open("rb") as stream:
        yield from _messages_in_stream(stream, str(path), limit)


def _maildir(path: Path, limit: int) -> Iterator[tuple[str, bytes]]:
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
            with entry.open("rb") as message:
                yield str(entry), message.read(limit)


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def messages(source: str | os.PathLike[str] | BinaryIO, limit: int) -> Iterator[tuple[str, bytes]]:
    """Every message in ``source`` (a path, ``"-"`` for standard input, or a binary file),
    each as its first ``limit`` bytes or more (the reader reads no further): an mbox is read
    as a stream, so its size does not bound what it takes in memory."""
    if not isinstance(source, str | os.PathLike):
        yield from _messages_in_stream(source, getattr(source, "name", "-") or "-", limit)
        return
    if str(source) == "-":
        import sys

        yield from _messages_in_stream(sys.stdin.buffer, "-", limit)
        return
    path = Path(source)
    if path.is_dir():
        if _is_maildir(path):
            yield from _maildir(path, limit)
            return
        for root, directories, files in os.walk(path):
            directories.sort()
            here = Path(root)
            if _is_maildir(here):
                yield from _maildir(here, limit)
                directories.clear()
                continue
            for name in sorted(files):
                if name.startswith("."):
                    continue
                yield from _file_messages(here / name, limit)
        return
    yield from _file_messages(path, limit)
