"""The link check: every link and image URL of a message (``<a href>``, ``<img src>``,
``<link rel=stylesheet>`` in the HTML, ``http(s)://`` in the text) with the HTTP status it
answers, in Mailpit's ``LinkCheckResponse`` shape.

Each URL is asked once with ``HEAD`` (``GET`` when a server refuses HEAD with 405 or 501), at
most :data:`CONCURRENCY` at a time and :data:`PER_HOST` to one host, each within the
``link_check_timeout`` setting; at most ``link_check_max_links`` URLs of a message are
checked. With ``follow`` redirects are followed (up to :data:`MAX_REDIRECTS`) and the final
status is given; without, the redirect itself (301, 302...) is.

Like Mailpit, addresses on loopback, private, link-local and other non-public networks are not
asked unless ``allow_internal_http_requests`` is set: a message could otherwise make the
server probe the network it stands in. The check is made on every address a name resolves to
(in the resolver the HTTP client uses, so a name cannot resolve one way for the check and
another for the request) and on every address literal, redirects included; such a link is
given as 451 "Blocked private/reserved address", as Mailpit gives it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections import defaultdict
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from mailroom import __version__
from mailroom.web.htmlparse import BoundedHTMLParser

__all__ = ["check_links", "extract_links"]

CONCURRENCY = 10
PER_HOST = 2
MAX_REDIRECTS = 3
BLOCKED = 451
BLOCKED_TEXT = "Blocked private/reserved address"
_TEXT_URL = re.compile(r"""https?://[^\s<>"'`\]\[{}|\\^]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)'\""


class _Links(BoundedHTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a":
            self.urls.append(found.get("href") or "")
        elif tag == "img":
            self.urls.append(found.get("src") or "")
        elif tag == "link" and "stylesheet" in (found.get("rel") or "").lower().split():
            self.urls.append(found.get("href") or "")


def extract_links(html: str, text: str, limit: int) -> list[str]:
    """The unique http(s) URLs of the HTML and the text, in order, at most ``limit``."""
    found: list[str] = []
    parser = _Links()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):
        pass
    candidates = [u.strip() for u in parser.urls]
    candidates += [m[0].rstrip(_TRAILING) for m in _TEXT_URL.finditer(text)]
    seen: set[str] = set()
    for url in candidates:
        if url.lower().startswith(("http://", "https://")) and url not in seen:
            seen.add(url)
            found.append(url)
            if len(found) >= limit:
                break
    return found


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class Blocked(OSError):
    """A request to an address that is not on the public Internet."""


class _GuardedResolver(AbstractResolver):
    """The default resolver, refusing names that resolve to an internal address."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if _internal(result["host"]):
                raise Blocked(f"{host} resolves to {result['host']}: {BLOCKED_TEXT}")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _literal_blocked(url: str) -> bool:
    host = (urlsplit(url).hostname or "").strip("[]")
    try:
        return _internal(host)
    except ValueError:
        return False  # a name: the resolver checks it


def _status_text(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _error_text(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(error, aiohttp.ClientConnectorError) and error.os_error is not None:
        return str(error.os_error.strerror or error.os_error)
    return str(error) or type(error).__name__


class _Checker:
    def __init__(
        self, session: aiohttp.ClientSession, *, follow: bool, allow_internal: bool
    ) -> None:
        self.session = session
        self.follow = follow
        self.allow_internal = allow_internal
        self.all = asyncio.Semaphore(CONCURRENCY)
        self.hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(PER_HOST)
        )

    async def check(self, url: str) -> dict[str, Any]:
        host = (urlsplit(url).hostname or "").lower()
        async with self.all, self.hosts[host]:
            try:
                code = await self._status(url)
            except Blocked:
                return {"URL": url, "StatusCode": BLOCKED, "Status": BLOCKED_TEXT}
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as error:
                if isinstance(error, aiohttp.ClientConnectorError) and isinstance(
                    error.os_error, Blocked
                ):
                    return {"URL": url, "StatusCode": BLOCKED, "Status": BLOCKED_TEXT}
                return {"URL": url, "StatusCode": 0, "Status": _error_text(error)}
        return {"URL": url, "StatusCode": code, "Status": _status_text(code)}

    async def _status(self, url: str) -> int:
        for _ in range(MAX_REDIRECTS + 1):
            if not self.allow_internal and _literal_blocked(url):
                raise Blocked(url)
            code, location = await self._ask(url, "HEAD")
            if code in (405, 501):
                code, location = await self._ask(url, "GET")
            if not self.follow or code not in (301, 302, 303, 307, 308) or not location:
                return code
            url = urljoin(url, location)
            if not url.lower().startswith(("http://", "https://")):
                return code
        raise ValueError(f"more than {MAX_REDIRECTS} redirects")

    async def _ask(self, url: str, method: str) -> tuple[int, str]:
        async with self.session.request(method, url, allow_redirects=False) as response:
            return response.status, response.headers.get("Location", "")


async def check_links(
    urls: Iterable[str], *, follow: bool, timeout: float, allow_internal: bool
) -> dict[str, Any]:
    """Mailpit's ``LinkCheckResponse`` for ``urls``."""
    urls = list(urls)
    connector = aiohttp.TCPConnector(
        resolver=None if allow_internal else _GuardedResolver(), limit=CONCURRENCY
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": f"mailroom/{__version__} link check"},
    ) as session:
        checker = _Checker(session, follow=follow, allow_internal=allow_internal)
        results = await asyncio.gather(*(checker.check(url) for url in urls))
    errors = sum(1 for r in results if r["StatusCode"] == 0 or r["StatusCode"] >= 400)
    return {"Errors": errors, "Links": list(results)}
