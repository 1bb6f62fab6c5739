"""MTA-STS (RFC 8461): a recipient domain's promise of TLS with PKIX-valid certificates for the
MX hosts it names, published as a TXT record (``_mta-sts.DOMAIN``, its ``id``) and a policy file
fetched over HTTPS from ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt``.

- :func:`parse_txt` and :func:`parse_policy` read the two (RFC 8461 §3.1, §3.2), strictly
  where the RFC says MUST and tolerantly where it says unknown fields are ignored.
- :func:`fetch_policy` gets the file: the certificate checked for the policy host (PKIX, with
  the extra CA bundle of the settings), status 200 only, no redirect followed, ``text/plain``
  only, at most ``max_size`` octets within ``timeout`` seconds (§3.3); every failure is a
  :class:`PolicyFetchError` that says which rule was broken.
- :class:`MTASTS` applies the control flow of §5.1: a policy cached for its ``max_age`` (on
  disk, so a restart does not forget it), fetched again when the TXT record's ``id`` changes,
  used from the cache when the TXT record or the fetch fails; a fetch that failed is not tried
  again for the same ``id`` within ``retry_after`` seconds (§3.3: five minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver

from mailroom.filemodes import private_dir, replace_private
from mailroom.logsafe import quoted
from mailroom.protocol.syntax import ascii_digits
from mailroom.resolver import Resolver, ResolverError

__all__ = [
    "MTASTS",
    "PolicyError",
    "PolicyFetchError",
    "PolicyLookup",
    "STSPolicy",
    "fetch_policy",
    "mx_matches",
    "parse_policy",
    "parse_txt",
]

log = logging.getLogger("mailroom.delivery.mtasts")

MAX_AGE_LIMIT = 31557600  # RFC 8461 §3.2: the largest max_age
DEFAULT_MAX_SIZE = 64 * 1024  # §3.3: "a suggested maximum policy size is 64 kilobytes"
DEFAULT_TIMEOUT = 60.0  # §3.3: "a suggested timeout is one minute"
DEFAULT_RETRY_AFTER = 300.0  # §3.3: failed fetches not repeated within five minutes per id
_TXT_START = re.compile(r"v=STSv1[ \t]*(;|$)")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_TXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class PolicyError(ValueError):
    """A TXT record or policy file that breaks RFC 8461's syntax; the message says where."""


class PolicyFetchError(Exception):
    """The policy could not be fetched. ``result_type`` is its RFC 8460 name:
    ``sts-policy-fetch-error`` or ``sts-webpki-invalid`` (the policy host's certificate)."""

    def __init__(self, message: str, result_type: str = "sts-policy-fetch-error") -> None:
        super().__init__(message)
        self.result_type = result_type


def _fields(text: str, delimiter: str) -> list[tuple[str, str]]:
    return [
        (name.strip(), value.strip())
        for part in text.split(delimiter)
        if part.strip()
        for name, _, value in [part.partition("=")]
    ]


def parse_txt(records: list[str]) -> str | None:
    """The policy ``id`` of the ``_mta-sts`` TXT records, or None when the domain has no
    usable record: none beginning with ``v=STSv1``, more than one, or one that is malformed
    (§3.1: then the domain is taken not to have a policy)."""
    candidates = [r for r in records if _TXT_START.match(r)]
    if len(candidates) != 1:
        return None
    policy_id: str | None = None
    items = candidates[0].split(";")
    for index, part in enumerate(items):
        part = part.strip(" \t")
        if not part:
            if index == len(items) - 1:
                continue  # a trailing delimiter
            return None
        name, equals, value = part.partition("=")
        if not equals or not _EXT_NAME.fullmatch(name) or not _TXT_VALUE.fullmatch(value):
            return None
        if name == "id" and policy_id is None:
            if not _ID.fullmatch(value):
                return None
            policy_id = value
    return policy_id


def _is_domain(text: str) -> bool:
    labels = text.split(".")
    return len(labels) >= 1 and all(_LABEL.fullmatch(label) for label in labels)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: a name matches itself; ``*.example.com`` matches exactly one more label
    on the left (``mail.example.com``, not ``example.com`` nor ``a.b.example.com``)."""
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return host == pattern


@dataclass(frozen=True, slots=True)
class STSPolicy:
    mode: str  # enforce, testing, none
    mx: tuple[str, ...]
    max_age: int
    lines: tuple[str, ...] = ()  # the policy as fetched, one field a line (for TLS reports)

    def allows(self, host: str) -> bool:
        return any(mx_matches(pattern, host) for pattern in self.mx)


def parse_policy(text: str) -> STSPolicy:
    """The policy file (§3.2): CRLF- or LF-separated ``key: value`` lines. Raises
    :class:`PolicyError` naming the first problem."""
    found: dict[str, str] = {}
    mx: list[str] = []
    lines: list[str] = []
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.rstrip(" \t")
        if not line:
            continue
        name, colon, value = line.partition(":")
        value = value.strip(" \t")
        if not colon or not _EXT_NAME.fullmatch(name) or not value:
            raise PolicyError(f"line {number} is not 'key: value': {line[:60]!r}")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise PolicyError(f"line {number} holds control characters")
        lines.append(f"{name}: {value}")
        if name == "mx":
            pattern = value.lower().rstrip(".")
            bare = pattern[2:] if pattern.startswith("*.") else pattern
            if not _is_domain(bare):
                raise PolicyError(f"line {number}: mx {value!r} is not a host name or *.domain")
            mx.append(pattern)
        else:
            found.setdefault(name, value)  # §3.2: of a repeated field, the first counts
    if found.get("version") != "STSv1":
        raise PolicyError(f"version is {found.get('version')!r}, not STSv1")
    mode = found.get("mode")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"mode is {mode!r}, not enforce, testing or none")
    max_age = found.get("max_age", "")
    if not ascii_digits(max_age) or len(max_age) > 10:  # RFC 8461 §3.2: 1*10DIGIT
        raise PolicyError(f"max_age is {max_age!r}, not a number of seconds")
    if not mx and mode != "none":
        raise PolicyError("no mx: a policy names at least one MX host")
    return STSPolicy(mode, tuple(mx), min(int(max_age), MAX_AGE_LIMIT), tuple(lines))


class _DNSResolver(AbstractResolver):
    """aiohttp's resolver interface over mailroom's own resolver: the policy host is found
    through the same DNS servers as the MX hosts (and the tests' name server)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def resolve(  # type: ignore[override]
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[dict[str, Any]]:
        try:
            addresses = await self.resolver.addresses(host)
        except ResolverError as exc:
            raise OSError(f"{host}: {exc}") from None
        if not addresses:
            raise OSError(f"{host} has no address")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


async def fetch_policy(
    domain: str,
    *,
    resolver: Resolver,
    ssl_context: ssl.SSLContext,
    timeout: float = DEFAULT_TIMEOUT,
    max_size: int = DEFAULT_MAX_SIZE,
    port: int = 443,
) -> str:
    """The policy file of ``domain``, as text; :class:`PolicyFetchError` says what failed."""
    host = f"mta-sts.{domain}"
    url = f"https://{host}{'' if port == 443 else f':{port}'}/.well-known/mta-sts.txt"
    connector = aiohttp.TCPConnector(
        resolver=_DNSResolver(resolver),
        ssl=ssl_context,
        use_dns_cache=False,
        force_close=True,
    )
    limits = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector,
                timeout=limits,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            ) as session,
            session.get(
                url,
                allow_redirects=False,  # §3.3: 3xx redirects MUST NOT be followed
                headers={"Cache-Control": "no-cache", "Accept": "text/plain"},
            ) as response,
        ):
            if 300 <= response.status < 400:
                where = response.headers.get("Location", "?")
                raise PolicyFetchError(
                    f"{url} answered {response.status}, a redirect to {where[:200]}: "
                    "redirects are not followed (RFC 8461 §3.3)"
                )
            if response.status != 200:
                raise PolicyFetchError(f"{url} answered HTTP {response.status}, not 200")
            if response.content_type != "text/plain":
                raise PolicyFetchError(
                    f"{url} is {response.content_type or 'untyped'}, not text/plain (RFC 8461 §3.2)"
                )
            body = bytearray()
            async for chunk in response.content.iter_chunked(16 * 1024):
                body += chunk
                if len(body) > max_size:
                    raise PolicyFetchError(
                        f"{url} is larger than {max_size} octets (the limit, "
                        "mta_sts_max_size); not read further"
                    )
    except PolicyFetchError:
        raise
    except TimeoutError:
        raise PolicyFetchError(f"{url} took more than {timeout:g} seconds") from None
    except aiohttp.ClientConnectorCertificateError as exc:
        raise PolicyFetchError(
            f"{url}: the certificate of {host} is not valid: {exc.certificate_error}",
            "sts-webpki-invalid",
        ) from None
    except aiohttp.ClientSSLError as exc:
        raise PolicyFetchError(f"{url}: TLS failed: {exc}", "sts-webpki-invalid") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise PolicyFetchError(f"{url}: {exc or type(exc).__name__}") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyFetchError(f"{url} is not UTF-8 text") from None


@dataclass(frozen=True, slots=True)
class PolicyLookup:
    """What MTA-STS says of a domain now: the policy to apply (None: none), and what went
    wrong on the way, for TLS reports (``failure`` with its RFC 8460 result type)."""

    domain: str
    policy: STSPolicy | None = None
    failure: str | None = None
    result_type: str | None = None  # sts-policy-fetch-error, sts-policy-invalid, ...
    fetched: bool = False  # a fetch was tried just now (a failure to report once, not per use)


@dataclass
class _Cached:
    policy_id: str
    fetched: float
    text: str
    policy: STSPolicy = field(repr=False)

    def fresh(self, now: float) -> bool:
        return now < self.fetched + self.policy.max_age


class MTASTS:
    """Policies of recipient domains, cached in memory and in ``directory`` (one JSON file a
    domain), as RFC 8461 §5.1 applies them."""

    def __init__(
        self,
        resolver: Resolver,
        directory: Path,
        *,
        ssl_context: Callable[[], ssl.SSLContext],
        timeout: float = DEFAULT_TIMEOUT,
        max_size: int = DEFAULT_MAX_SIZE,
        retry_after: float = DEFAULT_RETRY_AFTER,
        port: int = 443,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resolver = resolver
        self.directory = directory
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.max_size = max_size
        self.retry_after = retry_after
        self.port = port
        self.clock = clock
        self._cache: dict[str, _Cached] = {}
        self._failed: dict[tuple[str, str], tuple[float, str, str]] = {}  # (domain, id) → when
        self._locks: dict[str, asyncio.Lock] = {}

    def _path(self, domain: str) -> Path:
        return self.directory / f"{domain}.json"

    def _load(self, domain: str) -> _Cached | None:
        cached = self._cache.get(domain)
        if cached is not None:
            return cached
        try:
            raw = json.loads(self._path(domain).read_text("utf-8"))
            cached = _Cached(
                str(raw["id"]), float(raw["fetched"]), str(raw["text"]), parse_policy(raw["text"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._cache[domain] = cached
        return cached

    def _store(self, domain: str, cached: _Cached) -> None:
        self._cache[domain] = cached
        private_dir(self.directory)
        data = {"id": cached.policy_id, "fetched": cached.fetched, "text": cached.text}
        replace_private(self._path(domain), json.dumps(data).encode("utf-8"))

    def cached(self, domain: str) -> STSPolicy | None:
        """The policy in the cache, fresh or not (for ``mailroom queue show`` and tests)."""
        found = self._load(domain.lower())
        return found.policy if found is not None else None

    async def lookup(self, domain: str) -> PolicyLookup:
        domain = domain.lower().rstrip(".")
        lock = self._locks.setdefault(domain, asyncio.Lock())
        async with lock:  # one fetch at a time per domain, whatever number of messages wait
            return await self._lookup(domain)

    async def _lookup(self, domain: str) -> PolicyLookup:
        now = self.clock()
        cached = self._load(domain)
        if cached is not None and not cached.fresh(now):
            cached = None
        try:
            policy_id = parse_txt(await self.resolver.policy_txt(f"_mta-sts.{domain}"))
        except ResolverError as exc:
            log.info("MTA-STS: TXT of %s failed (%s); using the cache", domain, quoted(exc))
            policy_id = None
        if policy_id is None or (cached is not None and cached.policy_id == policy_id):
            # No live record: a fresh cached policy still applies (§3.3, §5.1).
            return self._applied(domain, cached)
        failed = self._failed.get((domain, policy_id))
        if failed is not None and now < failed[0] + self.retry_after:
            return self._applied(domain, cached, failed[1], failed[2])
        try:
            text = await fetch_policy(
                domain,
                resolver=self.resolver,
                ssl_context=self.ssl_context(),
                timeout=self.timeout,
                max_size=self.max_size,
                port=self.port,
            )
            policy = parse_policy(text)
        except PolicyFetchError as exc:
            lookup = self._fetch_failed(domain, policy_id, cached, now, str(exc), exc.result_type)
            return dataclasses.replace(lookup, fetched=True)
        except PolicyError as exc:
            why = f"the policy of {domain} is invalid: {exc}"
            lookup = self._fetch_failed(domain, policy_id, cached, now, why, "sts-policy-invalid")
            return dataclasses.replace(lookup, fetched=True)
        fetched = _Cached(policy_id, now, text, policy)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._store, domain, fetched)
        self._cache[domain] = fetched
        self._failed.pop((domain, policy_id), None)
        log.info(
            "MTA-STS: %s has policy %s (mode %s, mx %s)",
            domain,
            quoted(policy_id),
            quoted(policy.mode),
            quoted(", ".join(policy.mx)),
        )
        return dataclasses.replace(self._applied(domain, fetched), fetched=True)

    def _fetch_failed(
        self,
        domain: str,
        policy_id: str,
        cached: _Cached | None,
        now: float,
        why: str,
        result_type: str,
    ) -> PolicyLookup:
        self._failed[(domain, policy_id)] = (now, why, result_type)
        if cached is not None and cached.policy.mode != "none":
            log.warning("MTA-STS: %s: %s (the cached policy applies)", domain, quoted(why))
        else:
            log.info("MTA-STS: %s: %s (delivering as without a policy)", domain, quoted(why))
        return self._applied(domain, cached, why, result_type)

    @staticmethod
    def _applied(
        domain: str,
        cached: _Cached | None,
        failure: str | None = None,
        result_type: str | None = None,
    ) -> PolicyLookup:
        policy = cached.policy if cached is not None else None
        if policy is not None and policy.mode == "none":
            policy = None  # §5: as though the domain had no policy
        return PolicyLookup(domain, policy, failure, result_type)
