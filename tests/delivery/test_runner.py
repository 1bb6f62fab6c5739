"""The queue runner against real mailroom servers on loopback: delivery by static route and by
MX (with fallback across MX hosts), per-recipient outcomes, retries on 4yz, bounces on 5yz with
their reports, expiry, delay warnings, NOTIFY, restart, connection reuse and limits, STARTTLS,
a smarthost with AUTH, and `mailroom queue` requests."""

from __future__ import annotations

import asyncio
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
        assert (block["Action"], block["Status"]) == ("relayed", "2.0.0")
        assert block["Diagnostic-Code"] == "smtp; 250 2.0.0 Ok"
        assert report.get_payload()[2].get_content_type() == "text/rfc822-headers"

    asyncio.run(main())
    assert sink.count == 1
