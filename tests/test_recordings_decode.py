"""Decoding uploads by content: real speech encoded in the test into every format a recording arrives in."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from audio_files import clip_pcm, encode, gsm_bytes, wav_bytes
from callstream.recordings import AudioDecodeError, decode_audio, inspect_audio
from callstream.recordings.decode import _Accumulator

CLIP = "en_pslibrivox_0870"  # 7.1 s of read English


@pytest.fixture(scope="module")
def pcm16() -> np.ndarray:
    return clip_pcm(CLIP)


@pytest.fixture(scope="module")
def pcm8() -> np.ndarray:
    return clip_pcm(CLIP, 8_000)


@pytest.fixture(scope="module")
def formats(pcm16: np.ndarray, pcm8: np.ndarray) -> dict[str, tuple[bytes, int, str]]:
    """name -> (file bytes, source rate, container FFmpeg should recognise)."""
    return {
        "wav16": (wav_bytes(pcm16, 16_000), 16_000, "wav"),
        "wav8": (wav_bytes(pcm8, 8_000), 8_000, "wav"),
        "mp3": (encode(pcm16, 16_000, "mp3", "libmp3lame"), 16_000, "mp3"),
        "opus": (encode(pcm16, 16_000, "ogg", "libopus", out_rate_hz=48_000), 48_000, "ogg"),
        "vorbis": (encode(pcm16, 16_000, "ogg", "vorbis", 44_100, layout="stereo"), 44_100, "ogg"),
        "flac": (encode(pcm16, 16_000, "flac", "flac"), 16_000, "flac"),
        "wav49": (gsm_bytes(pcm8, "WAV"), 8_000, "wav"),
        "gsm": (gsm_bytes(pcm8, "RAW"), 8_000, "gsm"),
    }


@pytest.mark.parametrize("name", ["wav16", "wav8", "mp3", "opus", "vorbis", "flac", "wav49", "gsm"])
def test_each_format_decodes_to_16k_with_the_right_duration(
    name: str, formats: dict[str, tuple[bytes, int, str]], pcm16: np.ndarray, tmp_path: Path
) -> None:
    data, rate, container = formats[name]
    # The file name lies on purpose: formats are recognised by content.
    path = tmp_path / "upload.txt"
    path.write_bytes(data)
    for source in (data, path):
        decoded = decode_audio(source, max_duration_s=60)
        expected_s = len(pcm16) / 16_000
        assert decoded.container == container
        assert decoded.source_rate_hz == rate
        assert decoded.source_channels == len(decoded.channels) == (2 if name == "vorbis" else 1)
        samples = decoded.channels[0]
        assert samples.dtype == np.float32
        # Codec frames pad the end (MP3, GSM: up to ~50 ms), never more.
        assert abs(decoded.duration_s - expected_s) < 0.08, decoded
        assert abs(len(samples) / 16_000 - decoded.duration_s) < 0.01
        assert 0.02 < float(np.sqrt(np.mean(samples**2))) < 0.5  # real signal, sensibly scaled
    assert name != "wav49" or decoded.codec == "gsm_ms"


def test_lossy_decode_stays_close_to_the_original(pcm16: np.ndarray) -> None:
    original = pcm16.astype(np.float32) / 32768
    decoded = decode_audio(encode(pcm16, 16_000, "flac", "flac"), max_duration_s=60).channels[0]
    np.testing.assert_allclose(decoded, original, atol=1e-4)  # FLAC is lossless, soxr untouched at 16 kHz
    resampled = decode_audio(wav_bytes(pcm16[::2], 8_000), max_duration_s=60).channels[0]
    assert len(resampled) == len(pcm16[::2]) * 2


def test_stereo_keeps_channels_apart(pcm16: np.ndarray) -> None:
    stereo = np.stack([pcm16, np.zeros_like(pcm16)])
    decoded = decode_audio(wav_bytes(stereo, 16_000), max_duration_s=60)
    assert decoded.source_channels == 2 and len(decoded.channels) == 2
    left, right = decoded.channels
    assert np.abs(left).max() > 0.1
    assert np.abs(right).max() == 0.0


def test_more_channels_than_supported(pcm16: np.ndarray) -> None:
    three = np.stack([pcm16] * 3)
    with pytest.raises(AudioDecodeError, match="3 channels; at most 2"):
        decode_audio(wav_bytes(three, 16_000), max_duration_s=60)
    assert len(decode_audio(wav_bytes(three, 16_000), max_duration_s=60, max_channels=3).channels) == 3


def test_empty_input(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio(b"", max_duration_s=60)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio(tmp_path / "empty.wav", max_duration_s=60)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="cannot read"):
        decode_audio(tmp_path / "nope.wav", max_duration_s=60)


def test_random_bytes_are_not_audio() -> None:
    noise = np.random.default_rng(7).integers(0, 256, 64_000, dtype=np.uint8).tobytes()
    with pytest.raises(AudioDecodeError, match="not a recognised audio file"):
        decode_audio(noise, max_duration_s=60)


def test_text_file_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    path.write_text("RIFF? no. This is a meeting note, not a recording.\n" * 50)
    with pytest.raises(AudioDecodeError, match="not a recognised audio file"):
        decode_audio(path, max_duration_s=60)


def test_truncated_inside_the_header(pcm16: np.ndarray) -> None:
    for data in (wav_bytes(pcm16, 16_000)[:30], encode(pcm16, 16_000, "ogg", "libopus", 48_000)[:20]):
        with pytest.raises(AudioDecodeError):
            decode_audio(data, max_duration_s=60)


def test_truncated_in_the_audio_keeps_what_is_there(pcm16: np.ndarray) -> None:
    for data in (wav_bytes(pcm16, 16_000), encode(pcm16, 16_000, "mp3", "libmp3lame")):
        decoded = decode_audio(data[: len(data) // 2], max_duration_s=60)
        assert 0.4 < decoded.duration_s / (len(pcm16) / 16_000) < 0.6


def test_too_long_by_header(pcm16: np.ndarray) -> None:
    data = wav_bytes(pcm16, 16_000)
    assert inspect_audio(data, max_duration_s=60).duration_s == pytest.approx(len(pcm16) / 16_000)
    with pytest.raises(AudioDecodeError, match="longer than the limit of 3 s"):
        decode_audio(data, max_duration_s=3)


def test_too_long_with_unknown_length_in_the_header(pcm16: np.ndarray) -> None:
    # Streaming recorders write 0xFFFFFFFF as the RIFF and data sizes; raw GSM has no header at all.
    data = bytearray(wav_bytes(pcm16, 16_000))
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)
    with pytest.raises(AudioDecodeError, match="longer than the limit"):
        decode_audio(bytes(data), max_duration_s=3)
    with pytest.raises(AudioDecodeError, match="longer than the limit"):
        decode_audio(gsm_bytes(clip_pcm(CLIP, 8_000), "RAW"), max_duration_s=3)


def test_the_limit_holds_while_decoding_when_a_header_lies() -> None:
    # The header check cannot see a file that claims less than it holds; the running count can.
    acc = _Accumulator(8_000, 1, max_duration_s=2)
    acc.add(np.zeros(8_000 * 3, dtype=np.float32))  # within the 1 s slack
    with pytest.raises(AudioDecodeError, match="longer than the limit"):
        acc.add(np.zeros(8_000, dtype=np.float32))
