"""Prometheus text exposition of the pipeline's counters and gauges."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callstream.app import Pipeline


def render(pipeline: Pipeline) -> str:
    asr = pipeline.batcher.stats
    pending_finals, pending_partials = pipeline.batcher.pending
    samples = [
        ("callstream_calls_active", "gauge", "Calls with at least one open leg.", len(pipeline.registry.sessions)),
        ("callstream_subscribers", "gauge", "Open event subscriptions.", pipeline.bus.subscriber_count),
        ("callstream_asr_pending_finals", "gauge", "Final utterances waiting for ASR.", pending_finals),
        ("callstream_asr_pending_partials", "gauge", "Partial requests waiting for ASR.", pending_partials),
        ("callstream_asr_batches_total", "counter", "ASR batches run.", asr.batches),
        ("callstream_asr_items_total", "counter", "Utterances transcribed.", asr.items),
        ("callstream_asr_busy_seconds_total", "counter", "Time the ASR thread spent decoding.", asr.busy_s),
        (
            "callstream_asr_partials_superseded_total",
            "counter",
            "Partials replaced by newer ones.",
            asr.partials_superseded,
        ),
        ("callstream_asr_failed_total", "counter", "Utterances whose transcription failed.", asr.failed),
        ("callstream_asr_final_load", "gauge", "Share of the last 10 s the executor spent on finals.", asr.final_load),
        (
            "callstream_asr_fast_finals_total",
            "counter",
            "Finals decoded with the fast setting under load.",
            asr.fast_items,
        ),
        ("callstream_vad_busy_seconds_total", "counter", "Time spent in batched VAD runs.", pipeline.vad.busy_s),
        ("callstream_store_dropped_total", "counter", "Records the store could not queue.", pipeline.store.dropped),
    ]
    if pipeline.insights is not None:
        nlp = pipeline.insights.stats
        samples += [
            (
                "callstream_nlp_pending",
                "gauge",
                "Segments, late translations and call ends waiting for the NLP thread.",
                pipeline.insights.pending,
            ),
            ("callstream_nlp_segments_total", "counter", "Final segments analysed.", nlp.segments),
            ("callstream_nlp_updates_total", "counter", "Insights updates pushed.", nlp.updates),
            ("callstream_nlp_alerts_total", "counter", "Risk alerts raised.", nlp.alerts),
            ("callstream_nlp_dropped_total", "counter", "NLP work dropped on a full queue.", nlp.dropped),
            ("callstream_nlp_busy_seconds_total", "counter", "Time the NLP thread spent working.", nlp.busy_s),
        ]
    if pipeline.recordings is not None:
        runner = pipeline.recordings.runner
        samples += [
            ("callstream_recordings_running", "gauge", "Recordings being analysed.", runner.running_jobs),
            ("callstream_recordings_paused", "gauge", "1 while uploads yield to live calls.", int(runner.paused)),
            ("callstream_recordings_paused_seconds_total", "counter", "Time post-call work yielded.", runner.paused_s),
            ("callstream_recordings_completed_total", "counter", "Recordings analysed.", runner.completed),
            ("callstream_recordings_failed_total", "counter", "Recordings that failed.", runner.failed),
        ]
    lines = []
    for name, kind, help_text, value in samples:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return "\n".join(lines) + "\n"
