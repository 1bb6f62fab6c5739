"""aiosmtpd as a benchmark peer: ``python aiosmtpd_server.py PORT discard|maildir DIR [--uvloop]``.

The handlers are what an aiosmtpd user would write: one that discards, and one that stores
each message with the standard library's ``mailbox.Maildir`` (which does not fsync).
"""

from __future__ import annotations

import asyncio
import mailbox
import sys

from aiosmtpd.smtp import SMTP


class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


class StoreMaildir:
    def __init__(self, path: str) -> None:
        self.maildir = mailbox.Maildir(path, create=True)

    async def handle_DATA(self, server, session, envelope):
        self.maildir.add(envelope.original_content or envelope.content)
        return "250 OK"


def main() -> None:
    port, kind = int(sys.argv[1]), sys.argv[2]
    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.install()
    handler = Discard() if kind == "discard" else StoreMaildir(sys.argv[3])

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="aiosmtpd.test", data_size_limit=52428800),
            "127.0.0.1",
            port,
            backlog=1024,
        )
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
