"""BURL (RFC 4468) on submission listeners: the message, or a part of it, is on the user's IMAP
server, and the client gives its URLAUTH URL (RFC 4467) instead of sending it again.

``[burl]`` names the IMAP server and the login that gives this server its trust relationship
with it::

    [burl]
    imap = "127.0.0.1:143"           # where to connect
    url_host = "imap.example.test"   # the host (and port) URLs name; default: imap's
    login = "submit"                 # RFC 4468's submit user, or "{user}*submit": a Dovecot
    password = "..."                 # master-user login as the authenticated SMTP user
    tls = "none"                     # or "starttls", "implicit"
    timeout = "30s"

With the ``{user}`` form the IMAP server sees the SMTP user's own session, so a URL resolves
only to that user's messages (the URL must then grant access to ``authuser`` or
``user+<user>``); with a plain submit user it grants ``submit+<submit user>``, and the IMAP
server's URLAUTH service does the rest.

The replies, each from the catalogue: 451 4.4.1 the IMAP server cannot be reached; 554 5.7.14
no trust relationship (a URL for another server, a login the IMAP server refuses); 554 5.6.6 the
URL does not resolve (bad or expired URLAUTH, no URLAUTH at all); 554 5.3.4 the part would make
the message too big (known from the literal's size, before it is read); 554 5.3.3 a URL scheme
other than imap.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.submission.imapfetch import IMAPError, TooBig, urlfetch

__all__ = ["BurlFetcher", "BurlSettings"]

SCHEMES = ("imap",)
_URLAUTH = re.compile(r";urlauth=[^;/]+:[^;/:]+:[0-9A-Fa-f]+$", re.IGNORECASE)


@dataclass(frozen=True)
class BurlSettings:
    host: str
    port: int
    login: str
    password: str
    url_host: str = ""  # "host" or "host:port" as URLs name the server; "": host:port
    tls: Literal["none", "starttls", "implicit"] = "none"
    verify: bool = True  # check the IMAP server's certificate (TLS)
    timeout: float = 30.0

    @classmethod
    def from_config(cls, table: Any) -> BurlSettings:
        """``[burl]`` as mailroom.toml gives it; ValueError names what is wrong."""
        from mailroom.queue.settings import parse_duration

        if not hasattr(table, "items"):
            raise ValueError("burl: a table ([burl] imap = ..., login = ..., password = ...)")
        known = {"imap", "url_host", "login", "password", "tls", "verify", "timeout"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"burl: unknown setting {unknown[0]!r}")
        for key in ("imap", "login", "password"):
            if not isinstance(table.get(key), str) or not table[key]:
                raise ValueError(f"burl: {key} is needed")
        host, _, port = str(table["imap"]).rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError("burl: imap is HOST:PORT")
        tls = str(table.get("tls", "none"))
        if tls not in ("none", "starttls", "implicit"):
            raise ValueError("burl: tls is none, starttls or implicit")
        try:
            timeout = parse_duration(table.get("timeout", 30))
        except ValueError as exc:
            raise ValueError(f"burl: timeout: {exc}") from None
        return cls(
            host=host,
            port=int(port),
            login=table["login"],
            password=table["password"],
            url_host=str(table.get("url_host", "")).lower(),
            tls=tls,  # type: ignore[arg-type]
            verify=bool(table.get("verify", True)),
            timeout=timeout,
        )

    def names(self, host: str, port: int | None) -> bool:
        """Whether a URL's ``host[:port]`` is the server this one trusts (143 when no port)."""
        wanted = self.url_host or f"{self.host}:{self.port}"
        name, colon, wanted_port = wanted.rpartition(":")
        if not colon or not wanted_port.isdigit():
            name, wanted_port = wanted, "143"
        return host.lower() == name.lower() and (port or 143) == int(wanted_port)


def _said(text: str) -> str:
    """What the IMAP server said, as a reply may repeat it: printable ASCII, not too long."""
    text = re.sub(r"[^\x20-\x7e]", "?", text)
    return text if len(text) <= 200 else text[:197] + "..."


class BurlFetcher:
    """Fetches BURL message parts for sessions; one IMAP connection per BURL."""

    def __init__(self, settings: BurlSettings) -> None:
        self.settings = settings
        context = ssl.create_default_context()
        if not settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._context = context

    def check(self, url: str) -> Reply | None:
        """The refusal a URL gets before anything is fetched, or None."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return replies.BURL_CONTENT_NOT_AVAILABLE(why="the URL cannot be parsed")
        if parts.scheme.lower() not in SCHEMES:
            return replies.BURL_SCHEME_NOT_SUPPORTED(
                scheme=parts.scheme.lower() or "(none)", schemes=", ".join(SCHEMES)
            )
        try:
            port = parts.port
        except ValueError:
            return replies.BURL_CONTENT_NOT_AVAILABLE(why="the URL's port is not a number")
        if not self.settings.names(parts.hostname or "", port):
            return replies.BURL_TRUST_REQUIRED(
                why=f"this server trusts no IMAP server at {parts.netloc.rpartition('@')[2]}"
            )
        if not _URLAUTH.search(url):
            return replies.BURL_CONTENT_NOT_AVAILABLE(
                why="the URL carries no URLAUTH (RFC 4467): nothing authorizes fetching it"
            )
        return None

    async def fetch(self, url: str, *, user: str, limit: int) -> bytes | Reply:
        """The content of ``url`` for the authenticated ``user``, or the refusal (at most
        ``limit`` octets; 0: no limit)."""
        refusal = self.check(url)
        if refusal is not None:
            return refusal
        s = self.settings
        login = s.login.replace("{user}", unquote(user))
        try:
            return await urlfetch(
                url,
                host=s.host,
                port=s.port,
                login=login,
                password=s.password,
                tls=s.tls,
                ssl_context=self._context,
                timeout=s.timeout,
                limit=limit,
            )
        except TooBig as big:
            return replies.BURL_MESSAGE_TOO_BIG(size=big.size, limit=limit)
        except IMAPError as error:
            why = _said(error.text)
            if error.kind == "unavailable":
                return replies.IMAP_SERVER_UNAVAILABLE(why=why)
            if error.kind == "login":
                return replies.BURL_TRUST_REQUIRED(why=why)
            return replies.BURL_CONTENT_NOT_AVAILABLE(why=why)
