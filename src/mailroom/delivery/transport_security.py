"""A queue runner's outbound transport security, built as one: the TLS policy (DANE, MTA-STS,
the levels of ``[outbound_tls]``), the day's TLS session counts, and the daily TLS reports
(RFC 8460), from the queue's TLS settings.

The composition root builds it (:mod:`mailroom.app`), giving the reporter a DKIM signer for the
report mail and the way to store it; a runner built without one (the tests of delivery) makes
its own, unsigned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailroom.delivery.tlspolicy import TLSPolicy
from mailroom.delivery.tlsrpt import DeliverLocal, Sign, TLSReporter, TLSReportRecorder
from mailroom.queue.tls_settings import TLSPolicySettings
from mailroom.resolver import Resolver

__all__ = ["TransportSecurity", "transport_security"]


@dataclass(frozen=True)
class TransportSecurity:
    policy: TLSPolicy  # how each MX host is connected to
    recorder: TLSReportRecorder | None  # each session's outcome, per domain and day
    reporter: TLSReporter | None  # sends each day's reports (None: reports are off)


def transport_security(
    settings: TLSPolicySettings,
    resolver: Resolver,
    spool_root: Path,
    *,
    hostname: str,
    deliver_local: DeliverLocal,
    sign: Sign | None = None,
    clock: Callable[[], float] = time.time,
) -> TransportSecurity:
    """The parts for a queue whose files are under ``spool_root`` (the MTA-STS cache in
    ``mta-sts/``, the day's counts in ``tlsrpt/``); report mail goes to ``deliver_local``,
    signed by ``sign`` first if given."""
    recorder = TLSReportRecorder(spool_root / "tlsrpt", clock=clock) if settings.reports else None
    policy = TLSPolicy(settings, resolver, spool_root / "mta-sts", recorder=recorder, clock=clock)
    reporter = None
    if recorder is not None:
        reporter = TLSReporter(
            recorder,
            resolver,
            hostname=hostname,
            deliver_local=deliver_local,
            ssl_context=policy.verifying_context,
            organization=settings.report_organization,
            contact=settings.report_contact,
            sender=settings.report_from,
            delay=settings.report_delay,
            retry=settings.report_retry,
            max_attempts=settings.report_max_attempts,
            clock=clock,
        )
        reporter.sign = sign
    return TransportSecurity(policy, recorder, reporter)
