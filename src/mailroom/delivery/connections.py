"""Opening an SMTP (or LMTP) session to a destination: the hops of its plan in order, TLS as
the route says (opportunistic STARTTLS for MX delivery, the certificate not checked — Postfix's
"may"), AUTH for a smarthost that wants it. A relay host with ``protocol = "lmtp"`` gets LMTP
(RFC 2033), on TCP or on a unix socket.

A hop that cannot be reached, refuses us at the greeting or at EHLO is skipped for the next one.
When every hop fails, the outcome is the last temporary failure (retry), or a permanent one
when every hop refused for good (a 554 greeting from each, RFC 5321 §3.1).
"""

from __future__ import annotations

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
from mailroom.queue.settings import QueueSettings, RelayHost

__all__ = ["Session", "open_session"]

log = logging.getLogger("mailroom.delivery")


@dataclass(eq=False)
class Session:
    """A connected, ready client and where it goes."""

    client: Client
    hop: Hop
    transactions: int = 0  # messages sent on it, for reuse

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
        timeout=settings.connect_timeout,
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
    client.timeout = settings.command_timeout
    return client


async def open_session(
    destination: Destination, plan: Plan, settings: QueueSettings, helo: str
) -> tuple[Session | None, Outcome]:
    """A session with the first hop that takes us, or None and the outcome for the
    recipients."""
    relay = destination.relay
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
                log.info("TLS with %s[%s] failed; trying without TLS", hop.name, hop.address)
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
        return Session(client, hop), Outcome("delivered", "2.0.0", "", "delivered", hop.name)
    if not failures:
        return None, reported(reports.NO_HOST_TO_TRY, "no host to deliver to")
    temporary = [f for f in failures if f.action == "retry"]
    if temporary:
        return None, temporary[-1]
    return None, failures[-1]
