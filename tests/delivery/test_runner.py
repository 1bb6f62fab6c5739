"""The queue runner against real mailroom servers on loopback: delivery by static route and by
MX (with fallback across MX hosts), per-recipient outcomes, retries on 4yz, bounces on 5yz with
their reports, expiry, delay warnings, NOTIFY, restart, connection reuse and limits, STARTTLS,
a smarthost with AUTH, and `mailroom queue` requests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from mailroom.queue.entry import QueueRecipient, QueueSpool
from tests.delivery.dnsserver import DNSServer
from tests.delivery.peers import (
    Inbox,
    commands,
    fast,
    make_message,
    port_of,
    queue_message,
    receiver,
    recipient_blocks,
    route_to,
    running,
    stored,
    wait_until,
)


def test_delivers_by_static_route(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    message = make_message("routed")
    entry = queue_message(spool, ["bob@example.test", "carol@example.test"], message=message)

    async def main() -> None:
        async with receiver(tmp_path / "b") as b:
            settings = fast(routes=route_to(b, "example.test"))
            inbox = Inbox()
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.delivered == 2
            [raw] = stored(tmp_path / "b")
            # One transaction for both recipients; the message exactly as queued.
            assert raw.endswith(message)
            assert b"Delivered-To: bob@example.test\r\nDelivered-To: carol@example.test\r\n" in raw
            assert inbox.messages == []
            [session] = commands(b)
            assert session[0] == "EHLO mx.a.test"
            # B offers CHUNKING: the message went as BDAT, never DATA.
            assert "DATA" not in session and session[-1] == "QUIT"

    asyncio.run(main())
    assert not spool.message_path(entry.id).exists()


def test_delivers_by_mx_falling_back_to_the_next_host(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test"])

    async def main() -> None:
        async with receiver(tmp_path / "b") as b:
            # The best MX has an address nobody listens on (127.0.0.2); the next one is B.
            records = {
                "example.test": {"MX": ["10 mx1.example.test.", "20 mx2.example.test."]},
                "mx1.example.test": {"A": ["127.0.0.2"]},
                "mx2.example.test": {"A": ["127.0.0.1"]},
            }
            with DNSServer(records) as dns:
                settings = fast(dns_servers=(dns.address,), mx_port=port_of(b))
                async with running(spool, settings) as runner:
                    await wait_until(lambda: not spool.ids())
                    assert runner.delivered == 1 and runner.deferred == 0
                assert dns.queries[("mx1.example.test.", "A")] >= 1
            [raw] = stored(tmp_path / "b")
            assert b"by mx.example.test (mailroom) with ESMTP" in raw

    asyncio.run(main())


def test_opportunistic_starttls_to_an_mx(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test"])

    async def main() -> None:
        # B's certificate is self-signed: opportunistic TLS takes it unchecked, like Postfix.
        async with receiver(tmp_path / "b", tls="self-signed") as b:
            records = {"example.test": {"A": ["127.0.0.1"]}}  # implicit MX
            with DNSServer(records) as dns:
                settings = fast(dns_servers=(dns.address,), mx_port=port_of(b))
                async with running(spool, settings):
                    await wait_until(lambda: not spool.ids())
            [raw] = stored(tmp_path / "b")
            assert b"with ESMTPS id" in raw
            [session] = commands(b)
            assert session[:3] == ["EHLO mx.a.test", "STARTTLS", "EHLO mx.a.test"]

    asyncio.run(main())


def test_unknown_user_bounces_the_others_are_delivered(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    original = make_message("for two")
    entry = queue_message(
        spool,
        [
            QueueRecipient("bob@example.test"),
            QueueRecipient("nobody@example.test", orcpt=["rfc822", "Nobody@Example.test"]),
        ],
        message=original,
        envid="ENV-7",
    )
    rule = "rcpt:nobody@example.test:550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown"

    async def main() -> None:
        async with receiver(tmp_path / "b", faults=(rule,)) as b:
            inbox = Inbox()
            async with running(spool, fast(routes=route_to(b, "example.test")), inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert (runner.delivered, runner.bounced) == (1, 1)
            assert len(stored(tmp_path / "b")) == 1
            [(sender, recipients, _)] = inbox.messages
            assert (sender, recipients) == ("", ["alice@a.test"])
            [report] = inbox.reports
            assert report["Subject"] == "Undelivered Mail Returned to Sender"
            [block] = recipient_blocks(report)
            assert block["Final-Recipient"] == "rfc822; nobody@example.test"
            assert block["Original-Recipient"] == "rfc822; Nobody@Example.test"
            assert block["Action"] == "failed"
            assert block["Status"] == "5.1.1"
            assert block["Remote-MTA"] == "dns; 127.0.0.1"
            assert block["Diagnostic-Code"] == (
                "smtp; 550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown"
            )
            assert block["X-Mailroom-Reason"] == "userunknown"
            per_message = report.get_payload()[1].get_payload()[0]
            assert per_message["Original-Envelope-Id"] == "ENV-7"
            assert per_message["Reporting-MTA"] == "dns; mx.a.test"
            returned = report.get_payload()[2]
            assert returned.get_content_type() == "message/rfc822"
            assert returned.get_payload()[0]["Subject"] == "for two"

    asyncio.run(main())
    assert entry.id not in spool.ids()


def test_4xx_is_retried_until_delivered(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test"])

    async def main() -> None:
        async with receiver(tmp_path / "b", faults=("rcpt:times=3:451 4.3.0 try later",)) as b:
            inbox = Inbox()
            async with running(spool, fast(routes=route_to(b, "example.test")), inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert (runner.deferred, runner.delivered, runner.bounced) == (3, 1, 0)
            assert len(stored(tmp_path / "b")) == 1
            assert inbox.messages == []
            mails = [c for session in commands(b) for c in session if c.startswith("MAIL")]
            assert len(mails) == 4  # one transaction an attempt

    asyncio.run(main())


def test_deferred_state_is_on_disk(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    entry = queue_message(spool, ["bob@example.test", "carol@example.test"])

    async def main() -> None:
        rule = "rcpt:carol@example.test:452 4.2.2 <carol@example.test>: Mailbox full"
        async with receiver(tmp_path / "b", faults=(rule,)) as b:
            settings = fast(routes=route_to(b, "example.test"), retry_schedule=(3600.0,))
            async with running(spool, settings) as runner:
                await wait_until(lambda: runner.delivered == 1 and runner.deferred == 1)
                await wait_until(lambda: (spool.load(entry.id) or entry).attempts == 1)
                on_disk = spool.load(entry.id)
                assert on_disk is not None
                bob, carol = on_disk.recipients
                assert (bob.state, bob.status, bob.attempts) == ("delivered", "2.0.0", 1)
                assert (carol.state, carol.status, carol.reason) == (
                    "pending",
                    "4.2.2",
                    "mailboxfull",
                )
                assert carol.last_reply == "452 4.2.2 <carol@example.test>: Mailbox full"
                assert carol.remote_mta == "127.0.0.1"
                assert 3000 < on_disk.next_attempt - on_disk.created < 3700

    asyncio.run(main())


def test_mailbox_full_until_max_age_is_returned_with_its_reason(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test"])

    async def main() -> None:
        rule = "rcpt:452 4.2.2 <bob@example.test>: Mailbox full"
        async with receiver(tmp_path / "b", faults=(rule,)) as b:
            inbox = Inbox()
            settings = fast(routes=route_to(b, "example.test"), max_age=1.0)
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.deferred >= 2 and runner.delivered == 0
            [report] = inbox.reports
            [block] = recipient_blocks(report)
            assert (block["Action"], block["Status"]) == ("failed", "4.4.7")
            assert block["X-Mailroom-Reason"] == "mailboxfull"
            assert block["Diagnostic-Code"] == "smtp; 452 4.2.2 <bob@example.test>: Mailbox full"
            words = report.get_payload()[0].get_content()
            assert "gave up" in words and "mailbox is full" in words

    asyncio.run(main())


def test_unreachable_host_is_retried_then_expires(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test"])
    from mailroom.queue.settings import RelayHost

    async def main() -> None:
        # A port nobody listens on: connection refused, a temporary failure.
        async with receiver(tmp_path / "b") as b:
            closed = port_of(b)
        routes = {"example.test": RelayHost.parse(f"127.0.0.1:{closed}")}
        inbox = Inbox()
        async with running(spool, fast(routes=routes, max_age=1.0), inbox) as runner:
            await wait_until(lambda: not spool.ids())
            assert runner.deferred >= 2
        [report] = inbox.reports
        [block] = recipient_blocks(report)
        assert (block["Action"], block["Status"]) == ("failed", "4.4.7")
        assert block["Diagnostic-Code"].startswith("X-Mailroom; cannot connect to 127.0.0.1:")
        assert block["X-Mailroom-Reason"] == "networkerror"
        assert block["Remote-MTA"] is None

    asyncio.run(main())


def test_delay_warning_is_sent_once(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test"])

    async def main() -> None:
        async with receiver(tmp_path / "b", faults=("rcpt:451 4.3.0 try later",)) as b:
            inbox = Inbox()
            settings = fast(routes=route_to(b, "example.test"), delay_warning=0.3, max_age=2.0)
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.deferred >= 4
            delayed, failed = inbox.reports
            assert delayed["Subject"] == "Delayed Mail (still being retried)"
            assert [b["Action"] for b in recipient_blocks(delayed)] == ["delayed"]
            assert recipient_blocks(delayed)[0]["Will-Retry-Until"] is not None
            assert delayed.get_payload()[2].get_content_type() == "text/rfc822-headers"
            assert [b["Action"] for b in recipient_blocks(failed)] == ["failed"]

    asyncio.run(main())


def test_no_report_for_notify_never_or_a_null_sender(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, [QueueRecipient("nobody@example.test", notify=["NEVER"])])
    queue_message(spool, ["nobody@example.test"], sender="")

    async def main() -> None:
        rule = "rcpt:nobody@example.test:550 5.1.1 no such user"
        async with receiver(tmp_path / "b", faults=(rule,)) as b:
            inbox = Inbox()
            async with running(spool, fast(routes=route_to(b, "example.test")), inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.bounced == 2
            assert inbox.messages == []

    asyncio.run(main())


def test_notify_goes_on_to_a_server_with_dsn(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(
        spool,
        [
            QueueRecipient(
                "bob@example.test", notify=["SUCCESS", "FAILURE"], orcpt=["rfc822", "b@x.test"]
            )
        ],
        envid="E1",
        ret="HDRS",
    )

    async def main() -> None:
        async with receiver(tmp_path / "b") as b:
            inbox = Inbox()
            async with running(spool, fast(routes=route_to(b, "example.test")), inbox):
                await wait_until(lambda: not spool.ids())
            # B speaks DSN: the request goes on with the message, and the report is B's.
            assert inbox.messages == []
            [session] = commands(b)
            mail = next(c for c in session if c.startswith("MAIL"))
            rcpt = next(c for c in session if c.startswith("RCPT"))
            assert "RET=HDRS" in mail and "ENVID=E1" in mail
            assert "NOTIFY=SUCCESS,FAILURE" in rcpt and "ORCPT=rfc822;b@x.test" in rcpt

    asyncio.run(main())


def test_orcpt_goes_on_with_its_address_type(tmp_path: Path) -> None:
    # RFC 3461 §5.2.1 (d): the identical original-recipient-address, type included, goes on
    # with the message. An x400 or a utf-8 ORCPT left as rfc822.
    spool = QueueSpool(tmp_path / "a")
    queue_message(
        spool,
        [
            QueueRecipient("bob@example.test", orcpt=["x400", "/C=US/PN=Bob/"]),
            QueueRecipient("carol@example.test", orcpt=["utf-8", "carol@x.test"]),
            QueueRecipient("dave@example.test", orcpt=["RFC822", "Dave@x.test"]),
        ],
    )

    async def main() -> None:
        async with receiver(tmp_path / "b") as b:
            async with running(spool, fast(routes=route_to(b, "example.test"))):
                await wait_until(lambda: not spool.ids())
            [session] = commands(b)
            assert [c for c in session if c.startswith("RCPT")] == [
                "RCPT TO:<bob@example.test> ORCPT=x400;/C+3DUS/PN+3DBob/",
                "RCPT TO:<carol@example.test> ORCPT=utf-8;carol@x.test",
                "RCPT TO:<dave@example.test> ORCPT=RFC822;Dave@x.test",
            ]

    asyncio.run(main())


def test_success_to_a_server_without_dsn_is_reported_as_relayed(tmp_path: Path) -> None:
    from aiosmtpd.smtp import SMTP

    from mailroom.queue.settings import RelayHost

    class Sink:
        def __init__(self) -> None:
            self.count = 0

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            self.count += 1
            return "250 2.0.0 Ok"

    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, [QueueRecipient("bob@example.test", notify=["SUCCESS"])])
    sink = Sink()

    async def main() -> None:
        # aiosmtpd offers no DSN: mailroom's relaying ends the sender's request for a report.
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(sink, hostname="sink.test"), "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            routes = {"example.test": RelayHost.parse(f"127.0.0.1:{port}")}
            inbox = Inbox()
            async with running(spool, fast(routes=routes), inbox):
                await wait_until(lambda: not spool.ids())
        finally:
            server.close()
        [report] = inbox.reports
        assert report["Subject"] == "Successful Mail Delivery Report"
        [block] = recipient_blocks(report)
        assert (block["Action"], block["Status"]) == ("relayed", "2.1.9")
        assert block["Diagnostic-Code"] == "smtp; 250 2.0.0 Ok"
        assert report.get_payload()[2].get_content_type() == "text/rfc822-headers"

    asyncio.run(main())
    assert sink.count == 1


def test_restart_resumes_the_queue(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    entries = [queue_message(spool, [f"user{n}@example.test"]) for n in range(3)]

    async def main() -> None:
        async with receiver(tmp_path / "b") as b:
            port = port_of(b)
        from mailroom.queue.settings import RelayHost

        # B is down: every entry is deferred, its state saved.
        routes = {"example.test": RelayHost.parse(f"127.0.0.1:{port}")}
        async with running(spool, fast(routes=routes, retry_schedule=(0.5,))) as runner:
            await wait_until(lambda: runner.deferred >= 3)
        assert sorted(spool.ids()) == sorted(e.id for e in entries)
        assert all((spool.load(e.id) or e).attempts >= 1 for e in entries)
        # B comes back on the same port; a new runner picks up where the last one stopped.
        async with receiver(tmp_path / "b", smtp=f"127.0.0.1:{port}") as b:
            async with running(spool, fast(routes=route_to(b, "example.test"))) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.delivered == 3
            assert len(stored(tmp_path / "b")) == 3

    asyncio.run(main())


def peak_sessions(mailroom):  # type: ignore[no-untyped-def]
    """Count the most sessions the (started) server had at once."""
    server = mailroom.smtp
    peak = [0]
    admit = server.admit

    def counting(session):  # type: ignore[no-untyped-def]
        refusal = admit(session)
        peak[0] = max(peak[0], len(server.sessions))
        return refusal

    server.admit = counting
    return peak


def test_one_connection_carries_many_messages(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    for n in range(5):
        queue_message(spool, [f"user{n}@example.test"])

    async def main() -> None:
        async with receiver(tmp_path / "b") as b:
            settings = fast(routes=route_to(b, "example.test"), max_per_destination=1)
            async with running(spool, settings):
                await wait_until(lambda: not spool.ids())
            assert len(stored(tmp_path / "b")) == 5
            [session] = commands(b)
            assert sum(c.startswith("MAIL") for c in session) == 5

    asyncio.run(main())


def test_concurrency_per_destination_and_in_all(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    records = {"example.test": {"A": ["127.0.0.1"]}, "other.test": {"A": ["127.0.0.1"]}}

    def fill(count: int) -> None:
        for n in range(count):
            queue_message(spool, [f"user{n}@{'example' if n % 2 else 'other'}.test"])

    async def main() -> None:
        # Each message takes a while at B, so connections overlap where the limits allow.
        rule = "eod:delay=0.3"
        with DNSServer(records) as dns:
            async with receiver(tmp_path / "b", faults=(rule,)) as b:
                peak = peak_sessions(b)
                fill(12)
                settings = fast(
                    dns_servers=(dns.address,),
                    mx_port=port_of(b),
                    max_per_destination=2,
                    max_connections=10,
                )
                async with running(spool, settings):
                    await wait_until(lambda: not spool.ids())
                # Two destinations (both domains' MX is B), two connections each at most.
                assert peak[0] == 4
                assert len(stored(tmp_path / "b")) == 12

            async with receiver(tmp_path / "c", faults=(rule,)) as c:
                peak = peak_sessions(c)
                fill(6)
                settings = fast(
                    dns_servers=(dns.address,),
                    mx_port=port_of(c),
                    max_per_destination=2,
                    max_connections=1,
                )
                async with running(spool, settings):
                    await wait_until(lambda: not spool.ids())
                assert peak[0] == 1
                assert len(stored(tmp_path / "c")) == 6

    asyncio.run(main())


def test_smarthost_with_auth(tmp_path: Path) -> None:
    from mailroom.policy.credentials import password_line
    from mailroom.queue.settings import RelayHost

    passwords = tmp_path / "passwords"
    passwords.write_text(password_line("relayuser", "s3cret") + "\n")
    spool = QueueSpool(tmp_path / "a")
    good = queue_message(spool, ["bob@anywhere.test"])

    async def main() -> None:
        async with receiver(
            tmp_path / "b", tls="self-signed", auth=str(passwords), require_auth=True
        ) as b:
            host, port = b.addresses[0]

            def smarthost(password: str) -> RelayHost:
                return RelayHost.parse(
                    {
                        "address": f"{host}:{port}",
                        "tls": "starttls",
                        "verify": False,
                        "username": "relayuser",
                        "password": password,
                    }
                )

            # A wrong password is our configuration's fault: deferred, not bounced.
            inbox = Inbox()
            settings = fast(smarthost=smarthost("wrong"), retry_schedule=(3600.0,))
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: runner.deferred == 1)
                await wait_until(lambda: (spool.load(good.id) or good).attempts == 1)
            [recipient] = (spool.load(good.id) or good).recipients
            assert recipient.state == "pending"
            assert recipient.reason == "securityerror"
            assert recipient.last_reply is not None and recipient.last_reply.startswith(
                "AUTH failed: 535 5.7.8"
            )
            assert inbox.messages == []

            async with running(spool, fast(smarthost=smarthost("s3cret"))) as runner:
                runner.retry_now()
                await wait_until(lambda: not spool.ids())
            [raw] = stored(tmp_path / "b")
            assert b"(Authenticated sender: relayuser)" in raw and b"with ESMTPSA" in raw

    asyncio.run(main())


def test_null_mx_and_nxdomain_bounce_at_once(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@nomail.test", "carol@nowhere.test", "dave@broken.test"])
    records = {"nomail.test": {"MX": ["0 ."]}}

    async def main() -> None:
        with DNSServer(records, servfail={"broken.test"}) as dns:
            inbox = Inbox()
            settings = fast(dns_servers=(dns.address,), retry_schedule=(3600.0,))
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: runner.bounced == 2 and runner.deferred == 1)
                await wait_until(lambda: inbox.messages)
            [report] = inbox.reports
            blocks = {b["Final-Recipient"]: b for b in recipient_blocks(report)}
            assert set(blocks) == {"rfc822; bob@nomail.test", "rfc822; carol@nowhere.test"}
            null_mx = blocks["rfc822; bob@nomail.test"]
            assert (null_mx["Status"], null_mx["X-Mailroom-Reason"]) == ("5.1.10", "notaccept")
            assert null_mx["Diagnostic-Code"].startswith("X-Mailroom; nomail.test accepts no mail")
            nxdomain = blocks["rfc822; carol@nowhere.test"]
            assert (nxdomain["Status"], nxdomain["X-Mailroom-Reason"]) == ("5.1.2", "hostunknown")
            # The DNS failure is temporary: dave waits for the next attempt.
            [entry] = list(spool.entries())
            dave = entry.recipients[2]
            assert (dave.state, dave.status) == ("pending", "4.4.3")
            assert [r.notified for r in entry.recipients] == [True, True, False]

    asyncio.run(main())


def test_report_that_cannot_be_stored_is_tried_again(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@nowhere.test"])

    async def main() -> None:
        with DNSServer({}) as dns:
            inbox = Inbox()
            inbox.fail = True  # the sender's mailbox is on a full disk
            settings = fast(dns_servers=(dns.address,))
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: runner.bounced == 1)
                await asyncio.sleep(0.3)
                [entry] = list(spool.entries())
                assert entry.recipients[0].state == "bounced"
                assert not entry.recipients[0].notified
                inbox.fail = False
                await wait_until(lambda: not spool.ids())
            assert len(inbox.reports) == 1

    asyncio.run(main())


def test_retry_now_and_delete_by_request(tmp_path: Path) -> None:
    from mailroom.delivery import control

    spool = QueueSpool(tmp_path / "a")
    keep = queue_message(spool, ["bob@example.test"])
    drop = queue_message(spool, ["carol@example.test"])

    async def main() -> None:
        async with receiver(tmp_path / "b", faults=("rcpt:times=2:451 4.3.0 try later",)) as b:
            settings = fast(routes=route_to(b, "example.test"), retry_schedule=(3600.0,))
            async with running(spool, settings, control_interval=0.05) as runner:
                await wait_until(lambda: runner.deferred == 2)
                await wait_until(lambda: all(e.attempts == 1 for e in spool.entries()))
                assert control.runner_alive(spool.root)
                request = control.submit(spool.root, "delete", [drop.id])
                await wait_until(lambda: not request.exists())
                assert spool.ids() == [keep.id]
                request = control.submit(spool.root, "retry", None)
                await wait_until(lambda: not request.exists())
                await wait_until(lambda: not spool.ids())
            assert not control.runner_alive(spool.root)
            [raw] = stored(tmp_path / "b")
            assert b"Delivered-To: bob@example.test" in raw

    asyncio.run(main())


def test_what_the_next_server_cannot_take_is_returned(tmp_path: Path) -> None:
    from aiosmtpd.smtp import SMTP

    from mailroom.queue.settings import RelayHost

    class Sink:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "250 2.0.0 Ok"

    spool = QueueSpool(tmp_path / "a")
    # aiosmtpd offers neither SMTPUTF8 (here) nor BINARYMIME: mailroom converts nothing.
    queue_message(spool, ["josé@example.test"], smtputf8=True)
    queue_message(spool, ["bob@example.test"], body="BINARYMIME")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Sink(), hostname="sink.test", enable_SMTPUTF8=False), "127.0.0.1", 0
        )
        try:
            port = server.sockets[0].getsockname()[1]
            routes = {"example.test": RelayHost.parse(f"127.0.0.1:{port}")}
            inbox = Inbox()
            async with running(spool, fast(routes=routes), inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert runner.bounced == 2
        finally:
            server.close()
        statuses = sorted(recipient_blocks(r)[0]["Status"] for r in inbox.reports)
        assert statuses == ["5.6.3", "5.6.7"]

    asyncio.run(main())


def test_a_failed_destination_is_not_tried_once_per_message(tmp_path: Path) -> None:
    spool = QueueSpool(tmp_path / "a")
    for n in range(10):
        queue_message(spool, [f"user{n}@broken.test"])

    async def main() -> None:
        with DNSServer({}, servfail={"broken.test"}) as dns:
            settings = fast(
                dns_servers=(dns.address,), max_per_destination=1, retry_schedule=(3600.0,)
            )
            async with running(spool, settings) as runner:
                await wait_until(lambda: runner.deferred == 10)
                await wait_until(lambda: all(e.attempts == 1 for e in spool.entries()))
            # One lookup answered for all ten waiting messages.
            assert dns.queries[("broken.test.", "MX")] == 1
            assert {e.recipients[0].status for e in spool.entries()} == {"4.4.3"}

    asyncio.run(main())


def test_a_message_over_the_next_hops_size_is_returned_unsent(tmp_path: Path) -> None:
    # RFC 1870 §6: B announces SIZE 4000; the large message is not offered, and the report says
    # so in mailroom's own words (B never answered "552 5.3.4"); the small one goes on the
    # same connection.
    spool = QueueSpool(tmp_path / "a")
    large = make_message("large", size=8000)
    queue_message(spool, ["bob@example.test"], message=large)
    queue_message(spool, ["carol@example.test"], message=make_message("small"))

    async def main() -> None:
        async with receiver(tmp_path / "b", max_message_size=4000) as b:
            inbox = Inbox()
            settings = fast(routes=route_to(b, "example.test"), max_per_destination=1)
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: not spool.ids())
                assert (runner.delivered, runner.bounced) == (1, 1)
            [raw] = stored(tmp_path / "b")
            assert b"Subject: small" in raw
            [session] = commands(b)
            assert [c for c in session if c.startswith("RCPT")] == ["RCPT TO:<carol@example.test>"]
            [report] = inbox.reports
            [block] = recipient_blocks(report)
            assert block["Final-Recipient"] == "rfc822; bob@example.test"
            assert (block["Action"], block["Status"]) == ("failed", "5.3.4")
            assert block["Remote-MTA"] == "dns; 127.0.0.1"
            assert block["Diagnostic-Code"] == (
                f"X-Mailroom; message size {len(large)} exceeds the size limit 4000 that "
                "127.0.0.1 announced"
            )

    asyncio.run(main())


def test_a_3yz_to_rcpt_is_not_taken_for_a_delivery(tmp_path: Path) -> None:
    # B answers RCPT for bob with "354" (RFC 5321 §4.3.2: RCPT has no intermediate reply): the
    # message did not reach bob, who is tried again, with NOTIFY=SUCCESS and no report. Before,
    # a reply under 400 counted as delivered: bob's copy was dropped and a success reported.
    spool = QueueSpool(tmp_path / "a")
    entry = queue_message(
        spool,
        [
            QueueRecipient("bob@example.test", notify=["SUCCESS", "FAILURE"]),
            QueueRecipient("carol@example.test"),
        ],
    )
    rule = "rcpt:bob@example.test:354 Start mail input"

    async def main() -> None:
        async with receiver(tmp_path / "b", faults=(rule,)) as b:
            inbox = Inbox()
            settings = fast(routes=route_to(b, "example.test"), retry_schedule=(3600.0,))
            async with running(spool, settings, inbox) as runner:
                await wait_until(lambda: runner.delivered + runner.deferred == 2)
                await runner.wait_idle(10)
            assert len(stored(tmp_path / "b")) == 1
            assert inbox.messages == []
        saved = spool.load(entry.id)
        assert saved is not None
        bob, carol = saved.recipients
        assert (bob.state, bob.status, bob.last_reply) == (
            "pending",
            "4.5.0",
            "354 Start mail input",
        )
        assert carol.state == "delivered"

    asyncio.run(main())


def test_a_save_cancelled_while_waiting_for_its_turn_still_reaches_the_disk(tmp_path: Path) -> None:
    # Two jobs of one entry (two domains) finish together as stop() cancels the workers: the
    # second's save waits for the first's lock, and its cancellation must not drop the state
    # it carries (a recipient the next hop took), or the message goes again after a restart.
    spool = QueueSpool(tmp_path / "a")
    queued = queue_message(spool, ["bob@example.test"], next_attempt=time.time() + 3600)

    async def main() -> None:
        async with running(spool, fast()) as runner:
            entry = runner.entries[queued.id]
            earlier = runner._save_locks.setdefault(entry.id, asyncio.Lock())
            await earlier.acquire()  # an earlier save of this entry, still writing
            entry.recipients[0].state = "delivered"
            saving = asyncio.ensure_future(runner._save(entry))
            await asyncio.sleep(0.05)
            saving.cancel()
            await asyncio.sleep(0)
            earlier.release()
            with contextlib.suppress(asyncio.CancelledError):
                await saving
        saved = spool.load(queued.id)
        assert saved is not None and saved.recipients[0].state == "delivered"

    asyncio.run(main())
