"""mailroom's own endpoints: fault rules, ``explain``, ``/metrics`` (Prometheus text format)
and the health probes. Session transcripts are in :mod:`.sessions`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mailroom.codes import ExplainError, explain
from mailroom.policy.faultrules import STAGES, FaultError
from mailroom.policy.faultrules import __doc__ as FAULTS_DOC
from mailroom.web.events import event_stream
from mailroom.web.http import error, json_response, request_json, web_context

if TYPE_CHECKING:
    from mailroom.web.context import FaultRules, WebContext

__all__ = ["routes"]


# -- fault rules ---------------------------------------------------------------------------


def faults_json(faults: FaultRules) -> dict[str, Any]:
    return {"rules": [rule.to_dict() for rule in faults.rules]}


async def list_faults(request: web.Request) -> web.Response:
    data = faults_json(web_context(request).faults)
    data["stages"] = sorted(STAGES)
    data["syntax"] = (FAULTS_DOC or "").strip()
    return json_response(data)


async def add_fault(request: web.Request) -> web.Response:
    ctx = web_context(request)
    body = await request_json(request)
    text = body.get("rule")
    if not isinstance(text, str) or not text.strip():
        return error(400, 'give the rule as {"rule": "STAGE[:MATCH][:OPTION...]:ACTION"}')
    try:
        rule = ctx.faults.add(text)
    except FaultError as exc:
        return error(400, str(exc))
    await event_stream(request).faults()
    return json_response(rule.to_dict(), 201)


async def delete_fault(request: web.Request) -> web.Response:
    ctx = web_context(request)
    try:
        rule_id = int(request.match_info["id"])
    except ValueError:
        return error(404, "no such rule")
    if not ctx.faults.remove(rule_id):
        return error(404, f"no rule {rule_id}")
    await event_stream(request).faults()
    return json_response({"deleted": rule_id})


async def clear_faults(request: web.Request) -> web.Response:
    ctx = web_context(request)
    ctx.faults.clear()
    await event_stream(request).faults()
    return json_response({"rules": []})


# -- explain -------------------------------------------------------------------------------


async def explain_reply(request: web.Request) -> web.Response:
    text = request.query.get("reply", "")
    try:
        result = explain(text)
    except ExplainError as exc:
        return error(400, str(exc))
    data = result.to_dict()
    data["rendered"] = result.render()
    return json_response(data)


# -- metrics and health ------------------------------------------------------------------


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(ctx: WebContext, web_clients: int) -> str:
    metrics = ctx.metrics
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Sequence[tuple[str, object]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    refused_messages: dict[int, int] = {}
    for (stage, code), count in metrics.refusals.items():
        if stage in ("END_OF_DATA", "BDAT"):
            refused_messages[code] = refused_messages.get(code, 0) + count
    family(
        "mailroom_messages_total",
        "counter",
        "Messages that reached the end of their data, by the reply they got.",
        [('{result="accepted",code="250"}', metrics.messages_accepted)]
        + [
            (f'{{result="refused",code="{code}"}}', count)
            for code, count in sorted(refused_messages.items())
        ],
    )
    family(
        "mailroom_message_bytes_total",
        "counter",
        "Octets of accepted messages, as the clients sent them.",
        [("", metrics.message_bytes)],
    )
    family(
        "mailroom_smtp_refusals_total",
        "counter",
        "4xx and 5xx replies sent, by the stage of the session and the reply code.",
        [
            (f'{{stage="{_label(stage)}",code="{code}"}}', count)
            for (stage, code), count in sorted(metrics.refusals.items())
        ],
    )
    family(
        "mailroom_sessions_total",
        "counter",
        "SMTP connections admitted.",
        [("", metrics.sessions)],
    )
    family(
        "mailroom_sessions_active",
        "gauge",
        "SMTP sessions open now.",
        [("", ctx.status.active_sessions)],
    )
    family(
        "mailroom_connections_refused_total",
        "counter",
        "Connections refused before the greeting (over the connection limits), by code.",
        [(f'{{code="{code}"}}', n) for code, n in sorted(metrics.connections_refused.items())],
    )
    store = ctx.store_counters
    if store is not None:
        family(
            "mailroom_store_commit_seconds_total",
            "counter",
            "Seconds the store spent writing, syncing and indexing committed batches.",
            [("", f"{store.latency_total:.6f}")],
        )
        family(
            "mailroom_store_committed_total",
            "counter",
            "Messages the store made durable (file and directory entry fsync'd).",
            [("", store.committed)],
        )
        transactions = getattr(store, "transactions", None)  # a database store's
        if transactions is not None:
            family(
                "mailroom_store_transactions_total",
                "counter",
                "Database transactions the store committed (a batch of messages each).",
                [("", transactions)],
            )
            family(
                "mailroom_store_round_trips_total",
                "counter",
                "Times the store waited for the database's answer.",
                [("", getattr(store, "round_trips", 0))],
            )
            family(
                "mailroom_store_available",
                "gauge",
                "1 while the store's database answers, 0 while it is out of reach.",
                [("", int(bool(getattr(store, "available", True))))],
            )
    family(
        "mailroom_fault_rule_fired_total",
        "counter",
        "Times each fault rule fired.",
        [
            (f'{{id="{rule.id}",rule="{_label(rule.describe())}"}}', rule.fired)
            for rule in ctx.faults.rules
        ],
    )
    family(
        "mailroom_transcripts_kept",
        "gauge",
        "Session transcripts kept in memory.",
        [("", len(ctx.transcripts))],
    )
    family(
        "mailroom_web_clients",
        "gauge",
        "Live-update WebSocket clients connected.",
        [("", web_clients)],
    )
    family(
        "mailroom_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        [("", f"{_now() - metrics.started:.3f}")],
    )
    return "\n".join(lines) + "\n"


def _now() -> float:
    import time

    return time.time()


async def metrics(request: web.Request) -> web.Response:
    text = render_metrics(web_context(request), event_stream(request).clients)
    response = web.Response(text=text)
    response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    return response


async def livez(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    if not web_context(request).status.accepting:
        return web.Response(text="not ready", status=503)
    return web.Response(text="ok")


def routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/api/v1/faults", list_faults)
    add("POST", "/api/v1/faults", add_fault)
    add("DELETE", "/api/v1/faults", clear_faults)
    add("DELETE", "/api/v1/faults/{id}", delete_fault)
    add("GET", "/api/v1/explain", explain_reply)
    add("GET", "/metrics", metrics)
    add("GET", "/livez", livez)
    add("GET", "/readyz", readyz)
