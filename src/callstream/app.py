"""Wires the pipeline together and owns its lifetime: start in data-flow order, stop in reverse with a deadline."""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import structlog
from aiohttp import web

from callstream import models
from callstream.asr.batcher import AsrBatcher
from callstream.asr.transcriber import Transcriber
from callstream.asr.whisper import WhisperTranscriber, WindowPolicy
from callstream.audiosocket.server import AudioSocketServer
from callstream.bus import EventBus
from callstream.calls.registry import CallRegistry
from callstream.calls.session import SessionConfig, samples_from_ms
from callstream.nlp.engine import InsightsEngine
from callstream.nlp.service import InsightsService
from callstream.recordings.jobs import RecordingJobs, RecordingRunner
from callstream.recordings.service import RecordingService
from callstream.recordings.worker_process import WorkerProcess
from callstream.settings import AsrSettings, NlpSettings, Settings
from callstream.store import Store
from callstream.vad.model import SileroVad
from callstream.vad.runner import VadRunner
from callstream.vad.tracker import TrackerConfig
from callstream.web.recordings import routes as recording_routes
from callstream.web.routes import PIPELINE, routes
from callstream.web.websocket import SOCKETS, close_all

log = structlog.get_logger(__name__)
RING_SECONDS = 30  # > max utterance + pre-roll; bounds memory per leg (1.9 MB)
# How long an ended call waits for its queued finals: they are its transcript. Only an executor
# far past its capacity takes this long; past it the finals are logged as abandoned.
FINAL_DRAIN_TIMEOUT_S = 60.0
HANDLER_EXIT_GRACE_S = 2.0


def resolve_device(asr: AsrSettings) -> tuple[str, str]:
    import ctranslate2

    device = asr.device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute_type = asr.compute_type
    if compute_type == "default":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


@dataclass(frozen=True)
class AsrTuning:
    window_s: float
    fast_window_s: float
    max_batch: int
    max_partial_batch: int


# Measured on a 2-core CPU (docs/asr-options.md): batching 30 s windows buys nothing there, short
# windows batch well but cost accuracy. A GPU batches full windows almost for free.
TUNING_DEFAULTS = {
    "cpu": AsrTuning(window_s=20, fast_window_s=10, max_batch=4, max_partial_batch=2),
    "cuda": AsrTuning(window_s=30, fast_window_s=30, max_batch=16, max_partial_batch=16),
}


def resolve_asr_tuning(asr: AsrSettings, device: str) -> AsrTuning:
    default = TUNING_DEFAULTS[device]
    return AsrTuning(
        window_s=asr.window_s or default.window_s,
        fast_window_s=asr.fast_window_s or default.fast_window_s,
        max_batch=asr.max_batch or default.max_batch,
        max_partial_batch=asr.max_partial_batch or default.max_partial_batch,
    )


def load_transcriber(asr: AsrSettings) -> WhisperTranscriber:
    model_path = models.resolve_whisper(asr.model, Path(asr.cache_dir) if asr.cache_dir else None)
    device, compute_type = resolve_device(asr)
    tuning = resolve_asr_tuning(asr, device)
    started = time.monotonic()
    transcriber = WhisperTranscriber(
        model_path,
        device=device,
        compute_type=compute_type,
        cpu_threads=asr.cpu_threads or (os.cpu_count() or 1),
        window=WindowPolicy(accurate_s=tuning.window_s, fast_s=tuning.fast_window_s),
        languages=frozenset(asr.languages),
    )
    log.info(
        "asr_model_loaded",
        model=asr.model,
        path=model_path,
        device=device,
        compute_type=compute_type,
        tuning=tuning,
        load_s=round(time.monotonic() - started, 2),
    )
    return transcriber


def session_config(settings: Settings) -> SessionConfig:
    asr, vad = settings.asr, settings.vad
    return SessionConfig(
        language=None if asr.language == "auto" else asr.language,
        beam_size_final=asr.beam_size,
        beam_size_partial=asr.partial_beam_size,
        partial_interval_samples=samples_from_ms(asr.partial_interval_ms),
        min_partial_samples=samples_from_ms(asr.min_partial_ms),
        no_speech_threshold=asr.no_speech_threshold,
        ring_capacity_samples=samples_from_ms(RING_SECONDS * 1000),
        gap_fill_samples=samples_from_ms(vad.gap_fill_ms),
        speculative_finals=asr.speculative_finals,
        translate=settings.nlp.enabled and settings.nlp.translate,
        tracker=TrackerConfig(
            threshold=vad.threshold,
            negative_threshold=vad.negative_threshold,
            min_silence_samples=samples_from_ms(vad.min_silence_ms),
            min_speech_samples=samples_from_ms(vad.min_speech_ms),
            pre_roll_samples=samples_from_ms(vad.pre_roll_ms),
            post_roll_samples=samples_from_ms(min(vad.post_roll_ms, vad.min_silence_ms)),
            max_utterance_samples=samples_from_ms(vad.max_utterance_s * 1000),
        ),
    )


def build_insights(nlp: NlpSettings, batcher: AsrBatcher) -> InsightsService:
    taxonomy_path = Path(nlp.taxonomy) if nlp.taxonomy else None
    masked = frozenset(nlp.mask_pii)
    return InsightsService(
        partial(InsightsEngine.load, taxonomy_path, masked, flag_threshold=nlp.flag_threshold or None),
        update_interval_s=nlp.update_interval_s,
        max_pending=nlp.max_pending,
        live_busy=lambda: batcher.busy,
        max_defer_s=nlp.max_defer_s,
    )


def build_recordings(
    settings: Settings, store: Store, insights: InsightsService | None, batcher: AsrBatcher
) -> RecordingService:
    asr = settings.asr
    model_path = models.resolve_whisper(asr.model, Path(asr.cache_dir) if asr.cache_dir else None)
    device = resolve_device(asr)
    jobs = RecordingJobs(store)
    runner = RecordingRunner(
        jobs,
        lambda name: WorkerProcess(name, asr, settings.recordings, model_path, device),
        insights,
        workers=settings.recordings.workers,
        translate=settings.recordings.translate and insights is not None,
        max_attempts=settings.recordings.max_attempts,
        live_busy=(lambda: batcher.busy) if settings.recordings.yield_to_live else None,
    )
    return RecordingService(settings.recordings, jobs, runner)


class Pipeline:
    """Every long-lived service of the process. Built once, started once, stopped once."""

    def __init__(self, settings: Settings, transcriber: Transcriber, vad_model: SileroVad) -> None:
        self.settings = settings
        self.ready = False
        self.bus = EventBus(settings.events.max_queued_per_subscriber)
        self.store = Store(Path(settings.store.path))
        tuning = resolve_asr_tuning(settings.asr, getattr(transcriber, "device", "cpu"))
        self.batcher = AsrBatcher(
            transcriber,
            max_batch=tuning.max_batch,
            max_partial_batch=tuning.max_partial_batch,
            max_pending_finals=settings.asr.max_pending_finals,
        )
        self.insights = build_insights(settings.nlp, self.batcher) if settings.nlp.enabled else None
        self.registry = CallRegistry(
            session_config(settings),
            self.batcher,
            self.bus.publish,
            self.store.put,
            max_calls=settings.audiosocket.max_calls,
            drain_timeout_s=FINAL_DRAIN_TIMEOUT_S,
            insights=self.insights,
            commit=self.store.put_committed,
        )
        self.recordings = (
            build_recordings(settings, self.store, self.insights, self.batcher)
            if settings.recordings.workers > 0
            else None
        )
        self.vad = VadRunner(vad_model, self.registry.vad_targets, settings.vad.tick_ms / 1000)
        sock = settings.audiosocket
        self.listeners = [AudioSocketServer(self.registry, sock.host, sock.port, "caller", sock.max_payload_bytes)]
        if sock.agent_port:
            self.listeners.append(
                AudioSocketServer(self.registry, sock.host, sock.agent_port, "agent", sock.max_payload_bytes)
            )

    async def start(self) -> None:
        await self.store.open()
        if self.insights is not None:
            await self.insights.start()
        self.batcher.start()
        self.vad.start()
        if self.recordings is not None:
            await self.recordings.start()
        for listener in self.listeners:
            await listener.start()

    async def stop_calls(self) -> None:
        """Stop taking calls and end the live ones, letting their queued finals land within the deadline."""
        self.ready = False
        deadline = time.monotonic() + self.settings.shutdown_timeout_s
        for listener in self.listeners:
            await listener.stop_accepting()
        for listener in self.listeners:
            await listener.close_connections(max(0.1, deadline - time.monotonic()))
        # Past the deadline: drop the finals still queued so every call can end and be stored.
        self.batcher.cancel_all()
        for listener in self.listeners:
            await listener.close_connections(HANDLER_EXIT_GRACE_S)

    async def stop(self) -> None:
        if self.recordings is not None:
            # A running job stays 'running' in the store and is queued again at the next start.
            await self.recordings.stop(timeout_s=2.0)
        await self.vad.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.batcher.stop, 2.0)
        if self.insights is not None:
            await self.insights.stop()
        self.bus.close()
        await self.store.close()


async def load_pipeline(settings: Settings, transcriber: Transcriber | None = None) -> Pipeline:
    """Load the models off the loop (seconds of work) and build the pipeline."""
    loop = asyncio.get_running_loop()
    if transcriber is None:
        transcriber = await loop.run_in_executor(None, load_transcriber, settings.asr)
    vad_model = await loop.run_in_executor(None, SileroVad, models.silero_vad_path())
    return Pipeline(settings, transcriber, vad_model)


def build_app(pipeline: Pipeline) -> web.Application:
    app = web.Application()
    app[PIPELINE] = pipeline
    app[SOCKETS] = weakref.WeakSet()
    app.add_routes(routes)
    app.add_routes(recording_routes)

    async def lifetime(app: web.Application):  # type: ignore[no-untyped-def]
        await pipeline.start()
        yield
        await pipeline.stop()

    async def on_shutdown(app: web.Application) -> None:
        await pipeline.stop_calls()
        await asyncio.sleep(0.1)  # let the last call.ended events reach the sender tasks
        await close_all(app)

    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(on_shutdown)
    return app


@dataclass
class RunningServer:
    app: web.Application
    runner: web.AppRunner
    pipeline: Pipeline

    @property
    def http_port(self) -> int:
        server = self.runner.addresses[0]
        return server[1]

    @property
    def audiosocket_ports(self) -> list[int]:
        return [listener.port for listener in self.pipeline.listeners]

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_server(settings: Settings, transcriber: Transcriber | None = None) -> RunningServer:
    """Models loaded, ports bound, then ready: the order systemd and /readyz rely on."""
    pipeline = await load_pipeline(settings, transcriber)
    app = build_app(pipeline)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=settings.shutdown_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, settings.http.host, settings.http.port)
    await site.start()
    pipeline.ready = True
    log.info("ready", http_port=runner.addresses[0][1], audiosocket_ports=[lst.port for lst in pipeline.listeners])
    return RunningServer(app, runner, pipeline)
