"""What the queue runner does to a message before it leaves for another server, when the
message is a forward: an alias of a local domain sent it on to a remote address.

A forward is recognized by its sender: not null, and not in a local domain (mail this server's
own users send carries their addresses; mail from elsewhere is relayed only because an alias
forwards it). Its envelope sender is rewritten with SRS, so the next server's SPF check asks
this server's domain; and if it came through this server's checks (it carries this server's
``Authentication-Results``), it gets an ARC set sealed with the SRS domain's RSA key, so the
next server can see what this one saw.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from mailroom.authentication.keys import DKIMKey
from mailroom.authentication.results import authserv_id_of, header_fields, split_head
from mailroom.authentication.signing import arc_seal
from mailroom.authentication.srs import SRS

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
        self.seal_key: DKIMKey | None = None
        if seal and srs is not None:
            rsa = [k for k in (keys or {}).get(srs.domain, ()) if k.algorithm == "rsa"]
            self.seal_key = rsa[0] if rsa else None

    def is_forward(self, sender: str) -> bool:
        domain = sender.rpartition("@")[2] if "@" in sender else ""
        return bool(domain) and not self.is_local_domain(domain)

    def sender(self, sender: str) -> str:
        """The envelope sender to use: SRS-rewritten for a forward."""
        if self.srs is None or not self.is_forward(sender):
            return sender
        return self.srs.forward(sender)

    def _checked_here(self, message: bytes) -> bool:
        head = message[: split_head(message)]
        return any(authserv_id_of(field) == self.authserv_id for field in header_fields(head))

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
