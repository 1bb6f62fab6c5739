"""Server side of the SASL mechanisms AUTH offers (RFC 4954): PLAIN (RFC 4616), LOGIN,
CRAM-MD5 (RFC 2195) and SCRAM-SHA-256 (RFC 5802, RFC 7677), as small state machines.

A mechanism eats decoded client responses and answers with a step: a challenge to send, a
request for the user's stored secret (SCRAM), the finished credentials, or a failure reply.
Base64, the "*" cancel and line lengths are the connection's business, not the mechanism's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.protocol.events import (
    CramMD5Credentials,
    Credentials,
    PlainCredentials,
    ScramCredentials,
)

__all__ = [
    "PLAINTEXT_MECHANISMS",
    "SUPPORTED_MECHANISMS",
    "Challenge",
    "Failed",
    "Finished",
    "NeedSecret",
    "ScramSecret",
    "ServerMechanism",
    "new_mechanism",
]

# Mechanisms that send the password itself: offered only over TLS unless policy says otherwise.
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})
SUPPORTED_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256")


@dataclass(frozen=True, slots=True)
class Challenge:
    data: bytes


@dataclass(frozen=True, slots=True)
class NeedSecret:
    username: str


@dataclass(frozen=True, slots=True)
class Finished:
    credentials: Credentials


@dataclass(frozen=True, slots=True)
class Failed:
    reply: Reply


Step = Challenge | NeedSecret | Finished | Failed


@dataclass(frozen=True, slots=True)
class ScramSecret:
    """What a server stores for SCRAM-SHA-256 instead of the password (RFC 5802 §3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_password(
        cls, password: str, *, salt: bytes | None = None, iterations: int = 4096
    ) -> ScramSecret:
        salt = salt if salt is not None else secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        return cls(salt, iterations, hashlib.sha256(client_key).digest(), server_key)


class ServerMechanism:
    name = ""
    # CRAM-MD5: the server speaks first, so an initial response is a protocol error.
    accepts_initial_response = True

    def start(self, initial: bytes | None) -> Step:
        raise NotImplementedError

    def respond(self, data: bytes) -> Step:
        raise NotImplementedError

    def provide_secret(self, secret: ScramSecret | None) -> Step:
        return Failed(replies.AUTH_MALFORMED_RESPONSE())


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _Plain(ServerMechanism):
    name = "PLAIN"

    def start(self, initial: bytes | None) -> Step:
        return Challenge(b"") if initial is None else self.respond(initial)

    def respond(self, data: bytes) -> Step:
        parts = data.split(b"\0")
        texts = [_text(part) for part in parts]
        if len(parts) != 3 or None in texts or not parts[1]:
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        authzid, username, password = (t or "" for t in texts)
        return Finished(PlainCredentials(authzid, username, password))


class _Login(ServerMechanism):
    name = "LOGIN"

    def __init__(self) -> None:
        self._username: str | None = None

    def start(self, initial: bytes | None) -> Step:
        return Challenge(b"Username:") if initial is None else self.respond(initial)

    def respond(self, data: bytes) -> Step:
        text = _text(data)
        if text is None:
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        if self._username is None:
            if not text:
                return Failed(replies.AUTH_MALFORMED_RESPONSE())
            self._username = text
            return Challenge(b"Password:")
        return Finished(PlainCredentials("", self._username, text))


class _CramMD5(ServerMechanism):
    name = "CRAM-MD5"
    accepts_initial_response = False

    def __init__(self, hostname: str, nonce: str) -> None:
        self._challenge = f"<{nonce}@{hostname}>".encode("ascii", "replace")

    def start(self, initial: bytes | None) -> Step:
        if initial is not None:
            return Failed(replies.AUTH_UNEXPECTED_INITIAL_RESPONSE(mechanism=self.name))
        return Challenge(self._challenge)

    def respond(self, data: bytes) -> Step:
        text = _text(data)
        username, _, digest = (text or "").rpartition(" ")
        if (
            not username
            or len(digest) != 32
            or not all(c in "0123456789abcdefABCDEF" for c in digest)
        ):
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        return Finished(CramMD5Credentials(username, self._challenge, digest))


_BAD_SASLNAME = re.compile(r"=(?!2C|3D)")


def _scram_name(text: str) -> str | None:
    # saslname: "," and "=" are written "=2C" and "=3D"; any other "=" is an error.
    if _BAD_SASLNAME.search(text):
        return None
    return text.replace("=2C", ",").replace("=3D", "=")


class _ScramSHA256(ServerMechanism):
    name = "SCRAM-SHA-256"

    def __init__(self, nonce: str) -> None:
        self._server_nonce = nonce
        self._gs2_header = ""
        self._client_first_bare = ""
        self._nonce = ""
        self._authzid = ""
        self._username = ""
        self._secret: ScramSecret | None = None
        self._server_first = ""
        self._server_signature: bytes | None = None
        self._state = "client-first"

    def start(self, initial: bytes | None) -> Step:
        return Challenge(b"") if initial is None else self.respond(initial)

    def respond(self, data: bytes) -> Step:
        text = _text(data)
        if text is None:
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        if self._state == "client-first":
            return self._client_first(text)
        if self._state == "client-final":
            return self._client_final(text)
        if self._state == "server-final-sent" and text == "":
            return Finished(ScramCredentials(self._authzid, self._username, True))
        return Failed(replies.AUTH_MALFORMED_RESPONSE())

    def _client_first(self, text: str) -> Step:
        # gs2-header: "n" or "y" (no channel binding), then "," [ "a=" authzid ] ","
        flag, _, rest = text.partition(",")
        authz, _, bare = rest.partition(",")
        if flag not in ("n", "y") or (authz and not authz.startswith("a=")):
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        attributes = bare.split(",")
        if (
            len(attributes) < 2
            or not attributes[0].startswith("n=")
            or not attributes[1].startswith("r=")
        ):
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        username = _scram_name(attributes[0][2:])
        authzid = _scram_name(authz[2:]) if authz else ""
        client_nonce = attributes[1][2:]
        if not username or authzid is None or not client_nonce or "," in client_nonce:
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        self._gs2_header = f"{flag},{authz},"
        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce
        self._username, self._authzid = username, authzid
        self._state = "secret"
        return NeedSecret(username)

    def provide_secret(self, secret: ScramSecret | None) -> Step:
        if self._state != "secret":
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        if secret is None:
            # Unknown user: go on with a secret nobody knows, so the answer looks the same.
            secret = ScramSecret(
                secrets.token_bytes(16), 4096, secrets.token_bytes(32), secrets.token_bytes(32)
            )
        self._secret = secret
        self._state = "client-final"
        salt = base64.b64encode(secret.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt},i={secret.iterations}"
        return Challenge(self._server_first.encode("ascii"))

    def _client_final(self, text: str) -> Step:
        assert self._secret is not None
        without_proof, _, proof_attr = text.rpartition(",p=")
        attributes = dict(item.split("=", 1) for item in without_proof.split(",") if "=" in item)
        expected_binding = base64.b64encode(self._gs2_header.encode("utf-8")).decode("ascii")
        try:
            proof = base64.b64decode(proof_attr, validate=True)
        except ValueError:
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        if attributes.get("c") != expected_binding or attributes.get("r") != self._nonce:
            return Failed(replies.AUTH_MALFORMED_RESPONSE())
        auth_message = ",".join((self._client_first_bare, self._server_first, without_proof))
        signature = hmac.digest(self._secret.stored_key, auth_message.encode("utf-8"), "sha256")
        if len(proof) != len(signature):
            return Finished(ScramCredentials(self._authzid, self._username, False))
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        verified = hmac.compare_digest(hashlib.sha256(client_key).digest(), self._secret.stored_key)
        if not verified:
            return Finished(ScramCredentials(self._authzid, self._username, False))
        server_signature = hmac.digest(
            self._secret.server_key, auth_message.encode("utf-8"), "sha256"
        )
        self._state = "server-final-sent"
        return Challenge(b"v=" + base64.b64encode(server_signature))


def new_mechanism(name: str, *, hostname: str, nonce: Callable[[], str]) -> ServerMechanism:
    """A fresh server-side exchange for ``name`` (one of SUPPORTED_MECHANISMS)."""
    if name == "PLAIN":
        return _Plain()
    if name == "LOGIN":
        return _Login()
    if name == "CRAM-MD5":
        return _CramMD5(hostname, nonce())
    if name == "SCRAM-SHA-256":
        return _ScramSHA256(nonce())
    raise ValueError(f"unsupported mechanism {name}")
