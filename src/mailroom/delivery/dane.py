"""DANE for SMTP (RFC 7672, on RFC 6698 and RFC 7671): which TLSA records an SMTP client may
use, and whether the certificate chain a server presented matches them.

- Usable records (RFC 7672 §3.1): DANE-EE(3) and DANE-TA(2); selector Cert(0) or SPKI(1);
  matching type Full(0), SHA2-256(1) or SHA2-512(2), with a digest of the right length and full
  data that parses. PKIX-TA(0) and PKIX-EE(1) are not for SMTP (§3.1.3), and anything else is
  unknown: such records are *unusable*, which is not a failure by itself. A secure RRset with
  no usable record still makes TLS mandatory, without authentication (§2.2).
- DANE-EE(3) (§3.1.1): the server's own certificate (or its key) is the record; names,
  dates and chains are not checked.
- DANE-TA(2) (§3.1.2): a certificate of the chain the server sent is the trust anchor; the
  server's certificate must chain to it (cryptography's RFC 5280 path validation, dates
  included) and name the MX host or the recipient domain (§3.2.2). The anchor must be in the
  chain the server sends (RFC 7671 §5.2.2 asks servers to include it); a bare public key as
  anchor is not supported.

Pure but for the clock: the chain comes in as DER octets, the verdict goes out as a value.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailroom.resolver import TLSARecordData

__all__ = [
    "DANE_EE",
    "DANE_TA",
    "DaneVerdict",
    "describe",
    "peer_chain",
    "record_text",
    "unusable_reason",
    "usable_records",
    "verify_chain",
]

PKIX_TA, PKIX_EE, DANE_TA, DANE_EE = 0, 1, 2, 3
SELECTOR_CERT, SELECTOR_SPKI = 0, 1
MATCH_FULL, MATCH_SHA256, MATCH_SHA512 = 0, 1, 2
_DIGESTS = {MATCH_SHA256: ("sha256", 32), MATCH_SHA512: ("sha512", 64)}
MAX_CHAIN = 16  # certificates of a presented chain looked at (a real one has 2 to 4)


def record_text(record: TLSARecordData) -> str:
    """Presentation format (RFC 6698 §2.2), as TLS reports want it (RFC 8460 §4.5); a record
    too short to read, in the generic form of RFC 3597 §5."""
    if record.malformed:
        return f"\\# {len(record.data)} {record.data.hex().upper()}".rstrip()
    return f"{record.usage} {record.selector} {record.mtype} {record.data.hex().upper()}"


def describe(record: TLSARecordData, limit: int = 16) -> str:
    """A record for people: ``3 1 1 1F850A337E6DB9C6...``."""
    if record.malformed:
        return record_text(record)
    data = record.data.hex().upper()
    short = data if len(data) <= limit else data[:limit] + "..."
    return f"{record.usage} {record.selector} {record.mtype} {short}"


def unusable_reason(record: TLSARecordData) -> str | None:
    """Why an SMTP client cannot use this record, or None when it can."""
    if record.malformed:
        return record.malformed
    if record.usage in (PKIX_TA, PKIX_EE):
        return f"usage {record.usage} (PKIX) is not for SMTP (RFC 7672 §3.1.3)"
    if record.usage not in (DANE_TA, DANE_EE):
        return f"unknown certificate usage {record.usage}"
    if record.selector not in (SELECTOR_CERT, SELECTOR_SPKI):
        return f"unknown selector {record.selector}"
    if record.mtype in _DIGESTS:
        name, size = _DIGESTS[record.mtype]
        if len(record.data) != size:
            return f"a {name} digest of {len(record.data)} octets ({size} expected)"
        return None
    if record.mtype != MATCH_FULL:
        return f"unknown matching type {record.mtype}"
    if not record.data:
        return "no certificate association data"
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        if record.selector == SELECTOR_CERT:
            x509.load_der_x509_certificate(record.data)
        else:
            load_der_public_key(record.data)
    except ValueError:
        what = "certificate" if record.selector == SELECTOR_CERT else "public key"
        return f"full data that is no DER {what}"
    return None


def usable_records(records: Iterable[TLSARecordData]) -> list[TLSARecordData]:
    return [r for r in records if unusable_reason(r) is None]


def _selected(certificate_der: bytes, selector: int) -> bytes:
    if selector == SELECTOR_CERT:
        return certificate_der
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    certificate = x509.load_der_x509_certificate(certificate_der)
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def matches(record: TLSARecordData, certificate_der: bytes) -> bool:
    """Whether the certificate (or its key, as the selector says) is the one the record
    names."""
    try:
        content = _selected(certificate_der, record.selector)
    except ValueError:  # a certificate cryptography cannot read, or a key type it does not know
        return False
    if record.mtype == MATCH_FULL:
        return content == record.data
    name, _ = _DIGESTS[record.mtype]
    return hashlib.new(name, content).digest() == record.data


@dataclass(frozen=True, slots=True)
class DaneVerdict:
    ok: bool
    reason: str  # how it matched, or why not, in words for a log and a bounce
    # RFC 8460 §4.3 result type of a failure: certificate-host-mismatch,
    # certificate-expired, certificate-not-trusted, validation-failure
    result_type: str = ""
    matched: TLSARecordData | None = None


def _chain_to_anchor(
    chain: Sequence[bytes], anchor_der: bytes, names: Sequence[str], now: datetime.datetime
) -> tuple[bool, str, str]:
    """Whether the leaf chains to the anchor and names one of ``names``: (ok, why, type)."""
    from cryptography import x509
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    try:
        leaf = x509.load_der_x509_certificate(chain[0])
        anchor = x509.load_der_x509_certificate(anchor_der)
        intermediates = [x509.load_der_x509_certificate(c) for c in chain[1:]]
    except ValueError as exc:
        return False, f"a certificate of the chain cannot be read: {exc}", "validation-failure"
    if leaf.not_valid_after_utc < now:
        return False, "the server's certificate has expired", "certificate-expired"
    builder = PolicyBuilder().store(Store([anchor])).time(now)
    last = ""
    for name in names:
        try:
            verifier = builder.build_server_verifier(x509.DNSName(name))
            verifier.verify(leaf, intermediates)
        except VerificationError as exc:
            last = str(exc)
            continue
        except ValueError as exc:  # a name cryptography will not take as a DNS name
            last = str(exc)
            continue
        return True, f"chains to the trust anchor and names {name}", ""
    if "subjectAltName" in last or "name" in last.lower():
        return False, f"names none of {', '.join(names)}", "certificate-host-mismatch"
    return False, f"does not chain to the trust anchor: {last}", "certificate-not-trusted"


def verify_chain(
    chain: Sequence[bytes],
    records: Sequence[TLSARecordData],
    names: Sequence[str],
    *,
    now: datetime.datetime | None = None,
) -> DaneVerdict:
    """Match the presented chain (DER, the server's own certificate first) against the usable
    ``records``; ``names`` are the reference identifiers for DANE-TA (the MX host first)."""
    if not chain:
        return DaneVerdict(False, "the server presented no certificate", "validation-failure")
    chain = list(chain[:MAX_CHAIN])
    now = now or datetime.datetime.now(datetime.UTC)
    leaf = chain[0]
    for record in records:
        if record.usage == DANE_EE and matches(record, leaf):
            return DaneVerdict(True, f"DANE-EE matched ({describe(record)})", matched=record)
    why_not = ""
    result_type = "validation-failure"
    for record in records:
        if record.usage != DANE_TA:
            continue
        for candidate in chain[1:] or chain[:1]:
            if not matches(record, candidate):
                continue
            ok, why, kind = _chain_to_anchor(chain, candidate, names, now)
            if ok:
                return DaneVerdict(
                    True, f"DANE-TA matched ({describe(record)}): {why}", matched=record
                )
            why_not, result_type = why, kind
    count = len(records)
    plural = "record" if count == 1 else "records"
    if why_not:
        return DaneVerdict(
            False,
            f"TLSA mismatch: the trust anchor of a DANE-TA record is in the chain, but the "
            f"server's certificate {why_not}",
            result_type,
        )
    listed = "; ".join(describe(r) for r in records[:3])
    return DaneVerdict(
        False,
        f"TLSA mismatch: the certificate chain matches none of the {count} usable TLSA "
        f"{plural} ({listed})",
        "validation-failure",
    )


def peer_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The chain the server sent, as DER, its own certificate first.

    Python 3.13 has ``SSLObject.get_unverified_chain()``; 3.10 to 3.12 have the same method on
    the private ``_sslobj`` (the C object under SSLObject), returning certificate objects. With
    neither, only the server's own certificate (enough for DANE-EE)."""
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:
        return [bytes(c) for c in public() or []]
    inner = getattr(ssl_object, "_sslobj", None)
    private = getattr(inner, "get_unverified_chain", None)
    if private is not None:
        import _ssl

        return [c.public_bytes(_ssl.ENCODING_DER) for c in private() or []]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []
