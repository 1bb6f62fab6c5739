"""Every status mailroom writes into a delivery status notification (RFC 3464) by its own
decision, by name: the catalogue of the queue, as :mod:`mailroom.codes.catalogue` is the
catalogue of the server.

A remote server's reply travels into a report as that server said it (its enhanced code, or
``class.0.0`` when it gave none, RFC 3463 §3.1); the entries here are the outcomes no reply
carried: DNS said the domain does not exist, a route leads back to this host, a message cannot
be converted for the next hop, the queue gave up. Each names its status, the situation, the RFC,
and the reason (Sisimai's names, as :func:`mailroom.codes.classify` uses them) the report gives.
``mailroom explain`` and ``docs/registry.md`` read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailroom.codes.enhanced import EnhancedStatus

__all__ = ["REPORTS", "ReportStatus"]


@dataclass(frozen=True, slots=True)
class ReportStatus:
    """One status of a report: the outcome's class follows the status (2 delivered, 4 tried
    again later, 5 returned to the sender)."""

    status: EnhancedStatus
    when: str  # the situation, in words, for docs/registry.md and explain
    reference: str
    reason: str  # the classification the report carries (X-Mailroom-Reason)
    name: str = field(default="", compare=False)

    @property
    def action(self) -> str:
        return {2: "delivered", 4: "retry", 5: "bounce"}[self.status.status_class]


def _report(status: str, *, when: str, ref: str, reason: str) -> ReportStatus:
    return ReportStatus(EnhancedStatus.parse(status), when, ref, reason)


# --- DNS and routing (delivery/routing.py) ------------------------------------------------------

DOMAIN_NOT_FOUND = _report(
    "5.1.2",
    when="the recipient's domain does not exist (NXDOMAIN)",
    ref="RFC 5321 §5.1; RFC 3463 X.1.2",
    reason="hostunknown",
)
DOMAIN_NULL_MX = _report(
    "5.1.10",
    when="the recipient's domain publishes a null MX",
    ref="RFC 7505 §4.1; RFC 7504",
    reason="notaccept",
)
DNS_FAILED = _report(
    "4.4.3",
    when="the DNS lookup of the recipient's domain or of its MX hosts failed for now "
    "(timeout, SERVFAIL)",
    ref="RFC 3463 X.4.3",
    reason="networkerror",
)
NO_MAIL_ROUTE = _report(
    "5.4.4",
    when="the recipient's domain exists but has neither MX nor address records",
    ref="RFC 5321 §5.1; RFC 3463 X.4.4",
    reason="hostunknown",
)
MX_HOSTS_UNRESOLVABLE = _report(
    "4.4.4",
    when="the recipient's domain has MX records whose hosts have no address records (a "
    "broken MX: a name that does not exist, or one without A/AAAA)",
    ref="RFC 5321 §5.1; RFC 3463 X.4.4",
    reason="networkerror",
)
MX_LOOPS_BACK = _report(
    "5.4.6",
    when="the recipient's domain is not local but its best MX is this host (by name or by "
    "one of the addresses it listens on): the mail would come back here",
    ref="RFC 5321 §5.1; RFC 3463 X.4.6",
    reason="systemerror",
)
ROUTE_MISCONFIGURED = _report(
    "4.3.5",
    when="a static route or the smarthost names a host that does not resolve: this server "
    "is configured so that it cannot deliver (check-config warns of it)",
    ref="RFC 3463 X.3.5",
    reason="systemerror",
)
UNUSABLE_ADDRESSES = _report(
    "4.4.0",
    when="the MX hosts of the recipient's domain resolve only to addresses no mail can go to "
    "(unspecified 0.0.0.0 or ::, multicast, broadcast): something is wrong with its routing, "
    "and what is not clear",
    ref="RFC 5321 §5.1; RFC 3463 X.4.0",
    reason="networkerror",
)
NO_HOST_TO_TRY = _report(
    "4.4.4",
    when="the route to the recipient's domain left no host to connect to",
    ref="RFC 3463 X.4.4",
    reason="networkerror",
)

# --- connecting and talking to the next hop (delivery/outcome.py, connections.py) ---------------

NO_ANSWER = _report(
    "4.4.1",
    when="no host of the destination answered (connection refused or timed out)",
    ref="RFC 3463 X.4.1",
    reason="networkerror",
)
CONNECTION_LOST = _report(
    "4.4.2",
    when="the connection broke or timed out in the middle of the transaction",
    ref="RFC 3463 X.4.2",
    reason="networkerror",
)
PROTOCOL_ERROR = _report(
    "4.5.0",
    when="the next hop broke the SMTP protocol (a malformed or unexpected reply)",
    ref="RFC 3463 X.5.0",
    reason="systemerror",
)
TLS_FAILED = _report(
    "4.7.5",
    when="TLS with the next hop failed where the route requires it",
    ref="RFC 3463 X.7.5",
    reason="failedstarttls",
)
RELAY_LOGIN_FAILED = _report(
    "4.7.8",
    when="the smarthost or route refused mailroom's own login (its credentials are ours to "
    "fix, so the message waits)",
    ref="RFC 4954 §6; RFC 3463 X.7.8",
    reason="securityerror",
)
UNDEFINED_FAILURE = _report(
    "4.0.0",
    when="a failure with no reply and no better description",
    ref="RFC 3463 §3.1",
    reason="undefined",
)
WRONG_PROTOCOL = _report(
    "4.5.5",
    when='a route configured for LMTP (protocol = "lmtp") reaches a server that does not '
    "know LHLO (500 or 502: it speaks SMTP); the message waits for the route to be fixed",
    ref="RFC 2033 §4.1; RFC 3463 X.5.5",
    reason="systemerror",
)

# --- the outbound TLS policy (delivery/tlspolicy.py, connections.py) ---------------------------

NO_STARTTLS_WHERE_REQUIRED = _report(
    "4.7.4",
    when="the outbound TLS policy makes TLS mandatory for the MX host (DANE, an enforced "
    "MTA-STS policy, or a level of encrypt, verify, dane or mta-sts) and it does not offer "
    "STARTTLS, or refuses it; the message waits, and at expiry the report keeps 4.7.4",
    ref="RFC 3207 §4.1; RFC 7672 §2.2; RFC 8461 §5; RFC 3463 X.7.4",
    reason="failedstarttls",
)
TLS_POLICY_NOT_MET = _report(
    "4.7.5",
    when="the MX host fails the outbound TLS policy: its certificate matches none of its "
    "DNSSEC-validated TLSA records (DANE) or does not verify for its name (MTA-STS, verify), "
    "its TLSA lookup is bogus, it is not an MX host the domain's MTA-STS policy names, or the "
    "level asks for DANE or MTA-STS the domain does not have; the message waits, and at expiry "
    "the report keeps 4.7.5",
    ref="RFC 7672 §2.1.1, §3; RFC 8461 §4.1, §5; RFC 3463 X.7.5",
    reason="securityerror",
)
REQUIRETLS_NOT_OFFERED = _report(
    "5.7.30",
    when="a message sent with REQUIRETLS finds no next hop that is verified (DANE, MTA-STS, or "
    "PKIX with DNSSEC-validated MX records; a route or smarthost with verify = true) and offers "
    "REQUIRETLS after STARTTLS: it is returned at once, with its header only",
    ref="RFC 8689 §4.2.1, §5; RFC 8689 X.7.30",
    reason="securityerror",
)
REQUIRETLS_TLS_FAILED = _report(
    "5.7.10",
    when="a message sent with REQUIRETLS cannot have the TLS it requires with a next hop that "
    "should give it (no STARTTLS, a handshake or certificate that fails, a refused TLSA or "
    "MTA-STS check): returned at once rather than retried, with its header only",
    ref="RFC 8689 §4.2.1, §5; RFC 3463 X.7.10 (Encryption Needed)",
    reason="securityerror",
)

# --- the message itself ------------------------------------------------------------------------

BAD_ADDRESS = _report(
    "5.1.3",
    when="a queued address is not a valid mailbox (caught before anything was sent)",
    ref="RFC 5321 §4.1.2; RFC 3463 X.1.3",
    reason="syntaxerror",
)
CONVERSION_NOT_SUPPORTED = _report(
    "5.6.3",
    when="a message sent with BODY=BINARYMIME to a next hop without BINARYMIME (or CHUNKING), "
    "whose binary content cannot be re-encoded: it is not in MIME parts a transfer encoding "
    "can carry",
    ref="RFC 3030 §3; RFC 3463 X.6.3",
    reason="contenterror",
)
TOO_BIG_FOR_NEXT_HOP = _report(
    "5.3.4",
    when="a message larger than the SIZE its next hop announced: returned without being "
    "offered, as RFC 1870 §6 has a client do (the report names the size and the limit)",
    ref="RFC 1870 §6; RFC 3463 X.3.4",
    reason="mesgtoobig",
)
RRVS_NOT_PASSED_ON = _report(
    "5.7.19",
    when="a recipient given with RRVS=<date-time>;R (reject when the test cannot be made) whose "
    "next hop does not offer RRVS: the test cannot be completed, so the message is returned",
    ref="RFC 7293 §3.1, §5; RFC 7293 X.7.19",
    reason="policyviolation",
)
NON_ASCII_ADDRESS_NEXT_HOP = _report(
    "5.6.7",
    when="a message sent with SMTPUTF8 whose sender or recipient address is not ASCII, to a "
    "next hop that does not offer SMTPUTF8 (a non-ASCII recipient is returned alone)",
    ref="RFC 6531 §3.2; RFC 6533; RFC 6531 X.6.7",
    reason="contenterror",
)
UTF8_HEADER_NEXT_HOP = _report(
    "5.6.9",
    when="a message sent with SMTPUTF8 whose header fields hold UTF-8, to a next hop that does "
    "not offer SMTPUTF8 (its addresses are ASCII: they alone would have gone)",
    ref="RFC 6531 §3.2; RFC 6532; RFC 6531 X.6.9",
    reason="contenterror",
)
MEDIA_NOT_SUPPORTED = _report(
    "5.6.1",
    when="a message/partial part with 8-bit or binary data, to a next hop that needs it "
    "converted: a fragment's encoding belongs to the whole it is part of, so it cannot be "
    "re-encoded alone (RFC 2046 §5.2.2 allows it 7bit only)",
    ref="RFC 2046 §5.2.2; RFC 3463 X.6.1",
    reason="contenterror",
)
CONVERSION_PROHIBITED = _report(
    "5.6.2",
    when="a message the next hop can take only converted (to 7 bits, or from binary) whose "
    "Conversion: Prohibited header field forbids converting it",
    ref="RFC 2156 §3.3.5; RFC 3463 X.6.2",
    reason="contenterror",
)
CONVERSION_LOSSY_PROHIBITED = _report(
    "5.6.4",
    when="a message whose conversion for the next hop would lose information (8-bit text in no "
    "declared charset) and whose Conversion-With-Loss: Prohibited field forbids that",
    ref="RFC 2156 §3.3.6; RFC 3463 X.6.4",
    reason="contenterror",
)
CONVERTED_WITH_LOSS = _report(
    "2.6.4",
    when="a warning to the sender: the message went to its next hop, but converting it for that "
    "hop (to 7 bits) lost information (8-bit text in no declared charset, sent as unknown-8bit)",
    ref="RFC 6152; RFC 3463 X.6.4",
    reason="delivered",
)
CONVERSION_FAILED = _report(
    "5.6.5",
    when="a message that must be converted for the next hop whose MIME structure is broken (a "
    "multipart without its boundary or its closing delimiter, an 8-bit address in a header) or "
    "nests more than 100 levels deep (Postfix's mime_nesting_limit)",
    ref="RFC 2045; RFC 2046 §5.1.1; RFC 3463 X.6.5",
    reason="contenterror",
)
SIGNED_CANNOT_BE_CONVERTED = _report(
    "5.7.3",
    when="a multipart/signed message (S/MIME or OpenPGP) whose signed part must be converted "
    "for the next hop: the conversion would need a new signature, which only the signer can make",
    ref="RFC 1847 §2.1; RFC 3463 X.7.3",
    reason="securityerror",
)
EXPIRED = _report(
    "4.4.7",
    when="the queue gave up: the message stayed undeliverable longer than max_age (the "
    "report keeps the last reply; a recipient the outbound TLS policy held back keeps its "
    "4.7.4 or 4.7.5, which says what failed)",
    ref="RFC 3463 X.4.7",
    reason="expired",
)

# --- delivered, relayed -----------------------------------------------------------------------

DELIVERED_TO_MAILBOX = _report(
    "2.0.0",
    when="a success report for a message put into a local Maildir (NOTIFY=SUCCESS)",
    ref="RFC 3461 §6.2.2; RFC 3464",
    reason="delivered",
)
RELAYED_WITHOUT_DSN = _report(
    "2.1.9",
    when="a success report (Action: relayed) for a recipient whose message went to a next hop "
    "that does not speak DSN, so no further report will come (NOTIFY=SUCCESS)",
    ref="RFC 3461 §6.2.2; RFC 3886 X.1.9",
    reason="delivered",
)

REPORTS: dict[str, ReportStatus] = {}
for _name, _value in list(globals().items()):
    if isinstance(_value, ReportStatus):
        object.__setattr__(_value, "name", _name)
        REPORTS[_name] = _value
del _name, _value
