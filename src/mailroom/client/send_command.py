"""``mailroom send``: build a message from flags (or read one from a file), send it, print the
session as swaks does with every reply explained, and exit 0, 75 or 69 (see
:mod:`mailroom.client.terminal`)."""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import getpass
import os
import socket
import sys
from email.message import EmailMessage
from pathlib import Path

from mailroom.client.connection import Client, default_ports
from mailroom.client.errors import MessageRefused, SendError, SMTPReplyError
from mailroom.client.message import build_message, envelope_of, parse_message
from mailroom.client.terminal import (
    EX_OK,
    Transcript,
    describe_failures,
    exit_status,
    parse_server,
    short_explanation,
    tls_context,
)
from mailroom.protocol.client import TransactionResult

__all__ = ["USAGE", "run"]

USAGE = 2


class UsageError(Exception):
    pass


def _split(values: list[str] | None) -> list[str]:
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def _credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    user, password = args.auth_user, args.auth_password
    if args.auth is not None:
        user, colon, given = args.auth.partition(":")
        if not colon:
            raise UsageError("--auth is USER:PASSWORD")
        password = given
    if user is None:
        if password is not None:
            raise UsageError("--auth-password needs --auth-user")
        return None
    if password is None:
        password = os.environ.get("MAILROOM_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("no password: give --auth-password or MAILROOM_PASSWORD")
        password = getpass.getpass(f"password for {user}: ")
    return user, password


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None


def _address(text: str) -> str:
    """The bare address of ``Name <address>`` (or of a bare address)."""
    return email.utils.parseaddr(text)[1] or text.strip()


def _message(args: argparse.Namespace) -> tuple[bytes | EmailMessage, str, list[str]]:
    """The message (raw bytes or an EmailMessage), the envelope sender and the recipients."""
    recipients = [_address(a) for a in _split(args.to) + _split(args.cc) + _split(args.bcc)]
    if args.data is not None:
        if args.subject or args.body or args.attach or args.header:
            raise UsageError(
                "--data is the whole message: no --subject, --body, --attach, --header"
            )
        raw = _read(args.data)
        header_sender, header_recipients = envelope_of(parse_message(raw))
        sender = _address(args.sender) if args.sender is not None else header_sender
        recipients = recipients or header_recipients
        if not recipients:
            raise UsageError("no recipients: give --to, or To/Cc/Bcc in the message")
        return raw, sender, recipients
    if not recipients:
        raise UsageError("give at least one --to (or --cc, --bcc)")
    from_header = args.sender or f"{getpass.getuser()}@{socket.gethostname()}"
    body = args.body if args.body is not None else "This is a test mail sent by mailroom send.\n"
    if body == "-":
        body = sys.stdin.read()
    headers = []
    for header in args.header or []:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise UsageError(f"--header is 'Name: value', not {header!r}")
        headers.append((name.strip(), value.strip()))
    try:
        message = build_message(
            sender=from_header,
            to=_split(args.to),
            cc=_split(args.cc),
            subject=args.subject if args.subject is not None else "test from mailroom send",
            body=body,
            attachments=[Path(p) for p in args.attach or []],
            headers=headers,
        )
    except OSError as exc:
        raise UsageError(f"{exc.filename}: {exc.strerror}") from None
    return message, _address(from_header), recipients


async def _send(args: argparse.Namespace, transcript: Transcript) -> TransactionResult:
    message, sender, recipients = _message(args)
    credentials = _credentials(args)
    host, port = parse_server(args.server, default_ports(args.tls) if args.tls != "none" else 1025)
    context = None
    if args.tls != "none":
        context = tls_context(cafile=args.cafile, insecure=args.insecure)
    client = Client(
        host,
        port,
        tls=args.tls,
        ssl_context=context,
        local_hostname=args.ehlo,
        timeout=args.timeout,
        trace=transcript,
        allow_insecure_auth=True,  # asked for on the command line, over what was asked for
    )
    async with client:
        if credentials is not None:
            if not client.tls_active:
                transcript.note("warning: AUTH without TLS sends the password in the clear")
            await client.login(*credentials, mechanism=args.auth_mech)
        return await client.send(message, sender=sender, recipients=recipients)


def run(args: argparse.Namespace) -> int:
    """Send as the flags say; the exit status of :mod:`mailroom.client.terminal`."""
    quiet = args.quiet
    sink = open(os.devnull, "w") if quiet else sys.stdout  # noqa: SIM115 (closed below)
    failures = sys.stderr if quiet else sys.stdout
    transcript = Transcript(out=sink, explain_replies=not args.no_explain)
    try:
        result = asyncio.run(_send(args, transcript))
    except (UsageError, ValueError) as exc:
        print(f"mailroom send: {exc}", file=sys.stderr)
        return USAGE
    except MessageRefused as exc:
        print("*** no recipient got the message", file=failures)
        for line in describe_failures(exc.result.failed):
            print(f"*** {line}", file=failures)
        return exit_status(error=exc)
    except SendError as exc:
        print(f"*** {exc}", file=failures)
        if isinstance(exc, SMTPReplyError) and exc.reply is not None:
            print(f"    = {short_explanation(exc.reply)}", file=failures)
        return exit_status(error=exc)
    finally:
        if quiet:
            sink.close()
    status = exit_status(result=result)
    if status == EX_OK:
        if not quiet:
            print(f"=== delivered to all {len(result.recipients)} recipients")
    else:
        for line in describe_failures(result.failed):
            print(f"*** {line}", file=failures)
    return status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--from", dest="sender", metavar="ADDRESS", help="sender (default: you@this host)")
    add(
        "--to",
        action="append",
        metavar="ADDRESS",
        help="recipient (repeatable, or comma-separated)",
    )
    add("--cc", action="append", metavar="ADDRESS", help="copy recipient (repeatable)")
    add("--bcc", action="append", metavar="ADDRESS", help="blind copy recipient (repeatable)")
    add("--subject", help="subject (default: 'test from mailroom send')")
    add("--body", help="text of the message; - reads it from stdin")
    add("--attach", action="append", metavar="FILE", help="attach a file (repeatable)")
    add("--header", action="append", metavar="'NAME: VALUE'", help="add a header (repeatable)")
    add("--data", metavar="FILE", help="send this RFC 5322 message as is (- for stdin)")
    add("--server", default="127.0.0.1:1025", metavar="HOST[:PORT]", help="default 127.0.0.1:1025")
    add(
        "--tls",
        choices=("none", "starttls", "implicit", "opportunistic"),
        default="none",
        help="none (default), starttls (required), implicit (SMTPS, port 465), opportunistic",
    )
    add("--cafile", type=Path, help="trust the CA certificates in this PEM file")
    add("--insecure", action="store_true", help="do not check the server's certificate")
    add("--auth", metavar="USER:PASSWORD", help="authenticate")
    add("--auth-user", metavar="USER")
    add("--auth-password", metavar="PASSWORD", help="or MAILROOM_PASSWORD, or asked for")
    add("--auth-mech", metavar="MECHANISM", help="default: the strongest both sides speak")
    add("--ehlo", metavar="NAME", help="EHLO name (default: host name or address literal)")
    add("--timeout", type=float, default=60.0, help="seconds to wait for each reply (default 60)")
    add("--quiet", "-q", action="store_true", help="no transcript; failures on stderr")
    add("--no-explain", action="store_true", help="do not explain each reply")
