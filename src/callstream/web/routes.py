"""HTTP API: health, readiness, calls and their transcripts, metrics, and the event WebSockets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from callstream.web import metrics
from callstream.web.websocket import stream_events

if TYPE_CHECKING:
    from callstream.app import Pipeline

PIPELINE: web.AppKey[Pipeline] = web.AppKey("pipeline")
routes = web.RouteTableDef()


def _pipeline(request: web.Request) -> Pipeline:
    return request.app[PIPELINE]


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    ready = _pipeline(request).ready
    return web.json_response({"ready": ready}, status=200 if ready else 503)


@routes.get("/metrics")
async def metrics_text(request: web.Request) -> web.Response:
    return web.Response(text=metrics.render(_pipeline(request)), content_type="text/plain", charset="utf-8")


@routes.get("/v1/calls")
async def list_calls(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    active = [
        {"call_id": s.call_id, "started_at": s.started_at, "elapsed_s": round(s.elapsed_s(), 3), "legs": sorted(s.legs)}
        for s in pipeline.registry.sessions.values()
    ]
    recent = await pipeline.store.recent_calls(pipeline.settings.events.recent_calls)
    return web.json_response({"active": active, "recent": recent})


@routes.get("/v1/calls/{call_id}")
async def get_call(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    call_id = request.match_info["call_id"]
    call = await pipeline.store.call(call_id)
    if call is None:
        raise web.HTTPNotFound(text=f'{{"error": "no call {call_id}"}}', content_type="application/json")
    session = pipeline.registry.get(call_id)
    call["active"] = session is not None
    if session is not None:
        call["legs"] = sorted(session.legs)
    return web.json_response(call)


@routes.post("/v1/calls/{call_id}/hangup")
async def hangup_call(request: web.Request) -> web.Response:
    session = _pipeline(request).registry.get(request.match_info["call_id"])
    if session is None:
        raise web.HTTPNotFound(text='{"error": "no active call with that id"}', content_type="application/json")
    session.hangup()
    return web.json_response({"call_id": session.call_id, "status": "hangup sent"}, status=202)


@routes.get("/v1/events")
async def all_events(request: web.Request) -> web.WebSocketResponse:
    return await stream_events(request, _pipeline(request).bus, None)


@routes.get("/v1/calls/{call_id}/events")
async def call_events(request: web.Request) -> web.WebSocketResponse:
    return await stream_events(request, _pipeline(request).bus, request.match_info["call_id"])
