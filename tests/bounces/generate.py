"""Make real bounces: Postfix, Exim, Dovecot and mailroom are sent mail that must fail, and the
reports they send back are collected.

    python -m tests.bounces.generate [--out tests/data/bounces] [--only postfix,mailroom]

writes ``<out>/<mta>/<case>.eml`` and ``<out>/expected.json``: for every file, the records a
reader must find in it, as the case was built (who was sent what, and why it must fail), not
as any reader read it. The tests of the reader use the files; ``test_live.py`` runs Postfix
and mailroom again and reads what they send there and then.

The world, all on 127.0.0.1 (no DNS, no Internet):

- ``collect.test``: a mailroom catcher that receives every report (the senders are
  ``sender@collect.test``);
- ``receiver.test``: a second Postfix, the receiving side: it knows bob, refuses unknown users
  (550 5.1.1 at RCPT), ``policy@`` by its access map (554 5.7.1), ``spam@`` with 554 5.7.1 as
  spam, messages over 20 000 octets (SIZE), and relaying for ``elsewhere.test``;
- ``lmtp.test``: Dovecot's LMTP server: bob, and tiny with a quota no message fits in;
- ``down.test``: a closed port (connection refused until the sender gives up);
- each sender's own mailboxes (Postfix virtual(8) with a mailbox over its size limit, Exim's
  appendfile with a quota), and for mailroom a DNS server that says ``nowhere.test`` does not
  exist.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import smtplib
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailroom.testing import SMTPTestServer
from tests.bounces.mtas import (
    EXIM,
    NOBODY,
    Exim,
    Postfix,
    closed_port,
    dovecot_lda_reject,
    dovecot_lmtp,
    running,
)

OUT = Path(__file__).resolve().parent.parent / "data" / "bounces"
SENDER = "sender@collect.test"
BIG = 30_000  # octets: over the receiver's SIZE limit of 20 000


@dataclass(frozen=True)
class Expected:
    """One record a reader must find: the recipient, why it failed, and what the report's
    action is (``failed``, ``delayed``)."""

    recipient: str
    reason: str
    action: str = "failed"
    status: str | None = None  # the enhanced code when the case fixes it


@dataclass(frozen=True)
class Case:
    name: str
    recipients: list[str]
    expected: list[Expected]
    size: int = 0  # pad the body to this many octets
    reports: int = 1  # reports the case produces (a delay warning, then the failure)


@dataclass
class Collected:
    """Reports as received: file name (``mta/case.eml``) to bytes, and what each must say."""

    files: dict[str, bytes] = field(default_factory=dict)
    expected: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def message(mta: str, case: Case) -> bytes:
    body = f"This message must not be delivered ({mta}, {case.name}).\r\n"
    if case.size:
        line = "x" * 76 + "\r\n"
        body += line * (case.size // len(line) + 1)
    return (
        f"From: Bounce Tester <{SENDER}>\r\n"
        f"To: {', '.join(case.recipients)}\r\n"
        f"Subject: bounce case {mta}/{case.name}\r\n"
        f"Message-ID: <{case.name}.{mta}@bounces.test>\r\n"
        f"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + body
    ).encode()


def send(port: int, mta: str, case: Case) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.sendmail(SENDER, case.recipients, message(mta, case))


def is_delay_warning(raw: bytes) -> bool:
    """A report that the message is still being tried (RFC 3464 ``Action: delayed``, Exim's
    "Warning: message … delayed"), not that it failed."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return b"Action: delayed" in raw or b"\nSubject: Warning: message" in head


def wait_for_reports(
    inbox: Callable[[], list[bytes]], mta: str, cases: list[Case], timeout: float = 90.0
) -> dict[str, list[bytes]]:
    """The reports for each case, by the Message-ID of the message they return."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, list[bytes]] = {case.name: [] for case in cases}
        for raw in inbox():
            for case in cases:
                if f"{case.name}.{mta}@bounces.test".encode() in raw:
                    found[case.name].append(raw)
        # The final report, and before it the delay warning when the case wants one.
        for case in cases:
            final = [r for r in found[case.name] if not is_delay_warning(r)][:1]
            warned = [r for r in found[case.name] if is_delay_warning(r)][:1]
            found[case.name] = (warned + final) if case.reports > 1 else final
        missing = [c.name for c in cases if len(found[c.name]) < c.reports]
        if not missing:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{mta}: no report for {missing} after {timeout:.0f}s")
        time.sleep(0.2)


def keep(collected: Collected, mta: str, cases: list[Case], found: dict[str, list[bytes]]) -> None:
    for case in cases:
        for index, raw in enumerate(found[case.name]):
            name = f"{mta}/{case.name}.eml"
            if case.reports > 1:
                name = f"{mta}/{case.name}-{index + 1}.eml"
            collected.files[name] = raw
            last = index == case.reports - 1
            collected.expected[name] = [
                {k: v for k, v in vars(e).items() if v is not None}
                for e in case.expected
                if (e.action == "failed") == last
            ]


# -- the world -----------------------------------------------------------------------------------


@contextlib.contextmanager
def collector(root: Path) -> Iterator[SMTPTestServer]:
    server = SMTPTestServer(root / "collector", {"hostname": "collect.test"}).start()
    try:
        yield server
    finally:
        server.stop()


def inbox_of(server: SMTPTestServer) -> Callable[[], list[bytes]]:
    return lambda: [m.raw for m in server.messages]


def receiver(root: Path) -> Postfix:
    """The receiving Postfix (receiver.test): real refusals from its own restrictions."""
    return Postfix(
        root / "receiver",
        "receiver.test",
        {
            "virtual_mailbox_domains": "receiver.test",
            "virtual_mailbox_maps": "texthash:{root}/mailboxes",
            "virtual_mailbox_base": "{root}/mail",
            "virtual_uid_maps": "static:65534",
            "virtual_gid_maps": "static:65534",
            "message_size_limit": "20000",
            # Not trusted: the senders on 127.0.0.1 are strangers here, as on the Internet.
            "mynetworks": "127.0.0.2/32",
            "smtpd_relay_restrictions": "reject_unauth_destination",
            "smtpd_recipient_restrictions": (
                "check_recipient_access texthash:{root}/access, reject_unauth_destination"
            ),
        },
        {
            "mailboxes": "bob@receiver.test receiver.test/bob/\n"
            "policy@receiver.test receiver.test/policy/\n"
            "spam@receiver.test receiver.test/spam/\n",
            "access": "policy@receiver.test REJECT Refused by local policy\n"
            "spam@receiver.test 554 5.7.1 Message rejected as spam\n",
        },
    )


REMOTE_CASES = [
    Case(
        "remote-unknown-user",
        ["ghost@receiver.test"],
        [Expected("ghost@receiver.test", "userunknown", status="5.1.1")],
    ),
    Case(
        "remote-policy",
        ["policy@receiver.test"],
        [Expected("policy@receiver.test", "policyviolation", status="5.7.1")],
    ),
    Case(
        "remote-spam",
        ["spam@receiver.test"],
        [Expected("spam@receiver.test", "spamdetected", status="5.7.1")],
    ),
    Case(
        "relay-denied",
        ["someone@elsewhere.test"],
        [Expected("someone@elsewhere.test", "norelaying", status="5.7.1")],
    ),
    Case(
        "too-big",
        ["bob@receiver.test"],
        [Expected("bob@receiver.test", "mesgtoobig", status="5.3.4")],
        size=BIG,
    ),
    Case(
        "lmtp-unknown-user",
        ["ghost@lmtp.test"],
        [Expected("ghost@lmtp.test", "userunknown", status="5.1.1")],
    ),
    Case(
        "lmtp-over-quota",
        ["tiny@lmtp.test"],
        [Expected("tiny@lmtp.test", "mailboxfull", status="5.2.2")],
    ),
    Case(
        "unreachable",
        ["someone@down.test"],
        [
            Expected("someone@down.test", "expired", action="delayed"),
            Expected("someone@down.test", "expired"),
        ],
        reports=2,
    ),
    Case(
        "two-unknown-users",
        ["ghost1@receiver.test", "ghost2@receiver.test"],
        [
            Expected("ghost1@receiver.test", "userunknown", status="5.1.1"),
            Expected("ghost2@receiver.test", "userunknown", status="5.1.1"),
        ],
    ),
]
DOVECOT_USERS = {"bob@lmtp.test": "", "tiny@lmtp.test": "userdb_quota_rule=*:storage=100B"}


# -- Postfix -------------------------------------------------------------------------------------

POSTFIX_CASES = [
    *REMOTE_CASES,
    Case(
        "local-unknown-user",
        ["nobody@virtual.test"],
        [Expected("nobody@virtual.test", "userunknown", status="5.1.1")],
    ),
    Case(
        "local-mailbox-full",
        ["full@virtual.test"],
        [Expected("full@virtual.test", "mailboxfull", status="5.2.2")],
    ),
]


def postfix_sender(root: Path, ports: dict[str, int]) -> Postfix:
    """The sending Postfix (postfix.test) with virtual mailboxes of its own."""
    mail = root / "sender-mail"
    (mail / "virtual.test").mkdir(parents=True)
    # A mailbox already over virtual_mailbox_limit: the next delivery cannot append.
    (mail / "virtual.test" / "full").write_bytes(b"From x\n" + b"x" * 60_000 + b"\n")
    for path in (mail, mail / "virtual.test", mail / "virtual.test" / "full"):
        path.chmod(0o777 if path.is_dir() else 0o600)
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)  # virtual(8) writes as its uid map says
    return Postfix(
        root / "sender",
        "postfix.test",
        {
            "transport_maps": "texthash:{root}/transport",
            "virtual_mailbox_domains": "virtual.test",
            "virtual_mailbox_maps": "texthash:{root}/mailboxes",
            "virtual_mailbox_base": str(mail),
            "virtual_uid_maps": "static:65534",
            "virtual_gid_maps": "static:65534",
            "virtual_mailbox_limit": "50000",  # 'full' holds more than that already
            "message_size_limit": "50000",
            "smtpd_reject_unlisted_recipient": "no",  # accept, then bounce (virtual(8))
            "maximal_queue_lifetime": "4s",
            "bounce_queue_lifetime": "4s",
            "delay_warning_time": "1s",
        },
        {
            "transport": f"receiver.test smtp:[127.0.0.1]:{ports['receiver']}\n"
            f"elsewhere.test smtp:[127.0.0.1]:{ports['receiver']}\n"
            f"lmtp.test lmtp:[127.0.0.1]:{ports['lmtp']}\n"
            f"down.test smtp:[127.0.0.1]:{ports['down']}\n"
            f"collect.test smtp:[127.0.0.1]:{ports['collect']}\n",
            "mailboxes": "bob@virtual.test virtual.test/bob\nfull@virtual.test virtual.test/full\n",
        },
    )


def postfix_reports(root: Path, collected: Collected, cases: list[Case] | None = None) -> None:
    """Postfix as the sender: its reports (RFC 3464, Postfix's words around the remote reply)."""
    cases = POSTFIX_CASES if cases is None else cases
    with contextlib.ExitStack() as stack:
        catcher = stack.enter_context(collector(root))
        lmtp = stack.enter_context(dovecot_lmtp(_dir(root, "dovecot"), DOVECOT_USERS, 1))
        remote = stack.enter_context(running(receiver(root)))
        ports = {"receiver": remote.port, "lmtp": lmtp, "down": closed_port()}
        ports["collect"] = catcher.port
        sender = stack.enter_context(running(postfix_sender(root, ports)))
        for case in cases:
            send(sender.port, "postfix", case)
        keep(collected, "postfix", cases, wait_for_reports(inbox_of(catcher), "postfix", cases))


def _dir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- Exim ----------------------------------------------------------------------------------------

EXIM_CONFIG = """
primary_hostname = exim.test
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
never_users =
trusted_users = root
exim_path = {exim}
keep_environment =
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
qualify_domain = exim.test
domainlist local_domains = local.test
acl_smtp_rcpt = acl_check_rcpt
message_size_limit = 100K
delay_warning = 1s : 1h
timeout_frozen_after = 1m
ignore_bounce_errors_after = 1m

begin acl

acl_check_rcpt:
  accept hosts = 127.0.0.1

begin routers

collect:
  driver = manualroute
  domains = collect.test
  route_list = * 127.0.0.1
  transport = to_collect
  self = send

receiver:
  driver = manualroute
  domains = receiver.test : elsewhere.test
  route_list = * 127.0.0.1
  transport = to_receiver
  self = send

lmtp:
  driver = manualroute
  domains = lmtp.test
  route_list = * 127.0.0.1
  transport = to_lmtp
  self = send

down:
  driver = manualroute
  domains = down.test
  route_list = * 127.0.0.1
  transport = to_down
  self = send

localuser:
  driver = accept
  domains = +local_domains
  local_parts = bob : full
  transport = local_file

begin transports

to_collect:
  driver = smtp
  port = {collect}
  allow_localhost
  hosts_avoid_tls = *

to_receiver:
  driver = smtp
  port = {receiver}
  allow_localhost
  hosts_avoid_tls = *

to_down:
  driver = smtp
  port = {down}
  allow_localhost

to_lmtp:
  driver = smtp
  protocol = lmtp
  port = {lmtp}
  allow_localhost

local_file:
  driver = appendfile
  file = {root}/mail/$local_part_data
  user = nobody
  group = nogroup
  quota = 2K

begin retry

*   *   F,3s,1s

begin rewrite

begin authenticators
"""

EXIM_CASES = [
    *REMOTE_CASES,
    Case(
        "local-mailbox-full",
        ["full@local.test"],
        [Expected("full@local.test", "mailboxfull")],
        size=4000,
    ),
]


def exim_reports(root: Path, collected: Collected, cases: list[Case] | None = None) -> None:
    """Exim as the sender: its reports (Exim's own text format, not RFC 3464)."""
    cases = EXIM_CASES if cases is None else cases
    with contextlib.ExitStack() as stack:
        catcher = stack.enter_context(collector(root))
        lmtp = stack.enter_context(dovecot_lmtp(_dir(root, "dovecot"), DOVECOT_USERS, 1))
        remote = stack.enter_context(running(receiver(root)))
        config = (
            EXIM_CONFIG.replace("{root}", "\x00root")
            .replace("{port}", "\x00port")
            .format(
                collect=catcher.port,
                receiver=remote.port,
                lmtp=lmtp,
                down=closed_port(),
                exim=EXIM,
            )
            .replace("\x00root", "{root}")
            .replace("\x00port", "{port}")
        )
        exim = stack.enter_context(running(Exim(root / "exim", config)))
        for case in cases:
            send(exim.port, "exim", case)
        keep(collected, "exim", cases, wait_for_reports(inbox_of(catcher), "exim", cases))


# -- Dovecot's LDA -------------------------------------------------------------------------------

LDA_CASE = Case("lda-over-quota", ["tiny@lmtp.test"], [Expected("tiny@lmtp.test", "mailboxfull")])


def dovecot_reports(root: Path, collected: Collected) -> None:
    """Dovecot's LDA refusing a message over quota: its rejection (RFC 3798 MDN)."""
    with contextlib.ExitStack() as stack:
        catcher = stack.enter_context(collector(root))
        home = _dir(root, "dovecot")
        stack.enter_context(dovecot_lmtp(home, DOVECOT_USERS, catcher.port))
        error = dovecot_lda_reject(home, "tiny@lmtp.test", SENDER, message("dovecot", LDA_CASE))
        try:
            found = wait_for_reports(inbox_of(catcher), "dovecot", [LDA_CASE], timeout=30)
        except AssertionError as missing:
            raise AssertionError(f"{missing}; dovecot-lda said: {error}") from None
        keep(collected, "dovecot", [LDA_CASE], found)


# -- mailroom ------------------------------------------------------------------------------------

MAILROOM_CONFIG = """
hostname = "mailroom.test"
data = "{data}"
tls = "self-signed"
web = "off"
log_level = "warning"
domains = ["mailroom.test"]
dns_servers = ["{dns}"]

[[listeners]]
address = "127.0.0.1:0"
role = "submission"

[users."sender@mailroom.test"]
password = "{hash}"
scram = "{scram}"

[policy]
check_null_mx = false

[queue]
retry_schedule = ["1s"]
max_age = "5s"
delay_warning = "1s"

[routes]
"receiver.test" = "127.0.0.1:{receiver}"
"elsewhere.test" = "127.0.0.1:{receiver}"
"lmtp.test" = "lmtp://127.0.0.1:{lmtp}"
"down.test" = "127.0.0.1:{down}"
"""
MAILROOM_PASSWORD = "a long password for the bounce tests"
MAILROOM_CASES = [
    *REMOTE_CASES,
    Case(
        "domain-does-not-exist",
        ["someone@nowhere.test"],
        [Expected("someone@nowhere.test", "hostunknown", status="5.1.2")],
    ),
]


def mailroom_reports(root: Path, collected: Collected, cases: list[Case] | None = None) -> None:
    """mailroom as the sender: its own reports (delivery/dsn.py), stored in the sender's
    Maildir at the sending mailroom."""
    from mailroom.policy.credentials import password_line
    from tests.delivery.dnsserver import DNSServer
    from tests.queue.test_two_instances import maildir

    cases = MAILROOM_CASES if cases is None else cases
    _, hashed, scram = password_line("sender@mailroom.test", MAILROOM_PASSWORD).split(":", 2)
    with contextlib.ExitStack() as stack:
        lmtp = stack.enter_context(dovecot_lmtp(_dir(root, "dovecot"), DOVECOT_USERS, 1))
        remote = stack.enter_context(running(receiver(root)))
        dns = stack.enter_context(DNSServer({}))
        home = _dir(root, "mailroom")
        config = home / "mailroom.toml"
        config.write_text(
            MAILROOM_CONFIG.format(
                data=home / "data",
                dns=dns.address,
                hash=hashed,
                scram=scram,
                receiver=remote.port,
                lmtp=lmtp,
                down=closed_port(),
            )
        )
        server = SMTPTestServer(home / "data", {"hostname": "mailroom.test"}, config_file=config)
        server.start()
        stack.callback(server.stop)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sender = "sender@mailroom.test"
        with smtplib.SMTP(*server.address("submission"), timeout=60) as client:
            client.starttls(context=context)
            client.login(sender, MAILROOM_PASSWORD)
            for case in cases:
                data = message("mailroom", case).replace(SENDER.encode(), sender.encode())
                client.sendmail(sender, case.recipients, data)
        found = wait_for_reports(lambda: maildir(home / "data", sender), "mailroom", cases)
        keep(collected, "mailroom", cases, found)


GENERATORS: dict[str, Callable[[Path, Collected], None]] = {
    "postfix": postfix_reports,
    "exim": exim_reports,
    "dovecot": dovecot_reports,
    "mailroom": mailroom_reports,
}


def generate(only: list[str] | None = None) -> Collected:
    collected = Collected()
    for name, generator in GENERATORS.items():
        if only and name not in only:
            continue
        # BOUNCES_KEEP=1 keeps the MTAs' directories (configs, logs, queues) to look at.
        keep_files = os.environ.get("BOUNCES_KEEP") == "1"
        tmp = tempfile.mkdtemp(prefix=f"bounces-{name}-")
        Path(tmp).chmod(0o755)  # the MTAs' own users must reach their directories
        if keep_files:
            print(f"{name}: {tmp}", file=sys.stderr)
        try:
            generator(Path(tmp), collected)
        finally:
            if not keep_files:
                shutil.rmtree(tmp, ignore_errors=True)
    return collected


def write(collected: Collected, out: Path) -> None:
    for name, raw in collected.files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    expected_file = out / "expected.json"
    expected = json.loads(expected_file.read_text()) if expected_file.exists() else {}
    expected.update(collected.expected)
    expected_file.write_text(json.dumps(dict(sorted(expected.items())), indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make real bounces (see the module's doc).")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", help="comma-separated: postfix,exim,dovecot,mailroom")
    args = parser.parse_args(argv)
    collected = generate(args.only.split(",") if args.only else None)
    write(collected, args.out)
    print(f"wrote {len(collected.files)} reports to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
