"""The ``Authentication-Results`` header field (RFC 8601) this server adds to every message it
stores or relays from an mx listener, and the removal of any such field that already claims
this server's authserv-id (§5: a forgery, or a copy from a loop).

    Authentication-Results: mx.example.test;
        iprev=pass (mail.example.org) policy.iprev=192.0.2.1;
        spf=pass smtp.mailfrom=example.org;
        dkim=pass header.d=example.org header.s=s1 header.a=ed25519-sha256 header.b=3DmR0xsv;
        dmarc=pass (p=REJECT dis=NONE) header.from=example.org;
        arc=none

(each result on a line of its own, the lines after the first starting with a tab)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailroom.authentication.arc import ARCResult
from mailroom.authentication.dkim import DKIMResult
from mailroom.authentication.dmarc import DMARCResult
from mailroom.authentication.iprev import IprevResult
from mailroom.authentication.spf import SPFResult
from mailroom.header_section import header_fields

__all__ = [
    "authentication_results",
    "authserv_id_of",
    "pvalue",
    "remove_claimed",
]

_TOKEN = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$")  # RFC 2045 token (no tspecials)
_NAME = b"authentication-results"


def _value(text: str) -> str:
    """RFC 2045 value: a token as it is, anything else quoted."""
    text = " ".join(text.split())
    if text and _TOKEN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pvalue(text: str) -> str:
    """RFC 8601 §2.2's pvalue: an address (``local@domain``) as it is, else a value."""
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+", text):
        return text
    return _value(text)


def _comment(text: str) -> str:
    text = " ".join(text.split())[:200]
    text = re.sub(r"([()\\])", r"\\\1", text)
    return f" ({text})" if text else ""


def _safe(text: str) -> str:
    # Header text is US-ASCII here (a UTF-8 domain would be an A-label already).
    return text.encode("ascii", "replace").decode("ascii")


def authentication_results(
    authserv_id: str,
    *,
    iprev: IprevResult | None = None,
    spf: SPFResult | None = None,
    dkim: Sequence[DKIMResult] | None = None,
    dmarc: DMARCResult | None = None,
    arc: ARCResult | None = None,
) -> bytes:
    """The header field, CRLF-terminated; each result on a line of its own."""
    parts: list[str] = []
    if iprev is not None:
        parts.append(
            f"iprev={iprev.result}{_comment(iprev.name or iprev.reason)} "
            f"policy.iprev={_value(iprev.client_ip)}"
        )
    if spf is not None:
        # §2.7.2: the domain only, as records say nothing of local parts.
        prop = f"smtp.{spf.identity}={_value(spf.domain or 'unknown')}"
        why = spf.problem if spf.result in ("none", "temperror", "permerror") else ""
        parts.append(f"spf={spf.result}{_comment(why)} {prop}")
    if dkim is not None:
        if not dkim:
            parts.append("dkim=none")
        for result in dkim:
            props = []
            if result.domain:
                props.append(f"header.d={_value(result.domain)}")
                props.append(f"header.s={_value(result.selector)}")
                props.append(f"header.a={_value(result.algorithm)}")
            if result.b:
                props.append(f"header.b={_value(result.b)}")
            why = "" if result.result == "pass" else result.reason
            parts.append(" ".join([f"dkim={result.result}{_comment(why)}", *props]))
    if dmarc is not None:
        detail = f"p={dmarc.policy.upper()} dis={dmarc.disposition.upper()}" if dmarc.record else ""
        if dmarc.result not in ("pass", "fail"):
            detail = dmarc.reason
        prop = f" header.from={_value(dmarc.domain)}" if dmarc.domain else ""
        parts.append(f"dmarc={dmarc.result}{_comment(detail)}{prop}")
    if arc is not None:
        parts.append(f"arc={arc.result}{_comment(arc.reason if arc.result != 'pass' else '')}")
    body = ";\r\n\t".join(_safe(p) for p in parts) if parts else "none"
    return f"Authentication-Results: {_safe(authserv_id)};\r\n\t{body}\r\n".encode("ascii")


def authserv_id_of(field: bytes) -> str | None:
    """The authserv-id of an Authentication-Results field (None for other fields)."""
    name, colon, value = field.partition(b":")
    if not colon or name.strip().lower() != _NAME:
        return None
    text = value.decode("utf-8", "replace")
    text = re.sub(r"\([^()]*\)", " ", text)  # comments (one level is what is met)
    first = text.split(";", 1)[0].strip()
    first = first.split()[0] if first.split() else ""
    return first.strip('"').lower()


def remove_claimed(head: bytes, authserv_id: str) -> tuple[bytes, int]:
    """The header section without Authentication-Results fields that claim ``authserv_id``
    (RFC 8601 §5), and how many were removed."""
    ours = authserv_id.lower()
    kept: list[bytes] = []
    removed = 0
    for field in header_fields(head):
        if authserv_id_of(field) == ours:
            removed += 1
            continue
        kept.append(field)
    return (b"".join(kept), removed) if removed else (head, 0)
