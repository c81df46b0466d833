"""Encode real speech clips into the formats uploads arrive in, with PyAV (and libsndfile for GSM)."""

from __future__ import annotations

import io
import wave

import av
import numpy as np

from callstream.evaluation.speech import load_manifest

CLIPS = {c.id: c for c in load_manifest()}


def clip_pcm(clip_id: str, rate_hz: int = 16_000) -> np.ndarray:
    clip = CLIPS[clip_id]
    with wave.open(str(clip.path_16k if rate_hz == 16_000 else clip.path_8k), "rb") as w:
        assert w.getframerate() == rate_hz and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def wav_bytes(pcm: np.ndarray, rate_hz: int) -> bytes:
    """pcm: int16, shape (samples,) or (channels, samples)."""
    planes = pcm.reshape(1, -1) if pcm.ndim == 1 else pcm
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(planes.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(planes.T.astype("<i2").tobytes())
    return buf.getvalue()


def encode(
    pcm: np.ndarray, rate_hz: int, container: str, codec: str, out_rate_hz: int | None = None, layout: str = "mono"
) -> bytes:
    """Mono int16 PCM through an FFmpeg encoder into a container, all in memory (copied to both sides
    for layout="stereo": FFmpeg's own Vorbis encoder only writes stereo)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=out_rate_hz or rate_hz, layout=layout, options={"strict": "experimental"})
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=out_rate_hz or rate_hz)
        frame_samples = 960
        for start in range(0, len(pcm), frame_samples):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + frame_samples], format="s16", layout="mono")
            frame.sample_rate = rate_hz
            for resampled in resampler.resample(frame):
                out.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))
    return buf.getvalue()


def gsm_bytes(pcm_8k: np.ndarray, container: str) -> bytes:
    """GSM 06.10: "WAV" gives WAV49 (format tag 0x31, as Asterisk writes it), "RAW" a bare .gsm stream.

    FFmpeg has no GSM encoder; libsndfile (the soundfile package) has one.
    """
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, pcm_8k, 8_000, format=container, subtype="GSM610")
    return buf.getvalue()
