"""Mailpit's Chaos and Send endpoints, so Mailpit clients that use them work unchanged.

- ``GET|PUT /api/v1/chaos``: Mailpit's three triggers (``Sender``, ``Recipient``,
  ``Authentication``, each an ``ErrorCode`` and a ``Probability`` in percent) are fault rules
  at MAIL, RCPT and AUTH (:mod:`mailroom.policy.faults`), marked as theirs. A PUT sets the
  triggers it names and resets the others, as in Mailpit; an ErrorCode left out or 0 is
  Mailpit's default (535 for Authentication, 451 for the others). The reply carries the class's
  "other or undefined" enhanced code (X.0.0, RFC 3463): a bare code says no more than that.
- ``POST /api/v1/send``: a message from JSON (From, To, Cc, Bcc, ReplyTo, Subject, Text, HTML,
  Attachments, Headers, Tags), captured as if it had come over SMTP. Only in the mail catcher: a
  mail server sends with SMTP submission, not over its web API. Tags travel as an ``X-Tags``
  field, as in Mailpit, which the store reads as it would from any message. The message gets a
  "session" of the listener ``api`` that says it came from the web API and from where.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import mimetypes
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from aiohttp import web

from mailroom.codes import Reply, ReplyError
from mailroom.policy.faults import FaultRule
from mailroom.protocol.syntax import AddressError, parse_mailbox
from mailroom.store.tags import clean_tags
from mailroom.web.events import event_stream
from mailroom.web.http import error, json_response, request_json, web_context
from mailroom.web.sessions import API_LISTENER

__all__ = ["build_message", "routes"]

# Mailpit's trigger names and the stages of the rules that stand for them.
TRIGGERS = {"Authentication": "auth", "Recipient": "rcpt", "Sender": "mail"}
ORIGIN = "chaos "
# Mailpit's defaults: what GET shows for a trigger at 0 %, and the code of a trigger whose
# ErrorCode is left out or 0
DEFAULT_CODES = {"Authentication": 535, "Recipient": 451, "Sender": 451}
FAULT_TEXT = "Fault injected (chaos)"


def _triggers(rules: list[FaultRule]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {
        name: {"ErrorCode": DEFAULT_CODES[name], "Probability": 0} for name in TRIGGERS
    }
    for rule in rules:
        name = rule.origin.removeprefix(ORIGIN)
        if rule.origin.startswith(ORIGIN) and name in found and rule.reply is not None:
            percent = round(rule.probability * 100, 6)
            found[name] = {
                "ErrorCode": rule.reply.code,
                "Probability": int(percent) if percent == int(percent) else percent,
            }
    return found


def _trigger_rule(name: str, trigger: object) -> FaultRule | None:
    """The rule for one trigger of a PUT; None for a trigger at 0 %. ValueError if invalid."""
    if not isinstance(trigger, dict):
        raise ValueError(f"{name} must be an object with ErrorCode and Probability")
    code, probability = trigger.get("ErrorCode", 0), trigger.get("Probability", 0)
    if code == 0 and not isinstance(code, bool):
        code = DEFAULT_CODES[name]
    if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
        raise ValueError(f"{name}: ErrorCode must be a reply code from 400 to 599")
    number = isinstance(probability, int | float) and not isinstance(probability, bool)
    if not number or not 0 <= probability <= 100:
        raise ValueError(f"{name}: Probability must be a number from 0 to 100")
    if probability == 0:
        return None
    try:
        reply = Reply(code, f"{code // 100}.0.0", FAULT_TEXT)
    except ReplyError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return FaultRule(
        stage=TRIGGERS[name],
        action="reply",
        reply=reply,
        probability=probability / 100,
        origin=ORIGIN + name,
    )


async def get_chaos(request: web.Request) -> web.Response:
    return json_response(_triggers(web_context(request).faults.rules))


async def set_chaos(request: web.Request) -> web.Response:
    ctx = web_context(request)
    body = await request_json(request)
    unknown = sorted(set(body) - set(TRIGGERS))
    if unknown:
        return error(400, f"unknown trigger {unknown[0]!r}; the triggers are {', '.join(TRIGGERS)}")
    try:
        rules = [_trigger_rule(name, body[name]) for name in TRIGGERS if name in body]
    except ValueError as exc:
        return error(400, str(exc))
    faults = ctx.faults
    faults.replace(lambda rule: rule.origin.startswith(ORIGIN), [r for r in rules if r is not None])
    await event_stream(request).faults()
    return json_response(_triggers(faults.rules))


# -- send ------------------------------------------------------------------------------------

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 §3.6.8: printable ASCII but ":"
# Made by this module from the request's other fields; Headers may not set them twice.
_OWN_HEADERS = frozenset(
    {"from", "to", "cc", "reply-to", "subject", "date", "message-id", "mime-version"}
    | {"content-type", "content-transfer-encoding"}
)


def _address(value: object, field: str) -> Address:
    if not isinstance(value, dict) or not isinstance(value.get("Email"), str):
        raise ValueError(f"{field}: each address is an object with Email (and Name)")
    name = value.get("Name") or ""
    text = value["Email"].strip()
    if not isinstance(name, str):
        raise ValueError(f"{field}: Name must be text")
    return _parse_address(text, field, name)


def _parse_address(text: str, field: str, name: str = "") -> Address:
    try:
        mailbox = parse_mailbox(text, utf8=True)  # the grammar SMTP paths are read with
    except AddressError:
        raise ValueError(f"{field}: {text!r} is not an email address") from None
    if any(c in name for c in "\r\n"):
        raise ValueError(f"{field}: a name holds no line breaks")
    return Address(display_name=name, addr_spec=str(mailbox))


def _addresses(body: dict[str, Any], field: str) -> list[Address]:
    values = body.get(field) or []
    if not isinstance(values, list):
        raise ValueError(f"{field} must be a list of addresses")
    return [_address(value, field) for value in values]


def build_message(body: dict[str, Any], hostname: str) -> tuple[str, list[str], bytes]:
    """Envelope sender, envelope recipients and the message of a Mailpit send request.
    ValueError (its text for the client) when the request cannot make one."""
    sender = _address(body.get("From"), "From")
    to, cc, reply_to = (_addresses(body, f) for f in ("To", "Cc", "ReplyTo"))
    bcc = body.get("Bcc") or []
    if not isinstance(bcc, list) or not all(isinstance(b, str) for b in bcc):
        raise ValueError("Bcc must be a list of email addresses")
    hidden = [_parse_address(b.strip(), "Bcc") for b in bcc]
    recipients = [a.addr_spec for a in (*to, *cc, *hidden)]
    if not recipients:
        raise ValueError("a message needs at least one recipient in To, Cc or Bcc")
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    if to:
        message["To"] = to
    if cc:
        message["Cc"] = cc
    if reply_to:
        message["Reply-To"] = reply_to
    subject = body.get("Subject") or ""
    text, html = body.get("Text") or "", body.get("HTML") or ""
    if not all(isinstance(v, str) for v in (subject, text, html)):
        raise ValueError("Subject, Text and HTML are text")
    message["Subject"] = subject.replace("\r", " ").replace("\n", " ")
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain=hostname)
    headers = body.get("Headers") or {}
    if not isinstance(headers, dict):
        raise ValueError("Headers is an object of names and values")
    tags = body.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("Tags must be a list of tag names")
    own = _OWN_HEADERS
    if clean_tags(tags):
        message["X-Tags"] = ", ".join(clean_tags(tags))
        own = own | {"x-tags"}
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name) or name.lower() in own:
            raise ValueError(f"Headers: {name!r} cannot be set here")
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise ValueError(f"Headers: {name}'s value is one line of text")
        message[name] = value
    if html and text:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
    elif html:
        message.set_content(html, subtype="html")
    else:
        message.set_content(text)
    for attachment in body.get("Attachments") or []:
        _attach(message, attachment)
    return sender.addr_spec, recipients, message.as_bytes()


def _attach(message: EmailMessage, attachment: object) -> None:
    if not isinstance(attachment, dict) or not isinstance(attachment.get("Filename"), str):
        raise ValueError("Attachments: each is an object with Filename and Content (base64)")
    filename = attachment["Filename"]
    try:
        data = base64.b64decode(str(attachment.get("Content", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"Attachments: {filename}: Content is not base64") from None
    kind = attachment.get("ContentType") or mimetypes.guess_type(filename)[0]
    maintype, _, subtype = str(kind or "application/octet-stream").partition("/")
    if not maintype or not subtype:
        raise ValueError(f"Attachments: {filename}: ContentType is TYPE/SUBTYPE")
    cid = attachment.get("ContentID")
    if cid:  # an inline part, for the HTML to show as cid:...
        message.add_attachment(
            data, maintype, subtype, filename=filename, cid=f"<{cid}>", disposition="inline"
        )
    else:
        message.add_attachment(data, maintype, subtype, filename=filename)


async def send(request: web.Request) -> web.Response:
    ctx = web_context(request)
    if ctx.inject is None:
        return error(400, "the mail server sends with SMTP submission, not over its web API")
    # A message with its attachments: as much as the application takes.
    body = await request_json(request, request.client_max_size)
    try:
        sender, recipients, message = build_message(body, ctx.settings.hostname)
    except ValueError as exc:
        return error(400, str(exc))
    log = ctx.transcripts
    transcript = None
    if log.enabled:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        host, port = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        transcript = log.begin(host, port, API_LISTENER)
        transcript.note(
            f"POST /api/v1/send from {host or 'an unknown client'}: a message from JSON, "
            f"MAIL FROM:<{sender}>, {len(recipients)} recipient(s)"
        )
    try:
        queue_id = await ctx.inject(sender, recipients, message)
    except BaseException:
        if transcript is not None:
            transcript.note("not stored: the store failed")
            log.end(transcript)
        raise
    if transcript is not None:
        transcript.note(f"stored as {queue_id}")
        log.message(transcript, queue_id)
        log.end(transcript)
    ctx.hub.publish("message", {"id": queue_id, "session": transcript.id if transcript else None})
    return json_response({"ID": queue_id})


def routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/api/v1/chaos", get_chaos)
    add("PUT", "/api/v1/chaos", set_chaos)
    add("POST", "/api/v1/send", send)
