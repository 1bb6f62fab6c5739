"""The bounces made there and then: Postfix, Exim, Dovecot's LDA and mailroom are started on
loopback, sent mail that must fail (unknown users, a full mailbox, a message too big, policy
and spam refusals, relaying denied, a next hop that refuses connections until the sender gives
up, a domain that does not exist), and mailroom.bounces reads the reports they send back: every
case gives the records it was built to give (tests.bounces.generate describes the world).

Each MTA is a separate test so a failure names it; each takes 10-20 seconds."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mailroom.bounces
from tests.bounces.generate import GENERATORS, Collected
from tests.bounces.test_reader import check


@pytest.fixture
def world() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are private to root, and the MTAs run as their users.
    with tempfile.TemporaryDirectory(prefix="bounces-live-") as tmp:
        Path(tmp).chmod(0o755)
        yield Path(tmp)


@pytest.mark.parametrize("mta", sorted(GENERATORS))
def test_live_bounces_are_read(mta: str, world: Path) -> None:
    generator: Callable[[Path, Collected], None] = GENERATORS[mta]
    collected = Collected()
    generator(world, collected)
    assert collected.files, f"{mta} sent no report"
    for name, raw in sorted(collected.files.items()):
        records = mailroom.bounces.parse(raw, name)
        check(records, collected.expected[name])
