"""The queue and MT-PRIORITY (RFC 6710): messages due at the same time leave in order of
priority, highest first, and the priority goes on to a next hop that offers MT-PRIORITY."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailroom.queue.entry import QueueSpool
from tests.delivery.peers import (
    commands,
    fast,
    make_message,
    message_ids,
    queue_message,
    receiver,
    route_to,
    running,
    wait_until,
)


def test_higher_priorities_are_delivered_first(tmp_path: Path) -> None:
    """Eight messages wait in the queue when the runner starts; one connection at a time to
    their destination, so the order they arrive in is the order the queue chose."""
    spool = QueueSpool(tmp_path / "a")
    priorities = [0, -3, 5, None, 9, -9, 1, 2]
    for number, priority in enumerate(priorities):
        queue_message(
            spool,
            ["bob@example.test"],
            message=make_message(f"priority {priority}", message_id=f"<{number}@a.test>"),
            mt_priority=priority,
        )

    async def main() -> list[str]:
        async with receiver(tmp_path / "b") as b:
            settings = fast(
                routes=route_to(b, "example.test", tls="none"),
                max_connections=1,
                max_per_destination=1,
            )
            async with running(spool, settings):
                await wait_until(lambda: not spool.ids())
            return message_ids(tmp_path / "b")

    arrived = asyncio.run(main())
    by_priority = sorted(
        range(len(priorities)),
        key=lambda n: -(priorities[n] or 0),  # stable: first come first
    )
    assert arrived == [f"<{n}@a.test>" for n in by_priority]
    # 9, 5, 2, 1, then the two of priority 0 (given, and implied) in the order they came.
    assert [priorities[n] for n in by_priority] == [9, 5, 2, 1, 0, None, -3, -9]


def test_the_priority_goes_on_to_a_next_hop_that_offers_it(tmp_path: Path) -> None:
    """A catcher offers no MT-PRIORITY: nothing is sent. The mail server mode's mx listener
    offers it (see tests/mailserver/test_priority_rrvs.py): MT-PRIORITY=n goes on MAIL."""
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test"], mt_priority=3)

    async def main() -> list[list[str]]:
        async with receiver(tmp_path / "b") as b:
            settings = fast(routes=route_to(b, "example.test", tls="none"))
            async with running(spool, settings):
                await wait_until(lambda: not spool.ids())
            return commands(b)

    [session] = asyncio.run(main())
    mail = next(c for c in session if c.startswith("MAIL FROM:"))
    assert "MT-PRIORITY" not in mail
