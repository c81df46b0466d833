"""HTTP API for recordings: upload (multipart or raw body), PBX webhook, status, list, delete."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp import web

from callstream.recordings.service import Metadata, Refused, parse_metadata
from callstream.web.errors import json_error

if TYPE_CHECKING:
    from callstream.app import Pipeline
    from callstream.recordings.service import RecordingService

routes = web.RouteTableDef()
CHUNK_BYTES = 1 << 16
MAX_FIELD_BYTES = 1024
STATUSES = ("queued", "running", "done", "failed")


def _service(request: web.Request) -> RecordingService:
    from callstream.web.routes import PIPELINE

    pipeline: Pipeline = request.app[PIPELINE]
    if pipeline.recordings is None:
        raise json_error(503, "recordings are disabled")
    return pipeline.recordings


def _accepted(request: web.Request, job_id: str) -> web.Response:
    location = f"/v1/recordings/{job_id}"
    return web.json_response(
        {"id": job_id, "status": "queued", "location": location}, status=202, headers={"Location": location}
    )


@routes.post("/v1/recordings")
async def upload(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        if request.content_type.startswith("multipart/"):
            job_id = await _multipart(request, service)
        else:
            metadata = parse_metadata(dict(request.query))
            job_id = await service.receive(request.content.iter_chunked(CHUNK_BYTES), metadata, "upload")
    except Refused as exc:
        raise json_error(exc.status, str(exc)) from None
    return _accepted(request, job_id)


async def _multipart(request: web.Request, service: RecordingService) -> str:
    """Fields before `file` are metadata; `file` is streamed to disk as it arrives."""
    reader = await request.multipart()
    fields: dict[str, str] = dict(request.query)
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader):
            raise Refused(400, "nested multipart bodies are not supported")
        if part.name == "file":
            metadata = parse_metadata(fields, part.filename)

            async def chunks(body: aiohttp.BodyPartReader = part) -> AsyncIterator[bytes]:
                while chunk := await body.read_chunk(CHUNK_BYTES):
                    yield chunk

            return await service.receive(chunks(), metadata, "upload")
        value = await part.read(decode=True)
        if len(value) > MAX_FIELD_BYTES:
            raise Refused(400, f"field {part.name!r} is too long")
        fields[part.name or ""] = value.decode(errors="replace")
    raise Refused(400, "no 'file' field in the form (send the audio as -F file=@call.wav)")


class RecordingDone(msgspec.Struct, forbid_unknown_fields=True):
    call_id: str
    recording_url: str
    language: str | None = None
    channels: str | None = None


@routes.post("/v1/recording-done")
async def recording_done(request: web.Request) -> web.Response:
    """A PBX says a call's recording is ready at a URL: fetch it (allowlisted hosts only) and queue it."""
    service = _service(request)
    try:
        body = msgspec.json.decode(await request.read(), type=RecordingDone)
    except msgspec.DecodeError as exc:
        raise json_error(400, f"invalid body: {exc}") from None
    try:
        fields = {"call_id": body.call_id, "language": body.language or "", "channels": body.channels or ""}
        metadata = parse_metadata({k: v for k, v in fields.items() if v})
        url = _allowed_url(body.recording_url, service.settings.webhook_allowed_hosts)
        job_id = await _fetch(url, metadata, service)
    except Refused as exc:
        raise json_error(exc.status, str(exc)) from None
    return _accepted(request, job_id)


def _allowed_url(url: str, allowed_hosts: list[str]) -> str:
    if not allowed_hosts:
        raise Refused(403, "recording-done is disabled: set recordings.webhook_allowed_hosts")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(400, "recording_url must be an http or https URL")
    if parts.hostname.lower() not in {h.lower() for h in allowed_hosts}:
        raise Refused(403, f"host {parts.hostname!r} is not in recordings.webhook_allowed_hosts")
    return url


async def _fetch(url: str, metadata: Metadata, service: RecordingService) -> str:
    timeout = aiohttp.ClientTimeout(total=service.settings.webhook_timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url, allow_redirects=False) as resp:
            if resp.status != 200:
                raise Refused(502, f"fetching the recording gave HTTP {resp.status} (redirects are not followed)")
            if resp.content_length is not None and resp.content_length > service.max_bytes:
                raise Refused(413, f"the recording is larger than the limit of {service.settings.max_upload_mb:g} MB")
            filename = urlsplit(url).path.rsplit("/", 1)[-1] or None
            named = Metadata(metadata.call_id, metadata.language, metadata.channel_legs, filename)
            return await service.receive(resp.content.iter_chunked(CHUNK_BYTES), named, "webhook")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Refused(502, f"could not fetch the recording: {exc!r}") from None


@routes.get("/v1/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    service = _service(request)
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise json_error(400, f"status must be one of {', '.join(STATUSES)}")
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "100"))))
    except ValueError:
        raise json_error(400, "limit must be a number") from None
    return web.json_response({"recordings": await service.jobs.list(limit, status)})


@routes.get("/v1/recordings/{id}")
async def get_recording(request: web.Request) -> web.Response:
    recording = await _service(request).jobs.get(request.match_info["id"])
    if recording is None:
        raise json_error(404, f"no recording {request.match_info['id']}")
    return web.Response(text=json.dumps(recording, ensure_ascii=False), content_type="application/json")


@routes.delete("/v1/recordings/{id}")
async def delete_recording(request: web.Request) -> web.Response:
    job_id = request.match_info["id"]
    if not await _service(request).delete(job_id):
        raise json_error(404, f"no recording {job_id}")
    return web.json_response({"id": job_id, "deleted": True})
