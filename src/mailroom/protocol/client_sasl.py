"""Client side of the SASL mechanisms for SMTP AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN,
CRAM-MD5 (RFC 2195), SCRAM-SHA-256 (RFC 5802, RFC 7677) and XOAUTH2 (Google, Microsoft).

A mechanism works on decoded data: it gives an optional initial response, answers each server
challenge, and says at the end whether the server proved itself (only SCRAM can). Base64, the
``*`` cancel and the 334/235 replies are the connection's business
(:class:`mailroom.protocol.client.ClientConnection`).

No clock and no I/O; the SCRAM nonce comes from a callable, so tests can pin it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable

from mailroom.protocol.syntax import ascii_digits

__all__ = [
    "CLIENT_MECHANISMS",
    "ClientMechanism",
    "CramMD5",
    "Login",
    "Plain",
    "SASLError",
    "ScramSHA256",
    "XOAuth2",
    "choose_mechanism",
    "client_mechanism",
]

# Strongest first: the order in which a client picks among what the server offers. XOAUTH2 is
# not here: it needs a token, not a password, so it is only used when asked for by name.
PASSWORD_MECHANISMS = ("SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN")
CLIENT_MECHANISMS = (*PASSWORD_MECHANISMS, "XOAUTH2")
# Sends the password itself (or a bearer token): only over TLS, unless the caller insists.
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN", "XOAUTH2"})

# RFC 7677 §4 asks for at least 4096; a hostile server could ask for billions to stall us.
MAX_SCRAM_ITERATIONS = 1_000_000


class SASLError(ValueError):
    """The server's challenge makes no sense, or it failed to prove itself (SCRAM). The
    connection cancels the exchange with ``*`` and reports this message."""


class ClientMechanism:
    """One exchange of one mechanism. Use a fresh object per AUTH command."""

    name = ""

    def initial_response(self) -> bytes | None:
        """The response sent with the AUTH command itself, or None to wait for a challenge."""
        return None

    def respond(self, challenge: bytes) -> bytes:
        """The answer to a (decoded) 334 challenge; raises :class:`SASLError`."""
        raise NotImplementedError

    @property
    def server_verified(self) -> bool:
        """Whether 235 may be believed: True unless the mechanism authenticates the server
        too and it has not done so yet (SCRAM's server signature)."""
        return True


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


class Plain(ClientMechanism):
    """RFC 4616: ``authzid NUL authcid NUL passwd`` as the initial response."""

    name = "PLAIN"

    def __init__(self, username: str, password: str, authzid: str = "") -> None:
        if "\0" in username + password + authzid:
            raise ValueError("PLAIN credentials must not contain NUL")
        self._message = b"\0".join((_utf8(authzid), _utf8(username), _utf8(password)))

    def initial_response(self) -> bytes:
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        # A server that did not take the initial response sends an empty challenge.
        if challenge:
            raise SASLError("PLAIN expects an empty challenge")
        return self._message


class Login(ClientMechanism):
    """The LOGIN mechanism (draft-murchison-sasl-login): the user name, then the password, each
    in answer to a challenge. The prompts' wording varies, so only their order counts."""

    name = "LOGIN"

    def __init__(self, username: str, password: str) -> None:
        self._answers = [_utf8(username), _utf8(password)]

    def respond(self, challenge: bytes) -> bytes:
        if not self._answers:
            raise SASLError("LOGIN: more than two challenges")
        return self._answers.pop(0)


class CramMD5(ClientMechanism):
    """RFC 2195: ``user SP hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self._answered = False

    def respond(self, challenge: bytes) -> bytes:
        if self._answered or not challenge:
            raise SASLError("CRAM-MD5 expects exactly one non-empty challenge")
        self._answered = True
        digest = hmac.new(_utf8(self._password), challenge, hashlib.md5).hexdigest()
        return _utf8(f"{self._username} {digest}")


def _saslname(text: str) -> str:
    # RFC 5802 §5.1: "," and "=" in names are written "=2C" and "=3D".
    return text.replace("=", "=3D").replace(",", "=2C")


def _default_nonce() -> str:
    return secrets.token_urlsafe(24)


class ScramSHA256(ClientMechanism):
    """RFC 5802 with SHA-256 (RFC 7677), without channel binding (gs2 flag ``n``).

    The server proves it knows the password by the signature in its final message; a wrong or
    missing signature is a :class:`SASLError`, and ``server_verified`` stays False so that a
    235 without it is not believed. Names and passwords are used as UTF-8 without SASLprep,
    which is exact for the ASCII names and passwords nearly everyone has.
    """

    name = "SCRAM-SHA-256"

    def __init__(
        self,
        username: str,
        password: str,
        authzid: str = "",
        *,
        nonce: Callable[[], str] = _default_nonce,
    ) -> None:
        self._password = password
        self._client_nonce = nonce()
        if not self._client_nonce or "," in self._client_nonce:
            raise ValueError("a SCRAM nonce is printable ASCII without ','")
        authz = f"a={_saslname(authzid)}" if authzid else ""
        self._gs2_header = f"n,{authz},"
        self._client_first_bare = f"n={_saslname(username)},r={self._client_nonce}"
        self._server_signature: bytes | None = None
        self._verified = False
        self._step = 0

    def initial_response(self) -> bytes:
        return _utf8(self._gs2_header + self._client_first_bare)

    def respond(self, challenge: bytes) -> bytes:
        self._step += 1
        try:
            text = challenge.decode("utf-8")
        except UnicodeDecodeError:
            raise SASLError("SCRAM challenge is not UTF-8") from None
        if self._step == 1:
            if not text:
                # The server did not take the initial response: send it now.
                self._step = 0
                return self.initial_response()
            return self._client_final(text)
        if self._step == 2:
            self._check_server_final(text)
            return b""
        raise SASLError("SCRAM: unexpected challenge after the server's final message")

    def _client_final(self, server_first: str) -> bytes:
        attributes = _attributes(server_first)
        if "e" in attributes:
            raise SASLError(f"SCRAM: server error {attributes['e']}")
        nonce, salt_b64, iterations_text = (attributes.get(k, "") for k in ("r", "s", "i"))
        if not nonce.startswith(self._client_nonce) or len(nonce) <= len(self._client_nonce):
            raise SASLError("SCRAM: the server's nonce does not extend ours")
        try:
            salt = base64.b64decode(salt_b64, validate=True)
        except ValueError:
            raise SASLError("SCRAM: the salt is not base64") from None
        if (
            not ascii_digits(iterations_text)
            or not 1 <= int(iterations_text) <= MAX_SCRAM_ITERATIONS
        ):
            raise SASLError(f"SCRAM: unacceptable iteration count {iterations_text!r}")
        salted = hashlib.pbkdf2_hmac("sha256", _utf8(self._password), salt, int(iterations_text))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        binding = base64.b64encode(_utf8(self._gs2_header)).decode("ascii")
        without_proof = f"c={binding},r={nonce}"
        auth_message = _utf8(f"{self._client_first_bare},{server_first},{without_proof}")
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self._server_signature = hmac.digest(server_key, auth_message, "sha256")
        return _utf8(f"{without_proof},p={base64.b64encode(proof).decode('ascii')}")

    def _check_server_final(self, server_final: str) -> None:
        attributes = _attributes(server_final)
        if "e" in attributes:
            raise SASLError(f"SCRAM: server error {attributes['e']}")
        try:
            signature = base64.b64decode(attributes.get("v", ""), validate=True)
        except ValueError:
            raise SASLError("SCRAM: the server signature is not base64") from None
        assert self._server_signature is not None
        if not signature or not hmac.compare_digest(signature, self._server_signature):
            raise SASLError("SCRAM: wrong server signature; the server does not know the password")
        self._verified = True

    @property
    def server_verified(self) -> bool:
        return self._verified


def _attributes(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(","):
        key, equals, value = item.partition("=")
        if equals and len(key) == 1:
            out.setdefault(key, value)
    return out


class XOAuth2(ClientMechanism):
    """Google's and Microsoft's XOAUTH2: ``user=… ^A auth=Bearer … ^A ^A`` as the initial
    response. On failure the server sends a 334 with a JSON error, which the client answers
    with an empty line; the 5xx that follows is the failure, and :attr:`error` keeps the JSON."""

    name = "XOAUTH2"

    def __init__(self, username: str, token: str) -> None:
        if "\x01" in username + token:
            raise ValueError("XOAUTH2 user and token must not contain ^A")
        self._message = _utf8(f"user={username}\x01auth=Bearer {token}\x01\x01")
        self.error: str | None = None

    def initial_response(self) -> bytes:
        return self._message

    def respond(self, challenge: bytes) -> bytes:
        if not challenge:
            return self._message
        self.error = challenge.decode("utf-8", "replace")
        return b""


def client_mechanism(
    name: str,
    username: str,
    secret: str,
    *,
    authzid: str = "",
    nonce: Callable[[], str] = _default_nonce,
) -> ClientMechanism:
    """A fresh exchange of mechanism ``name``; ``secret`` is the password, or for XOAUTH2 the
    OAuth 2 access token. Raises ValueError for a mechanism this client does not speak."""
    upper = name.upper()
    if upper == "PLAIN":
        return Plain(username, secret, authzid)
    if upper == "LOGIN":
        return Login(username, secret)
    if upper == "CRAM-MD5":
        return CramMD5(username, secret)
    if upper == "SCRAM-SHA-256":
        return ScramSHA256(username, secret, authzid, nonce=nonce)
    if upper == "XOAUTH2":
        return XOAuth2(username, secret)
    raise ValueError(
        f"unsupported SASL mechanism {name!r} (supported: {', '.join(CLIENT_MECHANISMS)})"
    )


def choose_mechanism(offered: tuple[str, ...], *, allow_plaintext: bool) -> str | None:
    """The strongest password mechanism both sides speak, or None. ``allow_plaintext=False``
    (no TLS) leaves out PLAIN and LOGIN, which would send the password in the clear."""
    for name in PASSWORD_MECHANISMS:
        if name in offered and (allow_plaintext or name not in PLAINTEXT_MECHANISMS):
            return name
    return None
