"""The OpenAPI description of the tag endpoints and of the checks of a message (html-check,
link-check, sa-check), in Mailpit's shapes; :mod:`.openapi` adds them to its document."""

from __future__ import annotations

from typing import Any

__all__ = ["paths", "schemas"]

_ID = {
    "name": "ID",
    "in": "path",
    "required": True,
    "description": "Message ID, a unique prefix of one, or `latest`",
    "schema": {"type": "string"},
}
_TAG = {"name": "tag", "in": "path", "required": True, "schema": {"type": "string"}}
_MAILPIT = "Mailpit-compatible"
_NUMBER, _STRING, _INT = {"type": "number"}, {"type": "string"}, {"type": "integer"}
_STRINGS = {"type": "array", "items": _STRING}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ok() -> dict[str, Any]:
    return {"description": "ok", "content": {"text/plain": {"schema": _STRING}}}


def _op(summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": [_MAILPIT], "responses": responses, **more}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def schemas() -> dict[str, Any]:
    score = _object(Found=_INT, Supported=_NUMBER, Partial=_NUMBER, Unsupported=_NUMBER)
    result = _object(
        Name=_STRING,
        Family=_STRING,
        Platform=_STRING,
        Version=_STRING,
        Support={"type": "string", "enum": ["yes", "no", "partial"]},
        NoteNumber=_STRING,
    )
    warning = _object(
        Slug=_STRING,
        Title=_STRING,
        Description={"type": "string", "description": "HTML"},
        URL=_STRING,
        Category={"type": "string", "enum": ["css", "html", "image", "others"]},
        Tags=_STRINGS,
        Keywords=_STRING,
        Results={"type": "array", "items": result},
        NotesByNumber={"type": "object", "additionalProperties": _STRING},
        Score=score,
    )
    return {
        "HTMLCheckResponse": _object(
            Warnings={"type": "array", "items": warning},
            Platforms={"type": "object", "additionalProperties": _STRINGS},
            Total=_object(
                Tests=_INT, Nodes=_INT, Supported=_NUMBER, Partial=_NUMBER, Unsupported=_NUMBER
            ),
        ),
        "LinkCheckResponse": _object(
            Errors=_INT,
            Links={
                "type": "array",
                "items": _object(URL=_STRING, StatusCode=_INT, Status=_STRING),
            },
        ),
        "SpamAssassinResponse": _object(
            IsSpam={"type": "boolean"},
            Score=_NUMBER,
            Error=_STRING,
            Rules={
                "type": ["array", "null"],
                "items": _object(Name=_STRING, Score=_NUMBER, Description=_STRING),
            },
        ),
    }


def paths(error: dict[str, Any], not_found: dict[str, Any]) -> dict[str, Any]:
    return {
        "/api/v1/tags": {
            "get": _op("Every tag in use", {"200": _json(_STRINGS)}),
            "put": _op(
                "Set exactly these tags on these messages (no Tags removes them all)",
                {"200": _ok(), "400": error},
                requestBody={
                    "content": {
                        "application/json": {"schema": _object(IDs=_STRINGS, Tags=_STRINGS)}
                    }
                },
            ),
        },
        "/api/v1/tags/{tag}": {
            "put": _op(
                "Rename a tag on every message",
                {"200": _ok(), "400": error},
                parameters=[_TAG],
                requestBody={"content": {"application/json": {"schema": _object(Name=_STRING)}}},
            ),
            "delete": _op(
                "Take a tag off every message (the messages stay)",
                {"200": _ok()},
                parameters=[_TAG],
            ),
        },
        "/api/v1/message/{ID}/html-check": {
            "get": _op(
                "Which HTML and CSS features the message uses and how mail clients support "
                "them (caniemail.com's data)",
                {"200": _json(_ref("HTMLCheckResponse")), "400": error, "404": not_found},
                parameters=[_ID],
            )
        },
        "/api/v1/message/{ID}/link-check": {
            "get": _op(
                "The HTTP status of each link and image URL (internal addresses only with "
                "--allow-internal-http-requests)",
                {"200": _json(_ref("LinkCheckResponse")), "404": not_found},
                parameters=[
                    _ID,
                    {
                        "name": "follow",
                        "in": "query",
                        "description": "true: follow redirects and give the final status",
                        "schema": {"type": "boolean"},
                    },
                ],
            )
        },
        "/api/v1/message/{ID}/sa-check": {
            "get": _op(
                "The spam score from SpamAssassin's spamd (--spamassassin) or rspamd (--rspamd)",
                {"200": _json(_ref("SpamAssassinResponse")), "400": error, "404": not_found},
                parameters=[_ID],
            )
        },
    }
