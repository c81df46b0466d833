"""WebSocket subscribers: each socket has its own sender task, so a slow one never holds up the bus."""

from __future__ import annotations

import asyncio
import weakref

from aiohttp import WSCloseCode, web

from callstream.bus import EventBus, Subscription
from callstream.events import encode

SOCKETS = web.AppKey("websockets", weakref.WeakSet[web.WebSocketResponse])


async def stream_events(request: web.Request, bus: EventBus, call_id: str | None) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    subscription = bus.subscribe(call_id)
    sender = asyncio.create_task(_send(ws, subscription))
    try:
        async for _ in ws:  # the client says nothing we act on; reading keeps ping/close handling alive
            pass
    finally:
        bus.unsubscribe(subscription)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return ws


async def _send(ws: web.WebSocketResponse, subscription: Subscription) -> None:
    while batch := await subscription.next_batch():
        for event in batch:
            await ws.send_str(encode(event).decode())
    await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


async def close_all(app: web.Application) -> None:
    for ws in set(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
