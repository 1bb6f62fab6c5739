"""The OpenAPI 3.1 document of the HTTP API, served at ``/api/v1/openapi.json`` (and at
``/api/v1/swagger.json``, where Mailpit serves its own) and shown by ``/docs``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mailroom import __version__
from mailroom.web import openapi_checks
from mailroom.web.chaos import TRIGGERS
from mailroom.web.http import json_response

__all__ = ["document", "routes"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str = "OK", media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


_ERROR = _json(_ref("Error"), "The request cannot be served; Error says why")
_NOT_FOUND = _json(_ref("Error"), "No such message (or part, session, rule)")
_ID = {
    "name": "ID",
    "in": "path",
    "required": True,
    "description": "Message ID, a unique prefix of one, or `latest`",
    "schema": {"type": "string"},
}
_PAGING = [
    {"name": "start", "in": "query", "description": "Offset", "schema": {"type": "integer"}},
    {
        "name": "limit",
        "in": "query",
        "description": "At most this many (default 50)",
        "schema": {"type": "integer"},
    },
]
_SEARCH = {
    "name": "query",
    "in": "query",
    "required": True,
    "description": "from:, to:, cc:, bcc:, subject:, message-id:, addressed:, before:, after:, "
    "larger:, smaller:, is:read, is:unread, has:attachment, has:inline, free text; "
    '-term negates; "quoted phrases"',
    "schema": {"type": "string"},
}
_TZ = {
    "name": "tz",
    "in": "query",
    "description": "Time zone for before: and after: dates (e.g. Europe/Berlin)",
    "schema": {"type": "string"},
}
_IDS_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"IDs": {"type": "array", "items": {"type": "string"}}},
            }
        }
    }
}


def _address() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"Name": {"type": "string"}, "Address": {"type": "string"}},
    }


def _email() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["Email"],
        "properties": {"Email": {"type": "string"}, "Name": {"type": "string"}},
    }


def _bounce_record() -> dict[str, Any]:
    """mailroom.bounces.BounceRecord: every field a string."""
    from mailroom.bounces import FIELDS

    described = {
        "kind": "bounce, delay, success, autoreply or feedback",
        "reason": "Sisimai's reason name (userunknown, mailboxfull, …)",
        "reason_why": "the words or codes that decided the reason",
        "bounce_type": "hard, soft, or empty for no failure",
        "command": "the SMTP command the failure answered",
        "timestamp": "ISO 8601, UTC",
    }
    return {
        "type": "object",
        "properties": {
            name: {
                "type": "string",
                **({"description": described[name]} if name in described else {}),
            }
            for name in FIELDS
        },
    }


def _schemas() -> dict[str, Any]:
    addresses = {"type": "array", "items": _ref("Address")}
    return {
        "Error": {"type": "object", "properties": {"Error": {"type": "string"}}},
        "BounceRecord": _bounce_record(),
        "Address": _address(),
        "Attachment": {
            "type": "object",
            "properties": {
                "PartID": {"type": "string"},
                "FileName": {"type": "string"},
                "ContentType": {"type": "string"},
                "ContentID": {"type": "string"},
                "Size": {"type": "integer"},
                "Checksums": {
                    "type": "object",
                    "properties": {
                        "MD5": {"type": "string"},
                        "SHA1": {"type": "string"},
                        "SHA256": {"type": "string"},
                    },
                },
            },
        },
        "MessageSummary": {
            "type": "object",
            "properties": {
                "ID": {"type": "string", "description": "mailroom's queue id"},
                "MessageID": {"type": "string"},
                "Read": {"type": "boolean"},
                "From": {
                    **_ref("Address"),
                    "description": "Never null: no From field is an empty address, one that "
                    "names no address its text as the Name, as in Mailpit",
                },
                "To": addresses,
                "Cc": addresses,
                "Bcc": {**addresses, "description": "Envelope recipients not in To or Cc"},
                "ReplyTo": addresses,
                "Subject": {"type": "string"},
                "Created": {"type": "string", "format": "date-time"},
                "Username": {"type": "string"},
                "Tags": {"type": "array", "items": {"type": "string"}},
                "Size": {"type": "integer"},
                "Attachments": {"type": "integer"},
                "Snippet": {"type": "string"},
            },
        },
        "MessagesSummary": {
            "type": "object",
            "properties": {
                "total": {"type": "integer", "description": "Messages stored"},
                "unread": {"type": "integer", "description": "Unread messages stored"},
                "count": {"type": "integer", "description": "Messages on this page"},
                "messages_count": {"type": "integer", "description": "Messages matching"},
                "messages_unread": {"type": "integer", "description": "Unread matching"},
                "start": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "messages": {"type": "array", "items": _ref("MessageSummary")},
            },
        },
        "Message": {
            "type": "object",
            "properties": {
                "ID": {"type": "string"},
                "MessageID": {"type": "string"},
                "From": {
                    **_ref("Address"),
                    "description": "Never null: no From field is an empty address, one that "
                    "names no address its text as the Name, as in Mailpit",
                },
                "To": addresses,
                "Cc": addresses,
                "Bcc": addresses,
                "ReplyTo": addresses,
                "ReturnPath": {"type": "string"},
                "Subject": {"type": "string"},
                "ListUnsubscribe": {"type": "object"},
                "Date": {"type": "string", "format": "date-time"},
                "Tags": {"type": "array", "items": {"type": "string"}},
                "Username": {"type": "string"},
                "Text": {"type": "string"},
                "HTML": {"type": "string"},
                "Size": {"type": "integer"},
                "Inline": {"type": "array", "items": _ref("Attachment")},
                "Attachments": {"type": "array", "items": _ref("Attachment")},
                "Mailroom": {
                    "type": "object",
                    "description": "The envelope, the client and the SMTP session",
                    "properties": {
                        "Received": {"type": "string", "format": "date-time"},
                        "Sender": {"type": "string"},
                        "Recipients": {"type": "array", "items": {"type": "string"}},
                        "ClientIP": {"type": "string"},
                        "Helo": {"type": "string"},
                        "TLS": {"type": "boolean"},
                        "AuthUser": {"type": ["string", "null"]},
                        "Mailbox": {"type": "string"},
                        "Session": {"type": ["string", "null"]},
                    },
                },
            },
        },
        "SessionSummary": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "client": {"type": "string"},
                "port": {"type": "integer"},
                "listener": {"type": "string"},
                "started": {"type": "number"},
                "ended": {"type": ["number", "null"]},
                "messages": {"type": "array", "items": {"type": "string"}},
                "tls": {"type": "boolean"},
                "auth_user": {"type": ["string", "null"]},
                "helo": {"type": ["string", "null"]},
                "commands": {"type": "integer"},
                "last_reply": {"type": ["string", "null"]},
            },
        },
        "Transcript": {
            "allOf": [
                _ref("SessionSummary"),
                {
                    "type": "object",
                    "properties": {
                        "truncated": {"type": "boolean"},
                        "entries": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "time": {"type": "number"},
                                    "from": {"enum": ["client", "server", "info"]},
                                    "text": {"type": "string"},
                                    "explanation": {
                                        "oneOf": [_ref("Explanation"), {"type": "null"}],
                                        "description": "Server replies only",
                                    },
                                },
                            },
                        },
                    },
                },
            ]
        },
        "FaultRule": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "rule": {"type": "string"},
                "stage": {"type": "string"},
                "match": {"type": ["string", "null"]},
                "action": {"enum": ["reply", "delay", "disconnect", "close"]},
                "reply": {"type": ["string", "null"]},
                "delay": {"type": "number"},
                "probability": {"type": "number"},
                "every": {"type": "integer"},
                "times": {"type": "integer"},
                "fired": {"type": "integer"},
                "origin": {
                    "type": ["string", "null"],
                    "description": 'e.g. "chaos Sender": made by PUT /api/v1/chaos',
                },
            },
        },
        "ChaosTriggers": {
            "type": "object",
            "properties": {
                name: {
                    "type": "object",
                    "properties": {
                        "ErrorCode": {"type": "integer", "minimum": 400, "maximum": 599},
                        "Probability": {"type": "number", "minimum": 0, "maximum": 100},
                    },
                }
                for name in TRIGGERS
            },
        },
        "SendRequest": {
            "type": "object",
            "required": ["From"],
            "properties": {
                "From": _email(),
                "To": {"type": "array", "items": _email()},
                "Cc": {"type": "array", "items": _email()},
                "Bcc": {"type": "array", "items": {"type": "string"}},
                "ReplyTo": {"type": "array", "items": _email()},
                "Subject": {"type": "string"},
                "Text": {"type": "string"},
                "HTML": {"type": "string"},
                "Headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "Attachments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["Content", "Filename"],
                        "properties": {
                            "Content": {"type": "string", "description": "base64"},
                            "Filename": {"type": "string"},
                            "ContentType": {"type": "string"},
                            "ContentID": {"type": "string", "description": "inline if set"},
                        },
                    },
                },
                "Tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "set as an X-Tags field",
                },
            },
        },
        "Explanation": {
            "type": "object",
            "description": "What a reply code, enhanced status code or reply means",
            "properties": {
                "input": {"type": "string"},
                "code": {"type": "integer"},
                "basic": {"type": "object"},
                "enhanced": {"type": "object"},
                "text": {"type": "array", "items": {"type": "string"}},
                "sent_by_mailroom": {"type": "array", "items": {"type": "string"}},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "action": {"type": "string"},
                "advice": {"type": "string"},
                "classification": {"type": "object"},
            },
        },
    }


def _op(summary: str, tag: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": [tag], "responses": responses, **more}


def document() -> dict[str, Any]:
    mailpit, own = "Mailpit-compatible", "mailroom"
    paths: dict[str, Any] = {
        "/api/v1/messages": {
            "get": _op(
                "List messages, newest first",
                mailpit,
                {"200": _json(_ref("MessagesSummary"))},
                parameters=_PAGING,
            ),
            "put": _op(
                "Mark messages read or unread (IDs, a Search, or all)",
                mailpit,
                {"200": _text(), "400": _ERROR},
                requestBody={
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "IDs": {"type": "array", "items": {"type": "string"}},
                                    "Read": {"type": "boolean"},
                                    "Search": {"type": "string"},
                                },
                            }
                        }
                    }
                },
            ),
            "delete": _op(
                "Delete messages (IDs, or all when none are given): file and index entry",
                mailpit,
                {"200": _text(), "400": _ERROR},
                requestBody=_IDS_BODY,
            ),
        },
        "/api/v1/search": {
            "get": _op(
                "Search messages",
                mailpit,
                {"200": _json(_ref("MessagesSummary")), "400": _ERROR},
                parameters=[_SEARCH, _TZ, *_PAGING],
            ),
            "delete": _op(
                "Delete the messages a search finds",
                mailpit,
                {"200": _text(), "400": _ERROR},
                parameters=[_SEARCH, _TZ],
            ),
        },
        "/api/v1/message/{ID}": {
            "get": _op(
                "One message: headers, text, HTML, attachments (marks it read)",
                mailpit,
                {"200": _json(_ref("Message")), "404": _NOT_FOUND},
                parameters=[_ID],
            )
        },
        "/api/v1/message/{ID}/headers": {
            "get": _op(
                "Every header field of a message, values in order",
                mailpit,
                {
                    "200": _json(
                        {
                            "type": "object",
                            "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        }
                    ),
                    "404": _NOT_FOUND,
                },
                parameters=[_ID],
            )
        },
        "/api/v1/message/{ID}/raw": {
            "get": _op(
                "The message as stored (add ?dl=1 to download it)",
                mailpit,
                {"200": _text(), "404": _NOT_FOUND},
                parameters=[_ID],
            )
        },
        "/api/v1/message/{ID}/part/{PartID}": {
            "get": _op(
                "One MIME part, decoded (an attachment or inline image)",
                mailpit,
                {"200": _text(media="application/octet-stream"), "404": _NOT_FOUND},
                parameters=[
                    _ID,
                    {
                        "name": "PartID",
                        "in": "path",
                        "required": True,
                        "description": "As the message's Attachments and Inline list it "
                        "(IMAP numbering: 2, 1.2)",
                        "schema": {"type": "string"},
                    },
                ],
            )
        },
        "/api/v1/message/{ID}/release": {
            "post": _op(
                "Send a captured message on to an SMTP server",
                mailpit,
                {
                    "200": _text("ok (JSON with the replies when the request accepts JSON)"),
                    "400": _ERROR,
                    "404": _NOT_FOUND,
                    "502": _json(_ref("Error"), "The SMTP server refused it or was unreachable"),
                },
                parameters=[_ID],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["To"],
                                "properties": {
                                    "To": {"type": "array", "items": {"type": "string"}},
                                    "From": {
                                        "type": "string",
                                        "description": "Envelope sender (default: the original)",
                                    },
                                    "Server": {
                                        "type": "string",
                                        "description": "HOST:PORT (default: release_smtp)",
                                    },
                                },
                            }
                        }
                    },
                },
            )
        },
        "/api/v1/message/{ID}/session": {
            "get": _op(
                "The SMTP session that delivered a message, every reply explained",
                own,
                {"200": _json(_ref("Transcript")), "404": _NOT_FOUND},
                parameters=[_ID],
            )
        },
        "/api/v1/message/{ID}/bounces": {
            "get": _op(
                "The message read as a bounce: one record per failed recipient, with the "
                "reason and its evidence (none when the message is no report)",
                own,
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "ID": {"type": "string"},
                                "Kinds": {"type": "array", "items": {"type": "string"}},
                                "Records": {"type": "array", "items": _ref("BounceRecord")},
                            },
                        }
                    ),
                    "404": _NOT_FOUND,
                },
                parameters=[_ID],
            )
        },
        "/view/latest": {
            "get": _op(
                "Redirect (302) to the newest message in the UI, of those the query finds if "
                "one is given; to the list when there is none",
                mailpit,
                {"302": {"description": "To /#/message/{ID}, or /"}, "400": _ERROR},
                parameters=[{**_SEARCH, "required": False}, _TZ],
            )
        },
        "/view/{ID}.html": {
            "get": _op(
                "The HTML body, inline images embedded, under a policy that allows no "
                "scripts and no network",
                mailpit,
                {"200": _text(media="text/html"), "404": _NOT_FOUND},
                parameters=[_ID],
            )
        },
        "/view/{ID}.txt": {
            "get": _op(
                "The text body", mailpit, {"200": _text(), "404": _NOT_FOUND}, parameters=[_ID]
            )
        },
        "/api/v1/info": {
            "get": _op(
                "Version, message counts and runtime statistics",
                mailpit,
                {"200": _json({"type": "object"})},
            )
        },
        "/api/v1/webui": {
            "get": _op("Settings the UI shows", mailpit, {"200": _json({"type": "object"})})
        },
        "/api/v1/sessions": {
            "get": _op(
                "SMTP sessions, newest first (refused ones too)",
                own,
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "total": {"type": "integer"},
                                "start": {"type": "integer"},
                                "count": {"type": "integer"},
                                "sessions": {"type": "array", "items": _ref("SessionSummary")},
                            },
                        }
                    )
                },
                parameters=[
                    *_PAGING,
                    *(
                        {
                            "name": name,
                            "in": "query",
                            "description": description,
                            "schema": {"type": "string"},
                        }
                        for name, description in (
                            ("refused", "1: only sessions that stored no message"),
                            ("failed", "1: only sessions that got a 4xx or 5xx reply"),
                            ("client", "text in the client's address"),
                            ("sender", "text in a MAIL FROM address"),
                            ("recipient", "text in a RCPT TO address"),
                        )
                    ),
                ],
            )
        },
        "/api/v1/session/{SessionID}": {
            "get": _op(
                "One session's transcript, every reply explained",
                own,
                {"200": _json(_ref("Transcript")), "404": _NOT_FOUND},
                parameters=[
                    {
                        "name": "SessionID",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            )
        },
        "/api/v1/chaos": {
            "get": _op(
                "Mailpit's Chaos triggers (fault rules at MAIL, RCPT and AUTH)",
                mailpit,
                {"200": _json(_ref("ChaosTriggers"))},
            ),
            "put": _op(
                "Set the Chaos triggers named; the others are reset to 0 %",
                mailpit,
                {"200": _json(_ref("ChaosTriggers")), "400": _ERROR},
                requestBody={"content": {"application/json": {"schema": _ref("ChaosTriggers")}}},
            ),
        },
        "/api/v1/send": {
            "post": _op(
                "Capture a message made from JSON, as if it had come over SMTP (catcher only)",
                mailpit,
                {
                    "200": _json({"type": "object", "properties": {"ID": {"type": "string"}}}),
                    "400": _ERROR,
                },
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SendRequest")}},
                },
            )
        },
        "/api/v1/faults": {
            "get": _op(
                "Fault rules, the stages they apply to, and their syntax",
                own,
                {"200": _json({"type": "object"})},
            ),
            "post": _op(
                "Add a fault rule, e.g. rcpt:*@bounce.test:550 5.1.1 No such user",
                own,
                {"201": _json(_ref("FaultRule"), "Added"), "400": _ERROR},
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["rule"],
                                "properties": {"rule": {"type": "string"}},
                            }
                        }
                    },
                },
            ),
            "delete": _op("Remove every fault rule", own, {"200": _json({"type": "object"})}),
        },
        "/api/v1/faults/{RuleID}": {
            "delete": _op(
                "Remove a fault rule",
                own,
                {"200": _json({"type": "object"}), "404": _NOT_FOUND},
                parameters=[
                    {
                        "name": "RuleID",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
            )
        },
        "/api/v1/explain": {
            "get": _op(
                "Explain a reply code (550), an enhanced code (5.1.1) or a whole reply",
                own,
                {"200": _json(_ref("Explanation")), "400": _ERROR},
                parameters=[
                    {"name": "reply", "in": "query", "required": True, "schema": {"type": "string"}}
                ],
            )
        },
        "/api/events": {
            "get": _op(
                "WebSocket of live updates: JSON frames {Type, Data}; Type is new, delete, "
                "truncate, stats, session or faults",
                own,
                {"101": {"description": "Switching to WebSocket"}},
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics: messages by reply code, refusals by stage and code, "
                "sessions, bytes, store commit time",
                own,
                {"200": _text(media="text/plain; version=0.0.4")},
            )
        },
        "/livez": {"get": _op("Liveness probe", own, {"200": _text()})},
        "/readyz": {
            "get": _op(
                "Readiness probe: 503 while not listening or shutting down",
                own,
                {"200": _text(), "503": _text("Not ready")},
            )
        },
    }
    paths.update(openapi_checks.paths(_ERROR, _NOT_FOUND))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailroom",
            "version": __version__,
            "description": "The HTTP API of mailroom: Mailpit's main endpoints in Mailpit's "
            "shapes, so Mailpit clients work unchanged, and mailroom's own: SMTP session "
            "transcripts, fault rules, explanations of reply codes, metrics.",
        },
        "tags": [
            {"name": mailpit, "description": "Answer as Mailpit's API does"},
            {"name": own, "description": "mailroom's own"},
        ],
        "components": {
            "schemas": _schemas() | openapi_checks.schemas(),
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        },
        "security": [{}, {"basic": []}],
        "paths": paths,
    }


async def openapi_json(request: web.Request) -> web.Response:
    # No Access-Control-Allow-Origin: a page of another site must not even learn that a
    # mailroom answers on this machine. /docs, of this origin, reads it as any page of ours.
    return json_response(document())


def routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.router.add_get("/api/v1/swagger.json", openapi_json)
