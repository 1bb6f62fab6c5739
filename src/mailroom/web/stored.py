"""The message a route's ``{id}`` names, as the endpoints that act on one read it: its index
row and raw file, or opened (parsed). One answer for a message that cannot be read: 404, for
an id the index does not know and for a file gone from under the index (deleted by hand, or by
another client just now), in the text style of Mailpit's own 404s."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from mailroom.web.http import web_context

if TYPE_CHECKING:
    from mailroom.web.messages import MessageRow
    from mailroom.web.mime import ParsedMessage

__all__ = ["message_file", "no_message", "opened_message", "rendered_message"]

T = TypeVar("T")


def no_message(message_id: str, *, file_gone: bool = False) -> web.HTTPNotFound:
    """The 404 to raise for a message that cannot be read."""
    if file_gone:
        return web.HTTPNotFound(text=f"message {message_id}: its file is gone")
    return web.HTTPNotFound(text=f"no message {message_id}")


async def rendered_message(
    request: web.Request, render: Callable[[MessageRow, ParsedMessage], T]
) -> T:
    """Open the message (parsed once, then kept a while) and ``render`` it, both in the
    worker thread: parsing, checksums and JSON are CPU work, which never runs on the event
    loop that serves SMTP."""
    messages = web_context(request).messages
    message_id = request.match_info["id"]

    def work() -> tuple[bool, T | None]:
        opened = messages.open(message_id)
        if opened is None:
            return False, None
        row, _, parsed = opened
        return True, render(row, parsed)

    try:
        found, result = await messages.call(work)
    except OSError:
        raise no_message(message_id, file_gone=True) from None
    if not found:
        raise no_message(message_id)
    return result  # type: ignore[return-value]


async def opened_message(request: web.Request) -> tuple[MessageRow, bytes, ParsedMessage]:
    """The message's row, raw bytes and parsed form (the parsing in the worker thread)."""
    messages = web_context(request).messages
    message_id = request.match_info["id"]
    try:
        opened = await messages.call(messages.open, message_id)
    except OSError:
        raise no_message(message_id, file_gone=True) from None
    if opened is None:
        raise no_message(message_id)
    return opened


async def message_file(request: web.Request) -> tuple[MessageRow, bytes]:
    """The message's index row and raw bytes, read in one call of the worker thread: the file
    only, never parsed."""
    messages = web_context(request).messages
    message_id = request.match_info["id"]

    def read() -> tuple[MessageRow, bytes] | None:
        row = messages.get(message_id)
        return None if row is None else (row, messages.raw(row))

    try:
        found = await messages.call(read)
    except OSError:
        raise no_message(message_id, file_gone=True) from None
    if found is None:
        raise no_message(message_id)
    return found
