"""A mailroom in the mail server mode for the email authentication tests (make_server, in
conftest.py), and the helpers that send to it."""

from __future__ import annotations

import re
import smtplib
import time

from mailroom.policy.credentials import password_line
from mailroom.testing import SMTPTestServer

PASSWORD = "alice's long password"
ALICE = password_line("alice@example.test", PASSWORD).split(":", 2)

CONFIG = """
hostname = "mx.example.test"
tls = "self-signed"
domains = ["example.test"]
dns_servers = ["{dns}"]

[[listeners]]
address = "127.0.0.1:0"
role = "mx"
[[listeners]]
address = "127.0.0.1:0"
role = "submission"

[users."alice@example.test"]
password = "{hash}"
scram = "{scram}"
[users."bob@example.test"]

[aliases]
"fwd@example.test" = "carol@remote.test"

[policy]
check_null_mx = false
# sender.test and example.org publish SPF and DMARC only: the sender domain check (553 5.1.8
# for a domain without MX or address records) is not what these tests are about.
check_sender_domain = false
{policy}

[routes]
"remote.test" = "127.0.0.1:{sink}"
"sender.test" = "127.0.0.1:{sink}"
{routes}

[authentication]
{authentication}
"""


def message(sender: str, *, extra: bytes = b"", subject: str = "hello") -> bytes:
    return (
        extra
        + f"From: {sender}\r\nTo: bob@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{time.monotonic_ns()}@test>\r\n\r\nHello, Bob.\r\n".encode()
    )


def send(
    server: SMTPTestServer, sender: str, recipient: str, data: bytes, *, source: str = "127.0.0.1"
):
    host, port = server.address("mx")
    with smtplib.SMTP(host, port, source_address=(source, 0), timeout=60) as client:
        client.ehlo("client.sender.test")
        code, reply = client.mail(sender)
        if code >= 400:
            return code, reply
        code, reply = client.rcpt(recipient)
        if code >= 400:
            return code, reply
        client.putcmd("data")
        client.getreply()
        stuffed = re.sub(rb"(?m)^\.", b"..", data)
        client.send(stuffed + b".\r\n")
        return client.getreply()
