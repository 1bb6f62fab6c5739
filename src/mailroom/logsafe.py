"""Text from outside (a client's command, an address, a remote server's reply) made fit for one
log line.

Every log call that quotes what a peer sent passes it through :func:`quoted`: controls
(ESC, CR, LF, BEL, C1 codes such as CSI and NEL), line and paragraph separators (U+2028,
U+2029) and every other character Python does not call printable are written as Python writes
them (``\\x1b``, ``\\u2028``), and so is the backslash itself (``\\\\``), so a log line is one
line, says exactly what was sent, and cannot repaint the terminal that shows it.
"""

from __future__ import annotations

__all__ = ["quoted"]


def quoted(value: object) -> str:
    """``value`` as text with every non-printable character and the backslash escaped."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text:
        return text  # the usual case, at the cost of one scan
    return "".join(_escape(char) for char in text)


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
