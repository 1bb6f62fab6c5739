"""Email authentication's decisions: the results of :mod:`mailroom.authentication` turned into
catalogue replies, the ``Authentication-Results`` header, quarantine, and DKIM signing.

Wrapped around the mail server policy, it acts on two kinds of session:

- **Untrusted** sessions on mx listeners (not authenticated, not from ``relay_networks``): iprev
  starts at the greeting, SPF at MAIL FROM, DKIM, ARC and DMARC at the end of the message. With
  the defaults only DMARC is enforced: p=reject is ``550 5.7.26``, p=quarantine goes to the
  recipients' Junk folder. Enforced SPF refuses at MAIL (``550 5.7.23``, ``451 4.7.24``,
  ``550 5.7.24``), required iprev too (``550 5.7.25``), a domain that requires DKIM at the end
  (``550 5.7.20``/``5.7.21``/``5.7.22``); a DMARC failure that a trusted forwarder's broken ARC
  chain was to excuse is ``550 5.7.29``. A check that could not finish gives the temporary 4.7.x
  reply where its answer would matter, never a pass. Every check's result and the DNS answers
  it used go into the session's transcript; the message gets one ``Authentication-Results``
  field, after any claiming this server's authserv-id is removed (RFC 8601 §5).
- **Trusted** sessions (authenticated users, ``relay_networks``): the message is DKIM-signed with
  the keys of its From domain, if that domain is local and has keys; forged
  ``Authentication-Results`` claiming this server are removed here too, and an authenticated
  user's message says ``auth=pass``.

Bounces to this server's SRS addresses (:mod:`mailroom.authentication.srs`) are routed back to
the address they encode (:meth:`AuthenticationPolicy.bounce_route`, which the mail server policy
asks at RCPT before its own checks of the route).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from mailroom.authentication.checks import Results, SessionChecks, from_fields
from mailroom.authentication.dmarc import aligned, author_domains, organizational_domain
from mailroom.authentication.dns import LookupFunc
from mailroom.authentication.keys import DKIMKey
from mailroom.authentication.results import pvalue, remove_claimed
from mailroom.authentication.settings import AuthenticationSettings
from mailroom.authentication.signing import sign
from mailroom.authentication.srs import SRS
from mailroom.codes import Reply
from mailroom.codes import catalogue as replies
from mailroom.header_section import header_length
from mailroom.policy.base import DISCONNECT, Decision, Greeting, Policy, SessionView
from mailroom.policy.directory import Resolution
from mailroom.protocol import Event, MailFrom, MessageComplete
from mailroom.store.envelope import Delivery

__all__ = ["AuthenticationPolicy"]

log = logging.getLogger("mailroom.authentication")


class AuthenticationPolicy:
    def __init__(
        self,
        inner: Policy,
        settings: AuthenticationSettings,
        *,
        lookup: LookupFunc,
        hostname: str,
        trusted: Callable[[SessionView], bool],
        is_local_domain: Callable[[str], bool],
        keys: Mapping[str, Sequence[DKIMKey]] | None = None,
        srs: SRS | None = None,
        sample: Callable[[], int] | None = None,
        owned_domains: Callable[[str], Collection[str] | None] | None = None,
    ) -> None:
        self.inner = inner
        self.settings = settings
        self.lookup = lookup
        self.hostname = hostname
        self.authserv_id = settings.authserv_id or hostname
        self.trusted = trusted
        self.is_local_domain = is_local_domain
        self.keys: Mapping[str, Sequence[DKIMKey]] = dict(keys or {})
        self.srs = srs
        self.sample = sample
        # The domains an authenticated user owns an address in (None: any, the operator lets
        # users send as anyone): a DKIM signature vouches for its domain, and one aligned with
        # a From the user wrote would let them pass DMARC as a domain that is not theirs.
        self.owned_domains = owned_domains

    # -- the Policy interface --------------------------------------------------------------------

    def connect(self, session: SessionView) -> Greeting:
        decision = self.inner.connect(session)
        if session.listener.role == "mx" and self.settings.any_inbound:
            checks = SessionChecks(
                self.settings,
                self.lookup,
                client_ip=session.client_ip,
                receiver=self.hostname,
                sample=self.sample,
            )
            session.authentication = checks
            if decision is None:
                checks.connected()
        return decision

    def decide(self, event: Event, session: SessionView) -> Decision:
        kind = type(event)
        decision = self.inner.decide(event, session)
        if kind is MailFrom:
            return _then(decision, lambda: self._mail_from(event, session))  # type: ignore[arg-type]
        if kind is MessageComplete:
            return _then(decision, lambda: self._end_of_message(session))
        return decision

    def deliveries(self, session: SessionView) -> list[Delivery] | None:
        found = self.inner.deliveries(session)
        if found is None or self.srs is None or self.trusted(session):
            return found
        return self._forwards_of_local_senders(session, found)

    def _forwards_of_local_senders(
        self, session: SessionView, found: list[Delivery]
    ) -> list[Delivery]:
        """A stranger's message with a sender in a local domain that an alias forwards off-site
        leaves with an SRS sender, as a stranger's sender in any other domain does: sent on as
        it came, the next server's SPF check would pass for our domain from our address (and
        DMARC with it) for a sender no one here vouched for. The queue runner rewrites other
        domains' senders as it sends; this one it would take for a local user's own mail, so
        the queue entry gets the SRS address now."""
        transaction = session.conn.transaction
        sender = str(transaction.sender) if transaction and transaction.sender else ""
        if not sender or not self.is_local_domain(sender.rpartition("@")[2]):
            return found
        assert self.srs is not None
        queued = next((d for d in found if d.kind == "queue"), None)
        if queued is None or queued.sender is not None:
            return found
        remote = {address for route in session.routes.values() for address in route.remote}
        if not remote.intersection(queued.recipients):
            return found  # queued only for local delivery (LMTP): nothing leaves
        rewritten = Delivery(
            "queue",
            queued.target,
            queued.recipients,
            delivered=queued.delivered,
            notify=queued.notify,
            sender=self.srs.forward(sender),
        )
        _note(session, f"SRS: the forwards of <{sender}> leave as <{rewritten.sender}>")
        return [rewritten if d is queued else d for d in found]

    def __getattr__(self, name: str) -> Any:
        # The mail server policy's other parts (route, may_relay, usage) stay reachable.
        return getattr(self.inner, name)

    # -- SRS bounces -----------------------------------------------------------------------------

    def bounce_route(self, address: str, session: SessionView) -> Resolution | None:
        """Where a bounce to ``address``, one of this server's SRS addresses (in a local
        domain), goes: the address it stands for. None for any other address, or one not ours
        or too old: the directory answers for it (unknown user). The mail server policy asks
        this at RCPT and checks the route as any other (rates, quota, greylisting)."""
        if self.srs is None or not SRS.is_srs(address):
            return None
        original = self.srs.reverse(address)
        if original is None:
            return None
        if self.is_local_domain(original.rpartition("@")[2]):
            # A local sender's forward (rewritten when it was taken): its user's mailbox.
            resolution: Resolution = self.directory.resolve(original)
            if not resolution.local and not resolution.remote:
                return None  # no longer anyone's: unknown user
        else:
            resolution = Resolution(remote=[original])
        resolution.bounce_of = original
        _note(session, f"SRS: {address} is a bounce address for <{original}>")
        return resolution

    # -- MAIL FROM -------------------------------------------------------------------------------

    def _checks(self, session: SessionView) -> SessionChecks | None:
        checks: SessionChecks | None = getattr(session, "authentication", None)
        if checks is None or self.trusted(session):
            return None
        return checks

    def _mail_from(self, event: MailFrom, session: SessionView) -> Decision:
        checks = self._checks(session)
        if checks is None:
            return None
        sender = str(event.sender) if event.sender is not None else ""
        helo = session.conn.hello_domain or ""
        checks.mail_from(sender, helo)
        domain = sender.rpartition("@")[2] if sender else helo
        need_iprev = self.settings.iprev == "require"
        need_spf = self.settings.enforces_spf(domain)
        # A local domain's own SPF record decides a fail, not its errors (a DNS failure of
        # our own zone is no evidence of forgery); enforced SPF decides both.
        own_fail_only = (
            not need_spf
            and bool(sender)
            and self.settings.spf != "off"
            and self.settings.spf_enforce_local_domains
            and self.is_local_domain(domain)
        )
        if not need_iprev and not need_spf and not own_fail_only:
            return None
        return self._enforce_at_mail(
            checks, session, sender, need_iprev, need_spf or own_fail_only, own_fail_only
        )

    async def _enforce_at_mail(
        self,
        checks: SessionChecks,
        session: SessionView,
        sender: str,
        need_iprev: bool,
        need_spf: bool,
        fail_only: bool = False,
    ) -> Reply | None:
        client = session.client_ip
        if need_iprev:
            iprev = await checks.iprev()
            if iprev is not None and iprev.result != "pass":
                _note(session, f"authentication: {iprev.describe()}")
                problem = iprev.reason or iprev.result
                if iprev.result == "temperror":
                    return replies.IPREV_TEMPERROR(client=client, problem=problem)
                return replies.IPREV_FAILED(client=client, problem=problem)
        if need_spf:
            spf = await checks.spf()
            refused = ("fail",) if fail_only else ("fail", "temperror", "permerror")
            if spf is not None and spf.result in refused:
                _note(session, f"authentication: {spf.describe()}")
                for line in spf.lookups:
                    _note(session, f"authentication:   spf DNS: {line}")
                address = f"<{sender}>"
                if spf.result == "fail":
                    explanation = (
                        f" ({spf.domain} explains: {spf.explanation})" if spf.explanation else ""
                    )
                    return replies.SPF_FAIL(
                        address=address, domain=spf.domain, client=client, explanation=explanation
                    )
                if spf.result == "temperror":
                    return replies.SPF_TEMPERROR(
                        address=address, domain=spf.domain, problem=spf.problem
                    )
                return replies.SPF_PERMERROR(
                    address=address, domain=spf.domain, problem=spf.problem
                )
        return None

    # -- the end of the message ------------------------------------------------------------------

    def _end_of_message(self, session: SessionView) -> Decision:
        if self.trusted(session):
            return self._outgoing(session)
        checks: SessionChecks | None = getattr(session, "authentication", None)
        if checks is None:
            return None
        return self._incoming(checks, session)

    async def _incoming(self, checks: SessionChecks, session: SessionView) -> Reply | None:
        message = await session.read_message()
        results = await checks.message(message)
        if getattr(session, "transcript", None) is not None:  # formatted only to be kept
            for line in results.lines():
                _note(session, f"authentication: {line}")
        refusal, quarantine = self.judge(results, message)
        if refusal is not None:
            return refusal
        head_length = header_length(message)
        head, removed = remove_claimed(message[:head_length], self.authserv_id)
        if removed:
            _note(
                session,
                f"authentication: removed {removed} Authentication-Results "
                f"claiming {self.authserv_id}",
            )
        deliveries = None
        if quarantine:
            deliveries = self._junk(session)
        session.amend_message(head_length, results.header(self.authserv_id) + head, deliveries)
        return None

    def judge(self, results: Results, message: bytes) -> tuple[Reply | None, bool]:
        """(a refusal or None, whether to quarantine) for the results of a message."""
        settings = self.settings
        dmarc = results.dmarc
        if settings.dmarc == "enforce" and dmarc is not None:
            if dmarc.result == "fail" and dmarc.disposition != "none":
                arc = results.arc
                trusted = settings.trusted_arc_sealers
                if arc is not None and trusted:
                    if arc.trusted_pass(trusted) is not None:
                        return None, False  # a trusted forwarder saw it pass (RFC 8617 §7.2)
                    if arc.result == "fail" and arc.claims_trusted(trusted):
                        sealer = next(s.sealer for s in arc.sets if s.sealer in trusted)
                        if dmarc.disposition == "reject":
                            return replies.ARC_VALIDATION_FAILED(
                                domain=dmarc.domain, sealer=sealer, reason=arc.reason or "fail"
                            ), False
                if dmarc.disposition == "reject":
                    return replies.DMARC_REJECTED(domain=dmarc.domain), False
                return None, True
            if dmarc.result == "temperror" and (not dmarc.record or dmarc.policy != "none"):
                return replies.DMARC_TEMPERROR(
                    domain=dmarc.domain or "the author domain", reason=dmarc.reason
                ), False
        if settings.dkim_required_domains and results.dkim is not None:
            refusal = self._dkim_required(results, message)
            if refusal is not None:
                return refusal, False
        return None, False

    def _dkim_required(self, results: Results, message: bytes) -> Reply | None:
        required = self.settings.dkim_required_domains
        signatures = results.dkim or []
        for domain in author_domains(from_fields(message)):
            if domain not in required:
                continue
            passing = [r for r in signatures if r.result == "pass"]
            if any(aligned(r.domain, domain, "r") for r in passing):
                continue
            if passing:
                signers = ", ".join(sorted({r.domain for r in passing}))
                return replies.DKIM_NO_AUTHOR_SIGNATURE(domain=domain, signers=signers)
            unacceptable = [r for r in signatures if r.unacceptable]
            if unacceptable:
                return replies.DKIM_NO_ACCEPTABLE_SIGNATURE(
                    domain=domain, reason=unacceptable[0].reason
                )
            temporary = [r for r in signatures if r.result == "temperror"]
            if temporary:
                return replies.DKIM_TEMPERROR(domain=domain, reason=temporary[0].reason)
            return replies.DKIM_NO_PASSING_SIGNATURE(domain=domain)
        return None

    def _junk(self, session: SessionView) -> list[Delivery] | None:
        deliveries = self.inner.deliveries(session) or []
        folder = self.settings.quarantine_folder
        moved = [
            replace(d, target=f"{d.target}/{folder}") if d.kind == "mailbox" else d
            for d in deliveries
        ]
        if any(d.kind == "mailbox" for d in deliveries):
            _note(session, f"authentication: DMARC quarantine: into each mailbox's {folder}")
        else:
            _note(
                session,
                "authentication: DMARC quarantine: no local mailbox to put it in "
                "(queued as it is, with its Authentication-Results)",
            )
        return moved

    # -- signing ---------------------------------------------------------------------------------

    def _outgoing(self, session: SessionView) -> Decision:
        return self._sign(session)

    async def _sign(self, session: SessionView) -> None:
        message = await session.read_message()
        head_length = header_length(message)
        head, removed = remove_claimed(message[:head_length], self.authserv_id)
        added = b""
        user = session.conn.authenticated
        if user is not None:
            added = _auth_results(self.authserv_id, user)
        keys = self._signing_keys(message) if self.settings.sign else []
        if keys and user is not None and not self._may_sign_for(user, keys[0].domain, message):
            _note(session, f"DKIM: not signed: {user} owns no address in {keys[0].domain}")
            keys = []
        if keys:
            body = added + head + message[head_length:]
            signature = await asyncio.to_thread(sign, body, keys)
            added = signature + added
            _note(
                session,
                "DKIM: signed as "
                + ", ".join(f"{k.domain} ({k.selector}, {k.algorithm})" for k in keys),
            )
        if added or removed:
            session.amend_message(head_length, added + head)
        return None

    def _signing_keys(self, message: bytes) -> list[DKIMKey]:
        """The keys of the From domain, or else of its organizational domain if that is
        local (its signature aligns, relaxed); none for several or no author domains."""
        domains = author_domains(from_fields(message))
        if len(domains) != 1:
            return []
        keys = self.keys.get(domains[0])
        if not keys:
            keys = self.keys.get(organizational_domain(domains[0]))
        return list(keys or ())

    def _may_sign_for(self, user: str, key_domain: str, message: bytes) -> bool:
        """Whether ``user``'s message may carry the signature of ``key_domain`` (its From
        domain, or that domain's organizational domain): the user owns an address in one of
        them."""
        owned = self.owned_domains(user) if self.owned_domains is not None else None
        if owned is None:
            return True
        authors = author_domains(from_fields(message))
        return key_domain in owned or any(domain in owned for domain in authors)

    async def sign_own(self, message: bytes) -> bytes:
        """A message this server makes (a bounce, a delay warning): signed like its users'."""
        keys = self._signing_keys(message) if self.settings.sign else []
        if not keys:
            return message
        return await asyncio.to_thread(sign, message, keys) + message


def _auth_results(authserv_id: str, user: str) -> bytes:
    return (
        f"Authentication-Results: {authserv_id};\r\n\tauth=pass smtp.auth={pvalue(user)}\r\n"
    ).encode("utf-8", "replace")


def _note(session: SessionView, text: str) -> None:
    note = getattr(session, "note", None)
    if note is not None:
        note(text)


def _then(decision: Decision, after: Callable[[], Decision]) -> Decision:
    """The inner policy's decision, and when it lets the command through, ours."""
    if decision is None:
        return after()
    if isinstance(decision, Reply) or decision is DISCONNECT:
        return decision
    assert inspect.isawaitable(decision)
    return _then_later(decision, after)


async def _then_later(pending: Any, after: Callable[[], Decision]) -> Reply | Any:
    decision = await pending
    if decision is not None:
        return decision
    ours = after()
    if ours is None or isinstance(ours, Reply) or ours is DISCONNECT:
        return ours
    return await ours  # type: ignore[misc]
