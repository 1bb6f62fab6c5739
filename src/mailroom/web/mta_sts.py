"""Serving the local domains' MTA-STS policy (RFC 8461 §3.2): ``GET
/.well-known/mta-sts.txt`` for the host ``mta-sts.DOMAIN`` answers the policy as ``text/plain``;
any other host gets 404.

Self-contained: :func:`add_routes` puts the handler on an aiohttp application (the web UI's,
which answers it to anyone, without its credentials or host guard: the policy is public), and
:class:`PolicySite` serves it alone over HTTPS on its own address (``[mta_sts] listen``), with
the listeners' certificate (reloaded with theirs, since it is the same context object).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from mailroom.tls_publish import MTA_STS_PATH, PublishedTLS

__all__ = ["MTA_STS_PATH", "PolicySite", "add_routes", "policy_handler"]

log = logging.getLogger("mailroom.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def policy_handler(published: PublishedTLS) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        policy = published.policy_for_host(request.host or "")
        if policy is None:
            return web.Response(status=404, text="no MTA-STS policy for this host\n")
        return web.Response(
            text=policy,
            content_type="text/plain",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    return handle


def add_routes(app: web.Application, published: PublishedTLS) -> None:
    app.router.add_get(MTA_STS_PATH, policy_handler(published))


class PolicySite:
    """The policy alone on an HTTPS listener (``HOST:PORT``)."""

    def __init__(self, published: PublishedTLS, context: ssl.SSLContext, host: str, port: int):
        self.published = published
        self.context = context
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        add_routes(app, self.published)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("MTA-STS policy on https://%s:%d%s", self.host, self.port, MTA_STS_PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
