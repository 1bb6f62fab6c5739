"""``mailroom sendmail``: a sendmail(8)-compatible entry point, so programs that pipe a message
to ``/usr/sbin/sendmail`` (PHP's mail(), cron, git send-email, mutt) can use mailroom.

It reads the message on stdin and submits it at once to a server: ``--server HOST:PORT``, or
the environment variable ``MAILROOM_SERVER``, or 127.0.0.1:1025 (``mailroom serve``'s
default). There is no local queue: the server's answer is the answer (see the exit statuses
in :mod:`mailroom.client.terminal`; usage errors are 64 ``EX_USAGE``, as sendmail's are).

Options understood, as sendmail and Postfix's sendmail take them:

- ``-t``: recipients from the To, Cc and Bcc headers too (added to those given as arguments);
- ``-i``, ``-oi``: a line with a single dot does not end the message (without them it does);
- ``-f sender`` (or ``-r sender``): the envelope sender; otherwise the From header's address,
  otherwise the user name at this host;
- ``-F fullname``: the full name in a From header added when the message has none;
- ``-N never|success,failure,delay``, ``-R full|hdrs``, ``-V envid``: DSN requests;
- ``-B 7BIT|8BITMIME``: the body type;
- ``-v``: print the session on stderr.

Accepted and ignored, as they only steer a local queue: ``-o`` options other than ``-oi``
(``-oem``, ``-odi``, …), ``-bm``, ``-U``, ``-G``, ``-h N``, ``-L tag``, ``-X file``. The Bcc
header is always removed; Date, Message-ID and From are added when missing.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import getpass
import os
import re
import socket
import sys
from collections.abc import Sequence
from typing import BinaryIO, NoReturn

from mailroom.client.connection import Client
from mailroom.client.errors import MessageRefused, SendError, SMTPReplyError
from mailroom.client.message import envelope_of, parse_message
from mailroom.client.terminal import (
    EX_USAGE,
    Transcript,
    describe_failures,
    exit_status,
    parse_server,
    short_explanation,
    tls_context,
)
from mailroom.protocol.client import MailOptions, Recipient, TransactionResult

__all__ = ["DEFAULT_SERVER", "main", "prepare", "read_message"]

DEFAULT_SERVER = "127.0.0.1:1025"
_HEADER_NAME = re.compile(rb"^([!-9;-~]+):")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(EX_USAGE)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Submit the message on stdin, as sendmail(8) does, to "
        "MAILROOM_SERVER or --server (default 127.0.0.1:1025).",
        add_help=False,  # -h is sendmail's hop count
    )
    add = parser.add_argument
    add("--help", action="help", help="show this help and exit")
    add("recipients", nargs="*", help="recipient addresses")
    add("-t", action="store_true", help="also send to the To, Cc and Bcc headers")
    add("-i", action="store_true", help="a lone dot does not end the message")
    add("-o", action="append", default=[], metavar="OPTION", help="-oi as -i; others ignored")
    add("-f", "-r", dest="sender", metavar="SENDER", help="envelope sender")
    add("-F", dest="fullname", metavar="FULLNAME", help="full name for an added From header")
    add("-N", dest="notify", metavar="DSN", help="never, or some of success,failure,delay")
    add("-R", dest="ret", type=str.upper, choices=("FULL", "HDRS"), help="DSN: return what")
    add("-V", dest="envid", metavar="ENVID", help="DSN envelope id")
    add("-B", dest="body", type=str.upper, choices=("7BIT", "8BITMIME"), help="body type")
    add("-b", dest="mode", default="m", metavar="MODE", help="only -bm (deliver) is supported")
    add("-v", dest="verbose", action="store_true", help="print the session on stderr")
    for ignored in ("-U", "-G"):
        add(ignored, action="store_true", help=argparse.SUPPRESS)
    for ignored in ("-h", "-L", "-X"):
        add(ignored, metavar="VALUE", help=argparse.SUPPRESS)
    add("--server", default=None, metavar="HOST:PORT", help="or MAILROOM_SERVER")
    add("--tls", choices=("none", "starttls", "implicit", "opportunistic"), default="none")
    add("--cafile", metavar="PEM", help="trust these CA certificates")
    add("--insecure", action="store_true", help="do not check the server's certificate")
    add("--auth", metavar="USER:PASSWORD", help="authenticate (or MAILROOM_AUTH)")
    return parser


def read_message(stream: BinaryIO, *, dot_ends: bool) -> bytes:
    """Read the message; with ``dot_ends`` a line of a single "." ends it (sendmail without
    -i), the rest of the input is not read."""
    if not dot_ends:
        return stream.read()
    lines = []
    for line in stream:
        if line.rstrip(b"\r\n") == b".":
            break
        lines.append(line)
    return b"".join(lines)


def _header_names(head: bytes) -> set[str]:
    return {
        m[1].decode("ascii").lower()
        for line in head.splitlines()
        if (m := _HEADER_NAME.match(line))
    }


def _without_bcc(head: bytes) -> bytes:
    out: list[bytes] = []
    skipping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                out.append(line)  # a continuation line of the field before
            continue
        match = _HEADER_NAME.match(line)
        skipping = match is not None and match[1].lower() in (b"bcc", b"resent-bcc")
        if not skipping:
            out.append(line)
    return b"".join(out)


def _split_message(raw: bytes) -> tuple[bytes, bytes | None]:
    """The header section and the body (None when there is no blank line after the
    headers). Input that does not start with a header field is all body."""
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw.split(b"\n", 1)[1]
    match = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: match.start()], raw[match.end() :]) if match else (raw, None)
    if not _HEADER_NAME.match(head):
        return b"", raw
    return head, body


def prepare(raw: bytes, *, sender: str, fullname: str | None, hostname: str) -> bytes:
    """The message with Bcc removed and From, Date, Message-ID added when missing; nothing
    else is touched (line endings become CRLF on the wire)."""
    head, body = _split_message(raw)
    names = _header_names(head)
    added: list[str] = []
    if "from" not in names:
        added.append(f"From: {email.utils.formataddr((fullname or '', sender))}")
    if "date" not in names:
        added.append(f"Date: {email.utils.formatdate(localtime=True)}")
    if "message-id" not in names:
        added.append(f"Message-ID: {email.utils.make_msgid(domain=hostname)}")
    kept = _without_bcc(head).rstrip(b"\r\n")
    out = b"".join(f"{line}\r\n".encode() for line in added) + (kept + b"\r\n" if kept else b"")
    return out if body is None else out + b"\r\n" + body


def _notify(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(word.strip().upper() for word in text.split(",") if word.strip())


async def _submit(
    args: argparse.Namespace,
    message: bytes,
    sender: str,
    recipients: list[str],
    trace: Transcript | None,
) -> TransactionResult:
    server = args.server or os.environ.get("MAILROOM_SERVER") or DEFAULT_SERVER
    host, port = parse_server(server, 1025)
    context = (
        tls_context(cafile=args.cafile, insecure=args.insecure) if args.tls != "none" else None
    )
    auth = args.auth or os.environ.get("MAILROOM_AUTH")
    notify = _notify(args.notify)
    options = MailOptions(body=args.body, ret=args.ret, envid=args.envid)
    async with Client(
        host, port, tls=args.tls, ssl_context=context, trace=trace, allow_insecure_auth=True
    ) as client:
        if auth:
            user, _, password = auth.partition(":")
            await client.login(user, password)
        rcpts = [Recipient(r, notify=notify) for r in recipients]
        return await client.send(message, sender=sender, recipients=rcpts, options=options)


def main(argv: Sequence[str] | None = None, *, prog: str = "sendmail") -> int:
    try:
        args = _parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, or a usage error (64)
        return exc.code if isinstance(exc.code, int) else EX_USAGE
    if args.mode != "m":
        print(f"{prog}: only -bm (read a message and deliver it) is supported", file=sys.stderr)
        return EX_USAGE
    ignore_dots = args.i or "i" in args.o
    raw = read_message(sys.stdin.buffer, dot_ends=not ignore_dots)
    hostname = socket.gethostname()
    parsed = parse_message(raw)
    header_sender, header_recipients = envelope_of(parsed)
    sender = args.sender if args.sender is not None else header_sender
    if not sender and args.sender is None:
        sender = f"{getpass.getuser()}@{hostname}"
    recipients = [email.utils.parseaddr(r)[1] or r for r in args.recipients]
    if args.t:
        recipients += [r for r in header_recipients if r not in recipients]
    if not recipients:
        print(f"{prog}: no recipients (give addresses, or -t with To/Cc/Bcc)", file=sys.stderr)
        return EX_USAGE
    message = prepare(raw, sender=sender, fullname=args.fullname, hostname=hostname)
    trace = Transcript(out=sys.stderr) if args.verbose else None
    try:
        result = asyncio.run(_submit(args, message, sender, recipients, trace))
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EX_USAGE
    except MessageRefused as exc:
        for line in describe_failures(exc.result.failed):
            print(f"{prog}: {line}", file=sys.stderr)
        return exit_status(error=exc)
    except SendError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        if isinstance(exc, SMTPReplyError) and exc.reply is not None:
            print(f"{prog}: {short_explanation(exc.reply)}", file=sys.stderr)
        return exit_status(error=exc)
    for line in describe_failures(result.failed):
        print(f"{prog}: {line}", file=sys.stderr)
    return exit_status(result=result)


if __name__ == "__main__":
    raise SystemExit(main())
