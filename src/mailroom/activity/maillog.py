"""The mail log: the one line each transaction writes (``QUEUEID: client=... reply=250``, the
``NOQUEUE`` and ``refused`` lines), at the price of a string.

Through :mod:`logging`, each line cost a log record (a dozen attributes, the caller's frame
found by walking the stack, the process id asked of the kernel), its formatting and a write to
the terminal: more CPU than the rest of a message's way through the server. Here the session
formats its line itself and the lines of one turn of the event loop go out in one write, in
the same format, to the same stream, under the same handler's lock.

That shortcut is taken only where it changes nothing a reader could see: when the one handler
that would receive the line is a plain stream handler with mailroom's own format (what
``mailroom serve`` sets up, :data:`LOG_FORMAT`) and no filter is in the way. Anywhere else (a
test's ``caplog``, an application's own logging set-up under the pytest plugin, syslog) every
line goes through ``logging`` as before. Lines wait at most for the end of the loop's turn;
:meth:`MailLog.flush` writes them at once (the server calls it when stopping).
"""

from __future__ import annotations

import asyncio
import logging
import time

__all__ = ["LOG_FORMAT", "MailLog"]

# The format ``mailroom serve`` logs in (cli.py sets it up); the mail log writes it itself.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MailLog:
    """Info lines of ``logger`` written in batches, or through ``logging`` (see the module)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.enabled = logger.isEnabledFor(logging.INFO)
        self._handler: logging.StreamHandler | None = None  # type: ignore[type-arg]
        self._prefix = f" INFO {logger.name}: "
        self._pending: list[tuple[float, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # where flushes are scheduled
        self._second = -1  # the second whose date is in _date
        self._date = ""

    def configure(self) -> None:
        """Look at the logging set-up now (the server starts, in its event loop): write
        directly or not."""
        self.enabled = self.logger.isEnabledFor(logging.INFO)
        self._handler = direct_handler(self.logger) if self.enabled else None
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    @property
    def direct(self) -> bool:
        """Whether lines bypass ``logging`` (for tests and the docs)."""
        return self._handler is not None

    def info(self, message: str) -> None:
        """Log ``message`` (already formatted) at INFO."""
        if self._handler is None:
            if self.enabled:
                self.logger.info("%s", message)
            return
        self._pending.append((time.time(), message))
        if len(self._pending) == 1:
            if self._loop is None or self._loop.is_closed():
                self.flush()  # no event loop to wait for: at once
            else:
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        handler = self._handler
        if not pending or handler is None:
            return
        prefix = self._prefix
        lines = [f"{self._asctime(at)}{prefix}{message}\n" for at, message in pending]
        handler.acquire()
        try:
            handler.stream.write("".join(lines))
            handler.flush()
        except (OSError, ValueError):  # the terminal went away: as logging would, go on
            pass
        finally:
            handler.release()

    def _asctime(self, at: float) -> str:
        # logging.Formatter's default: local time to the second, then ",mmm". The date part
        # changes once a second; strftime is the costly half.
        second = int(at)
        if second != self._second:
            self._second = second
            self._date = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._date},{int((at - second) * 1000):03d}"


def direct_handler(logger: logging.Logger) -> logging.StreamHandler | None:  # type: ignore[type-arg]
    """The one stream handler an INFO line of ``logger`` would reach, if writing it directly
    (in :data:`LOG_FORMAT`) is exactly what that handler would do; else None."""
    if logging.root.manager.disable >= logging.INFO:
        return None
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        handlers += current.handlers
        current = current.parent if current.propagate else None
    if len(handlers) != 1:
        return None
    (handler,) = handlers
    formatter = handler.formatter
    if (
        type(handler) not in (logging.StreamHandler, logging.FileHandler)
        or handler.filters
        or handler.level > logging.INFO
        or type(formatter) is not logging.Formatter
        or formatter._fmt != LOG_FORMAT
        or formatter.datefmt is not None
        or formatter.converter is not time.localtime
        or formatter.default_msec_format != "%s,%03d"
    ):
        return None
    assert isinstance(handler, logging.StreamHandler)
    return handler
