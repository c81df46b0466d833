"""Recordings in: uploads, PBX webhooks and a spool folder all end as a complete audio file in the
recordings directory plus a committed job row; nothing half-written is ever left behind."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from faster_whisper.tokenizer import _LANGUAGE_CODES

from callstream.recordings.decode import AudioDecodeError, AudioTooLong, inspect_audio
from callstream.recordings.jobs import NewRecording, RecordingJobs, RecordingRunner, new_id
from callstream.settings import RecordingSettings

log = structlog.get_logger(__name__)

CALL_ID = re.compile(r"^[\w.:-]{1,100}$")
LEGS = ("caller", "agent")
PART_SUFFIX = ".part"


class Refused(Exception):
    """A recording that cannot be accepted: the HTTP status and a message for the sender."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Metadata:
    call_id: str | None = None
    language: str | None = None
    channel_legs: tuple[str, ...] = LEGS  # leg of channel 0, 1, ...
    filename: str | None = None


def parse_metadata(fields: dict[str, str], filename: str | None = None) -> Metadata:
    """From query parameters or multipart fields: call_id, language, channels ("caller,agent")."""
    call_id = fields.get("call_id") or None
    if call_id is not None and not CALL_ID.match(call_id):
        raise Refused(400, "call_id must be 1 to 100 letters, digits, '.', ':', '_' or '-'")
    language = fields.get("language") or None
    if language is not None and language not in _LANGUAGE_CODES:
        raise Refused(400, f"unknown language {language!r}: use a Whisper language code such as en or sw")
    legs = LEGS
    if channels := fields.get("channels"):
        legs = tuple(part.strip() for part in channels.split(","))
        if not 1 <= len(legs) <= 2 or any(leg not in LEGS for leg in legs) or len(set(legs)) != len(legs):
            raise Refused(400, "channels must name the leg of each channel, e.g. caller,agent or agent,caller")
    unknown = set(fields) - {"call_id", "language", "channels"}
    if unknown:
        raise Refused(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    return Metadata(call_id, language, legs, filename)


class RecordingService:
    def __init__(self, settings: RecordingSettings, jobs: RecordingJobs, runner: RecordingRunner) -> None:
        self.settings = settings
        self.jobs = jobs
        self.runner = runner
        self.directory = Path(settings.dir)
        self.max_bytes = int(settings.max_upload_mb * 1024 * 1024)
        self._spool_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob(f"*{PART_SUFFIX}"):
            leftover.unlink(missing_ok=True)  # an upload cut short by a crash: never accepted
        await self.runner.start()
        if self.settings.spool_dir:
            self._spool_task = asyncio.create_task(self._watch_spool(Path(self.settings.spool_dir)), name="spool")

    async def stop(self, timeout_s: float) -> None:
        if self._spool_task is not None:
            self._spool_task.cancel()
            await asyncio.gather(self._spool_task, return_exceptions=True)
        await self.runner.stop(timeout_s)

    # --- intake --------------------------------------------------------------------------

    async def receive(self, chunks: AsyncIterator[bytes], metadata: Metadata, source: str) -> str:
        """Stream the body to disk within the size limit, check it is audio, queue it; returns the job id."""
        job_id = new_id()
        part = self.directory / f"{job_id}{PART_SUFFIX}"
        try:
            size = await self._write(chunks, part)
            if size == 0:
                raise Refused(400, "the recording is empty")
            return await self._accept(job_id, part, size, metadata, source)
        finally:
            part.unlink(missing_ok=True)

    async def _write(self, chunks: AsyncIterator[bytes], part: Path) -> int:
        size = 0
        with part.open("wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    raise Refused(413, f"the recording is larger than the limit of {self.settings.max_upload_mb:g} MB")
                f.write(chunk)  # page-cache writes of one network chunk: microseconds
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, f.fileno())
        return size

    async def _accept(self, job_id: str, part: Path, size: int, metadata: Metadata, source: str) -> str:
        loop = asyncio.get_running_loop()
        try:
            info = await loop.run_in_executor(
                None,
                lambda: inspect_audio(part, max_duration_s=self.settings.max_duration_s, max_channels=2),
            )
        except AudioTooLong as exc:
            raise Refused(413, str(exc)) from None
        except AudioDecodeError as exc:
            raise Refused(415, str(exc)) from None
        final = self.directory / f"{job_id}.audio"
        os.replace(part, final)
        legs = {
            i: metadata.channel_legs[i] if i < len(metadata.channel_legs) else LEGS[i] for i in range(info.channels)
        }
        recording = NewRecording(final, size, source, metadata.filename, metadata.call_id, metadata.language, legs)
        try:
            await self.jobs.add(job_id, recording)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        log.info(
            "recording_accepted",
            recording_id=job_id,
            call_id=metadata.call_id,
            source=source,
            size_bytes=size,
            container=info.container,
            codec=info.codec,
            channels=info.channels,
            duration_s=info.duration_s,
        )
        self.runner.wake()
        return job_id

    async def delete(self, job_id: str) -> bool:
        row = await self.jobs.delete(job_id)
        if row is None:
            return False
        self.runner.cancel(job_id)
        Path(row["audio_path"]).unlink(missing_ok=True)
        log.info("recording_deleted", recording_id=job_id)
        return True

    # --- spool folder --------------------------------------------------------------------

    async def _watch_spool(self, spool: Path) -> None:
        """Queue files that stopped growing; the file name (without extension) is taken as the call id."""
        seen: dict[Path, tuple[int, float]] = {}
        failed = spool / "failed"
        while True:
            await asyncio.sleep(self.settings.spool_poll_s)
            try:
                current = {p: _size_and_mtime(p) for p in spool.iterdir() if p.is_file() and not p.name.startswith(".")}
            except OSError as exc:
                log.error("spool_unreadable", path=str(spool), error=str(exc))
                continue
            for path, stat in current.items():
                if seen.get(path) == stat:
                    await self._take_from_spool(path, failed)
            seen = {p: s for p, s in current.items() if p.exists()}

    async def _take_from_spool(self, path: Path, failed: Path) -> None:
        call_id = path.stem if CALL_ID.match(path.stem) else None

        async def chunks() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            with path.open("rb") as f:
                while block := await loop.run_in_executor(None, f.read, 1 << 20):
                    yield block

        try:
            job_id = await self.receive(chunks(), Metadata(call_id=call_id, filename=path.name), "spool")
        except Refused as exc:
            failed.mkdir(exist_ok=True)
            os.replace(path, failed / path.name)
            log.warning("spool_file_refused", file=path.name, reason=str(exc))
            return
        path.unlink(missing_ok=True)
        log.info("spool_file_queued", file=path.name, recording_id=job_id)


def _size_and_mtime(path: Path) -> tuple[int, float]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime
