"""HTTP API: health, readiness, calls and their transcripts, metrics, and the event WebSockets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from callstream.nlp.entities import ENTITY_LABELS
from callstream.nlp.taxonomy import RISK_FLAG_IDS
from callstream.web import metrics
from callstream.web.errors import json_error
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
        raise json_error(404, f"no call {call_id}")
    session = pipeline.registry.get(call_id)
    call["active"] = session is not None
    if session is not None:
        call["legs"] = sorted(session.legs)
    return web.json_response(call)


@routes.post("/v1/calls/{call_id}/hangup")
async def hangup_call(request: web.Request) -> web.Response:
    session = _pipeline(request).registry.get(request.match_info["call_id"])
    if session is None:
        raise json_error(404, "no active call with that id")
    session.hangup()
    return web.json_response({"call_id": session.call_id, "status": "hangup sent"}, status=202)


class Feedback(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An agent's rating of a call's insights and their corrections, kept for evaluation and tuning."""

    rating: int | None = None  # 1 (useless) .. 5 (exactly right)
    category: str | None = None  # the right category id
    subcategory: str | None = None
    priority: int | None = None
    flags: list[str] | None = None  # the risk flags that should have been raised, all of them
    entities: list[FeedbackEntity] | None = None  # the entities that should have been found
    comment: str | None = None
    agent: str | None = None


class FeedbackEntity(msgspec.Struct, forbid_unknown_fields=True):
    label: str
    text: str


def _validate_feedback(feedback: Feedback, pipeline: Pipeline) -> None:
    if feedback.rating is not None and not 1 <= feedback.rating <= 5:
        raise json_error(400, "rating must be 1 to 5")
    if feedback.priority is not None and not 1 <= feedback.priority <= 3:
        raise json_error(400, "priority must be 1, 2 or 3")
    for flag in feedback.flags or []:
        if flag not in RISK_FLAG_IDS:
            raise json_error(400, f"unknown risk flag {flag!r}; known: {', '.join(RISK_FLAG_IDS)}")
    for entity in feedback.entities or []:
        if entity.label not in ENTITY_LABELS:
            raise json_error(400, f"unknown entity label {entity.label!r}; known: {', '.join(ENTITY_LABELS)}")
    if feedback.category is not None and pipeline.insights is not None:
        taxonomy = pipeline.insights.taxonomy
        if taxonomy is not None and taxonomy.category_by_id(feedback.category) is None:
            known = ", ".join(c.id for c in taxonomy.categories)
            raise json_error(400, f"unknown category {feedback.category!r}; known: {known}")


@routes.post("/v1/calls/{call_id}/feedback")
async def call_feedback(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    call_id = request.match_info["call_id"]
    try:
        feedback = msgspec.json.decode(await request.read(), type=Feedback)
    except msgspec.DecodeError as exc:
        raise json_error(400, f"invalid feedback: {exc}") from None
    _validate_feedback(feedback, pipeline)
    if not await pipeline.store.has_call(call_id):
        raise json_error(404, f"no call {call_id}")
    body = msgspec.to_builtins(feedback)
    feedback_id = await pipeline.store.add_feedback(call_id, {k: v for k, v in body.items() if v is not None})
    return web.json_response({"id": feedback_id, "call_id": call_id}, status=201)


@routes.get("/v1/events")
async def all_events(request: web.Request) -> web.WebSocketResponse:
    return await stream_events(request, _pipeline(request).bus, None)


@routes.get("/v1/calls/{call_id}/events")
async def call_events(request: web.Request) -> web.WebSocketResponse:
    return await stream_events(request, _pipeline(request).bus, request.match_info["call_id"])
