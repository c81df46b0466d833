"""The server's side of one recording worker process (see recordings/worker.py for the protocol)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

import structlog

from callstream.settings import AsrSettings, RecordingSettings

log = structlog.get_logger(__name__)

LINE_LIMIT_BYTES = 64 * 1024 * 1024  # one result line carries a whole transcript
READY_TIMEOUT_S = 300.0


class WorkerDied(Exception):
    """The process exited or was killed mid-job."""


class WorkerError(Exception):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # "audio": the file is bad; "internal": our failure


class WorkerProcess:
    def __init__(
        self, name: str, asr: AsrSettings, recordings: RecordingSettings, model_path: str, device: tuple[str, str]
    ) -> None:
        self.name = name
        self._args = [
            "--model",
            model_path,
            "--device",
            device[0],
            "--compute-type",
            device[1],
            "--threads",
            str(recordings.worker_threads),
            "--languages",
            ",".join(asr.languages),
            "--beam-size",
            str(recordings.beam_size),
            "--max-duration-s",
            str(recordings.max_duration_s),
            "--nice",
            str(recordings.worker_nice),
        ]
        self._process: asyncio.subprocess.Process | None = None
        self.paused = False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        self.paused = False
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callstream.recordings.worker",
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT_BYTES,
        )
        message = await asyncio.wait_for(self._read(), READY_TIMEOUT_S)
        if not message.get("ready"):
            raise WorkerDied(f"worker {self.name} did not start: {message}")
        log.info("recording_worker_started", worker=self.name, pid=self._process.pid)

    async def run(self, request: dict[str, Any], progress: Callable[[float], None]) -> dict[str, Any]:
        """Send one job and wait for its result; progress is called as the worker reports it."""
        if not self.running:
            await self.start()
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write((json.dumps(request) + "\n").encode())
            await self._process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise WorkerDied(f"worker {self.name} is gone: {exc}") from exc
        while True:
            message = await self._read()
            if message.get("job") != request["job"]:
                continue
            if "progress" in message:
                progress(float(message["progress"]))
            elif "result" in message:
                return message["result"]
            elif "error" in message:
                raise WorkerError(message["error"], message.get("kind", "internal"))

    async def _read(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            code = await self._process.wait()
            raise WorkerDied(f"the transcription worker exited (code {code})")
        return json.loads(line)

    def pause(self) -> None:
        """SIGSTOP: the kernel stops the worker mid-computation, so a live decode gets every core."""
        if self.running and not self.paused:
            assert self._process is not None
            self._process.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.running and self.paused:
            assert self._process is not None
            self._process.send_signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """Stop the current job now (a deleted recording); the next job starts a fresh worker."""
        if self.running:
            assert self._process is not None
            self._process.kill()

    async def stop(self, timeout_s: float) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self.resume()
        if self._process.stdin is not None:
            self._process.stdin.close()  # the worker's loop ends at EOF
        try:
            await asyncio.wait_for(self._process.wait(), timeout_s)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
