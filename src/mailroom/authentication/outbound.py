"""What the queue runner does to a message before it leaves for another server: the DKIM
signatures made again when the queue had to convert the message, and for a forward (an alias of
a local domain sent it on to a remote address) SRS and an ARC seal.

A forward is recognized by its sender: not null, and not in a local domain (mail this server's
own users send carries their addresses; mail from elsewhere is relayed only because an alias
forwards it), or an SRS address of ours (a stranger's message with a local sender, rewritten
when it was taken: ``mailroom.policy.authentication``). Its envelope sender is rewritten with
SRS, so the next server's SPF check asks this server's domain; and if it came through this
server's checks (it carries this server's ``Authentication-Results``), it gets an ARC set sealed
with the SRS domain's RSA key, so the next server can see what this one saw.

A message the queue had to convert for its next hop (8-bit to 7-bit, RFC 6152: see
``delivery/downgrade.py``) no longer matches the DKIM signatures this server made when it took
the message (their body hash covers the octets as they were): :meth:`Outbound.resign` makes
them again over the converted octets, and the ARC seal is made after that, so what leaves
verifies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from mailroom.authentication.dkim import SignatureError, parse_signature
from mailroom.authentication.keys import DKIMKey
from mailroom.authentication.results import authserv_id_of
from mailroom.authentication.signing import arc_seal, sign
from mailroom.authentication.srs import SRS
from mailroom.header_section import header_fields, header_length

__all__ = ["Outbound"]

log = logging.getLogger("mailroom.authentication")


class Outbound:
    def __init__(
        self,
        *,
        authserv_id: str,
        is_local_domain: Callable[[str], bool],
        srs: SRS | None = None,
        keys: Mapping[str, Sequence[DKIMKey]] | None = None,
        seal: bool = True,
    ) -> None:
        self.authserv_id = authserv_id.lower()
        self.is_local_domain = is_local_domain
        self.srs = srs
        self.keys = {domain: tuple(found) for domain, found in (keys or {}).items()}
        self.seal_key: DKIMKey | None = None
        if seal and srs is not None:
            rsa = [k for k in (keys or {}).get(srs.domain, ()) if k.algorithm == "rsa"]
            self.seal_key = rsa[0] if rsa else None

    def is_forward(self, sender: str) -> bool:
        domain = sender.rpartition("@")[2] if "@" in sender else ""
        return bool(domain) and (not self.is_local_domain(domain) or self._rewritten(sender))

    def _rewritten(self, sender: str) -> bool:
        """An SRS address of ours: a forward whose sender was rewritten when it was taken (a
        stranger's sender in a local domain: mailroom.policy.authentication)."""
        return self.srs is not None and self.srs.reverse(sender) is not None

    def sender(self, sender: str) -> str:
        """The envelope sender to use: SRS-rewritten for a forward (once)."""
        if self.srs is None or self._rewritten(sender) or not self.is_forward(sender):
            return sender
        return self.srs.forward(sender)

    def original(self, sender: str) -> str:
        """The sender for a local delivery (LMTP): an SRS address of ours made when the message
        was taken goes back to the address it stands for."""
        if self.srs is None:
            return sender
        return self.srs.reverse(sender) or sender

    def _checked_here(self, message: bytes) -> bool:
        head = message[: header_length(message)]
        return any(authserv_id_of(field) == self.authserv_id for field in header_fields(head))

    def _own_signatures(self, head: bytes) -> tuple[bytes, list[DKIMKey]]:
        """The header section without the DKIM signatures made with this server's keys, and
        those keys (in the order the signatures came)."""
        kept: list[bytes] = []
        used: list[DKIMKey] = []
        for index, field in enumerate(header_fields(head)):
            name, colon, value = field.partition(b":")
            if colon and name.strip().lower() == b"dkim-signature":
                try:
                    signature = parse_signature(index, value)
                except SignatureError:
                    signature = None
                if signature is not None:
                    key = next(
                        (
                            k
                            for k in self.keys.get(signature.domain, ())
                            if k.selector.lower() == signature.selector
                        ),
                        None,
                    )
                    if key is not None:
                        used.append(key)
                        continue
            kept.append(field)
        return b"".join(kept), used

    async def resign(self, message: bytes) -> bytes:
        """``message`` after the queue converted it for its next hop: the DKIM signatures made
        with this server's keys are made again over the new octets (RFC 6376 §5.3: a signer
        signs what travels); other signatures are left as they are."""
        if not self.keys:
            return message
        length = header_length(message)
        head, keys = self._own_signatures(message[:length])
        if not keys:
            return message
        unsigned = head + message[length:]
        try:
            signatures = await asyncio.to_thread(sign, unsigned, keys)
        except Exception:
            # Keys that signed at receipt sign again; should one not, the message goes with the
            # signatures the conversion broke, and the log says so.
            log.warning("DKIM re-signing after conversion failed; sending as is", exc_info=True)
            return message
        return signatures + unsigned

    async def message(self, message: bytes, sender: str) -> bytes:
        """The message to send: with an ARC set on top for a forward this server checked."""
        if self.seal_key is None or not self.is_forward(sender) or not self._checked_here(message):
            return message
        try:
            sealed = await asyncio.to_thread(arc_seal, message, self.seal_key, self.authserv_id)
        except Exception:
            # Sealing is a courtesy to the next hop: a message dkimpy cannot seal goes as is.
            log.warning("ARC sealing failed; sending without an ARC set", exc_info=True)
            return message
        return sealed + message
