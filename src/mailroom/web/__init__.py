"""The web UI and HTTP API, served by aiohttp on the same event loop as SMTP.

- ``/`` the UI (hand-written HTML, CSS and JavaScript in ``static/``, no build step)
- ``/api/v1/...`` the API: Mailpit's endpoints in Mailpit's shapes (:mod:`.mailpit`; Chaos and
  Send in :mod:`.chaos`) and mailroom's own (:mod:`.own`); ``/api/v1/openapi.json`` describes
  both, ``/docs`` shows it
- ``/api/events`` live updates over WebSocket (:mod:`.events`)
- ``/metrics`` Prometheus text format; ``/livez`` and ``/readyz`` for probes
- ``/.well-known/mta-sts.txt`` the local domains' MTA-STS policy, for ``mta-sts.DOMAIN``
  (:mod:`.mta_sts`; public, like the DNS records that point to it)

Nothing the web does runs on the SMTP path: it reads the index and message files in a worker
thread, and hears of new messages only while a browser listens. What it reads and changes comes
as narrow interfaces (:mod:`.context`) from the composition root; it never sees the SMTP server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from mailroom.logsafe import quoted
from mailroom.web.auth import Refused, WebAuth
from mailroom.web.bounces import routes as bounces_routes
from mailroom.web.chaos import routes as chaos_routes
from mailroom.web.checks import routes as check_routes
from mailroom.web.context import WebContext, WebSettings
from mailroom.web.events import EVENTS, EventStream
from mailroom.web.http import CONTEXT, WEB_USER
from mailroom.web.mailpit import routes as mailpit_routes
from mailroom.web.messages import Messages
from mailroom.web.mta_sts import MTA_STS_PATH
from mailroom.web.mta_sts import add_routes as mta_sts_routes
from mailroom.web.openapi import routes as openapi_routes
from mailroom.web.own import routes as own_routes
from mailroom.web.sessions import routes as session_routes
from mailroom.web.tags import routes as tag_routes

__all__ = ["Messages", "WebContext", "WebServer", "WebSettings", "build_app"]

log = logging.getLogger("mailroom.web")

STATIC = Path(__file__).parent / "static"
# Paths a probe or a load balancer reaches without credentials.
OPEN_PATHS = frozenset({"/livez", "/readyz"})
# The UI's own pages: scripts and styles from this origin only; messages are shown in
# sandboxed frames of /view/, which carry a stricter policy of their own.
UI_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Seconds a connection may stay open without sending a whole request (aiohttp closes it; its
# own default, 3630, let a client that sends half a header hold its descriptor for an hour).
IDLE_TIMEOUT = 75.0
TLS_HANDSHAKE_TIMEOUT = 30.0  # seconds, as the SMTP listeners' default
BUSY_LINGER = 2.0  # seconds a refused connection is read (and dropped) before it is closed
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 57\r\nConnection: close\r\n\r\n"
    b"mailroom: too many web connections (web_max_connections)\n"
)


def _same_origin(request: web.Request) -> bool:
    """A request a page of another site made (a form post, a fetch, a WebSocket) carries
    that site's Origin; ours, or a non-browser client, carries our host or none."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def _embedded_elsewhere(request: web.Request) -> bool:
    """A request another site's page made as part of itself: an <img>, a script, a fetch.

    Browsers say where a request comes from in Sec-Fetch-Site (Fetch Metadata): same-origin
    from our own pages, none from the address bar; cross-site, or same-site from another
    port of this host. Some GETs do more than read (the link check asks every link of a
    message, up to 100 requests from the server per GET; the spam check; opening a message
    marks it read), and an <img> of another page could make them with no Origin to refuse.
    A link followed to here (a top-level navigation) is let through, and so is every client
    that sends no Fetch Metadata (curl, API clients)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site not in ("cross-site", "same-site"):
        return False
    navigation = (
        request.headers.get("Sec-Fetch-Mode") == "navigate"
        and request.headers.get("Sec-Fetch-Dest") == "document"
        and request.method in ("GET", "HEAD")
    )
    return not navigation


def _host_name(host: str) -> str:
    """The name in a Host header, without its port: ``[::1]:8025`` → ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, port = host.rpartition(":")
    return name.rstrip(".") if name and port.isdigit() else host.rstrip(".")


def allowed_host(host: str | None, settings: WebSettings) -> bool:
    """Whether a request for ``host`` may reach a web UI that listens on loopback, or
    anywhere without credentials.

    A page of another site can point its own name at 127.0.0.1 (DNS rebinding) and then read
    the API as if it were that site; its requests still name that site in Host. So on loopback
    only the names that mean this machine are answered: localhost, IP addresses, the server's
    hostname, and those the configuration allows."""
    if host is None:
        return True  # HTTP/1.0 without Host: not a browser
    name = _host_name(host)
    allowed = settings.allowed_hosts
    if "*" in allowed or name in allowed or name == settings.hostname.lower():
        return True
    if name == "localhost" or name.endswith(".localhost"):
        return True  # RFC 6761 §6.3: always the loopback address
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def build_app(context: WebContext, events: EventStream) -> web.Application:
    settings = context.settings
    login = WebAuth(settings)
    # On loopback, and anywhere no credentials are asked: a page of another site that points
    # its name at this machine's address would otherwise read every message as its own
    # origin. With credentials, that page has none to send.
    guard_host = is_loopback(settings.listener.host) or not login.required
    refused_hosts: set[str] = set()  # logged once each
    published = settings.mta_sts
    # The one exemption from the host guard and the credentials: the MTA-STS policy, when one
    # is published, read (GET, HEAD) at its one path. Senders fetch it as mta-sts.DOMAIN
    # without credentials; it is as public as the DNS records that point to it. Nothing else
    # is open, and without a published policy that path asks for credentials like the rest.
    serves_policy = published is not None and published.mode is not None

    def public(request: web.Request) -> bool:
        return serves_policy and request.path == MTA_STS_PATH and request.method in ("GET", "HEAD")

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if public(request):
            return await handler(request)  # the policy answers for mta-sts.DOMAIN only
        host = request.headers.get(hdrs.HOST)
        if guard_host and not allowed_host(host, settings):
            name = _host_name(host or "")
            if name not in refused_hosts and len(refused_hosts) < 100:
                refused_hosts.add(name)
                log.warning(
                    "refused requests for host '%s' (allow it with --web-allowed-host)",
                    quoted(name),
                )
            return web.Response(
                status=403,
                text=f"mailroom: requests for host {name!r} are refused (a guard against DNS "
                f"rebinding); allow it with --web-allowed-host {name}\n",
            )
        if _embedded_elsewhere(request):
            return web.Response(status=403, text="mailroom: cross-site request refused\n")
        if login.required and request.path not in OPEN_PATHS:
            user = await login.user(
                request.headers.get(hdrs.AUTHORIZATION, ""), request.remote or ""
            )
            if isinstance(user, Refused):
                refusal = web.Response(status=user.status, text=user.text)
                if user.status == 401:
                    challenge = 'Basic realm="mailroom", charset="UTF-8"'
                    refusal.headers[hdrs.WWW_AUTHENTICATE] = challenge
                return refusal
            request[WEB_USER] = user
        changes = request.method not in ("GET", "HEAD", "OPTIONS")
        upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        if (changes or upgrade) and not _same_origin(request):
            return web.Response(status=403, text="mailroom: cross-origin request refused\n")
        return await handler(request)

    app = web.Application(middlewares=[guard], client_max_size=64 * 1024 * 1024)
    # On every answer, as it is sent: those a handler raises (web.HTTPNotFound, "no message
    # <the id asked for>") and the guard's refusals too, which a middleware that looks at
    # what the handler returns never sees.
    app.on_response_prepare.append(_common_headers)
    app[CONTEXT] = context
    app[EVENTS] = events

    mailpit_routes(app)
    chaos_routes(app)
    own_routes(app)
    session_routes(app)
    tag_routes(app)
    check_routes(app)
    bounces_routes(app)
    openapi_routes(app)
    if serves_policy:
        assert published is not None
        mta_sts_routes(app, published)
    app.router.add_get("/api/events", events.handle)
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/docs", _page("docs.html"))
    app.router.add_get("/api/v1/docs", _page("docs.html"))
    app.router.add_static("/static/", STATIC, append_version=False)
    return app


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cache-Control", "no-store")


def _page(name: str) -> Handler:
    path = STATIC / name

    async def page(request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(path)
        response.headers["Content-Security-Policy"] = UI_POLICY
        response.content_type = "text/html"
        return response

    return page


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Busy(asyncio.Protocol):
    """A connection past ``web_max_connections``: told so, and closed.

    Closed at once, a connection whose request arrives after the close is reset, and the
    reset throws away the 503 before the client reads it. So the answer is followed by the
    end of our side (FIN), what the client sends is read and dropped, and the connection is
    closed when the client closes its side or after :data:`BUSY_LINGER` seconds; at most
    ``limit`` of these linger at once, the rest are closed at once."""

    def __init__(self, lingering: set[_Busy], limit: int) -> None:
        self.lingering = lingering
        self.limit = limit
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is none of asyncio's classes
        transport.write(BUSY)
        if len(self.lingering) >= self.limit:
            transport.close()
            return
        self.lingering.add(self)
        transport.write_eof()
        self.timer = asyncio.get_running_loop().call_later(BUSY_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # read and dropped

    def eof_received(self) -> bool:
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lingering.discard(self)
        if self.timer is not None:
            self.timer.cancel()


class _Admission:
    """The listener's protocol factory: aiohttp's while fewer than ``limit`` connections are
    open, else :class:`_Busy`. The web shares its process, and so its file descriptors,
    with SMTP: connections nobody counted, each sending half a header and then nothing, once
    took every descriptor there was, and SMTP clients were dropped unanswered."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server = server
        self.limit = limit
        self.lingering: set[_Busy] = set()

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self.server.connections) >= self.limit:
            return _Busy(self.lingering, self.limit)
        return self.server()


class WebServer:
    def __init__(self, context: WebContext) -> None:
        self.context = context
        self.settings = context.settings
        self.messages = context.messages
        self.events = EventStream(context.hub, context.messages, context.faults)
        self.app = build_app(context, self.events)
        self._runner: web.AppRunner | None = None
        self._listening: asyncio.Server | None = None
        self.address: tuple[str, int] | None = None

    @property
    def connections(self) -> int:
        """HTTP connections open now (the WebSocket ones included)."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    @property
    def url(self) -> str:
        assert self.address is not None
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        elif host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        scheme = "https" if self.settings.tls is not None else "http"
        return f"{scheme}://{host}:{port}/"

    async def start(self) -> None:
        listener = self.settings.listener
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, keepalive_timeout=IDLE_TIMEOUT
        )
        await runner.setup()
        assert runner.server is not None
        # The listener is made here rather than by a web.TCPSite, so its connections are
        # counted (aiohttp has no limit of its own).
        admission = _Admission(runner.server, self.settings.max_connections)
        try:
            self._listening = await asyncio.get_running_loop().create_server(
                admission,
                listener.host,
                listener.port,
                reuse_address=True,
                ssl=self.settings.tls,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self.settings.tls else None,
            )
        except BaseException:
            await runner.cleanup()
            self.messages.close()
            raise
        self._runner = runner
        host, port = self._listening.sockets[0].getsockname()[:2]
        self.address = (str(host), int(port))
        log.debug("web UI and API on %s", self.url)  # `mailroom serve` prints it
        if (
            self.settings.credentials
            and self.settings.tls is None
            and not is_loopback(listener.host)
        ):
            log.warning(
                "the web UI and API on %s:%d take passwords over plain HTTP: anyone on the "
                "path can read them and every message. Set --web-tls (with --tls), or put a "
                "TLS proxy in front and listen on loopback.",
                listener.host,
                listener.port,
            )
        if not self.settings.credentials and not is_loopback(listener.host):
            log.warning(
                "the web UI and API on %s:%d are open to anyone who can reach them: every "
                "captured message, fault rules, release. Set --web-auth USER:PASSWORD. (Only "
                "requests for IP addresses, localhost, the hostname and --web-allowed-host "
                "names are answered: a guard against DNS rebinding.)",
                listener.host,
                listener.port,
            )

    async def stop(self) -> None:
        await self.events.close()
        if self._listening is not None:
            self._listening.close()  # no new connections; the runner closes the open ones
            self._listening = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await asyncio.get_running_loop().run_in_executor(None, self.messages.close)
