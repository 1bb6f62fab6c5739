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

Resolution follows aliases (with a depth limit against loops) to local users and remote
addresses. Addresses compare case-insensitively in the domain and, by setting, in the local
part (most sites treat ``Alice`` and ``alice`` as one user).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailroom.settings_types import parse_size

__all__ = ["Directory", "DirectoryError", "Resolution", "User"]

MAX_ALIAS_DEPTH = 10


class DirectoryError(ValueError):
    """A directory configuration that cannot be used; the message names the entry."""


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
            raise DirectoryError("domains: a list of domain names")
        domains = frozenset(d.lower().rstrip(".") for d in domains_value)
        directory = cls(
            domains=domains,
            fold_local_part=fold,
            primary_domain=domains_value[0].lower().rstrip(".") if domains_value else "",
        )
        for address, entry in (data.get("users") or {}).items():
            key = directory.key(address)
            if _split(key)[1] not in domains:
                raise DirectoryError(f"users: {address} is not in a local domain")
            entry = entry or {}
            if not isinstance(entry, Mapping):
                raise DirectoryError(f"users: {address} needs a table (password, quota)")
            try:
                quota = parse_size(entry.get("quota", 0))
            except ValueError:
                raise DirectoryError(f"users: {address}: bad quota") from None
            directory.users[key] = User(key, entry.get("password"), entry.get("scram"), quota)
        for address, target in (data.get("aliases") or {}).items():
            key = directory.key(address) if not address.startswith("@") else address.lower()
            alias_domain = key[1:] if key.startswith("@") else _split(key)[1]
            if alias_domain not in domains:
                raise DirectoryError(f"aliases: {address} is not in a local domain")
            if isinstance(target, Mapping) and "moved_to" in target:
                directory.moved[key] = str(target["moved_to"])
            elif isinstance(target, str):
                directory.aliases[key] = (target,)
            elif isinstance(target, list) and target and all(isinstance(t, str) for t in target):
                directory.aliases[key] = tuple(target)
            else:
                raise DirectoryError(
                    f"aliases: {address}: an address, a list, or {{ moved_to = ... }}"
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
