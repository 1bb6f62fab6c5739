"""The queue runner's timeouts, as RFC 5321 §4.5.3.2 and Postfix keep them: the TCP connection
(``connect_timeout``), each reply from the greeting on (``command_timeout``), and the reply after
the message (``data_done_timeout``, 10 minutes by default). Against a real mailroom on loopback
whose fault rules make it slow where a real server is slow: a greeting held back (tarpitting,
a greeting pause) and an end of data that takes its time (content scanning, a slow disk).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailroom.queue.entry import QueueSpool
from mailroom.queue.settings import QueueSettings
from tests.delivery.peers import (
    fast,
    queue_message,
    receiver,
    route_to,
    running,
    stored,
    wait_until,
)


def test_the_timeouts_are_settings_with_the_rfcs_defaults() -> None:
    default = QueueSettings()
    assert (default.connect_timeout, default.command_timeout) == (30.0, 300.0)
    assert default.data_done_timeout == 600.0  # §4.5.3.2.6: "10 minutes"
    configured = QueueSettings.from_config(
        {"queue": {"connect_timeout": "10s", "command_timeout": "2m", "data_done_timeout": "15m"}}
    )
    assert (configured.connect_timeout, configured.command_timeout) == (10.0, 120.0)
    assert configured.data_done_timeout == 900.0
    with pytest.raises(ValueError):
        QueueSettings.from_config({"queue": {"data_done_timeout": "soon"}})


def _deliver(tmp_path: Path, fault: str, **settings: float) -> tuple[int, int, int]:
    """One message queued for a mailroom that ``fault`` slows down, delivered with the runner's
    ``settings``: how many were delivered and deferred, and how many copies the peer stored."""
    spool = QueueSpool(tmp_path / "a")
    queue_message(spool, ["bob@example.test"])

    async def main() -> tuple[int, int, int]:
        async with receiver(tmp_path / "b", faults=(fault,)) as b:
            routes = route_to(b, "example.test")
            async with running(spool, fast(routes=routes, **settings)) as runner:
                await wait_until(lambda: not spool.ids())
                counts = (runner.delivered, runner.deferred)
        return (*counts, len(stored(tmp_path / "b")))

    return asyncio.run(main())


def test_a_slow_end_of_data_is_waited_for(tmp_path: Path) -> None:
    """Every reply but the last comes at once; the last takes 1.5 s, three times the command
    timeout. It is the reply after the message, so it has ``data_done_timeout``: one attempt,
    one copy."""
    done = _deliver(tmp_path, "eod:delay=1.5", command_timeout=0.5, data_done_timeout=10.0)
    assert done == (1, 0, 1)


def test_the_end_of_data_has_its_own_timeout(tmp_path: Path) -> None:
    """The other way round: a command timeout of 10 s does not stretch the reply after the
    message past ``data_done_timeout`` (0.5 s here): the first attempt is given up and deferred,
    the second (no delay) delivers."""
    done = _deliver(tmp_path, "eod:times=1:delay=3", command_timeout=10.0, data_done_timeout=0.5)
    assert done[:2] == (1, 1)


def test_a_slow_greeting_is_a_reply_not_the_connection(tmp_path: Path) -> None:
    """A greeting held back for a second, past ``connect_timeout`` (0.3 s) but within
    ``command_timeout``: the connection was made at once, the greeting is a reply like any
    other (§4.5.3.2.1: 5 minutes). Before, ``connect_timeout`` covered the greeting, EHLO and
    STARTTLS too, and the message was deferred at every attempt."""
    done = _deliver(tmp_path, "connect:delay=1", connect_timeout=0.3, command_timeout=5.0)
    assert done == (1, 0, 1)
