"""The checks of one SMTP session on an mx listener, each within its time budget.

iprev starts when the client connects, SPF when MAIL FROM names the sender (both run while the
client goes on talking), DKIM and ARC when the message is complete, DMARC after them. A check
that does not finish within its budget gives ``temperror`` ("timed out after N s"), never a
pass; what it asked DNS until then is kept for the transcript.

The results are values: :class:`Results`. What to do about them (refuse, quarantine, accept)
is policy's (:mod:`mailroom.policy.authentication`); the header they make is
:func:`mailroom.authentication.results.authentication_results`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mailroom.authentication import arc as arc_check
from mailroom.authentication import dkim as dkim_check
from mailroom.authentication import dmarc as dmarc_check
from mailroom.authentication.arc import ARCResult
from mailroom.authentication.dkim import DKIMResult
from mailroom.authentication.dmarc import DMARCResult
from mailroom.authentication.dns import DNSLog, Lookup, LookupFunc
from mailroom.authentication.iprev import IprevResult, check_iprev
from mailroom.authentication.results import authentication_results
from mailroom.authentication.settings import AuthenticationSettings
from mailroom.authentication.spf import SPFResult, check_sender
from mailroom.header_section import header_fields, header_length

__all__ = ["Results", "SessionChecks", "from_fields"]

log = logging.getLogger("mailroom.authentication")

T = TypeVar("T")


@dataclass
class Results:
    """Everything the checks of one message found."""

    iprev: IprevResult | None = None
    spf: SPFResult | None = None
    dkim: list[DKIMResult] | None = None
    arc: ARCResult | None = None
    dmarc: DMARCResult | None = None
    # (check, DNS question and answer) in the order asked, for the transcript
    lookups: list[tuple[str, Lookup]] = field(default_factory=list)

    def header(self, authserv_id: str) -> bytes:
        return authentication_results(
            authserv_id,
            iprev=self.iprev,
            spf=self.spf,
            dkim=self.dkim,
            dmarc=self.dmarc,
            arc=self.arc,
        )

    def lines(self) -> list[str]:
        """One line per check, then the DNS answers each used: for the session transcript."""
        lines = []
        for first in (self.iprev, self.spf):
            if first is not None:
                lines.append(first.describe())
        for signature in self.dkim or []:
            lines.append(signature.describe())
        if self.dkim == []:
            lines.append("dkim=none (no signature)")
        for result in (self.arc, self.dmarc):
            if result is not None:
                lines.append(result.describe())
        lines += [f"  {check} DNS: {answer}" for check, answer in self.lookups]
        return lines


def from_fields(message: bytes) -> list[str]:
    """The values of the message's From header fields (RFC 5322 §3.6.2), unfolded."""
    head = bytes(message[: header_length(message)])
    found = []
    for raw in header_fields(head):
        name, colon, value = raw.partition(b":")
        if colon and name.strip().lower() == b"from":
            found.append(" ".join(value.decode("utf-8", "replace").split()))
    return found


class SessionChecks:
    """The checks for one session: started as the session goes, awaited at its end of data."""

    def __init__(
        self,
        settings: AuthenticationSettings,
        lookup: LookupFunc,
        *,
        client_ip: str,
        receiver: str,
        sample: Callable[[], int] | None = None,
    ) -> None:
        self.settings = settings
        self.lookup = lookup
        self.client_ip = client_ip
        self.receiver = receiver
        self.sample = sample
        self._iprev: asyncio.Task[IprevResult] | None = None
        self._spf: asyncio.Task[SPFResult] | None = None
        self._iprev_log = DNSLog(lookup)
        self._spf_log = DNSLog(lookup)

    # -- budgets ---------------------------------------------------------------------------------

    @staticmethod
    async def _within(seconds: float, work: Awaitable[T], timed_out: Callable[[], T]) -> T:
        try:
            async with asyncio.timeout(seconds):
                return await work
        except TimeoutError:
            return timed_out()

    # -- the session's steps ---------------------------------------------------------------------

    def connected(self) -> None:
        """The client connected: start iprev (if on)."""
        if self.settings.iprev == "off" or self._iprev is not None:
            return
        seconds = self.settings.iprev_timeout
        self._iprev = asyncio.ensure_future(
            self._within(
                seconds,
                check_iprev(self.client_ip, self._iprev_log),
                lambda: IprevResult(
                    "temperror", self.client_ip, reason=f"timed out after {seconds:g} s"
                ),
            )
        )

    async def iprev(self) -> IprevResult | None:
        if self._iprev is None:
            self.connected()
        return await self._iprev if self._iprev is not None else None

    def mail_from(self, sender: str, helo: str) -> None:
        """MAIL FROM: start SPF for this transaction (the previous one's is dropped)."""
        self.cancel_spf()
        if self.settings.spf == "off":
            return
        seconds = self.settings.spf_timeout
        self._spf_log = DNSLog(self.lookup)
        domain = sender.rpartition("@")[2] if sender else helo
        self._spf = asyncio.ensure_future(
            self._within(
                seconds,
                check_sender(
                    self.client_ip, sender, helo, lookup=self._spf_log, receiver=self.receiver
                ),
                lambda: SPFResult(
                    "temperror",
                    "mailfrom" if sender else "helo",
                    domain.lower(),
                    sender or f"postmaster@{helo}",
                    self.client_ip,
                    problem=f"timed out after {seconds:g} s",
                ),
            )
        )

    async def spf(self) -> SPFResult | None:
        return await self._spf if self._spf is not None else None

    def cancel_spf(self) -> None:
        if self._spf is not None and not self._spf.done():
            self._spf.cancel()
        self._spf = None

    def close(self) -> None:
        """The session ended: stop what still runs."""
        self.cancel_spf()
        if self._iprev is not None and not self._iprev.done():
            self._iprev.cancel()

    async def message(self, message: bytes) -> Results:
        """End of data: DKIM and ARC (together), then DMARC; with iprev's and SPF's results."""
        settings = self.settings
        results = Results()
        results.iprev = await self.iprev()
        results.lookups += [("iprev", answer) for answer in self._iprev_log.answers]
        results.spf = await self.spf()
        results.lookups += [("spf", answer) for answer in self._spf_log.answers]
        dkim_log, arc_log, dmarc_log = DNSLog(self.lookup), DNSLog(self.lookup), DNSLog(self.lookup)

        async def dkim() -> list[DKIMResult] | None:
            if settings.dkim == "off" and settings.dmarc == "off":
                return None
            seconds = settings.dkim_timeout

            async def run() -> list[DKIMResult]:
                found, _ = await dkim_check.verify_message(
                    message,
                    dkim_log,
                    max_signatures=settings.dkim_max_signatures,
                    max_header_size=settings.max_header_size,
                )
                return found

            def timed_out() -> list[DKIMResult]:
                # Every signature it was working on: temperror, never silently none.
                values = dkim_check.signature_headers(message, settings.max_header_size)
                values = values[: settings.dkim_max_signatures]
                return [
                    _timed_out_signature(index, value, seconds)
                    for index, value in enumerate(values)
                ]

            return await self._within(seconds, run(), timed_out)

        async def arc() -> ARCResult | None:
            if settings.arc == "off":
                return None
            seconds = settings.arc_timeout

            async def run() -> ARCResult:
                found, _ = await arc_check.verify_chain(message, arc_log, settings.max_header_size)
                return found

            return await self._within(
                seconds, run(), lambda: ARCResult("none", f"timed out after {seconds:g} s")
            )

        results.dkim, results.arc = await asyncio.gather(dkim(), arc())
        results.lookups += [("dkim", answer) for answer in dkim_log.answers]
        results.lookups += [("arc", answer) for answer in arc_log.answers]
        if settings.dmarc != "off":
            seconds = settings.dmarc_timeout

            async def dmarc() -> DMARCResult:
                found, _ = await dmarc_check.evaluate(
                    from_fields(message),
                    results.spf,
                    results.dkim or [],
                    dmarc_log,
                    sample=self.sample,
                )
                return found

            results.dmarc = await self._within(
                seconds,
                dmarc(),
                lambda: DMARCResult("temperror", reason=f"timed out after {seconds:g} s"),
            )
            results.lookups += [("dmarc", answer) for answer in dmarc_log.answers]
        if settings.dkim == "off":
            results.dkim = None  # verified only for DMARC: not reported on its own
        return results


def _timed_out_signature(index: int, value: bytes, seconds: float) -> DKIMResult:
    reason = f"timed out after {seconds:g} s"
    with contextlib.suppress(dkim_check.SignatureError):
        signature = dkim_check.parse_signature(index, value)
        return DKIMResult(
            "temperror",
            reason,
            signature.domain,
            signature.selector,
            signature.algorithm,
            signature.identity,
            signature.b,
        )
    return DKIMResult("neutral", "malformed signature")
