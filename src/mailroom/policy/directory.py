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

    [lists."staff@example.test"]                                     # a list: only members
    members = ["alice@example.test", "bob@example.test"]             # may post (550 5.7.2)
    members_only = true

A user may be ``disabled = true`` (mail refused with 550 5.2.1, AUTH with 535 5.7.13) and have
a ``max_message_size`` of their own (552 5.2.3). ``[owned_since]`` records since when a
mailbox or a domain has had its present owner, for RRVS (RFC 7293).

Every domain, user, alias, list and target is checked at load as RFC 5321 says a domain or a
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

from mailroom.protocol.syntax import AddressError, a_label, parse_domain, parse_mailbox
from mailroom.settings_types import parse_size

__all__ = ["Directory", "DirectoryError", "Resolution", "User"]

MAX_ALIAS_DEPTH = 10
# The keys a user's table may hold; anything else is a typo that check-config reports.
USER_KEYS = frozenset(
    {"password", "scram", "quota", "disabled", "max_message_size", "strong_auth_only"}
)


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
    disabled: bool = False  # the mailbox takes no mail (550 5.2.1) and its AUTH fails (5.7.13)
    max_message_size: int = 0  # octets; 0: the server's limit (552 5.2.3 above it)
    strong_auth_only: bool = False  # SCRAM-SHA-256 only: PLAIN and LOGIN get 534 5.7.9

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
    # Why the expansion of a list (an alias with several members) failed: a member that does
    # not exist, a loop, too many members (450 4.2.4). None when it did not fail.
    problem: str | None = None
    lists: list[str] = field(default_factory=list)  # the lists expanded on the way
    disabled: list[User] = field(default_factory=list)  # users left out: their mailbox is off
    ambiguous: list[str] = field(default_factory=list)  # users the address matches equally
    # A bounce to one of this server's return addresses (SRS): the address it stands for
    bounce_of: str | None = None

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
    # [lists."addr"]: the lists whose posting is limited to their members (list → members)
    members_only: dict[str, frozenset[str]] = field(default_factory=dict)
    # [owned_since]: since when a mailbox ("alice@example.test") or a domain has had its present
    # owner, in seconds since the epoch (RRVS, RFC 7293)
    owned_since: dict[str, float] = field(default_factory=dict)
    # With case-sensitive local parts, the users whose addresses differ only in case, by the
    # case-folded address: an address that matches none exactly matches these (X.1.4 if several)
    _folded: dict[str, list[str]] = field(default_factory=dict, repr=False)
    # Each local domain by its A-labels (RFC 5890): "xn--bcher-kva.test" and "bücher.test" are
    # one domain, whichever the configuration wrote; keys use the configuration's spelling.
    _by_a_label: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_a_label = {a_label(domain): domain for domain in self.domains}

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
            if key in directory.users:
                raise DirectoryError(
                    f"users: {address} is the same user as another entry (local parts are "
                    "case-insensitive: case_insensitive_local_part = true)",
                    where,
                )
            disabled, max_size = _account_options(address, entry, where)
            strong = entry.get("strong_auth_only", False)
            if not isinstance(strong, bool):
                raise DirectoryError(f"users: {address}: strong_auth_only is true or false", where)
            directory.users[key] = User(
                key, entry.get("password"), entry.get("scram"), quota, disabled, max_size, strong
            )
            directory._folded.setdefault(key.lower(), []).append(key)
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
        _load_lists(directory, data.get("lists") or {})
        directory.owned_since = _owned_since(directory, data.get("owned_since") or {})
        return directory

    # -- questions -------------------------------------------------------------------------------

    def key(self, address: str) -> str:
        key = canonical(address, fold_local_part=self.fold_local_part)
        local, at, domain = key.rpartition("@")
        spelled = self.local_domain(domain) if at else domain
        return key if spelled == domain else f"{local}@{spelled}"

    def local_domain(self, domain: str) -> str:
        """``domain`` lower-case without a trailing dot; a local domain written in its other
        spelling (A-labels for U-labels or the reverse) as the configuration writes it."""
        name = domain.lower().rstrip(".")
        if name in self.domains:
            return name
        return self._by_a_label.get(a_label(name), name)

    def is_local_domain(self, domain: str) -> bool:
        return self.local_domain(domain) in self.domains

    def is_local(self, address: str) -> bool:
        return self.is_local_domain(_split(address)[1])

    def resolve(self, address: str) -> Resolution:
        result = Resolution()
        self._resolve(self.key(address), result, depth=0, seen=set())
        return result

    def _resolve(
        self, key: str, result: Resolution, depth: int, seen: set[str], member: bool = False
    ) -> None:
        if depth > MAX_ALIAS_DEPTH or key in seen:
            result.loop = True
            result.problem = result.problem or f"aliases loop at <{key}>"
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
        if targets is None and key not in self.users and not self.fold_local_part:
            matches = self._folded.get(key.lower(), [])
            if len(matches) > 1:
                # Only a guess could pick one of them (RFC 3463 X.1.4): none is picked.
                result.ambiguous += [m for m in matches if m not in result.ambiguous]
                return
            if matches:
                key = matches[0]
        if targets is None and key in self.users:
            user = self.users[key]
            if user.disabled:
                if user not in result.disabled:
                    result.disabled.append(user)
            elif user not in result.local:
                result.local.append(user)
            return
        if targets is None:
            # Sub-addressing: "alice+news@example.test" is alice's (RFC 5233 style).
            base = local.split("+", 1)[0]
            if base != local:
                self._resolve(f"{base}@{domain}", result, depth + 1, seen, member)
                return
            targets = self.aliases.get(f"@{domain}")
        if targets is None:
            if member:
                # A list that names a local address nobody has: its expansion is broken, and
                # saying so beats dropping that member's copy without a word.
                result.problem = result.problem or f"member <{key}> does not exist"
            return
        several = len(targets) > 1
        if several and key not in result.lists:
            result.lists.append(key)
        for target in targets:
            self._resolve(self.key(target), result, depth + 1, seen, member or several)

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

    def may_send_as(self, username: str, address: str, owned: set[str] | None = None) -> bool:
        """Whether ``address`` is one of the user's (``owned``: their ``addresses_of``, when
        already asked): an address of theirs, or a sub-address of one ("alice+news@..." is
        alice's, as mail to it reaches her) that is not itself another entry's address."""
        owned = self.addresses_of(username) if owned is None else owned
        key = self.key(address)
        if key in owned:
            return True
        local, domain = _split(key)
        base = local.split("+", 1)[0]
        if base == local or not base or key in self.users or key in self.aliases:
            return False
        return key not in self.moved and f"{base}@{domain}" in owned

    def mailbox_users(self) -> Iterable[User]:
        return self.users.values()

    def user(self, address: str) -> User | None:
        return self.users.get(self.key(address))

    def has_no_mailboxes(self, domain: str) -> bool:
        """A local domain with no user, alias, list or catch-all: nothing can be delivered
        there, a configuration mistake (X.3.5)."""
        domain = self.local_domain(domain)
        if domain not in self.domains:
            return False
        suffix = "@" + domain
        return not any(
            key.endswith(suffix) or key == suffix
            for table in (self.users, self.aliases, self.moved)
            for key in table
        )


def _account_options(
    address: str, entry: Mapping[str, Any], where: tuple[str, ...]
) -> tuple[bool, int]:
    """A user's ``disabled`` and ``max_message_size``, checked; unknown keys are errors."""
    unknown = sorted(set(entry) - USER_KEYS)
    if unknown:
        raise DirectoryError(
            f"users: {address}: unknown setting {unknown[0]!r} (a user has "
            f"{', '.join(sorted(USER_KEYS))})",
            where,
        )
    disabled = entry.get("disabled", False)
    if not isinstance(disabled, bool):
        raise DirectoryError(f"users: {address}: disabled is true or false", where)
    try:
        max_size = parse_size(entry.get("max_message_size", 0))
    except (ValueError, TypeError):
        raise DirectoryError(f"users: {address}: bad max_message_size", where) from None
    return disabled, max_size


def _load_lists(directory: Directory, lists: Mapping[str, Any]) -> None:
    """``[lists."staff@example.test"] members = [...]``, ``members_only = true``: an alias with
    several members whose posting may be limited to them."""
    if not isinstance(lists, Mapping):
        raise DirectoryError('lists: tables like [lists."staff@example.test"]', ("lists",))
    for address, table in lists.items():
        where = ("lists", address)
        try:
            check_address(address, mailbox=False)
        except DirectoryError as exc:
            raise DirectoryError(f"lists: {exc}", where) from None
        key = directory.key(address)
        if not isinstance(table, Mapping):
            raise DirectoryError(f"lists: {address} needs a table (members, members_only)", where)
        if _split(key)[1] not in directory.domains:
            raise DirectoryError(f"lists: {address} is not in a local domain", where)
        if key in directory.aliases or key in directory.users or key in directory.moved:
            raise DirectoryError(f"lists: {address} is also a user or an alias", where)
        unknown = sorted(set(table) - {"members", "members_only"})
        if unknown:
            raise DirectoryError(f"lists: {address}: unknown setting {unknown[0]!r}", where)
        members = table.get("members")
        if (
            not isinstance(members, list)
            or not members
            or not all(isinstance(m, str) for m in members)
        ):
            raise DirectoryError(f"lists: {address}: members is a list of addresses", where)
        try:
            for member in members:
                check_address(member, mailbox=False)
        except DirectoryError as exc:
            raise DirectoryError(f"lists: {address}: {exc}", where) from None
        only = table.get("members_only", False)
        if not isinstance(only, bool):
            raise DirectoryError(f"lists: {address}: members_only is true or false", where)
        directory.aliases[key] = tuple(members)
        if only:
            directory.members_only[key] = frozenset(directory.key(m) for m in members)


def _owned_since(directory: Directory, table: Mapping[str, Any]) -> dict[str, float]:
    """``[owned_since]``: ``"alice@example.test" = 2021-03-01T00:00:00Z`` (a TOML date-time, or
    a date) for a mailbox, ``"example.test" = ...`` for a domain."""
    import datetime

    if not isinstance(table, Mapping):
        raise DirectoryError(
            'owned_since: a table of "address or domain" = date-time', ("owned_since",)
        )
    found: dict[str, float] = {}
    for name, value in table.items():
        where = ("owned_since", name)
        key = directory.key(name) if "@" in name else directory.local_domain(name)
        domain = _split(key)[1] if "@" in key else key
        if domain not in directory.domains:
            raise DirectoryError(f"owned_since: {name} is not in a local domain", where)
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                raise DirectoryError(
                    f"owned_since: {name}: a date-time needs its offset (Z or +01:00)", where
                )
            found[key] = value.timestamp()
        elif isinstance(value, datetime.date):
            found[key] = datetime.datetime(
                value.year, value.month, value.day, tzinfo=datetime.UTC
            ).timestamp()
        else:
            raise DirectoryError(
                f"owned_since: {name}: a TOML date-time (2021-03-01T00:00:00Z)", where
            )
    return found
