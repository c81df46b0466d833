"""Tier 1: the per-leg VAD state machine on probability sequences."""

from callstream.vad.model import CHUNK_SAMPLES
from callstream.vad.tracker import (
    TrackerConfig,
    UtteranceDropped,
    UtteranceEnded,
    UtterancePaused,
    UtteranceResumed,
    UtteranceStarted,
    VadTracker,
)

CONFIG = TrackerConfig(
    min_silence_samples=4 * CHUNK_SAMPLES,
    min_speech_samples=3 * CHUNK_SAMPLES,
    pre_roll_samples=CHUNK_SAMPLES,
    post_roll_samples=0,
    max_utterance_samples=40 * CHUNK_SAMPLES,
)
# Pauses are announced after the 2-chunk post-roll; 6 chunks of silence end the utterance.
PAUSE_CONFIG = TrackerConfig(
    min_silence_samples=6 * CHUNK_SAMPLES,
    min_speech_samples=CHUNK_SAMPLES,
    pre_roll_samples=0,
    post_roll_samples=2 * CHUNK_SAMPLES,
)


def run(probabilities, config=CONFIG, with_pauses=False):
    tracker = VadTracker(config)
    events = [e for p in probabilities for e in tracker.feed(p)] + tracker.flush()
    if with_pauses:
        return events
    return [e for e in events if not isinstance(e, UtterancePaused | UtteranceResumed)]


def test_utterance_with_hangover_and_pre_roll():
    events = run([0.0] * 5 + [0.9] * 10 + [0.1] * 6)
    assert events == [UtteranceStarted(4 * CHUNK_SAMPLES), UtteranceEnded(4 * CHUNK_SAMPLES, 15 * CHUNK_SAMPLES, False)]


def test_hysteresis_keeps_speech_through_a_dip():
    events = run([0.9] * 5 + [0.4] * 6 + [0.9] * 3 + [0.0] * 5)
    assert [type(e) for e in events] == [UtteranceStarted, UtteranceEnded]


def test_short_burst_is_dropped():
    assert [type(e) for e in run([0.9] * 2 + [0.0] * 5)] == [UtteranceStarted, UtteranceDropped]


def test_long_speech_is_cut_at_the_maximum_and_continues():
    events = run([0.9] * 100 + [0.0] * 5)
    ended = [e for e in events if isinstance(e, UtteranceEnded)]
    assert [e.forced for e in ended] == [True, True, False]
    assert all(e.end_sample - e.start_sample <= CONFIG.max_utterance_samples for e in ended)
    assert ended[1].start_sample == ended[0].end_sample  # no audio lost between pieces


def test_flush_closes_open_speech():
    events = run([0.9] * 8)
    assert isinstance(events[-1], UtteranceEnded) and events[-1].end_sample == 8 * CHUNK_SAMPLES


def test_pause_announces_the_end_an_uninterrupted_silence_confirms():
    events = run([0.9] * 5 + [0.0] * 8, PAUSE_CONFIG, with_pauses=True)
    paused, ended = events[1], events[2]
    assert isinstance(paused, UtterancePaused) and isinstance(ended, UtteranceEnded)
    assert (paused.start_sample, paused.end_sample) == (ended.start_sample, ended.end_sample) == (0, 7 * CHUNK_SAMPLES)


def test_speech_after_a_pause_resumes_the_utterance():
    events = run([0.9] * 5 + [0.0] * 3 + [0.9] * 2 + [0.0] * 8, PAUSE_CONFIG, with_pauses=True)
    kinds = [type(e) for e in events]
    assert kinds == [UtteranceStarted, UtterancePaused, UtteranceResumed, UtterancePaused, UtteranceEnded]
    assert events[3].end_sample == events[4].end_sample == 12 * CHUNK_SAMPLES
