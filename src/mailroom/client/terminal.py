"""What ``mailroom send`` and ``mailroom sendmail`` share: a swaks-like transcript with each
reply explained in one line, the exit status of a send, and the server and TLS settings.

Exit statuses (sysexits.h):

- 0 — the message was delivered to every recipient;
- 75 ``EX_TEMPFAIL`` — it was not, and every failure was temporary (a 4xx reply, no connection,
  a timeout, a server breaking the protocol): trying again later may work;
- 69 ``EX_UNAVAILABLE`` — at least one failure was permanent (a 5xx reply, a message larger
  than the server takes, a TLS failure): trying again as is will not help.

Usage errors are 2 for ``mailroom send`` (as argparse does) and 64 ``EX_USAGE`` for
``mailroom sendmail`` (as sendmail does).
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from mailroom.client.errors import SendError
from mailroom.codes import ExplainError, Reply, explain
from mailroom.protocol.client import RecipientResult, TraceLine, TransactionResult

__all__ = [
    "EX_OK",
    "EX_TEMPFAIL",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "Transcript",
    "exit_status",
    "parse_server",
    "short_explanation",
    "tls_context",
]

EX_OK = 0
EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75


def short_explanation(reply: Reply) -> str:
    """One line: what the enhanced code (or the basic code) means, and for a refusal what a
    sender does next and why, e.g. ``5.1.1 Bad destination mailbox address; bounce:
    userunknown``."""
    try:
        found = explain(str(reply))
    except ExplainError:
        return f"{reply.code}"
    status = found.status
    standard = [d for d in found.basic.definitions if d.standard] if found.basic else []
    # RFC 5321's words for the basic code, before other RFCs' (220 is also STARTTLS's).
    standard.sort(key=lambda d: not d.reference.startswith("RFC 5321"))
    if (
        status is not None
        and status.entry is not None
        and (status.subject, status.detail) != (0, 0)
    ):
        meaning = f"{status} {status.entry.title}"
    elif standard:
        meaning = f"{reply.code} {standard[0].text}"
    elif found.basic is not None:
        meaning = f"{reply.code} {found.basic.category}"
    else:
        meaning = str(reply.code)
    verdict = found.classification
    if reply.code >= 400 and verdict is not None:
        return f"{meaning}; {verdict.action}: {verdict.reason}"
    return f"{meaning}; {found.action}"


@dataclass
class Transcript:
    """Prints the session as swaks does: ``===`` notes, `` -> `` what we sent, ``<-  `` what
    the server said (``<** `` for refusals), ``~`` instead of ``-`` once TLS is on, and after
    each reply one line that explains it."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    explain_replies: bool = True
    tls: bool = False

    def __call__(self, line: TraceLine) -> None:
        arrow = "~" if self.tls else "-"
        if line.direction == "info":
            if line.text.startswith("TLS started"):
                self.tls = True
            self._print(f"=== {line.text}")
        elif line.direction == "client" or line.direction == "data":
            self._print(f" {arrow}> {line.text}")
        else:
            reply = line.reply
            failed = reply is not None and reply.code >= 400
            prefix = "<**" if failed else f"<{arrow} "
            for text in line.text.split("\n"):
                self._print(f"{prefix} {text}")
            if reply is not None and self.explain_replies:
                self._print(f"    = {short_explanation(reply)}")

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        self._print(f"=== {text}")

    def failure(self, text: str) -> None:
        self._print(f"*** {text}")


def exit_status(*, result: TransactionResult | None = None, error: SendError | None = None) -> int:
    """0, 75 or 69 for the outcome of one send (see the module docstring)."""
    failures: list[bool] = []  # True for each permanent failure
    if error is not None:
        failures.append(error.is_permanent)
    if result is not None:
        failures += [r.is_permanent for r in result.failed]
    if not failures:
        return EX_OK
    return EX_UNAVAILABLE if any(failures) else EX_TEMPFAIL


def describe_failures(failed: Iterable[RecipientResult]) -> list[str]:
    lines = []
    for recipient in failed:
        verdict = recipient.classification
        reply = str(recipient.reply).replace("\n", " / ")
        lines.append(f"{recipient.address}: {reply} ({verdict.action}: {verdict.reason})")
    return lines


def parse_server(text: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``[IPv6]:PORT`` or ``[IPv6]``; raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("empty server")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"not HOST:PORT: {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"not a port: {port_text!r}")
    return host, int(port_text)


def tls_context(*, cafile: Path | None = None, insecure: bool = False) -> ssl.SSLContext:
    """The system's trusted CAs (or ``cafile``) with host name checks; ``insecure`` checks
    nothing, for a test server with a self-signed certificate."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
