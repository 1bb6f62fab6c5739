"""Sending mail: an asyncio SMTP client (:class:`Client`, :func:`send_message`) and a thin
synchronous wrapper (:class:`SyncClient`, :func:`send_message_sync`), both driven by the
sans-IO :class:`mailroom.protocol.client.ClientConnection`.

Failures raise :class:`SendError` subclasses; those the server answered carry the parsed
:class:`~mailroom.codes.Reply` and its :class:`~mailroom.codes.Classification`. A message
some recipients got returns a :class:`TransactionResult` with a reply for each recipient.
"""

from mailroom.client.connection import DEFAULT_TIMEOUT, Client, TLSMode, send_message
from mailroom.client.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    GreetingRefused,
    HelloRefused,
    MessageRefused,
    ProtocolError,
    RefusedBeforeSending,
    SendError,
    ServiceClosing,
    SMTPReplyError,
    StartTLSFailed,
    TLSFailed,
)
from mailroom.client.sync import SyncClient, send_message_sync
from mailroom.protocol.client import MailOptions, Recipient, RecipientResult, TransactionResult

__all__ = [
    "DEFAULT_TIMEOUT",
    "AuthenticationFailed",
    "Client",
    "ConnectionFailed",
    "GreetingRefused",
    "HelloRefused",
    "MailOptions",
    "MessageRefused",
    "ProtocolError",
    "Recipient",
    "RecipientResult",
    "RefusedBeforeSending",
    "SMTPReplyError",
    "SendError",
    "ServiceClosing",
    "StartTLSFailed",
    "SyncClient",
    "TLSFailed",
    "TLSMode",
    "TransactionResult",
    "send_message",
    "send_message_sync",
]
