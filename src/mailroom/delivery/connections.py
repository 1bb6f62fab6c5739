"""Opening an SMTP (or LMTP) session to a destination: the hops of its plan in order, TLS as
the route says (for MX delivery, as the outbound TLS policy plans it for each host:
:mod:`mailroom.delivery.tlspolicy`; without one, Postfix's "may": opportunistic STARTTLS, the
certificate not checked), AUTH for a smarthost that wants it. A relay host with
``protocol = "lmtp"`` gets LMTP (RFC 2033), on TCP or on a unix socket.

A hop that cannot be reached, refuses us at the greeting or at EHLO, or does not meet the TLS
policy is skipped for the next one. When every hop fails, the outcome is the last temporary
failure (retry), or a permanent one when every hop refused for good (a 554 greeting from each,
RFC 5321 §3.1; a REQUIRETLS message no host can take, RFC 8689).
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from dataclasses import dataclass

from mailroom.client import (
    Client,
    ConnectionFailed,
    HelloRefused,
    SendError,
    TLSFailed,
    TLSMode,
)
from mailroom.codes import reports
from mailroom.delivery.outcome import Outcome, from_error, reported
from mailroom.delivery.routing import Destination, Hop, Plan
from mailroom.delivery.tlspolicy import HopPlan, TLSInfo, TLSPolicy
from mailroom.logsafe import quoted
from mailroom.queue.settings import QueueSettings, RelayHost

__all__ = ["Session", "open_session"]

log = logging.getLogger("mailroom.delivery")


@dataclass(eq=False)
class Session:
    """A connected, ready client and where it goes."""

    client: Client
    hop: Hop
    transactions: int = 0  # messages sent on it, for reuse
    tls: TLSInfo | None = None  # its TLS and how the server was verified; None: plain text

    @property
    def remote_mta(self) -> str:
        return self.hop.name

    @property
    def relay_name(self) -> str:
        """How logs name the peer, like Postfix: ``mx.example.test[127.0.0.1]:25``, and
        ``mx.example.test[/var/run/dovecot/lmtp]`` for a unix socket."""
        if self.hop.port == 0:
            return f"{self.hop.name}[{self.hop.address}]"
        return f"{self.hop.name}[{self.hop.address}]:{self.hop.port}"

    @property
    def dsn(self) -> bool:
        """The server speaks DSN: NOTIFY and the rest go on with the message."""
        return self.client.is_connected and self.client.extensions.dsn

    @property
    def usable(self) -> bool:
        return self.client.is_connected

    async def close(self) -> None:
        await self.client.quit()


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _tls(relay: RelayHost | None) -> tuple[TLSMode, ssl.SSLContext]:
    if relay is None:
        return "opportunistic", _unverified_context()
    if not relay.verify or relay.tls == "opportunistic":
        # Opportunistic TLS checks no certificate: it only keeps passive listeners out, and
        # falling back to the clear over a certificate would be no safer.
        context = _unverified_context()
    else:
        context = ssl.create_default_context(cafile=relay.cafile)
    mode: TLSMode = relay.tls  # type: ignore[assignment]
    return mode, context


class _HopFailed(Exception):
    def __init__(self, error: BaseException, answered: bool, auth: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.answered = answered  # the host greeted us: it is the Remote-MTA of the failure
        self.auth = auth  # the login failed


async def _open_hop(
    hop: Hop,
    relay: RelayHost | None,
    settings: QueueSettings,
    helo: str,
    mode: TLSMode,
    context: ssl.SSLContext,
) -> Client:
    client = Client(
        hop.address,
        hop.port,
        tls=mode,
        ssl_context=context,
        server_hostname=hop.name,
        local_hostname=helo,
        connect_timeout=settings.connect_timeout,
        timeout=settings.command_timeout,
        final_timeout=settings.data_done_timeout,
        lmtp=relay is not None and relay.lmtp,
        socket_path=relay.socket if relay is not None else None,
    )
    try:
        await client.connect()
    except (SendError, OSError) as exc:
        await client.close()
        raise _HopFailed(exc, client.greeting is not None) from exc
    except BaseException:
        await client.close()
        raise
    if relay is not None and relay.username:
        try:
            await client.login(relay.username, relay.password or "")
        except (SendError, OSError) as exc:
            await client.quit()
            raise _HopFailed(exc, True, auth=True) from exc
        except BaseException:
            await client.close()
            raise
    return client


def _tls_info(client: Client, verified: bool) -> TLSInfo | None:
    ssl_object = client.ssl_object
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher() or ("unknown", "", 0)
    return TLSInfo(
        ssl_object.version() or "TLS",
        str(cipher[0]),
        int(cipher[2] or 0),
        "pkix" if verified else "none",
    )


def _chosen(failures: list[Outcome]) -> Outcome:
    if not failures:
        return reported(reports.NO_HOST_TO_TRY, "no host to deliver to")
    temporary = [f for f in failures if f.action == "retry"]
    if temporary:
        return temporary[-1]
    return failures[-1]


async def open_session(
    destination: Destination,
    plan: Plan,
    settings: QueueSettings,
    helo: str,
    *,
    security: TLSPolicy | None = None,
    domain: str = "",
) -> tuple[Session | None, Outcome]:
    """A session with the first hop that takes us, or None and the outcome for the
    recipients. ``security`` is the outbound TLS policy for MX delivery to ``domain``."""
    relay = destination.relay
    if relay is None and security is not None:
        return await _open_secure(destination, plan, settings, helo, security, domain)
    mode, context = _tls(relay)
    failures: list[Outcome] = []
    for hop in plan.hops:
        try:
            try:
                client = await _open_hop(hop, relay, settings, helo, mode, context)
            except _HopFailed as failed:
                if mode != "opportunistic" or not isinstance(failed.error, TLSFailed):
                    raise
                # Opportunistic TLS that fails goes on in the clear, on a new connection.
                log.info(
                    "TLS with %s[%s] failed; trying without TLS", quoted(hop.name), hop.address
                )
                client = await _open_hop(hop, relay, settings, helo, "none", context)
        except _HopFailed as failed:
            outcome = from_error(failed.error, hop.name if failed.answered else None)
            if (
                relay is not None
                and relay.lmtp
                and isinstance(failed.error, HelloRefused)
                and failed.error.reply is not None
                and failed.error.reply.code in (500, 502)
            ):
                # LHLO not known at all: the route names an SMTP server as an LMTP one. Our
                # configuration is wrong, not the recipient: the message waits (X.5.5).
                outcome = reported(
                    reports.WRONG_PROTOCOL,
                    f"{hop.name} does not speak LMTP (it refused LHLO: {failed.error.reply}); "
                    "check the route's protocol",
                    hop.name,
                )
            if failed.auth and not isinstance(failed.error, ConnectionFailed):
                # A refused login is our configuration's fault, not the recipient's: retry.
                why = "our AUTH was refused: our configuration's fault, not the recipient's"
                if outcome.action == "bounce":
                    outcome = reported(
                        reports.RELAY_LOGIN_FAILED,
                        f"AUTH failed: {outcome.diagnostic}",
                        hop.name,
                        why,
                    )
                else:
                    outcome = Outcome(
                        "retry",
                        outcome.status,
                        f"AUTH failed: {outcome.diagnostic}",
                        "securityerror",
                        hop.name,
                        why,
                    )
            failures.append(outcome)
            continue
        verified = relay is not None and relay.verify and relay.tls in ("starttls", "implicit")
        tls = _tls_info(client, verified)
        if destination.requirement == "requiretls":
            refusal = _requiretls_relay(client, hop, verified)
            if refusal is not None:
                await client.quit()
                failures.append(refusal)
                continue
        return Session(client, hop, tls=tls), Outcome(
            "delivered", "2.0.0", "", "delivered", hop.name
        )
    return None, _chosen(failures)


def _requiretls_relay(client: Client, hop: Hop, verified: bool) -> Outcome | None:
    """RFC 8689 §4.2.1 for a route or a smarthost: its certificate checked (``verify`` with
    ``tls = "starttls"`` or ``"implicit"``) and REQUIRETLS offered after TLS."""
    if not verified or not client.tls_active:
        why = (
            f"a REQUIRETLS message is relayed only over verified TLS; the route to {hop.name} "
            "does not check the relay's certificate"
        )
        return reported(reports.REQUIRETLS_NOT_OFFERED, why, hop.name)
    if not client.extensions.requiretls:
        why = f"{hop.name} does not offer REQUIRETLS after STARTTLS (RFC 8689 §4.2.1)"
        return reported(reports.REQUIRETLS_NOT_OFFERED, why, hop.name)
    return None


class _PolicyFailed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.diagnostic)
        self.outcome = outcome


async def _connect_planned(
    hop: Hop, plan: HopPlan, settings: QueueSettings, helo: str, security: TLSPolicy
) -> tuple[Client, HopPlan]:
    """Connect as the plan says; the client and the plan it now answers to (a handshake that
    failed where the plan allows going on without TLS or without verification: "may")."""
    try:
        return await _open_hop(hop, None, settings, helo, plan.tls_mode, plan.context), plan
    except _HopFailed as failed:
        if plan.tls_mode == "none" or not isinstance(failed.error, TLSFailed):
            raise
        error = failed.error
    if plan.clear_fallback:
        # Opportunistic TLS that fails goes on in the clear, on a new connection.
        log.info("TLS with %s[%s] failed; trying without TLS", quoted(hop.name), hop.address)
        client = await _open_hop(hop, None, settings, helo, "none", plan.context)
        return client, dataclasses.replace(plan, mandatory=False, report=None)
    outcome = security.handshake_failed(plan, hop, error, fallback=plan.testing)
    if not plan.testing:
        raise _PolicyFailed(outcome)
    # MTA-STS testing: the failure is reported; the message goes as without a policy.
    log.info(
        "%s; delivering all the same (the policy is in testing mode)", quoted(outcome.diagnostic)
    )
    may = HopPlan("none", "opportunistic", security.unverified_context(), clear_fallback=True)
    return await _connect_planned(hop, may, settings, helo, security)


async def _open_secure(
    destination: Destination,
    plan: Plan,
    settings: QueueSettings,
    helo: str,
    security: TLSPolicy,
    domain: str,
) -> tuple[Session | None, Outcome]:
    """MX delivery under the outbound TLS policy: each host as its plan says."""
    requirement = destination.requirement
    domain_tls = await security.plan_domain(domain, requirement)  # type: ignore[arg-type]
    failures: list[Outcome] = []
    for hop in plan.hops:
        hop_plan = await security.plan_hop(domain_tls, hop)
        if hop_plan.refusal is not None:
            security.record_refusal(hop_plan, hop)
            log.info("%s: not used: %s", quoted(hop.name), quoted(hop_plan.refusal.diagnostic))
            failures.append(hop_plan.refusal)
            continue
        try:
            client, hop_plan = await _connect_planned(hop, hop_plan, settings, helo, security)
        except _PolicyFailed as failed:
            failures.append(failed.outcome)
            continue
        except _HopFailed as failed:
            failures.append(from_error(failed.error, hop.name if failed.answered else None))
            continue
        tls, refusal = security.check(hop_plan, hop, client)
        if refusal is not None:
            log.info(
                "%s[%s]: not used: %s", quoted(hop.name), hop.address, quoted(refusal.diagnostic)
            )
            await client.quit()
            failures.append(refusal)
            continue
        return Session(client, hop, tls=tls), Outcome(
            "delivered", "2.0.0", "", "delivered", hop.name
        )
    return None, _chosen(failures)
