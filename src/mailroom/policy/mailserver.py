"""The mail server mode's decisions: receive for local domains, relay only for those allowed,
refuse everything else with the reply its situation calls for.

The session asks at the greeting (block list, a server that takes no mail), at MAIL (who may
send as whom, null-MX senders) and at RCPT (local users, aliases, moved users, quotas, relay,
greylisting, rates). Accepted recipients are routed: ``session.routes[recipient]`` says which
local mailboxes and which remote addresses the message goes to. Local mailboxes are Maildirs
under ``<data>/mail``, or, with ``[local_delivery] lmtp``, the queue, whose runner hands each
local user's copy to the LMTP server by the user's full address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.policy.base import Decision, Disconnect, SessionView
from mailroom.policy.content import FloodDetector, count_received, fingerprint
from mailroom.policy.credentials import CredentialStore
from mailroom.policy.directory import Directory, Resolution, User
from mailroom.policy.lists import DEFAULT_MAX_LIST_MEMBERS, recipient_refusal, size_refusal
from mailroom.policy.priority import PrioritySettings, effective_priority
from mailroom.policy.priority import size_refusal as priority_size_refusal
from mailroom.policy.rrvs import rrvs_refusal
from mailroom.protocol import (
    Authenticate,
    Event,
    Mailbox,
    MailFrom,
    MessageComplete,
    RcptTo,
    Verify,
)
from mailroom.protocol.commands import SHOWN_PATH, shown
from mailroom.resolver import ResolverError
from mailroom.store.envelope import Delivery

if TYPE_CHECKING:
    from mailroom.resolver import Resolver

__all__ = ["Greylist", "MailServerPolicy", "MailServerRules", "RateLimiter"]

# Local parts that are relay tricks when they reach a local domain: "user%remote@local",
# "remote!user@local", '"user@remote"@local' (RFC 5321 §3.6.1 warns of these).
_RELAY_TRICKS = ("%", "!", "@")


@dataclass(frozen=True)
class MailServerRules:
    """The policy settings of ``mailroom.toml`` (all named, all with safe defaults)."""

    hostname: str = "localhost"
    accept_no_mail: bool = False  # RFC 7504: 521 5.3.2 at the greeting
    block_list: tuple[str, ...] = ()  # networks refused at the greeting with 554 5.7.1
    relay_networks: tuple[str, ...] = ()  # networks that may relay without AUTH
    check_null_mx: bool = True  # 550 5.7.27 / 556 5.1.10 from DNS
    # Seconds of DNS one command (MAIL, RCPT) may wait for in all (DNS down or a black hole
    # must not hold every session for the resolver's own timeout). Past it a null-MX check is
    # skipped and the command goes on, as when the lookup fails; the sender domain check
    # (check_sender_domain) answers 451 4.1.8, as when DNS cannot tell for now.
    dns_timeout: float = 2.0
    # On mx listeners: a sender domain with neither MX nor address records gets 553 5.1.8
    # (no bounce could reach it), 451 4.1.8 when DNS cannot tell for now.
    check_sender_domain: bool = True
    full_mailbox: Literal["temporary", "permanent"] = "temporary"  # 452 4.2.2 or 552 5.2.2
    notify_forward: bool = False  # 251 2.1.5 for recipients forwarded off-site
    sender_must_own_address: bool = True  # authenticated users send as themselves: 553 5.7.1
    greylisting: bool = False
    greylist_delay: float = 300.0  # seconds before a retry of a new triple is accepted
    greylist_expiry: float = 36 * 3600.0
    max_messages_per_minute: int = 0  # per client address; 0 means no limit
    # Delivery reports to a sender the server cannot vouch for (an unauthenticated client,
    # not in relay_networks, with a sender outside the local domains) are a reflection
    # vector: a forged sender gets them. "trusted": only vouched-for senders get success
    # reports (NOTIFY=SUCCESS) and bounces of mail forwarded off-site; "all": anyone asking.
    success_reports: Literal["trusted", "all"] = "trusted"
    forward_bounces: Literal["trusted", "all"] = "trusted"
    # Where local users' mail goes: their Maildirs, or (``[local_delivery] lmtp``, not a
    # [policy] setting) the queue, for an LMTP server such as Dovecot's.
    local_delivery: Literal["maildir", "lmtp"] = "maildir"
    # Mailboxes one recipient (a list) may expand to; more: 450 4.2.4. 0: no limit.
    max_list_members: int = DEFAULT_MAX_LIST_MEMBERS
    # A message with more Received fields has looped: 554 5.4.6 (RFC 5321 §6.3: "at least 100").
    max_received: int = 100
    # Mail flood (X.7.28): near-identical messages to one recipient from more than
    # flood_senders senders within flood_window seconds get 450 4.7.28 (mx listeners). 0: off.
    flood_senders: int = 20
    flood_window: float = 600.0
    # Queue entries at most; then recipients whose mail would be queued get 451 4.4.5. 0: none.
    max_queued_messages: int = 100_000
    # RRVS (RFC 7293) offered on mx and submission listeners, checked against [owned_since].
    rrvs: bool = True
    # MT-PRIORITY (RFC 6710) offered with this priority policy's name; "" turns it off.
    mt_priority: str = "MIXER"
    # Authenticated users who may raise a message's priority above 0 ("*": all of them);
    # clients in relay_networks may too. Others' priorities are lowered to 0 (250 2.3.6).
    priority_raisers: tuple[str, ...] = ()
    # The largest message of each priority and below, e.g. {-1: 1 MiB}: 552 5.7.16 above it.
    max_size_by_priority: dict[int, int] = field(default_factory=dict)
    # Queue entries from which priorities below 0 wait (451 4.7.15). 0: never.
    low_priority_queue_limit: int = 0
    # VRFY: "never" answers 252 (cannot verify, RFC 5321 §3.5.3: users are not revealed);
    # "authenticated" tells authenticated users whether a local mailbox exists.
    vrfy: Literal["never", "authenticated"] = "never"
    # The lowest priority each routed domain takes (from [routes]): 550 5.7.15 below it.
    route_min_priority: dict[str, int] = field(default_factory=dict)


class Greylist:
    """RFC 6647 greylisting of (client network, sender, recipient) triples, in memory."""

    def __init__(self, delay: float, expiry: float) -> None:
        self.delay = delay
        self.expiry = expiry
        self._first_seen: dict[tuple[str, str, str], float] = {}
        self._passed: dict[tuple[str, str, str], float] = {}

    @staticmethod
    def _network(ip: str) -> str:
        # Big senders retry from another address of the same network: greylist the /24.
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return ip
        prefix = 24 if address.version == 4 else 64
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

    def check(self, ip: str, sender: str, recipient: str, now: float | None = None) -> float:
        """0 if the triple may pass, else the seconds left to wait."""
        now = time.time() if now is None else now
        key = (self._network(ip), sender.lower(), recipient.lower())
        if self._passed.get(key, 0) > now - self.expiry:
            self._passed[key] = now
            return 0.0
        first = self._first_seen.setdefault(key, now)
        if now - first >= self.delay:
            self._passed[key] = now
            del self._first_seen[key]
            return 0.0
        return self.delay - (now - first)


class RateLimiter:
    """Messages per minute per client address, over a sliding minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def allow(self, ip: str, now: float | None = None) -> bool:
        if not self.per_minute:
            return True
        now = time.monotonic() if now is None else now
        window = self._seen.setdefault(ip, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.per_minute:
            return False
        window.append(now)
        return True


def _in_networks(ip: str, networks: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


class GreylistCheck(Protocol):
    """Greylisting in memory (:class:`Greylist`) or in a fleet's database, awaited."""

    def check(self, ip: str, sender: str, recipient: str) -> float | Awaitable[float]: ...


class RateCheck(Protocol):
    """Rates in memory (:class:`RateLimiter`) or in a fleet's database, awaited."""

    def allow(self, ip: str) -> bool | Awaitable[bool]: ...


@dataclass
class MailServerPolicy:
    rules: MailServerRules
    directory: Directory
    credentials: CredentialStore | None = None
    resolver: Resolver | None = None
    greylist: GreylistCheck | None = field(default=None)
    rates: RateCheck | None = field(default=None)
    # How full each local mailbox is, in octets, by mailbox name (kept by the store).
    usage: dict[str, int] = field(default_factory=dict)
    # How many entries the outbound queue holds now (the queue runner's count), for 451 4.4.5.
    queue_depth: Callable[[], int] = field(default=lambda: 0)
    floods: FloodDetector | None = field(default=None)
    # Where a bounce to one of this server's return addresses goes (SRS, email
    # authentication's), or None for any other address: such a recipient then passes the same
    # checks (rates, quota, congestion, greylisting) as any other.
    bounce_route: Callable[[str, SessionView], Resolution | None] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.greylist is None and self.rules.greylisting:
            self.greylist = Greylist(self.rules.greylist_delay, self.rules.greylist_expiry)
        if self.rates is None and self.rules.max_messages_per_minute:
            self.rates = RateLimiter(self.rules.max_messages_per_minute)
        if self.floods is None and self.rules.flood_senders:
            self.floods = FloodDetector(self.rules.flood_senders, self.rules.flood_window)
        self.priorities = PrioritySettings(
            raisers=self.rules.priority_raisers,
            max_size_by_priority=self.rules.max_size_by_priority,
            low_priority_queue_limit=self.rules.low_priority_queue_limit,
        )

    # -- the greeting ----------------------------------------------------------------------------

    def connect(self, session: SessionView) -> Reply | None:
        hostname = self.rules.hostname
        if self.rules.accept_no_mail:
            return replies.NO_MAIL_ACCEPTED(hostname=hostname)
        if self.rules.block_list and _in_networks(session.client_ip, self.rules.block_list):
            return replies.NO_SMTP_SERVICE(hostname=hostname)
        return None

    # -- commands --------------------------------------------------------------------------------

    def decide(self, event: Event, session: SessionView) -> Decision:
        kind = type(event)
        if kind is RcptTo:
            return self._recipient(event, session)  # type: ignore[arg-type]
        if kind is MailFrom:
            return self._sender(event, session)  # type: ignore[arg-type]
        if kind is Authenticate and self.credentials is not None:
            return self.credentials.check(event.credentials)  # type: ignore[attr-defined]
        if kind is MessageComplete:
            return self._message(event, session)  # type: ignore[arg-type]
        if kind is Verify:
            return self._verify(event, session)  # type: ignore[arg-type]
        return None

    def _verify(self, event: Verify, session: SessionView) -> Reply | None:
        """VRFY for authenticated users, when allowed: one local mailbox, or not (RFC 5321
        §3.5.1); a name that needs UTF-8 only to a client that said SMTPUTF8 (RFC 6531 §3.7.4)."""
        if self.rules.vrfy != "authenticated" or session.conn.authenticated is None:
            return None  # the protocol's 252: cannot verify, will attempt delivery
        words = event.argument.split()
        utf8 = len(words) > 1 and words[-1].upper() == "SMTPUTF8"
        name = " ".join(words[:-1] if utf8 else words).strip("<>")
        address = name if "@" in name else f"{name}@{self._primary_domain()}"
        resolution = self.directory.resolve(address)
        if len(resolution.local) != 1 or resolution.remote:
            if not resolution.found:
                # The client's own text: printable ASCII and at most a path's length, as MAIL
                # and RCPT show theirs (RFC 5321 §4.2 reply text, §4.5.3.1.5 reply lines).
                return replies.VERIFY_UNKNOWN(address=shown(f"<{address}>", SHOWN_PATH))
            return None  # a list or a forward: 252, as RFC 5321 §3.5.3 allows
        mailbox = resolution.local[0].address
        if not mailbox.isascii() and not utf8:
            return replies.VERIFY_NEEDS_UTF8(
                argument=shown(event.argument, SHOWN_PATH) if event.argument.isascii() else "<name>"
            )
        return replies.VERIFIED(address=f"<{mailbox}>")

    def _message(self, event: MessageComplete, session: SessionView) -> Decision:
        """The end of data: what only the message itself can settle (its real size, the hops
        it made, whether it is one of a flood)."""
        head = bytes(session.message_head)
        hops = count_received(head)
        if self.rules.max_received and hops > self.rules.max_received:
            return replies.TOO_MANY_HOPS(count=hops)
        for recipient, resolution in session.routes.items():
            refusal = size_refusal(resolution.local, event.size, f"<{recipient}>")
            if refusal is not None:
                return refusal
        if self.rules.mt_priority:
            refusal = priority_size_refusal(session.mt_priority or 0, event.size, self.priorities)
            if refusal is not None:
                return refusal
        if self.floods is not None and session.listener.role == "mx" and session.routes:
            transaction = session.conn.transaction
            sender = str(transaction.sender) if transaction and transaction.sender else ""
            print_ = fingerprint(head)
            for recipient in session.routes:
                count = self.floods.flooded(recipient, print_, sender)
                if count:
                    return replies.MAIL_FLOOD(count=count, address=f"<{recipient}>")
        return None

    def deliveries(self, session: SessionView) -> list[Delivery] | None:
        """One Maildir per local user, and the queue for every remote address (aliases that
        forward off-site included); with LMTP, the queue for the local users too. The queue
        also takes the success reports owed for mail put into local Maildirs."""
        found = self._deliveries(session.routes)
        transaction = session.conn.transaction
        if transaction is None or transaction.sender is None:
            return found  # the null sender gets no reports (RFC 3461 §6.2)
        trusted = self.vouches_for(session, str(transaction.sender))
        successes = trusted or self.rules.success_reports == "all"
        in_mailboxes = {r for d in found if d.kind == "mailbox" for r in d.recipients}
        wanted = tuple(
            str(recipient)
            for recipient, params in transaction.recipients
            if successes
            and params.notify
            and "SUCCESS" in params.notify
            and str(recipient) in in_mailboxes
        )
        queued = next((d for d in found if d.kind == "queue"), None)
        notify = () if trusted else self._untrusted_notify(session, queued)
        if not wanted and not notify:
            return found
        others = [d for d in found if d is not queued]
        remote = queued.recipients if queued is not None else ()
        return [*others, Delivery("queue", "", remote, delivered=wanted, notify=notify)]

    def vouches_for(self, session: SessionView, sender: str) -> bool:
        """Whether delivery reports may go to ``sender``: the client authenticated or may
        relay, or the sender's address is in a local domain (a forgery then reaches only our
        own users)."""
        return self.may_relay(session) or self.directory.is_local(sender)

    def _untrusted_notify(
        self, session: SessionView, queued: Delivery | None
    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """NOTIFY for the queued recipients of a sender the server cannot vouch for: no
        report at all for mail forwarded off-site (forward_bounces), no success report for the
        others (success_reports); the client's NOTIFY otherwise."""
        if queued is None:
            return ()
        transaction = session.conn.transaction
        asked = {
            str(r): p.notify for r, p in (transaction.recipients if transaction else []) if p.notify
        }
        forwarded = {
            address
            for recipient, resolution in session.routes.items()
            for address in resolution.remote
            if address != recipient
        }
        decided: list[tuple[str, tuple[str, ...]]] = []
        for address in queued.recipients:
            if address in forwarded and self.rules.forward_bounces != "all":
                decided.append((address, ("NEVER",)))
                continue
            notify = asked.get(address)
            if notify and "SUCCESS" in notify and self.rules.success_reports != "all":
                kept = tuple(kind for kind in notify if kind != "SUCCESS")
                decided.append((address, kept or ("NEVER",)))
        return tuple(decided)

    def route(self, recipients: list[str]) -> list[Delivery]:
        """Deliveries for a message this server makes itself (a bounce): recipients in local
        domains through the directory (unknown ones to postmaster), the others to the queue."""
        routes: dict[str, Resolution] = {}
        for recipient in recipients:
            if self.directory.is_local(recipient):
                resolution = self.directory.resolve(recipient)
                if not resolution.local and not resolution.remote:
                    resolution = self.directory.resolve(f"postmaster@{self._primary_domain()}")
                routes[recipient] = resolution
            else:
                routes[recipient] = Resolution(remote=[recipient])
        return self._deliveries(routes)

    def _deliveries(self, routes: dict[str, Any]) -> list[Delivery]:
        local: dict[str, list[str]] = {}
        remote: list[str] = []
        lmtp = self.rules.local_delivery == "lmtp"
        for recipient, resolution in routes.items():
            for user in resolution.local:
                if lmtp:
                    # Durably queued like remote mail; the runner gives it to the LMTP
                    # server as the user's own address, whatever alias it came by.
                    if user.address not in remote:
                        remote.append(user.address)
                    continue
                addresses = local.setdefault(mailbox_name(user), [])
                if recipient not in addresses:
                    addresses.append(recipient)
            for address in resolution.remote:
                if address not in remote:
                    remote.append(address)
        found = [Delivery("mailbox", name, tuple(rcpts)) for name, rcpts in local.items()]
        if remote:
            found.append(Delivery("queue", "", tuple(remote)))
        return found

    def owned_domains(self, user: str) -> set[str] | None:
        """The domains ``user`` owns an address in, for what their mail may be signed as;
        None when users may send as anyone (``sender_must_own_address = false``)."""
        if not self.rules.sender_must_own_address:
            return None
        return {address.rpartition("@")[2] for address in self.directory.addresses_of(user)}

    def may_relay(self, session: SessionView) -> bool:
        return session.conn.authenticated is not None or _in_networks(
            session.client_ip, self.rules.relay_networks
        )

    def _may_send_as(self, user: str, address: str) -> bool:
        """Whether an authenticated user may give ``address`` as the sender: any address when
        ``sender_must_own_address`` is off, else only their own (553 5.7.1 otherwise)."""
        return not self.rules.sender_must_own_address or self.directory.may_send_as(user, address)

    def _sender(self, event: MailFrom, session: SessionView) -> Decision:
        sender = event.sender
        user = session.conn.authenticated
        if user is not None and sender is not None and not self._may_send_as(user, str(sender)):
            return replies.SENDER_NOT_OWNED(address=sender.bracketed, user=user)
        accepted: Reply | None = None
        if self.rules.mt_priority:
            refusal, accepted = self._priority(event, session)
            if refusal is not None:
                return refusal
        domain_check = self._sender_checks(sender, session)
        if domain_check is None:
            return accepted
        if accepted is None:
            return domain_check
        return self._unless_refused(domain_check, accepted)

    @staticmethod
    async def _unless_refused(check: Awaitable[Reply | None], accepted: Reply) -> Reply:
        refusal = await check
        return refusal if refusal is not None else accepted

    def _priority(self, event: MailFrom, session: SessionView) -> tuple[Reply | None, Reply | None]:
        """(a refusal, or the 250 2.3.6 that says the priority was lowered); sets the priority
        the message is taken at on the session."""
        priority, changed = effective_priority(
            event.parameters.mt_priority,
            self.priorities,
            user=session.conn.authenticated,
            trusted=_in_networks(session.client_ip, self.rules.relay_networks),
        )
        session.mt_priority = priority if event.parameters.mt_priority is not None else None
        minimum = session.listener.min_priority
        if minimum is not None and priority < minimum:
            what = f"this listener ({session.listener.role})"
            return replies.PRIORITY_TOO_LOW(what=what, minimum=minimum), None
        limit = self.priorities.low_priority_queue_limit
        if limit and priority < 0:
            queued = self.queue_depth()
            if queued >= limit:
                return replies.PRIORITY_TOO_LOW_NOW(queued=queued), None
        refusal = priority_size_refusal(priority, event.parameters.size, self.priorities)
        return refusal, changed

    def _sender_checks(
        self, sender: Mailbox | None, session: SessionView
    ) -> Awaitable[Reply | None] | None:
        if sender is None or self.resolver is None or sender.is_address_literal:
            return None
        exists = (
            self.rules.check_sender_domain
            and session.listener.role == "mx"
            and session.conn.authenticated is None
            and not self.directory.is_local_domain(sender.domain)
        )
        if exists:
            return self._sender_domain(sender)
        if self.rules.check_null_mx:
            return self._sender_null_mx(sender)
        return None

    async def _sender_null_mx(self, sender: Mailbox) -> Reply | None:
        if await self._null_mx(sender.domain):
            return replies.SENDER_DOMAIN_NULL_MX(address=sender.bracketed)
        return None

    async def _null_mx(self, domain: str) -> bool:
        """Whether ``domain`` has a null MX, as far as DNS tells within ``dns_timeout``
        seconds; a failed or slow lookup is no null MX (the queue finds it later)."""
        assert self.resolver is not None
        try:
            async with asyncio.timeout(self.rules.dns_timeout):
                return await self.resolver.has_null_mx(domain)
        except TimeoutError:
            return False

    async def _sender_domain(self, sender: Mailbox) -> Reply | None:
        """One lookup answers both: does the sender's domain take mail at all (RFC 5321 §5.1:
        MX, else address records), and is it a null MX (RFC 7505)? DNS that fails or does not
        answer within ``dns_timeout`` cannot tell for now: 451 4.1.8."""
        assert self.resolver is not None
        address = sender.bracketed
        try:
            async with asyncio.timeout(self.rules.dns_timeout):
                route = await self.resolver.mail_route(sender.domain)
        except (ResolverError, TimeoutError):
            return replies.SENDER_DOMAIN_UNKNOWN_NOW(address=address)
        if route.null_mx:
            return (
                replies.SENDER_DOMAIN_NULL_MX(address=address) if self.rules.check_null_mx else None
            )
        if not route.exists or not route.hosts:
            return replies.SENDER_DOMAIN_UNKNOWN(address=address)
        return None

    def _recipient(self, event: RcptTo, session: SessionView) -> Decision:
        if self.rates is not None:
            allowed = self.rates.allow(session.client_ip)
            if not isinstance(allowed, bool):  # counted in a database the fleet shares
                return self._recipient_if_allowed(allowed, event, session)
            if not allowed:
                return replies.RATE_LIMITED(client=session.client_ip)
        return self._recipient_within_rate(event, session)

    async def _recipient_if_allowed(
        self, allowed: Awaitable[bool], event: RcptTo, session: SessionView
    ) -> Reply | Disconnect | None:
        if not await allowed:
            return replies.RATE_LIMITED(client=session.client_ip)
        decision = self._recipient_within_rate(event, session)
        return await decision if isinstance(decision, Awaitable) else decision

    def _recipient_within_rate(self, event: RcptTo, session: SessionView) -> Decision:
        recipient = event.recipient
        address = recipient.bracketed
        if recipient.is_postmaster:
            # RFC 5321 §4.5.1: <postmaster> without a domain is always accepted.
            return self._route_local(
                session, recipient, f"postmaster@{self._primary_domain()}", event.parameters.rrvs
            )
        local_part = recipient.local_part
        if self.directory.is_local_domain(recipient.domain) and not recipient.is_address_literal:
            if any(mark in local_part for mark in _RELAY_TRICKS):
                return self._relay_refusal(session, recipient)
            if local_part.startswith(("-", ".")) or local_part.startswith('"'):
                return replies.MAILBOX_NAME_NOT_ALLOWED(address=address)
            return self._route_local(session, recipient, str(recipient), event.parameters.rrvs)
        return self._relay(session, recipient)

    def _route_priority(self, session: SessionView, address: str) -> Reply | None:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        minimum = self.rules.route_min_priority.get(domain)
        if minimum is not None and (session.mt_priority or 0) < minimum:
            return replies.PRIORITY_TOO_LOW(what=f"the route to {domain}", minimum=minimum)
        return None

    def _congested(self) -> Reply | None:
        limit = self.rules.max_queued_messages
        if limit:
            queued = self.queue_depth()
            if queued >= limit:
                return replies.QUEUE_CONGESTED(queued=queued)
        return None

    def _primary_domain(self) -> str:
        return self.directory.primary_domain or self.rules.hostname

    def _route_local(
        self, session: SessionView, recipient: Mailbox, key: str, rrvs: str | None = None
    ) -> Decision:
        address = recipient.bracketed
        bounce = self.bounce_route(key, session) if self.bounce_route is not None else None
        resolution = bounce if bounce is not None else self.directory.resolve(key)
        if resolution.moved_to is not None:
            return replies.USER_MOVED(forward_path=f"<{resolution.moved_to}>")
        transaction = session.conn.transaction
        refusal = recipient_refusal(
            resolution,
            address=address,
            sender=str(transaction.sender) if transaction and transaction.sender else None,
            directory=self.directory,
            max_members=self.rules.max_list_members,
            size=transaction.parameters.size if transaction else None,
        )
        if refusal is not None:
            return refusal
        if rrvs is not None:
            refusal = rrvs_refusal(
                rrvs,
                address=address,
                domain=recipient.domain,
                resolution=resolution,
                directory=self.directory,
            )
            if refusal is not None:
                return refusal
        for remote in resolution.remote:
            refusal = self._route_priority(session, remote)
            if refusal is not None:
                return refusal
        if not resolution.found and self.directory.has_no_mailboxes(recipient.domain):
            return replies.LOCAL_DOMAIN_WITHOUT_MAILBOXES(
                address=address, domain=recipient.domain.lower()
            )
        if (resolution.remote or (resolution.local and self.rules.local_delivery == "lmtp")) and (
            refusal := self._congested()
        ):
            return refusal
        if not resolution.found:
            if recipient.local_part.lower() == "postmaster":
                # No postmaster alias configured: the first user gets it rather than no one.
                # <Postmaster> and postmaster@ every local domain alike: RFC 5321 §4.5.1 says
                # both MUST be supported.
                first = next(iter(self.directory.mailbox_users()), None)
                if first is not None:
                    resolution = Resolution(local=[first])
            if not resolution.found:
                return replies.MAILBOX_UNKNOWN(address=address)
        for user in resolution.local:
            if user.quota and self.usage.get(mailbox_name(user), 0) >= user.quota:
                if self.rules.full_mailbox == "permanent":
                    return replies.MAILBOX_FULL_PERMANENT(address=address)
                return replies.MAILBOX_FULL(address=address)
        if self.greylist is not None and not self.may_relay(session):
            transaction = session.conn.transaction
            sender = str(transaction.sender) if transaction and transaction.sender else ""
            wait = self.greylist.check(session.client_ip, sender, str(recipient))
            if not isinstance(wait, float | int):  # a greylist the fleet shares
                return self._route_after_greylist(wait, session, recipient, resolution)
            if wait > 0:
                return replies.GREYLISTED(address=address, delay=int(wait) + 1)
        return self._accept_local(session, recipient, resolution)

    async def _route_after_greylist(
        self,
        wait: Awaitable[float],
        session: SessionView,
        recipient: Mailbox,
        resolution: Resolution,
    ) -> Reply | None:
        seconds = await wait
        if seconds > 0:
            return replies.GREYLISTED(address=recipient.bracketed, delay=int(seconds) + 1)
        return self._accept_local(session, recipient, resolution)

    def _accept_local(
        self, session: SessionView, recipient: Mailbox, resolution: Resolution
    ) -> Reply | None:
        session.routes[str(recipient)] = resolution
        forwarded = resolution.remote and not resolution.local and resolution.bounce_of is None
        if forwarded and self.rules.notify_forward:
            return replies.USER_NOT_LOCAL_WILL_FORWARD(
                forward_path=", ".join(f"<{r}>" for r in resolution.remote)
            )
        return None

    def _relay_refusal(self, session: SessionView, recipient: Mailbox) -> Reply:
        return replies.RELAY_DENIED(address=recipient.bracketed)

    def _relay(self, session: SessionView, recipient: Mailbox) -> Decision:
        if not self.may_relay(session):
            return self._relay_refusal(session, recipient)
        if recipient.is_address_literal:
            return self._relay_refusal(session, recipient)
        congested = self._congested() or self._route_priority(session, str(recipient))
        if congested is not None:
            return congested
        route = Resolution(remote=[str(recipient)])
        if self.rules.check_null_mx and self.resolver is not None:
            return self._relay_unless_null_mx(session, recipient, route)
        session.routes[str(recipient)] = route
        return None

    async def _relay_unless_null_mx(
        self, session: SessionView, recipient: Mailbox, route: Resolution
    ) -> Reply | None:
        if await self._null_mx(recipient.domain):
            return replies.DOMAIN_DOES_NOT_ACCEPT_MAIL(address=recipient.bracketed)
        session.routes[str(recipient)] = route
        return None


def mailbox_name(user: User) -> str:
    """A local user's Maildir under ``<data>/mail``: ``example.test/alice``."""
    return f"{user.domain}/{user.local_part}"
