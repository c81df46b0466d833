"""Tier 1: ring buffer and resampling on arrays."""

import numpy as np

from callstream.audio.resample import StreamResampler
from callstream.audio.ringbuffer import RingBuffer


def test_ring_buffer_reads_by_absolute_index_across_wraparound():
    ring = RingBuffer(10)
    ring.write(np.arange(7, dtype=np.float32))
    ring.write(np.arange(7, 15, dtype=np.float32))
    assert ring.start_sample == 5 and ring.end_sample == 15
    np.testing.assert_array_equal(ring.read(8, 13), np.arange(8, 13))
    np.testing.assert_array_equal(ring.read(0, 7), np.arange(5, 7))  # older audio is gone
    assert len(ring.read(15, 20)) == 0


def test_ring_buffer_write_longer_than_capacity_keeps_the_newest():
    ring = RingBuffer(4)
    ring.write(np.arange(10, dtype=np.float32))
    np.testing.assert_array_equal(ring.read(0, 10), [6, 7, 8, 9])


def test_streaming_resampler_keeps_length_and_tone():
    tone = (np.sin(2 * np.pi * 440 * np.arange(8000) / 8000) * 12000).astype("<i2")
    resampler = StreamResampler(8000)
    out = np.concatenate(
        [resampler.feed(tone[i : i + 160].tobytes()) for i in range(0, 8000, 160)] + [resampler.flush()]
    )
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz per bin over one second


def test_16k_passes_through():
    pcm = (np.arange(320, dtype="<i2") * 10).tobytes()
    np.testing.assert_allclose(StreamResampler(16000).feed(pcm), np.arange(320) * 10 / 32768)


def test_telephone_legs_are_judged_by_the_vad_at_8k():
    from callstream.calls.leg import LegAudio
    from callstream.vad.tracker import TrackerConfig

    tone = (np.sin(2 * np.pi * 300 * np.arange(1600) / 8000) * 8000).astype("<i2").tobytes()
    narrow, wide = LegAudio("caller", TrackerConfig(), 16000), LegAudio("caller", TrackerConfig(), 16000)
    narrow.feed_pcm(tone, 8000, now_s=0.2)
    wide.feed_pcm(tone + tone, 16000, now_s=0.2)
    assert narrow.vad_state.rate_hz == 8000 and wide.vad_state.rate_hz == 16000
    # The same 32 ms steps, counted in 16 kHz samples, arrive as 256 samples at 8 kHz and 512 at 16 kHz.
    assert narrow.pending_vad_chunks().shape[1] == 256
    assert wide.pending_vad_chunks().shape[1] == 512
