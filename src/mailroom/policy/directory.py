"""The recipient directory of the mail server mode: local domains, users, aliases, forwards,
moved users and catch-alls, read from the ``[domains]``, ``[users]`` and ``[aliases]`` tables
of ``mailroom.toml``.

    domains = ["example.test", "example.org"]

    [users."alice@example.test"]
    password = "$argon2id$..."        # from `mailroom passwd`; optional (receive-only users)
    quota = "1G"                      # optional

    [aliases]
    "postmaster@example.test" = "alice@example.test"
    "team@example.test" = ["alice@example.test", "bob@example.test"]
    "carol@example.test" = { moved_to = "carol@elsewhere.test" }     # 551 5.1.6
    "dave@example.test" = "dave@remote.test"                         # forwards off-site
    "@example.org" = "alice@example.test"                            # catch-all

Every domain, user, alias and target is checked at load as RFC 5321 says a domain or a
mailbox is written, and, since a local user's Maildir is ``<data>/mail/<domain>/<local part>``,
a local part may not hold ``/`` or quotes, nor start with a dot or a dash: no name in the
configuration can reach outside the data directory.

Resolution follows aliases (with a depth limit against loops) to local users and remote
addresses. Addresses compare case-insensitively in the domain and, by setting, in the local
part (most sites treat ``Alice`` and ``alice`` as one user).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailroom.protocol.syntax import AddressError, parse_domain, parse_mailbox
from mailroom.settings_types import parse_size

__all__ = ["Directory", "DirectoryError", "Resolution", "User"]

MAX_ALIAS_DEPTH = 10


class DirectoryError(ValueError):
    """A directory configuration that cannot be used; the message names the entry, ``key``
    where it is (``("users", address)``), for the error's line number."""

    def __init__(self, message: str, key: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.key = key


def check_domain(name: str) -> str:
    """A local domain as the configuration names it: a domain name (RFC 5321 ``Domain``, no
    address literal), lower-case, without a trailing dot."""
    domain = name.lower().rstrip(".")
    try:
        if domain.startswith("["):
            raise AddressError("an address literal is not a local domain")
        parse_domain(domain, utf8=True)
    except AddressError as exc:
        raise DirectoryError(f"{name!r} is not a domain name ({exc})") from None
    return domain


def check_address(address: str, *, mailbox: bool) -> None:
    """An address as RFC 5321 writes a mailbox (SMTPUTF8 allowed); with ``mailbox``, one that
    names a local Maildir: a dot-atom local part with no ``/``, not starting with ``-``."""
    try:
        parsed = parse_mailbox(address, utf8=True)
        if parsed.is_address_literal:
            raise AddressError("an address literal")
    except AddressError as exc:
        raise DirectoryError(f"{address!r} is not an address ({exc})") from None
    local = parsed.local_part
    if mailbox and (local.startswith(('"', "-")) or "/" in local):
        raise DirectoryError(
            f"{address!r}: a local user's name may not be quoted, start with '-' or hold '/' "
            "(it names a directory)"
        )


@dataclass(frozen=True, slots=True)
class User:
    address: str  # canonical, lower-case
    password_hash: str | None = None
    scram: str | None = None  # the SCRAM-SHA-256 secret, as `mailroom passwd` writes it
    quota: int = 0  # octets; 0 means none

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(slots=True)
class Resolution:
    """Where mail for one recipient goes."""

    local: list[User] = field(default_factory=list)  # local mailboxes
    remote: list[str] = field(default_factory=list)  # addresses to relay to
    moved_to: str | None = None  # the user moved: 551 5.1.6 with this address
    loop: bool = False  # aliases refer to each other too deeply

    @property
    def found(self) -> bool:
        return bool(self.local or self.remote or self.moved_to)


def _alias_targets(target: Any) -> list[str]:
    """The addresses an alias names (its shape is checked after)."""
    if isinstance(target, Mapping):
        moved = target.get("moved_to")
        return [moved] if isinstance(moved, str) else []
    if isinstance(target, str):
        return [target]
    if isinstance(target, list):
        return [t for t in target if isinstance(t, str)]
    return []


def _split(address: str) -> tuple[str, str]:
    local, at, domain = address.rpartition("@")
    if not at:
        return address, ""
    return local, domain


def canonical(address: str, *, fold_local_part: bool = True) -> str:
    local, domain = _split(address.strip())
    domain = domain.lower().rstrip(".")
    if fold_local_part:
        local = local.lower()
    return f"{local}@{domain}" if domain else local


@dataclass
class Directory:
    domains: frozenset[str] = frozenset()
    users: dict[str, User] = field(default_factory=dict)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    fold_local_part: bool = True
    primary_domain: str = ""  # the first domain configured: postmaster@ it is the postmaster

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> Directory:
        fold = bool(data.get("case_insensitive_local_part", True))
        domains_value = data.get("domains", [])
        if isinstance(domains_value, Mapping):
            domains_value = list(domains_value)
        if not isinstance(domains_value, list) or not all(
            isinstance(d, str) for d in domains_value
        ):
            raise DirectoryError("domains: a list of domain names", ("domains",))
        try:
            checked = [check_domain(d) for d in domains_value]
        except DirectoryError as exc:
            raise DirectoryError(f"domains: {exc}", ("domains",)) from None
        domains = frozenset(checked)
        directory = cls(
            domains=domains,
            fold_local_part=fold,
            primary_domain=checked[0] if checked else "",
        )
        for address, entry in (data.get("users") or {}).items():
            where = ("users", address)
            try:
                check_address(address, mailbox=True)
            except DirectoryError as exc:
                raise DirectoryError(f"users: {exc}", where) from None
            key = directory.key(address)
            if _split(key)[1] not in domains:
                raise DirectoryError(f"users: {address} is not in a local domain", where)
            entry = entry or {}
            if not isinstance(entry, Mapping):
                raise DirectoryError(f"users: {address} needs a table (password, quota)", where)
            try:
                quota = parse_size(entry.get("quota", 0))
            except ValueError:
                raise DirectoryError(f"users: {address}: bad quota", where) from None
            directory.users[key] = User(key, entry.get("password"), entry.get("scram"), quota)
        for address, target in (data.get("aliases") or {}).items():
            where = ("aliases", address)
            try:
                if address.startswith("@"):
                    check_domain(address[1:])
                else:
                    check_address(address, mailbox=False)
                for name in _alias_targets(target):
                    check_address(name, mailbox=False)
            except DirectoryError as exc:
                raise DirectoryError(f"aliases: {exc}", where) from None
            key = directory.key(address) if not address.startswith("@") else address.lower()
            alias_domain = key[1:] if key.startswith("@") else _split(key)[1]
            if alias_domain not in domains:
                raise DirectoryError(f"aliases: {address} is not in a local domain", where)
            if isinstance(target, Mapping) and "moved_to" in target:
                directory.moved[key] = str(target["moved_to"])
            elif isinstance(target, str):
                directory.aliases[key] = (target,)
            elif isinstance(target, list) and target and all(isinstance(t, str) for t in target):
                directory.aliases[key] = tuple(target)
            else:
                raise DirectoryError(
                    f"aliases: {address}: an address, a list, or {{ moved_to = ... }}", where
                )
        return directory

    # -- questions -------------------------------------------------------------------------------

    def key(self, address: str) -> str:
        return canonical(address, fold_local_part=self.fold_local_part)

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains

    def is_local(self, address: str) -> bool:
        return self.is_local_domain(_split(address)[1])

    def resolve(self, address: str) -> Resolution:
        result = Resolution()
        self._resolve(self.key(address), result, depth=0, seen=set())
        return result

    def _resolve(self, key: str, result: Resolution, depth: int, seen: set[str]) -> None:
        if depth > MAX_ALIAS_DEPTH or key in seen:
            result.loop = True
            return
        seen.add(key)
        local, domain = _split(key)
        if not self.is_local_domain(domain):
            if key not in result.remote:
                result.remote.append(key)
            return
        if key in self.moved:
            result.moved_to = self.moved[key]
            return
        targets = self.aliases.get(key)
        if targets is None and key in self.users:
            if self.users[key] not in result.local:
                result.local.append(self.users[key])
            return
        if targets is None:
            # Sub-addressing: "alice+news@example.test" is alice's (RFC 5233 style).
            base = local.split("+", 1)[0]
            if base != local:
                self._resolve(f"{base}@{domain}", result, depth + 1, seen)
                return
            targets = self.aliases.get(f"@{domain}")
        if targets is None:
            return
        for target in targets:
            self._resolve(self.key(target), result, depth + 1, seen)

    def addresses_of(self, username: str) -> set[str]:
        """The addresses a user may send as: their own and every alias that reaches them."""
        own = self.key(username)
        found = {own}
        for alias in self.aliases:
            if alias.startswith("@"):
                continue
            if any(u.address == own for u in self.resolve(alias).local):
                found.add(alias)
        return found

    def mailbox_users(self) -> Iterable[User]:
        return self.users.values()
