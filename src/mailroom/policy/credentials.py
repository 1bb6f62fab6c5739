"""Who may authenticate: any credentials (the catcher's way), or users of a password file.

A password file has one user a line, ``user:hash[:scram]``: an argon2 hash (argon2-cffi) for
PLAIN and LOGIN, and optionally the SCRAM-SHA-256 secret (salt, iterations, StoredKey and
ServerKey, RFC 5802) for SCRAM. ``mailroom passwd`` writes such lines. Lines starting with #
are comments.
"""

from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex
from typing import TYPE_CHECKING

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol import (
    CramMD5Credentials,
    Credentials,
    PlainCredentials,
    ScramCredentials,
    ScramSecret,
)

if TYPE_CHECKING:
    from mailroom.policy.directory import Directory

__all__ = [
    "AcceptAny",
    "CredentialError",
    "CredentialStore",
    "DirectoryCredentials",
    "PasswordFile",
    "password_checks",
    "password_line",
]


# A password check (argon2) takes a core and, with argon2-cffi's defaults, 64 MiB for a moment
# by design: at most this many run at once, whatever the number of clients trying; the others
# wait their turn (in their sessions, without blocking the event loop).
MAX_CONCURRENT_PASSWORD_CHECKS = 2
_checks: ThreadPoolExecutor | None = None


def password_checks() -> ThreadPoolExecutor:
    """The threads password checks run in (shared by SMTP AUTH and the web's logins)."""
    global _checks
    if _checks is None:
        _checks = ThreadPoolExecutor(
            MAX_CONCURRENT_PASSWORD_CHECKS, thread_name_prefix="mailroom-password"
        )
    return _checks


class CredentialError(ValueError):
    """A password file that cannot be read; the message names the line."""


class CredentialStore:
    mechanisms: tuple[str, ...] = ()

    async def check(self, credentials: Credentials) -> Reply:
        raise NotImplementedError

    def scram_secret(self, username: str) -> ScramSecret | None:
        return None

    def transition_needed(self, username: str) -> bool:
        """The user exists but has no secret for SCRAM yet: 432 4.7.12 asks them to log in
        once with PLAIN, which makes one (RFC 4954 §6)."""
        return False


class AcceptAny(CredentialStore):
    """Any username and password succeed; the username is recorded on the message. SCRAM is
    not offered: its server must prove it knows the password."""

    mechanisms = ("PLAIN", "LOGIN", "CRAM-MD5")

    async def check(self, credentials: Credentials) -> Reply:
        return replies.AUTH_SUCCEEDED()


@dataclass(frozen=True, slots=True)
class _User:
    password_hash: str
    scram: ScramSecret | None


def _scram_text(secret: ScramSecret) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return (
        f"SCRAM-SHA-256${secret.iterations}:{b64(secret.salt)}"
        f"${b64(secret.stored_key)}:{b64(secret.server_key)}"
    )


def _parse_scram(text: str) -> ScramSecret:
    # The format PostgreSQL uses: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
    scheme, params, keys = text.split("$")
    if scheme != "SCRAM-SHA-256":
        raise ValueError(scheme)
    iterations, salt = params.split(":")
    stored, server = keys.split(":")
    return ScramSecret(
        base64.b64decode(salt), int(iterations), base64.b64decode(stored), base64.b64decode(server)
    )


def password_line(username: str, password: str) -> str:
    from argon2 import PasswordHasher

    if ":" in username or not username or not username.isprintable():
        raise CredentialError("a username is printable and holds no ':'")
    hashed = PasswordHasher().hash(password)
    return f"{username}:{hashed}:{_scram_text(ScramSecret.from_password(password))}"


def _parse_users(users: dict[str, tuple[str, str | None]]) -> dict[str, _User]:
    found = {}
    for username, (password_hash, scram) in users.items():
        try:
            secret = _parse_scram(scram) if scram else None
        except (ValueError, TypeError):
            raise CredentialError(f"users: {username}: malformed SCRAM secret") from None
        if not password_hash.startswith("$argon2"):
            raise CredentialError(
                f"users: {username}: password is not an argon2 hash "
                "(make one with `mailroom passwd`)"
            )
        found[username] = _User(password_hash, secret)
    return found


class PasswordFile(CredentialStore):
    """Users with argon2 password hashes (and SCRAM secrets), from a file or from the
    ``[users]`` table of the mail server's configuration."""

    mechanisms = ("PLAIN", "LOGIN", "SCRAM-SHA-256")

    def __init__(
        self, path: Path | None = None, *, users: dict[str, tuple[str, str | None]] | None = None
    ) -> None:
        from argon2 import PasswordHasher

        self.path = path
        self._hasher = PasswordHasher()
        self._unknown: _User | None = None  # a hash no password matches, for unknown users
        self._users: dict[str, _User] = {}
        if path is not None:
            self._load(path)
        self._users.update(_parse_users(users or {}))

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise CredentialError(f"{path}: {exc.strerror}") from None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            username, _, rest = line.partition(":")
            password_hash, _, scram = rest.partition(":")
            if not username or not password_hash.startswith("$argon2"):
                raise CredentialError(f"{path}:{number}: expected user:$argon2...[:SCRAM-...]")
            try:
                secret = _parse_scram(scram) if scram else None
            except (ValueError, TypeError):
                raise CredentialError(f"{path}:{number}: malformed SCRAM secret") from None
            self._users[username] = _User(password_hash, secret)

    def __len__(self) -> int:
        return len(self._users)

    def _key(self, username: str) -> str:
        """The user a login name names: here the name as written in the file."""
        return username

    def _acts_as_self(self, credentials: PlainCredentials | ScramCredentials) -> bool:
        """Whether the authorization identity is empty or the user who logged in: acting as
        another user is not offered, so naming one fails the login (RFC 4616 §2, RFC 5802
        §5.1). The two are compared as logins are, so a case the directory ignores is
        ignored here too."""
        if not credentials.authzid:
            return True
        key = self._key(credentials.authzid)
        return bool(key) and key == self._key(credentials.username)

    def scram_secret(self, username: str) -> ScramSecret | None:
        user = self._users.get(username)
        return user.scram if user else None

    def verify(self, username: str, password: str) -> bool:
        """Whether ``password`` is the user's (argon2: slow on purpose; not on the loop)."""
        return self._verify(username, password)

    def _verify(self, username: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError

        user = self._users.get(username)
        if user is None:
            # Spend the same time on unknown users, so timing does not tell who exists.
            if self._unknown is None:
                self._unknown = _User(self._hasher.hash(token_hex(16)), None)
            user = self._unknown
        try:
            return bool(self._hasher.verify(user.password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    async def check(self, credentials: Credentials) -> Reply:
        if isinstance(credentials, ScramCredentials):
            ok = credentials.verified and self._key(credentials.username) in self._users
            ok = ok and self._acts_as_self(credentials)
        elif isinstance(credentials, PlainCredentials):
            loop = asyncio.get_running_loop()
            # argon2 is slow on purpose; keep it off the event loop.
            ok = await loop.run_in_executor(
                password_checks(), self._verify, credentials.username, credentials.password
            )
            ok = ok and self._acts_as_self(credentials)
        elif isinstance(credentials, CramMD5Credentials):
            return replies.AUTH_MECHANISM_TOO_WEAK()
        else:
            ok = False
        return replies.AUTH_SUCCEEDED() if ok else replies.AUTH_INVALID_CREDENTIALS()


class DirectoryCredentials(PasswordFile):
    """The users of the mail server's ``[users]`` table: usernames are their addresses,
    compared as the directory compares addresses (domain case-insensitive, local part by
    setting)."""

    def __init__(self, directory: Directory, users: dict[str, tuple[str, str | None]]) -> None:
        super().__init__(users=users)
        self.directory = directory

    def replace(self, directory: Directory, users: dict[str, tuple[str, str | None]]) -> None:
        """A new copy of the directory (read again from a database): swapped in at once, so a
        check sees the old users or the new ones, never half of each."""
        parsed = _parse_users(users)
        self.directory, self._users = directory, parsed

    def _key(self, username: str) -> str:
        """The user a login name names: an address as the directory compares it, but nothing
        more. The directory strips the whitespace around addresses it reads from the
        configuration; a login name with any (line breaks, NEL, U+2028) or with controls
        names no one, since the session's user goes as given into its mail's Received field."""
        if username != username.strip() or not username.isprintable():
            return ""  # no user's key
        return self.directory.key(username)

    def scram_secret(self, username: str) -> ScramSecret | None:
        return super().scram_secret(self._key(username))

    def _verify(self, username: str, password: str) -> bool:
        return super()._verify(self._key(username), password)

    def transition_needed(self, username: str) -> bool:
        user = self._users.get(self._key(username))
        return user is not None and user.scram is None

    async def check(self, credentials: Credentials) -> Reply:
        reply = await super().check(credentials)
        if reply.code != 235:
            return reply
        # Only after the password proved right: what follows tells that the account exists.
        user = self.directory.user(credentials.username)
        if user is not None and user.disabled:
            return replies.AUTH_ACCOUNT_DISABLED()  # RFC 5248 X.7.13
        if isinstance(credentials, PlainCredentials):
            if user is not None and user.strong_auth_only:
                return replies.AUTH_MECHANISM_TOO_WEAK()  # RFC 4954 §6: SCRAM only, for them
            await self._learn_scram(credentials.username, credentials.password)
        return reply

    async def _learn_scram(self, username: str, password: str) -> None:
        """The password transition (RFC 4954 §6, X.7.12): after a PLAIN login, a user without a
        SCRAM secret gets one, kept in memory, so SCRAM-SHA-256 works for them from now on
        (until a restart; `mailroom passwd` writes one for good)."""
        key = self._key(username)
        user = self._users.get(key)
        if user is None or user.scram is not None:
            return
        loop = asyncio.get_running_loop()
        secret = await loop.run_in_executor(password_checks(), ScramSecret.from_password, password)
        self._users[key] = _User(user.password_hash, secret)
