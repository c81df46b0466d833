"""One shape for every API error: an HTTP status and {"error": "<what is wrong>"}."""

from __future__ import annotations

import json

from aiohttp import web

_BY_STATUS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    415: web.HTTPUnsupportedMediaType,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
}


def json_error(status: int, message: str) -> web.HTTPException:
    """The exception to raise from a handler (or anything it calls)."""
    body = {"text": json.dumps({"error": message}), "content_type": "application/json"}
    if status == 413:  # aiohttp's own text names the sizes; ours already says what the limit is
        return web.HTTPRequestEntityTooLarge(max_size=0, actual_size=0, **body)
    return _BY_STATUS[status](**body)
