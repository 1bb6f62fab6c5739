"""Who may use the web UI and API: HTTP basic auth (RFC 7617) against one ``USER:PASSWORD``
(``web_auth``, also from ``web_auth_file`` or ``MAILROOM_WEB_AUTH``) or the users of a password
file (``web_users``: lines from ``mailroom passwd``, argon2 hashes).

The catcher's web needs no credentials unless given some (its mail is test mail, and it
listens on loopback); a mail server's web refuses to start without (see ``Config.validate``).

Against a file of users, a password is checked with argon2 (slow on purpose) in the password
checks' own threads, never on the event loop; a right one is remembered for a while (a browser
sends the credentials with every request) as a keyed hash, never as the password, and only
for the address it came from. Wrong passwords, against the file or the one ``USER:PASSWORD``,
count against the client's address as failed SMTP AUTHs do (``max_auth_failures`` within
``auth_failure_window``, checks in flight included); past the limit the address gets 429 for
credentials not already known good from that address, so a guesser learns nothing more while
an operator who logged in goes on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailroom.policy.authguard import AuthFailures, counted_as

if TYPE_CHECKING:
    from mailroom.policy.credentials import PasswordFile
    from mailroom.web.context import WebSettings

__all__ = ["REMEMBER_SECONDS", "Refused", "WebAuth", "basic_credentials"]

# How long a password checked against the file of users is taken as good without a new check.
REMEMBER_SECONDS = 300.0
_REMEMBERED_MAX = 1024  # credentials remembered at once (each a 32-octet digest)


@dataclass(frozen=True, slots=True)
class Refused:
    """No access: 401 (no or wrong credentials) or 429 (too many failures from the address)."""

    status: int
    text: str


NEED_CREDENTIALS = Refused(401, "mailroom: credentials needed\n")
TOO_MANY = Refused(429, "mailroom: too many failed logins from your address, try again later\n")


def basic_credentials(header: str) -> tuple[bytes, bytes] | None:
    """The user and password of an ``Authorization: Basic ...`` header, or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


class WebAuth:
    """Checks a request's credentials; gives the web user's name, or why not."""

    def __init__(self, settings: WebSettings) -> None:
        self._single: tuple[bytes, bytes] | None = None
        if settings.auth is not None:
            user, _, password = settings.auth.partition(":")
            self._single = user.encode(), password.encode()
        self._users: PasswordFile | None = None
        if settings.users is not None:
            from mailroom.policy.credentials import PasswordFile

            self._users = PasswordFile(settings.users)
        self.failures = AuthFailures(settings.max_auth_failures, settings.auth_failure_window)
        self._key = secrets.token_bytes(32)  # for the digests of remembered credentials
        self._remembered: dict[bytes, tuple[str, float]] = {}

    @property
    def required(self) -> bool:
        return self._single is not None or self._users is not None

    async def user(self, header: str, client: str) -> str | Refused:
        """The web user the ``Authorization`` header names, if its password is right."""
        given = basic_credentials(header)
        if given is None:
            return NEED_CREDENTIALS
        user, password = given
        # Remembered for the address that proved them only: a guesser past the limit at
        # another address would otherwise be told, at full speed, which guess is the password
        # someone logged in with (200 for it, 429 for the rest).
        proof = client.encode() + b"\0" + user + b"\0" + password
        digest = hmac.digest(self._key, proof, hashlib.sha256)
        now = time.monotonic()
        known = self._remembered.get(digest)
        if known is not None and known[1] > now:
            return known[0]
        counted = counted_as(client)  # as SMTP AUTH counts: an IPv6 client by its /64
        if not self.failures.may_begin(counted, now):
            return TOO_MANY
        self.failures.begin(counted)
        name: str | None = None
        try:
            name = await self._check(user, password)
        finally:
            self.failures.end(counted, failed=name is None, now=time.monotonic())
        if name is None:
            return NEED_CREDENTIALS
        if len(self._remembered) >= _REMEMBERED_MAX:
            self._forget_expired(now)
        self._remembered[digest] = (name, now + REMEMBER_SECONDS)
        return name

    async def _check(self, user: bytes, password: bytes) -> str | None:
        """The web user's name if the password is theirs, else None."""
        if self._single is not None:
            # Both compared in full whatever the first gives, so timing tells nothing.
            same_user = hmac.compare_digest(user, self._single[0])
            same_password = hmac.compare_digest(password, self._single[1])
            return self._single[0].decode() if same_user and same_password else None
        assert self._users is not None
        try:
            name, secret = user.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return None
        from mailroom.policy.credentials import password_checks

        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(password_checks(), self._users.verify, name, secret)
        return name if ok else None

    def _forget_expired(self, now: float) -> None:
        for digest, (_, until) in list(self._remembered.items()):
            if until <= now:
                del self._remembered[digest]
        if len(self._remembered) >= _REMEMBERED_MAX:
            self._remembered.clear()
