"""The outbound TLS policy: for each MX host a message goes to, what TLS the connection must
have and how the server's certificate is checked, and after the handshake whether it was so.

The level of a recipient domain comes from ``[outbound_tls]`` (see
:mod:`mailroom.queue.tls_settings`); the message can change it (RFC 8689): ``REQUIRETLS``
asks for a verified next hop that offers REQUIRETLS itself (DANE; MTA-STS, enforced whatever its
mode; or PKIX where the MX records are DNSSEC-validated), ``TLS-Required: No`` asks for
``may`` whatever the domain publishes.

Per MX host (:meth:`TLSPolicy.plan_hop`), in this order:

- DANE (RFC 7672, levels ``auto`` and ``dane``): only for a host whose address records are
  DNSSEC-validated. Its ``_PORT._tcp.HOST`` TLSA lookup failing (bogus, SERVFAIL, timeout) means
  the host is not used at all (§2.1.1); usable records make TLS mandatory and the certificate must
  match one; records none of which is usable make TLS mandatory without authentication (§2.2).
  No records (or insecure ones) fall through to the next rule; with ``dane`` the host is not used.
- MTA-STS (RFC 8461): with a policy in force, a host outside its ``mx`` patterns is not used,
  and TLS with a PKIX-valid certificate for the host name is mandatory (``enforce``); in
  ``testing`` mode failures are reported and the message goes anyway (§5).
- otherwise ``may``.

A failure to meet the policy is temporary (``4.7.4`` no TLS, ``4.7.5`` a certificate or TLSA
problem: the queue's report statuses ``NO_STARTTLS_WHERE_REQUIRED`` and ``TLS_POLICY_NOT_MET``
in :mod:`mailroom.codes.reports`), so the queue retries and, at expiry, returns the message
saying exactly that. For a REQUIRETLS message it is final at once (``5.7.10``; ``5.7.30`` for
a host without REQUIRETLS), as RFC 8689 §4.2.1 asks.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mailroom.codes import reports
from mailroom.codes.reports import ReportStatus
from mailroom.delivery import dane
from mailroom.delivery.mtasts import MTASTS, PolicyLookup, STSPolicy
from mailroom.delivery.outcome import Outcome, reported
from mailroom.delivery.tlsrpt import ReportPolicy
from mailroom.queue.tls_settings import TLSPolicySettings
from mailroom.resolver import Resolver, ResolverError, TLSARecordData

if TYPE_CHECKING:
    from mailroom.client import Client, TLSMode
    from mailroom.delivery.routing import Hop
    from mailroom.delivery.tlsrpt import TLSReportRecorder

__all__ = [
    "DomainTLS",
    "HopPlan",
    "ReportPolicy",
    "Requirement",
    "TLSInfo",
    "TLSPolicy",
    "requirement_of",
]

Requirement = Literal["normal", "requiretls", "optional"]
Verified = Literal["dane", "mta-sts", "pkix", "none"]

# OpenSSL's X509_V_ERR_* codes that have their own RFC 8460 result type.
_CERT_EXPIRED = 10
_HOSTNAME_MISMATCH = 62


def requirement_of(requiretls: bool, header: bytes) -> Requirement:
    """What the message asks of the next hop's TLS: REQUIRETLS (RFC 8689 §4.2.1), else the
    ``TLS-Required: No`` header field (§4.2.2; ignored with REQUIRETLS, §4.1)."""
    if requiretls:
        return "requiretls"
    for line in header.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"tls-required":
            return "optional" if value.strip().lower() == b"no" else "normal"
    return "normal"


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """The TLS of a session that was used, and how the server was verified."""

    version: str
    cipher: str
    bits: int
    verified: Verified

    def __str__(self) -> str:
        return f"{self.version} {self.cipher} ({self.bits} bits) verified={self.verified}"

    @property
    def log_text(self) -> str:
        return f"{self.version}/{self.cipher}/{self.verified}"


@dataclass(frozen=True, slots=True)
class DomainTLS:
    """What holds for every MX host of a domain in one attempt."""

    domain: str
    level: str
    requirement: Requirement
    sts: PolicyLookup | None = None
    mx_secure: bool = False  # the MX RRset is DNSSEC-validated (for REQUIRETLS)


@dataclass(frozen=True, slots=True)
class HopPlan:
    """How to connect to one host, and what to check once connected."""

    verified: Verified  # what a session that passes the checks was verified by
    tls_mode: TLSMode  # "none", or "opportunistic" (the checks below decide the rest)
    context: ssl.SSLContext
    mandatory: bool = False  # no TLS: not delivered (4.7.4)
    dane_records: tuple[TLSARecordData, ...] = ()  # the certificate must match one of these
    names: tuple[str, ...] = ()  # reference identifiers for DANE-TA
    testing: bool = False  # MTA-STS testing: a verification failure is reported, not enforced
    clear_fallback: bool = False  # may: a failed handshake goes on without TLS
    requiretls: bool = False  # the host must offer REQUIRETLS after TLS
    report: ReportPolicy | None = None  # None: this session is not counted in TLS reports
    refusal: Outcome | None = None  # the host must not be used at all
    refusal_type: str | None = None  # its RFC 8460 result type


class TLSPolicy:
    """The outbound TLS policy of a queue runner (one per runner: its MTA-STS cache, its
    TLS contexts and its TLS report recorder)."""

    def __init__(
        self,
        settings: TLSPolicySettings,
        resolver: Resolver,
        cache_dir: Path,
        *,
        recorder: TLSReportRecorder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        resolver.trust_remote_ad = resolver.trust_remote_ad or settings.trust_remote_dnssec
        self.recorder = recorder
        self._verifying: ssl.SSLContext | None = None
        self._unverified: ssl.SSLContext | None = None
        self.mtasts = MTASTS(
            resolver,
            cache_dir,
            ssl_context=self.verifying_context,
            timeout=settings.mta_sts_timeout,
            max_size=settings.mta_sts_max_size,
            retry_after=settings.mta_sts_retry_after,
            port=settings.mta_sts_port,
            clock=clock,
        )

    # -- contexts ----------------------------------------------------------------------------

    def verifying_context(self) -> ssl.SSLContext:
        """PKIX: the system's CAs and ``ca_file``, host names checked (RFC 6125)."""
        if self._verifying is None:
            context = ssl.create_default_context()
            if self.settings.ca_file:
                context.load_verify_locations(cafile=self.settings.ca_file)
            self._verifying = context
        return self._verifying

    def unverified_context(self) -> ssl.SSLContext:
        """Encryption only: ``may``, ``encrypt``, and DANE (which checks the chain itself)."""
        if self._unverified is None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self._unverified = context
        return self._unverified

    # -- planning ----------------------------------------------------------------------------

    async def plan_domain(self, domain: str, requirement: Requirement) -> DomainTLS:
        level = "may" if requirement == "optional" else self.settings.level_for(domain)
        if requirement == "requiretls" and level not in ("dane", "mta-sts"):
            # The message's demand outranks a lax level: look for DANE and MTA-STS.
            level = "auto"
        sts: PolicyLookup | None = None
        if level in ("auto", "mta-sts") or requirement == "requiretls":
            sts = await self.mtasts.lookup(domain)
            if sts.fetched and sts.failure and requirement != "optional":
                policy = _sts_report(domain, sts.policy) if sts.policy else _no_policy(domain)
                self._record_failure(
                    policy, sts.result_type or "sts-policy-fetch-error", sts.failure
                )
        mx_secure = False
        if requirement == "requiretls":
            mx_secure = await self.resolver.mx_is_secure(domain)
        return DomainTLS(domain, level, requirement, sts, mx_secure)

    async def plan_hop(self, domain: DomainTLS, hop: Hop) -> HopPlan:
        plan = await self._plan_hop(domain, hop)
        if domain.requirement == "requiretls":
            if plan.verified == "none" and plan.refusal is None and domain.mx_secure:
                # RFC 8689 §4.2.1: DNSSEC-validated MX records and a PKIX-valid certificate.
                plan = HopPlan(
                    "pkix",
                    "opportunistic",
                    self.verifying_context(),
                    mandatory=True,
                    names=(hop.name,),
                    report=plan.report,
                )
            plan = _for_requiretls(domain, hop, plan)
        elif domain.requirement == "optional":
            plan = replace(plan, report=None)  # RFC 8460 §3: not counted
        return plan

    async def _plan_hop(self, domain: DomainTLS, hop: Hop) -> HopPlan:
        level = domain.level
        unverified = self.unverified_context()
        if level == "none":
            return HopPlan("none", "none", unverified)
        if level == "may":
            return HopPlan(
                "none",
                "opportunistic",
                unverified,
                clear_fallback=True,
                report=_no_policy(domain.domain),
            )
        if level == "encrypt":
            return HopPlan(
                "none",
                "opportunistic",
                unverified,
                mandatory=True,
                report=_no_policy(domain.domain),
            )
        if level == "verify":
            return HopPlan(
                "pkix",
                "opportunistic",
                self.verifying_context(),
                mandatory=True,
                names=(hop.name,),
                report=_no_policy(domain.domain),
            )
        # auto, dane, mta-sts (and REQUIRETLS, which looks at both).
        if level in ("auto", "dane") or domain.requirement == "requiretls":
            found = await self._dane(domain, hop)
            if found is not None and (found.dane_records or found.refusal is not None):
                return found
            if found is not None and level != "dane":
                return (
                    found if domain.requirement != "requiretls" else self._sts_or_may(domain, hop)
                )
            if level == "dane":
                why = f"DANE is required for {domain.domain}, but {hop.name} has no "
                why += "DNSSEC-validated TLSA records" if found is None else "usable TLSA record"
                return _refused(
                    hop,
                    reports.TLS_POLICY_NOT_MET,
                    why,
                    "dane-required",
                    _tlsa_report(domain.domain, hop, ()),
                )
        return self._sts_or_may(domain, hop)

    def _sts_or_may(self, domain: DomainTLS, hop: Hop) -> HopPlan:
        policy = domain.sts.policy if domain.sts is not None else None
        unverified = self.unverified_context()
        if policy is None:
            if domain.level == "mta-sts":
                why = f"MTA-STS is required for {domain.domain}, but it has no policy in force"
                if domain.sts is not None and domain.sts.failure:
                    why += f" ({domain.sts.failure})"
                return _refused(
                    hop,
                    reports.TLS_POLICY_NOT_MET,
                    why,
                    domain.sts.result_type
                    if domain.sts is not None and domain.sts.result_type
                    else "sts-policy-invalid",
                    _no_policy(domain.domain),
                )
            return HopPlan(
                "none",
                "opportunistic",
                unverified,
                clear_fallback=True,
                report=_no_policy(domain.domain),
            )
        enforce = (
            policy.mode == "enforce"
            or domain.level == "mta-sts"
            or domain.requirement == "requiretls"
        )
        report = _sts_report(domain.domain, policy)
        if not policy.allows(hop.name):
            why = (
                f"MTA-STS: {hop.name} is not an MX host the policy of {domain.domain} allows "
                f"(mx: {', '.join(policy.mx)})"
            )
            if enforce:
                return _refused(hop, reports.TLS_POLICY_NOT_MET, why, "validation-failure", report)
            self._record_failure(report, "validation-failure", why, hop)
            # Testing: reported; delivered as if there were no policy (RFC 8461 §5).
            return HopPlan("none", "opportunistic", unverified, clear_fallback=True)
        return HopPlan(
            "mta-sts",
            "opportunistic",
            self.verifying_context(),
            mandatory=enforce,
            names=(hop.name,),
            testing=not enforce,
            report=report,
        )

    async def _dane(self, domain: DomainTLS, hop: Hop) -> HopPlan | None:
        """The DANE plan of a host: None when DANE does not apply to it (its addresses or its
        TLSA records are not DNSSEC-validated, or it has none)."""
        try:
            if not await self.resolver.host_is_secure(hop.name):
                return None
            lookup = await self.resolver.tlsa(hop.name, hop.port)
        except ResolverError as exc:
            # RFC 7672 §2.1.1: a failed (bogus or indeterminate) lookup: not this host.
            why = f"TLSA lookup of _{hop.port}._tcp.{hop.name} failed, so {hop.name} is not "
            why += f"used (RFC 7672 §2.1.1): {exc}"
            return _refused(
                hop,
                reports.TLS_POLICY_NOT_MET,
                why,
                "dnssec-invalid",
                _tlsa_report(domain.domain, hop, ()),
            )
        if not lookup.secure or not lookup.records:
            return None
        report = _tlsa_report(domain.domain, hop, lookup.records)
        usable = dane.usable_records(lookup.records)
        if not usable:
            reasons = "; ".join(
                f"{dane.describe(r)}: {dane.unusable_reason(r)}" for r in lookup.records[:3]
            )
            self._record_failure(
                report, "tlsa-invalid", f"no usable TLSA record at {lookup.name}: {reasons}", hop
            )
            # §2.2: TLS is still mandatory, but the server cannot be authenticated.
            return HopPlan("none", "opportunistic", self.unverified_context(), mandatory=True)
        return HopPlan(
            "dane",
            "opportunistic",
            self.unverified_context(),  # the chain is checked against the TLSA records
            mandatory=True,
            dane_records=tuple(usable),
            names=(hop.name, domain.domain),
            report=report,
        )

    # -- after connecting --------------------------------------------------------------------

    def check(
        self, plan: HopPlan, hop: Hop, client: Client
    ) -> tuple[TLSInfo | None, Outcome | None]:
        """Whether the session meets the plan: its TLS (None: plain text), or the outcome
        that keeps the message from this host (the session is then to be closed)."""
        ssl_object = client.ssl_object
        if ssl_object is None:
            if plan.mandatory:
                offered = client.is_connected and client.extensions.starttls
                if offered:
                    why = f"TLS is required, but {hop.name} refused STARTTLS"
                else:
                    why = f"TLS is required, but {hop.name} does not offer STARTTLS"
                self._record_failure(plan.report, "starttls-not-supported", why, hop, client)
                return None, _final(plan, _failure(hop, reports.NO_STARTTLS_WHERE_REQUIRED, why))
            if plan.testing:
                why = f"MTA-STS (testing): {hop.name} does not offer STARTTLS"
                self._record_failure(plan.report, "starttls-not-supported", why, hop, client)
            return None, None
        cipher = ssl_object.cipher() or ("unknown", "", 0)
        version = ssl_object.version() or "TLS"
        verified = plan.verified
        if plan.dane_records:
            verdict = dane.verify_chain(dane.peer_chain(ssl_object), plan.dane_records, plan.names)
            if not verdict.ok:
                why = f"{hop.name}[{hop.address}]: {verdict.reason}"
                self._record_failure(plan.report, verdict.result_type, why, hop, client)
                return None, _final(plan, _failure(hop, reports.TLS_POLICY_NOT_MET, why))
        if plan.requiretls and not client.extensions.requiretls:
            why = (
                f"{hop.name} does not offer REQUIRETLS after STARTTLS: a REQUIRETLS message "
                "is not relayed to it (RFC 8689 §4.2.1)"
            )
            return None, _failure(hop, reports.REQUIRETLS_NOT_OFFERED, why)
        info = TLSInfo(version, str(cipher[0]), int(cipher[2] or 0), verified)
        if plan.report is not None and self.recorder is not None:
            self.recorder.success(plan.report)
        return info, None

    def handshake_failed(
        self, plan: HopPlan, hop: Hop, error: BaseException, *, fallback: bool
    ) -> Outcome:
        """The outcome of a TLS handshake that failed (a certificate the plan does not accept,
        or no common protocol); ``fallback``: the caller goes on without verification."""
        cause = error.__cause__
        result_type = "validation-failure"
        if isinstance(cause, ssl.SSLCertVerificationError):
            code = cause.verify_code
            result_type = {
                _CERT_EXPIRED: "certificate-expired",
                _HOSTNAME_MISMATCH: "certificate-host-mismatch",
            }.get(code, "certificate-not-trusted")
            detail = cause.verify_message or str(cause)
            why = f"the certificate of {hop.name}[{hop.address}] is not valid: {detail}"
            if result_type == "certificate-host-mismatch":
                why = (
                    f"certificate name mismatch: the certificate of {hop.name}[{hop.address}] "
                    f"does not name {hop.name} ({detail})"
                )
        else:
            why = f"TLS handshake with {hop.name}[{hop.address}] failed: {cause or error}"
        if plan.testing:
            why = f"MTA-STS (testing): {why}"
        self._record_failure(plan.report, result_type, why, hop)
        return _final(plan, _failure(hop, reports.TLS_POLICY_NOT_MET, why))

    # -- TLS reports -------------------------------------------------------------------------

    def _record_failure(
        self,
        policy: ReportPolicy | None,
        result_type: str,
        why: str,
        hop: Hop | None = None,
        client: Client | None = None,
    ) -> None:
        if policy is None or self.recorder is None:
            return
        self.recorder.failure(
            policy,
            result_type,
            reason=why,
            mx_host=hop.name if hop is not None else None,
            receiving_ip=hop.address if hop is not None and hop.port else None,
            sending_ip=client.local_address if client is not None else None,
            helo=_helo_of(client),
        )

    def record_refusal(self, plan: HopPlan, hop: Hop) -> None:
        """A host the plan refused before connecting, counted in the TLS report."""
        if plan.refusal is not None and plan.refusal_type is not None:
            self._record_failure(plan.report, plan.refusal_type, plan.refusal.diagnostic, hop)


def _helo_of(client: Client | None) -> str | None:
    if client is None or client.greeting is None:
        return None
    words = client.greeting.lines[0].split() if client.greeting.lines else []
    return words[0] if words else None


def _failure(hop: Hop, report: ReportStatus, why: str) -> Outcome:
    """The policy's own outcome for ``hop`` (a status of the queue's catalogue)."""
    return reported(report, why, hop.name)


def _final(plan: HopPlan, outcome: Outcome) -> Outcome:
    """RFC 8689 §4.2.1: a REQUIRETLS message that cannot have the TLS it asks for is returned
    at once ("5.7.10 Encryption needed"), not retried."""
    if plan.requiretls and outcome.action == "retry":
        return _required_tls_failed(outcome)
    return outcome


def _required_tls_failed(outcome: Outcome) -> Outcome:
    return reported(reports.REQUIRETLS_TLS_FAILED, outcome.diagnostic, outcome.remote_mta)


@functools.cache
def _no_context() -> ssl.SSLContext:
    """The context of a plan that refuses its host: never used to connect."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _refused(
    hop: Hop, status: ReportStatus, why: str, result_type: str, report: ReportPolicy | None
) -> HopPlan:
    return HopPlan(
        "none",
        "none",
        _no_context(),
        report=report,
        refusal=_failure(hop, status, why),
        refusal_type=result_type,
    )


def _for_requiretls(domain: DomainTLS, hop: Hop, plan: HopPlan) -> HopPlan:
    """RFC 8689 §4.2.1: only a verified host that offers REQUIRETLS; failures are final."""
    if plan.refusal is not None:
        refusal = plan.refusal
        if refusal.status != str(reports.REQUIRETLS_NOT_OFFERED.status):
            refusal = _required_tls_failed(refusal)
        return replace(plan, refusal=refusal)
    if plan.verified == "none":
        why = (
            f"a REQUIRETLS message for {domain.domain} needs a next hop verified by DANE or "
            f"MTA-STS (or PKIX with DNSSEC-validated MX records); {hop.name} has none of them "
            "(RFC 8689 §4.2.1)"
        )
        return _refused(hop, reports.REQUIRETLS_NOT_OFFERED, why, "validation-failure", None)
    return replace(plan, requiretls=True, mandatory=True, testing=False, clear_fallback=False)


def _no_policy(domain: str) -> ReportPolicy:
    return ReportPolicy(domain, "no-policy-found")


def _sts_report(domain: str, policy: STSPolicy) -> ReportPolicy:
    return ReportPolicy(domain, "sts", policy.lines, policy.mx)


def _tlsa_report(domain: str, hop: Hop, records: tuple[TLSARecordData, ...]) -> ReportPolicy:
    # Reported to the recipient domain (whose _smtp._tls record is looked up), with the MX
    # host whose TLSA records these are as the policy's mx-host.
    strings = tuple(dane.record_text(r) for r in records)
    return ReportPolicy(domain, "tlsa", strings, (hop.name,))
