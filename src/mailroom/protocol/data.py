"""The message data readers: DATA (dot-stuffed, ended by ``<CRLF>.<CRLF>``) and BDAT chunks.

Both stream: they hand out what they can as soon as it arrives and never hold a message. Both
count the size as they go and, past the limit, keep reading but discard. Both measure the
header section (up to the first empty line), so that one past its limit can be refused at
the end: every part that reads a header then reads a bounded one. Both watch the line
endings and line lengths, so that a message with a bare CR or LF (the stuff of SMTP smuggling)
or an overlong line can be refused at its end, and NUL octets, which RFC 5322 §2.3 forbids in
a message (a next hop that strips them could see a ``.`` line where there was none).

End of data is only ever ``<CRLF>.<CRLF>`` (RFC 5321 §4.1.1.4). ``<LF>.<LF>``, ``<LF>.<CRLF>``,
``<CR>.<CR>`` or ``<CRLF><NUL>.<CRLF>`` are message content, never an end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ChunkReader", "DotReader", "LineChecker", "MessageStream", "ReadResult"]

_END = b"\r\n.\r\n"
_STUFFED = b"\r\n."
# The suffixes of a buffer that could be the start of an end marker: held back until more
# data shows what they are.
_MARKER_PREFIXES = (b"\r\n.\r", b"\r\n.", b"\r\n", b"\r")
_ANY_LINE_ENDING = re.compile(rb"\r\n|\r|\n")
# The empty line that ends a header section: after a CRLF or a bare LF (bare ones are refused
# or made CRLF, but the header's end is found either way).
_EMPTY_LINE = re.compile(rb"\n\r?\n")


class LineChecker:
    """Watches a byte stream, fed in pieces, for bare CR, bare LF, NUL and overlong lines."""

    __slots__ = (
        "_line_length",
        "_pending_cr",
        "bare_cr",
        "bare_lf",
        "check_length",
        "max_line",
        "nul",
        "too_long",
    )

    def __init__(self, max_line: int, *, check_length: bool = True) -> None:
        self.max_line = max_line  # octets including the CRLF, as RFC 5321 §4.5.3.1.6 counts
        self.check_length = check_length
        self.bare_cr = False
        self.bare_lf = False
        self.too_long = False
        self.nul = False
        self._pending_cr = False
        self._line_length = 0

    @property
    def bare_line_ending(self) -> bool:
        return self.bare_cr or self.bare_lf

    def feed(self, data: bytes) -> None:
        if not data:
            return
        body = data
        if self._pending_cr:
            # A CR that ended the previous piece pairs with an LF that starts this one.
            if data[0] == 0x0A:
                body = data[1:]
            else:
                self.bare_cr = True
        self._pending_cr = data[-1] == 0x0D
        if self._pending_cr:
            body = body[:-1]  # held: it may pair with an LF that starts the next piece
        if not (self.bare_cr and self.bare_lf):
            # Without its CRLFs, whatever CR or LF is left was bare. (Removing a CRLF never
            # makes one: a CR followed by an LF is always matched where the CR stands.) Each
            # scan is one pass in C; counting each kind of octet took three slower ones.
            rest = body.replace(b"\r\n", b"") if 0x0D in body else body
            if 0x0D in rest:
                self.bare_cr = True
            if 0x0A in rest:
                self.bare_lf = True
        # Integers, not b"\0": a bytes operand makes ``in`` try it as an integer first, and
        # raise and clear a TypeError, on every call.
        if not self.nul and 0 in data:
            self.nul = True
        if self.check_length and not self.too_long:
            self._check_length(data)

    def _check_length(self, data: bytes) -> None:
        # Lines are measured between LFs, so the CR of a CRLF counts: content + CR <= max - 1.
        limit = self.max_line - 1
        first = data.find(0x0A)
        if first < 0:
            self._line_length += len(data)
        else:
            last = data.rfind(0x0A)
            longest = self._line_length + first
            # Only split the middle when it is long enough to hold an overlong line at all.
            if last - first - 1 > limit:
                longest = max(longest, *map(len, data[first + 1 : last].split(b"\n")))
            self._line_length = len(data) - last - 1
            if longest > limit:
                self.too_long = True
        if self._line_length > limit:
            self.too_long = True

    def finish(self) -> None:
        if self._pending_cr:
            self.bare_cr = True
            self._pending_cr = False


class MessageStream:
    """What happens to message content on its way out of a reader, shared by the DATA reader
    and by all the BDAT chunks of one message: line checks, optional normalisation of bare
    line endings to CRLF, and size accounting (past the limit nothing more is handed out)."""

    __slots__ = (
        "_header_tail",
        "_held_cr",
        "checker",
        "header_size",
        "header_too_big",
        "max_header",
        "max_size",
        "normalize",
        "over_limit",
        "size",
    )

    def __init__(
        self,
        *,
        max_size: int,
        max_line: int,
        check_lines: bool,
        check_length: bool,
        normalize: bool,
        max_header: int = 0,
    ) -> None:
        self.max_size = max_size  # 0 means no limit
        self.size = 0
        self.over_limit = False
        self.checker = LineChecker(max_line, check_length=check_length) if check_lines else None
        self.normalize = normalize and check_lines
        self._held_cr = False
        self.max_header = max_header  # octets of the header section; 0 means no limit
        self.header_size = 0  # octets of the header section read so far
        self.header_too_big = False
        # The last octets of the header section read, while its end is still to come (None
        # once it came). It starts as a line end: a message that starts with an empty line
        # has an empty header section.
        self._header_tail: bytes | None = b"\n"

    @property
    def bare_line_ending(self) -> bool:
        return self.checker is not None and self.checker.bare_line_ending

    @property
    def line_too_long(self) -> bool:
        return self.checker is not None and self.checker.too_long

    @property
    def nul(self) -> bool:
        """A NUL octet in text content (BINARYMIME content is not checked)."""
        return self.checker is not None and self.checker.nul

    def admit(self, piece: bytes) -> bytes:
        if self.checker is not None:
            self.checker.feed(piece)
            if self.normalize:
                piece = self._normalized(piece)
        if self._header_tail is not None:
            self._measure_header(piece)
        return self._count(piece)

    def _measure_header(self, piece: bytes) -> None:
        tail = self._header_tail
        assert tail is not None
        seen = tail + piece
        end = _EMPTY_LINE.search(seen)
        if end is not None:
            self.header_size += end.start() + 1 - len(tail)  # to its last field's line end
            self._header_tail = None
        else:
            self.header_size += len(piece)
            self._header_tail = seen[-2:]
        if self.max_header and self.header_size > self.max_header:
            self.header_too_big = True
            self._header_tail = None  # no need to look further

    def _normalized(self, piece: bytes) -> bytes:
        # A CR at the end of a piece may be half of a CRLF: keep it until the next piece.
        if self._held_cr:
            piece = b"\r" + piece
            self._held_cr = False
        if piece.endswith(b"\r"):
            piece = piece[:-1]
            self._held_cr = True
        if self.bare_line_ending:
            piece = _ANY_LINE_ENDING.sub(b"\r\n", piece)
        return piece

    def finish(self) -> bytes:
        """The message ended: returns what was still held back."""
        if self.checker is not None:
            self.checker.finish()
        if self._held_cr:
            self._held_cr = False
            return self._count(b"\r\n")
        return b""

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.max_size and self.size > self.max_size:
            self.over_limit = True
        return b"" if self.over_limit else data


@dataclass(slots=True, init=False)
class ReadResult:
    data: bytes  # message content to hand out now (may be empty)
    consumed: int  # octets of the input buffer used up
    done: bool  # the end of the message (or chunk) was reached

    def __init__(self, data: bytes, consumed: int, done: bool) -> None:
        # Compiled, unlike the one @dataclass would write (see parameters.MailParameters).
        self.data = data
        self.consumed = consumed
        self.done = done


class DotReader:
    """Reads what follows a 354 up to ``<CRLF>.<CRLF>``, undoing dot-stuffing."""

    __slots__ = ("_held", "_skip", "stream")

    def __init__(self, stream: MessageStream) -> None:
        # The CRLF that ended the DATA line counts as the start of the data: "DATA\r\n.\r\n"
        # is an empty message. It is held like any other possible marker start, never output.
        self._held = b"\r\n"
        self._skip = 2
        self.stream = stream

    def read(self, buffer: bytes | bytearray) -> ReadResult:
        work = self._held + buffer
        base = len(self._held)  # work[base:] is the caller's buffer
        end = work.find(_END)
        if end >= 0:
            region = work[: end + 2]  # keep the CRLF that ends the last line
            consumed = end + 5 - base
            self._held = b""
        else:
            keep = 0
            for prefix in _MARKER_PREFIXES:
                if work.endswith(prefix):
                    keep = len(prefix)
                    break
            region = work[: len(work) - keep]
            self._held = bytes(work[len(work) - keep :])
            consumed = len(buffer)
        out = bytes(region).replace(_STUFFED, b"\r\n") if region else b""
        if self._skip and out:
            out = out[self._skip :]
            self._skip = 0
        data = self.stream.admit(out) if out else b""
        if end >= 0:
            data += self.stream.finish()
        return ReadResult(data, consumed, end >= 0)


class ChunkReader:
    """Reads the octets of one BDAT chunk into the message's stream."""

    __slots__ = ("last", "remaining", "size", "stream")

    def __init__(self, size: int, last: bool, stream: MessageStream) -> None:
        self.size = size
        self.remaining = size
        self.last = last
        self.stream = stream

    def read(self, buffer: bytes | bytearray) -> ReadResult:
        take = min(self.remaining, len(buffer))
        self.remaining -= take
        data = self.stream.admit(bytes(buffer[:take])) if take else b""
        done = self.remaining == 0
        if done and self.last:
            data += self.stream.finish()
        return ReadResult(data, take, done)
