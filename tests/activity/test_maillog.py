"""The mail log writes what logging would have written, in fewer writes, and only where no
one could tell the difference (activity/maillog.py)."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Iterator

import pytest

from mailroom.activity.maillog import LOG_FORMAT, MailLog


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own that does not reach the root's (or pytest's) handlers."""
    found = logging.getLogger(f"mailroom.test-maillog.{time.monotonic_ns()}")
    found.setLevel(logging.INFO)
    found.propagate = False
    yield found
    found.handlers.clear()


def stream_handler(logger: logging.Logger, fmt: str = LOG_FORMAT) -> CountingStream:
    stream = CountingStream()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(fmt))
    # pytest hangs its capture handlers on loggers that do not propagate too; this one is to
    # have only the handler of the test.
    logger.handlers = [handler]
    return stream


def test_lines_of_one_loop_turn_go_out_in_one_write(logger: logging.Logger) -> None:
    stream = stream_handler(logger)
    maillog = MailLog(logger)

    async def turn() -> str:
        maillog.configure()  # as the server does when it starts, in its loop
        assert maillog.direct
        maillog.info("06H2: client=127.0.0.1 reply=250")
        maillog.info("NOQUEUE: client=127.0.0.1 reply=552 5.3.4 too big")
        maillog.info("refused: client=127.0.0.1 stage=VRFY reply=502")
        written = stream.getvalue()  # nothing yet: the turn is not over
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return written

    assert asyncio.run(turn()) == ""
    lines = stream.getvalue().splitlines()
    assert stream.writes == 1
    assert [line.split(" INFO ", 1)[1] for line in lines] == [
        f"{logger.name}: 06H2: client=127.0.0.1 reply=250",
        f"{logger.name}: NOQUEUE: client=127.0.0.1 reply=552 5.3.4 too big",
        f"{logger.name}: refused: client=127.0.0.1 stage=VRFY reply=502",
    ]


@pytest.mark.parametrize("offset", [0.0, 0.0004, 0.0015, 0.5, 0.9994, 0.9996, 59.9999])
def test_the_date_is_logging_s_own(logger: logging.Logger, offset: float) -> None:
    stream_handler(logger)
    maillog = MailLog(logger)
    maillog.configure()
    at = 1_764_930_000.0 + offset
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "x", (), None)
    record.created = at
    record.msecs = int((at - int(at)) * 1000) + 0.0
    formatter = logger.handlers[0].formatter
    assert formatter is not None
    assert maillog._asctime(at) == formatter.formatTime(record)


def test_outside_the_event_loop_a_line_is_written_at_once(logger: logging.Logger) -> None:
    stream = stream_handler(logger)
    maillog = MailLog(logger)
    maillog.configure()
    maillog.info("hello")
    assert stream.getvalue().endswith(f"INFO {logger.name}: hello\n")


@pytest.mark.parametrize(
    "change",
    ["another format", "a second handler", "a filter", "a handler filter", "a debug handler"],
)
def test_anything_else_goes_through_logging(logger: logging.Logger, change: str) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    if change == "another format":
        stream = stream_handler(logger, "%(levelname)s %(message)s")
    else:
        stream = stream_handler(logger)
    if change == "a second handler":
        logger.addHandler(Keep())
    elif change == "a filter":
        logger.addFilter(lambda record: True)
    elif change == "a handler filter":
        logger.handlers[0].addFilter(lambda record: True)
    elif change == "a debug handler":
        logger.handlers[0].setLevel(logging.WARNING)
    maillog = MailLog(logger)
    maillog.configure()
    assert not maillog.direct
    maillog.info("06H2: client=127.0.0.1 reply=250")
    if change == "another format":
        assert stream.getvalue() == "INFO 06H2: client=127.0.0.1 reply=250\n"
    elif change == "a second handler":
        assert [r.getMessage() for r in records] == ["06H2: client=127.0.0.1 reply=250"]
    elif change == "a debug handler":
        assert stream.getvalue() == ""  # the handler's own level still applies


def test_pytest_s_capture_sees_every_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailroom.smtp")
    maillog = MailLog(logging.getLogger("mailroom.smtp"))
    maillog.configure()
    assert not maillog.direct
    maillog.info("06H2: client=127.0.0.1 reply=250")
    assert "06H2: client=127.0.0.1 reply=250" in caplog.messages


def test_nothing_below_info(logger: logging.Logger) -> None:
    stream = stream_handler(logger)
    logger.setLevel(logging.WARNING)
    maillog = MailLog(logger)
    maillog.configure()
    assert not maillog.enabled
    maillog.info("06H2: client=127.0.0.1 reply=250")
    maillog.flush()
    assert stream.getvalue() == ""
