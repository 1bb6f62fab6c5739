"""DKIM keys on disk: ``<data>/dkim/<domain>/<selector>.key`` (the private key, PEM, mode
0600, in a directory of mode 0700) beside ``<selector>.txt`` (the TXT record to publish at
``<selector>._domainkey.<domain>``). ``mailroom dkim keygen`` makes them; the server signs a
domain's mail with every key it finds for it (so an RSA and an ed25519 key sign side by side).
Rotation is a new selector: make it, publish its record, and once it is in DNS rename the old
``.key`` to ``.key.retired`` (or remove it) and restart.

RSA keys are 2048 bits (RFC 8301: at least 1024, 2048 recommended); ed25519 keys are RFC
8463's. The keys are made by ``cryptography`` (already mailroom's for TLS certificates).
"""

from __future__ import annotations

import base64
import datetime
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailroom.filemodes import private_dir

__all__ = ["DKIMKey", "KeyFileError", "default_selector", "generate_key", "load_keys"]

Algorithm = Literal["rsa", "ed25519"]
RSA_BITS = 2048
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


class KeyFileError(ValueError):
    """A key that cannot be made or read; the message says which and why."""


@dataclass(frozen=True, slots=True)
class DKIMKey:
    domain: str
    selector: str
    algorithm: Algorithm
    private: bytes  # as dkimpy signs with it: PEM (RSA) or the base64 seed (ed25519)
    public_record: str  # the TXT record's text

    @property
    def signature_algorithm(self) -> bytes:
        return b"rsa-sha256" if self.algorithm == "rsa" else b"ed25519-sha256"

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def default_selector(algorithm: Algorithm, today: datetime.date | None = None) -> str:
    """``rsa-202612``, ``ed25519-202612``: the algorithm and the month, so the next
    rotation's selector differs by itself."""
    day = today or datetime.date.today()
    return f"{algorithm}-{day:%Y%m}"


def _public_record(algorithm: Algorithm, public: bytes) -> str:
    encoded = base64.b64encode(public).decode("ascii")
    key_type = "rsa" if algorithm == "rsa" else "ed25519"
    return f"v=DKIM1; k={key_type}; p={encoded}"


def _key_dir(data_dir: Path) -> Path:
    return data_dir / "dkim"


def generate_key(data_dir: Path, domain: str, selector: str, algorithm: Algorithm) -> DKIMKey:
    """Make a key and its record under ``<data>/dkim/<domain>/``; an existing selector is not
    overwritten."""
    domain = domain.lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise KeyFileError(f"{domain!r} is not a domain name")
    if not _SELECTOR.match(selector):
        raise KeyFileError(f"{selector!r} is not a selector (letters, digits, '-' and '_')")
    directory = _key_dir(data_dir) / domain
    path = directory / f"{selector}.key"
    if path.exists():
        raise KeyFileError(f"{path} exists: choose another selector (rotation is a new selector)")
    if algorithm == "rsa":
        private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=RSA_BITS
        )
        # PKCS#1 PEM: what dkimpy and OpenDKIM read.
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    elif algorithm == "ed25519":
        private_key = ed25519.Ed25519PrivateKey.generate()
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # RFC 8463 §4.2: p= is the raw 32-octet public key.
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    else:
        raise KeyFileError(f"algorithm is rsa or ed25519, not {algorithm!r}")
    record = _public_record(algorithm, public)
    private_dir(data_dir)  # 0700 whatever the umask, as mailroom serve makes it
    for folder in (_key_dir(data_dir), directory):
        folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(_key_dir(data_dir), 0o700)
    os.chmod(directory, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    # The record to publish is public, but the data directory holds only 0600 files.
    txt = os.open(directory / f"{selector}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(txt, "w", encoding="utf-8") as out:
        out.write(f'{selector}._domainkey.{domain}. IN TXT "{record}"\n')
    return _load(path, domain, selector)


def _load(path: Path, domain: str, selector: str) -> DKIMKey:
    try:
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise KeyFileError(f"{path}: an RSA key of {key.key_size} bits is too short")
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return DKIMKey(domain, selector, "rsa", pem, _public_record("rsa", public))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return DKIMKey(
            domain,
            selector,
            "ed25519",
            base64.b64encode(seed),
            _public_record("ed25519", public),
        )
    raise KeyFileError(f"{path}: neither an RSA nor an ed25519 key")


def load_keys(data_dir: Path) -> dict[str, list[DKIMKey]]:
    """Every usable key under ``<data>/dkim``, by domain (RSA first, then by selector)."""
    found: dict[str, list[DKIMKey]] = {}
    root = _key_dir(data_dir)
    if not root.is_dir():
        return found
    for directory in sorted(root.iterdir()):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.key")):
            key = _load(path, directory.name.lower(), path.stem)
            found.setdefault(key.domain, []).append(key)
    for keys in found.values():
        keys.sort(key=lambda k: (k.algorithm != "rsa", k.selector))
    return found
