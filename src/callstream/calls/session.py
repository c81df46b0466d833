"""One call: its legs, the utterances VAD finds in them, and the events their transcripts become."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import structlog

from callstream.asr.batcher import AsrBatcher, AsrJob, QueueFull
from callstream.asr.transcriber import AsrRequest, AsrResult, add_language_evidence
from callstream.audio.resample import TARGET_RATE_HZ
from callstream.calls.leg import LegAudio
from callstream.events import (
    CallEnded,
    CallStarted,
    Dtmf,
    EndReason,
    Event,
    SegmentFinal,
    SegmentPartial,
    SegmentTranslated,
)
from callstream.nlp.engine import TranscriptSegment
from callstream.vad.tracker import (
    TrackerConfig,
    TrackerEvent,
    UtteranceDropped,
    UtteranceEnded,
    UtterancePaused,
    UtteranceResumed,
    UtteranceStarted,
)

if TYPE_CHECKING:
    from callstream.nlp.service import InsightsService


@dataclass(frozen=True, slots=True)
class SessionConfig:
    language: str | None  # None: detect per utterance
    beam_size_final: int
    beam_size_partial: int
    partial_interval_samples: int
    min_partial_samples: int
    no_speech_threshold: float
    ring_capacity_samples: int
    gap_fill_samples: int  # an audio pause at least this long is filled with silence; 0: never
    speculative_finals: bool  # decode at the first sign of a pause when the executor has nothing waiting
    tracker: TrackerConfig
    translate: bool = False  # also translate non-English finals to English (for the insights)


LANGUAGE_EVIDENCE_DECAY = 0.7  # per utterance
COMMIT_TIMEOUT_S = 5.0
NOISE_MAX_LOGPROB = -1.0


class CallSession:
    """Built by the registry with its dependencies; the listener only feeds it audio and DTMF."""

    def __init__(
        self,
        call_id: str,
        config: SessionConfig,
        batcher: AsrBatcher,
        publish: Callable[[Event], None],
        persist: Callable[[Event], None],
        insights: InsightsService | None = None,
        commit: Callable[[Event], Awaitable[None]] | None = None,
    ) -> None:
        self.call_id = call_id
        self.started_at = time.time()
        self._started_monotonic = time.monotonic()
        self._config = config
        self._batcher = batcher
        self._publish_event = publish
        self._persist = persist
        self._insights = insights
        self._commit = commit
        self._seq = 0
        self.legs: dict[str, LegAudio] = {}
        self._open_legs: set[str] = set()
        self._partial_inflight: set[str] = set()
        self._last_partial_end: dict[str, int] = {}
        self._languages: dict[str, str] = {}
        self._language_evidence: dict[str, dict[str, float]] = {}
        self._finals: set[asyncio.Task[None]] = set()
        self._speculative: dict[str, tuple[int, int, AsrJob]] = {}  # leg -> (start, end, job)
        self._drained: dict[str, asyncio.Event] = {}
        self._hangup_senders: dict[str, Callable[[], None]] = {}
        self._end_reason: EndReason = "hangup"
        self._error: str | None = None
        self.ended = asyncio.Event()
        self.final_count = 0
        self.dropped_finals = 0
        self.log = structlog.get_logger("callstream.call").bind(call_id=call_id)
        if insights is not None:
            insights.open_call(call_id, self._emit, self.elapsed_s)

    @property
    def active(self) -> bool:
        return bool(self._open_legs)

    def elapsed_s(self) -> float:
        return time.monotonic() - self._started_monotonic

    def open_leg(self, leg: str, send_hangup: Callable[[], None]) -> LegAudio:
        audio = LegAudio(leg, self._config.tracker, self._config.ring_capacity_samples)
        self.legs[leg] = audio
        self._open_legs.add(leg)
        self._drained[leg] = asyncio.Event()
        self._hangup_senders[leg] = send_hangup
        if len(self.legs) == 1:
            self._emit(CallStarted(call_id=self.call_id, started_at=self.started_at, leg=leg))
        self.log.info("leg_opened", leg=leg)
        return audio

    def feed_audio(self, leg: str, pcm: bytes, rate_hz: int) -> None:
        self.legs[leg].feed_pcm(pcm, rate_hz, self.elapsed_s())

    def fill_gaps(self) -> None:
        if self._config.gap_fill_samples <= 0:
            return
        now_s = self.elapsed_s()
        for leg in self._open_legs:
            self.legs[leg].fill_gap(now_s, self._config.gap_fill_samples / TARGET_RATE_HZ)

    def feed_dtmf(self, leg: str, digit: str) -> None:
        self._emit(Dtmf(call_id=self.call_id, digit=digit, at=round(self.elapsed_s(), 3), leg=leg), persist=True)

    def on_vad(self, leg: str, events: list[TrackerEvent]) -> None:
        audio = self.legs[leg]
        for event in events:
            if isinstance(event, UtteranceEnded):
                self._submit_final(audio, event.start_sample, event.end_sample)
            elif isinstance(event, UtterancePaused):
                self._speculate(audio, event.start_sample, event.end_sample)
            elif isinstance(event, UtteranceResumed):
                self._drop_speculation(leg)
            elif isinstance(event, UtteranceDropped):
                self.log.debug(
                    "speech_too_short",
                    leg=leg,
                    start=audio.seconds(event.start_sample),
                    end=audio.seconds(event.end_sample),
                )
                self._drop_speculation(leg)
                self._batcher.cancel_leg_partials(self._leg_key(leg))
            elif isinstance(event, UtteranceStarted):
                self._last_partial_end[leg] = event.start_sample
        self._maybe_submit_partial(audio)
        self._check_drained(leg)

    def needs_vad(self, leg: str) -> bool:
        return not self._drained[leg].is_set()

    def hangup(self) -> None:
        """Ask Asterisk to hang up every leg; the call ends when it closes the sockets."""
        self._end_reason = "server"
        for send in self._hangup_senders.values():
            send()

    def close_leg(self, leg: str, reason: EndReason, error: str | None = None) -> None:
        if reason == "error" or self._end_reason == "hangup":
            self._end_reason, self._error = reason, error or self._error
        audio = self.legs[leg]
        audio.flush()
        self._open_legs.discard(leg)
        self.log.info("leg_closed", leg=leg, reason=reason, error=error)
        self._check_drained(leg)

    async def wait_drained(self, leg: str) -> None:
        await self._drained[leg].wait()

    def _check_drained(self, leg: str) -> None:
        audio = self.legs[leg]
        drained = self._drained[leg]
        if leg in self._open_legs or drained.is_set():
            return
        if audio.vad_cursor_samples < audio.ring.end_sample:
            return  # the VAD has not heard the tail yet
        drained.set()  # before flushing: on_vad below must not come back here
        self.on_vad(leg, audio.tracker.flush())

    async def finish(self, drain_timeout_s: float) -> None:
        """After the last leg closed and its VAD tail ran: let queued finals land, then end the call."""
        self._batcher.cancel_call_partials(self.call_id)
        if self._finals:
            _, pending = await asyncio.wait(set(self._finals), timeout=drain_timeout_s)
            if pending:
                self.log.error("finals_abandoned", count=len(pending), waited_s=drain_timeout_s)
                self._batcher.cancel_call(self.call_id)  # nobody will read them: don't decode them
                for task in pending:
                    task.cancel()
        if self._insights is not None:
            await self._insights.finish_call(self.call_id, drain_timeout_s)
        duration_s = round(self.elapsed_s(), 3)
        await self._emit_committed(
            CallEnded(call_id=self.call_id, reason=self._end_reason, duration=duration_s, error=self._error)
        )
        self.log.info(
            "call_summary",
            reason=self._end_reason,
            duration_s=duration_s,
            legs=sorted(self.legs),
            final_segments=self.final_count,
            dropped_finals=self.dropped_finals,
            error=self._error,
        )
        self.ended.set()

    def _leg_key(self, leg: str) -> str:
        return f"{self.call_id}/{leg}"

    def _sequence(self, event: Event) -> None:
        self._seq += 1
        event.seq = self._seq

    def _emit(self, event: Event, persist: bool = False) -> None:
        self._sequence(event)
        self._publish_event(event)
        if persist or isinstance(event, CallStarted):
            self._persist(event)

    async def _emit_committed(self, event: Event) -> None:
        """Publish only once stored: a subscriber told the call ended can read all of it back."""
        if self._commit is None:
            self._emit(event, persist=True)
            return
        self._sequence(event)
        try:
            await asyncio.wait_for(self._commit(event), COMMIT_TIMEOUT_S)
        except Exception as exc:  # the disk stalled or failed: still tell subscribers
            self.log.error("store_commit_failed", type=type(event).__name__, error=repr(exc))
        self._publish_event(event)

    def _new_job(self, leg: str, kind: str, request: AsrRequest) -> AsrJob:
        future: asyncio.Future[AsrResult] = asyncio.get_running_loop().create_future()
        return AsrJob(self.call_id, self._leg_key(leg), kind, request, future)  # type: ignore[arg-type]

    def _final_job(self, audio: LegAudio, start: int, end: int) -> AsrJob:
        request = AsrRequest(
            audio.ring.read(start, end),
            self._config.language,
            self._config.beam_size_final,
            dict(self._language_evidence.get(audio.leg, {})),
        )
        return self._new_job(audio.leg, "final", request)

    def _speculate(self, audio: LegAudio, start: int, end: int) -> None:
        """Start the final at the first sign of a pause, but only with nothing else waiting: if the
        silence holds, the result is ready ~200 ms sooner; if speech resumes, it is thrown away."""
        if not self._config.speculative_finals or self._batcher.pending[0] > 0:
            return
        self._drop_speculation(audio.leg)
        self._batcher.cancel_leg_partials(self._leg_key(audio.leg))
        job = self._final_job(audio, start, end)
        try:
            self._batcher.submit(job)
        except QueueFull:
            return
        self._speculative[audio.leg] = (start, end, job)

    def _drop_speculation(self, leg: str) -> None:
        speculation = self._speculative.pop(leg, None)
        if speculation is not None:
            self._batcher.cancel_job(speculation[2])

    def _submit_final(self, audio: LegAudio, start: int, end: int) -> None:
        self._batcher.cancel_leg_partials(self._leg_key(audio.leg))
        speculation = self._speculative.pop(audio.leg, None)
        if speculation is not None and speculation[:2] == (start, end):
            job = speculation[2]
        else:
            if speculation is not None:
                self._batcher.cancel_job(speculation[2])
            job = self._final_job(audio, start, end)
            try:
                self._batcher.submit(job)
            except QueueFull as exc:
                self.dropped_finals += 1
                self.log.error("final_dropped", leg=audio.leg, start=audio.seconds(start), reason=str(exc))
                return
        task = asyncio.create_task(self._await_final(audio, start, end, job))
        self._finals.add(task)
        task.add_done_callback(self._finals.discard)

    async def _await_final(self, audio: LegAudio, start: int, end: int, job: AsrJob) -> None:
        try:
            result = await job.future
        except (asyncio.CancelledError, RuntimeError):
            return
        if not result.text or self._is_noise(result):
            self.log.debug(
                "final_dropped_as_noise",
                leg=audio.leg,
                no_speech_prob=round(result.no_speech_prob, 3),
                avg_logprob=round(result.avg_logprob, 3),
            )
            return
        self._languages[audio.leg] = result.language
        self._add_language_evidence(audio.leg, result, (end - start) / TARGET_RATE_HZ)
        self.final_count += 1
        segment = SegmentFinal(
            call_id=self.call_id,
            start=audio.seconds(start),
            end=audio.seconds(end),
            text=await self._mask(result.text),
            language=result.language,
            leg=audio.leg,  # type: ignore[arg-type]
        )
        self._emit(segment, persist=True)
        self.log.info(
            "segment_final",
            leg=audio.leg,
            start=segment.start,
            end=segment.end,
            asr_wait_s=round(time.monotonic() - job.submitted_at, 3),
            behind_audio_s=round(self.elapsed_s() - segment.end, 3),
            text=result.text,
        )
        if self._insights is None:
            return
        said = TranscriptSegment(segment.start, segment.end, audio.leg, result.text, result.language)
        # The NLP reads the words as said at once (a Swahili pattern alerts now) and their English
        # when the translation, one more decode, is back.
        self._insights.add_segment(self.call_id, said)
        if self._wants_translation(result):
            translation = await self._translate(audio, start, end, result, job.request.audio)
            if translation:
                self._insights.add_translation(self.call_id, said, translation)

    def _wants_translation(self, result: AsrResult) -> bool:
        return self._config.translate and self._insights is not None and result.language != "en"

    async def _translate(
        self, audio: LegAudio, start: int, end: int, result: AsrResult, samples: np.ndarray
    ) -> str | None:
        """Whisper's own translation of the utterance, for the NLP; the original words stay the transcript.
        `samples` are the final's own: the ring may have moved on by the time the final is back."""
        request = AsrRequest(samples, result.language, self._config.beam_size_final, task="translate")
        job = self._new_job(audio.leg, "final", request)
        try:
            self._batcher.submit(job)
            translated = await job.future
        except (QueueFull, asyncio.CancelledError, RuntimeError) as exc:
            self.log.warning("translation_skipped", leg=audio.leg, start=audio.seconds(start), reason=repr(exc))
            return None
        if not translated.text:
            return None
        masked = await self._mask(translated.text)
        self._emit(
            SegmentTranslated(
                call_id=self.call_id,
                start=audio.seconds(start),
                end=audio.seconds(end),
                leg=audio.leg,  # type: ignore[arg-type]
                text=masked,
                language=result.language,
            ),
            persist=True,
        )
        return translated.text

    async def _mask(self, text: str) -> str:
        return await self._insights.mask(text) if self._insights is not None else text

    def _is_noise(self, result: AsrResult) -> bool:
        # Whisper's own rule: "no speech" only counts when the decoder was also unsure of its words.
        # Hesitant telephone speech ("uh, so...") often has a high no-speech probability yet decodes well.
        return result.no_speech_prob > self._config.no_speech_threshold and result.avg_logprob < NOISE_MAX_LOGPROB

    def _add_language_evidence(self, leg: str, result: AsrResult, audio_s: float) -> None:
        # Older utterances count less, so a caller who really switches language is followed.
        decayed = {
            lang: weight * LANGUAGE_EVIDENCE_DECAY for lang, weight in self._language_evidence.get(leg, {}).items()
        }
        self._language_evidence[leg] = add_language_evidence(decayed, result.language_probs, audio_s)

    def _maybe_submit_partial(self, audio: LegAudio) -> None:
        start = audio.tracker.utterance_start
        leg = audio.leg
        if start is None or audio.tracker.paused or leg in self._partial_inflight or leg not in self._open_legs:
            return
        heard = audio.vad_cursor_samples
        if heard - start < self._config.min_partial_samples:
            return
        if heard - self._last_partial_end.get(leg, start) < self._config.partial_interval_samples:
            return
        self._last_partial_end[leg] = heard
        language = self._config.language or self._languages.get(leg)
        request = AsrRequest(audio.ring.read(start, heard), language, self._config.beam_size_partial, quality="fast")
        job = self._new_job(leg, "partial", request)
        try:
            self._batcher.submit(job)
        except QueueFull:
            return
        self._partial_inflight.add(leg)
        task = asyncio.create_task(self._await_partial(audio, start, heard, job))
        task.add_done_callback(lambda _: self._partial_inflight.discard(leg))

    async def _await_partial(self, audio: LegAudio, start: int, end: int, job: AsrJob) -> None:
        try:
            result = await job.future
        except (asyncio.CancelledError, RuntimeError):
            return
        # A partial that lost the race with its final is stale: never show it after the final.
        if audio.tracker.utterance_start != start or not result.text:
            return
        text = await self._mask(result.text)
        if audio.tracker.utterance_start != start:
            return
        self._emit(
            SegmentPartial(
                call_id=self.call_id,
                start=audio.seconds(start),
                end=audio.seconds(end),
                text=text,
                language=result.language,
                leg=audio.leg,  # type: ignore[arg-type]
            )
        )


def samples_from_ms(ms: float) -> int:
    return int(ms * TARGET_RATE_HZ / 1000)
