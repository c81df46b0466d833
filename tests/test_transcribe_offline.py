"""The post-call pipeline on real speech: formats, stereo legs, progress and cancel, translation, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audio_files import CLIPS, clip_pcm, encode, gsm_bytes, wav_bytes
from callstream import cli
from callstream.evaluation.wer import corpus_wer
from callstream.recordings import decode_audio
from callstream.recordings.transcribe import OfflineTranscriber, TranscriptionCancelled

FIRST, SECOND = "en_pslibrivox_0870", "en_ls_61-70968-0000"  # 7.1 s and 4.9 s, different speakers
GAP_S = 1.5


def _words(clip_id: str) -> str:
    return CLIPS[clip_id].transcript


def _two_clips(rate_hz: int) -> np.ndarray:
    """FIRST, a pause, SECOND: a 13.5 s mono recording with a sentence break VAD must find."""
    gap = np.zeros(int(GAP_S * rate_hz), dtype=np.int16)
    return np.concatenate([clip_pcm(FIRST, rate_hz), gap, clip_pcm(SECOND, rate_hz)])


@pytest.fixture(scope="module")
def tiny() -> OfflineTranscriber:
    return OfflineTranscriber.load("tiny.en")


@pytest.mark.parametrize("name", ["wav8", "mp3", "opus", "wav49"])
def test_formats_transcribe_with_a_sane_wer(name: str, tiny: OfflineTranscriber) -> None:
    data = {
        "wav8": lambda: wav_bytes(_two_clips(8_000), 8_000),
        "mp3": lambda: encode(_two_clips(16_000), 16_000, "mp3", "libmp3lame"),
        "opus": lambda: encode(_two_clips(16_000), 16_000, "ogg", "libopus", 48_000),
        "wav49": lambda: gsm_bytes(_two_clips(8_000), "WAV"),
    }[name]()
    audio = decode_audio(data, max_duration_s=60)
    result = tiny.transcribe(audio)
    reference = f"{_words(FIRST)} {_words(SECOND)}"
    hypothesis = " ".join(s.text for s in result.segments)
    assert corpus_wer([(reference, hypothesis)]) < 0.25, hypothesis
    assert result.language == "en"
    assert all(s.leg == "caller" for s in result.segments)
    starts = [s.start_s for s in result.segments]
    assert starts == sorted(starts)
    assert all(0 <= s.start_s <= s.end_s <= audio.duration_s + 0.05 for s in result.segments)
    # The second sentence begins after the pause: some segment must start in it, near it.
    second_start = len(clip_pcm(FIRST)) / 16_000 + GAP_S
    assert any(abs(s.start_s - second_start) < 1.0 for s in result.segments), result.segments


def test_stereo_legs_are_labelled_and_not_mixed(tiny: OfflineTranscriber) -> None:
    first, second = clip_pcm(FIRST), clip_pcm(SECOND)
    n = len(first) + len(second) + 16_000
    left, right = np.zeros(n, np.int16), np.zeros(n, np.int16)
    left[: len(first)] = first
    right[len(first) + 16_000 :] = second  # the agent answers after the caller
    audio = decode_audio(wav_bytes(np.stack([left, right]), 16_000), max_duration_s=60)
    result = tiny.transcribe(audio)
    caller = " ".join(s.text for s in result.segments if s.leg == "caller")
    agent = " ".join(s.text for s in result.segments if s.leg == "agent")
    assert corpus_wer([(_words(FIRST), caller)]) < 0.2, caller
    assert corpus_wer([(_words(SECOND), agent)]) < 0.2, agent
    assert corpus_wer([(_words(SECOND), caller)]) > 0.8  # nothing of the agent in the caller's leg
    assert min(s.start_s for s in result.segments if s.leg == "agent") > len(first) / 16_000
    assert result.segments[0].leg == "caller"
    swapped = tiny.transcribe(audio, channel_legs={0: "agent", 1: "caller"})
    assert " ".join(s.text for s in swapped.segments if s.leg == "agent") == caller


def test_progress_and_cancel(tiny: OfflineTranscriber) -> None:
    audio = decode_audio(wav_bytes(_two_clips(16_000), 16_000), max_duration_s=60)
    seen: list[float] = []
    tiny.transcribe(audio, progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen)
    with pytest.raises(TranscriptionCancelled):
        tiny.transcribe(audio, should_stop=lambda: True)


def test_silence_gives_no_segments(tiny: OfflineTranscriber) -> None:
    audio = decode_audio(wav_bytes(np.zeros(16_000 * 5, np.int16), 16_000), max_duration_s=60)
    result = tiny.transcribe(audio)
    assert result.segments == [] and result.duration_s == 5.0


def test_base_detects_german_and_translates() -> None:
    base = OfflineTranscriber.load("base")
    audio = decode_audio(CLIPS["de_leopard_test_de"].path_16k, max_duration_s=60)
    result = base.transcribe(audio, translate=True)
    assert result.language == "de"
    assert (
        corpus_wer([(_words("de_leopard_test_de"), " ".join(s.text for s in result.segments))]) < 0.5
    )  # base is weak in German
    translation = " ".join(s.translation or "" for s in result.segments).lower()
    assert "portal" in translation or "morgue" in translation or "room" in translation, result.segments
    hinted = base.transcribe(audio, language="de")
    assert hinted.language == "de" and all(s.translation is None for s in hinted.segments)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "call.mp3"
    path.write_bytes(encode(_two_clips(16_000), 16_000, "mp3", "libmp3lame"))
    return path


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt"])
def test_cli_formats(fmt: str, recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["transcribe", str(recording), "--model", "tiny.en", "--format", fmt]) == 0
    out = capsys.readouterr().out
    reference = f"{_words(FIRST)} {_words(SECOND)}"
    if fmt == "json":
        doc = json.loads(out)
        assert set(doc) == {"file", "duration_s", "language", "segments", "insights"}
        assert doc["insights"]["categories"] and doc["insights"]["priority"] in (1, 2, 3)
        assert doc["file"] == str(recording) and doc["language"] == "en"
        assert abs(doc["duration_s"] - 13.5) < 0.1
        assert all(set(s) == {"start", "end", "text", "leg"} for s in doc["segments"])
        assert corpus_wer([(reference, " ".join(s["text"] for s in doc["segments"]))]) < 0.25
    elif fmt == "text":
        assert corpus_wer([(reference, out)]) < 0.25
    elif fmt == "srt":
        assert out.startswith("1\n00:00:0") and " --> " in out and "," in out.splitlines()[1]
    else:
        assert out.startswith("WEBVTT\n\n00:00:0") and "." in out.splitlines()[2]


def test_cli_bad_file_fails_alone(recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio\n")
    out_dir = tmp_path / "out"
    code = cli.main(["transcribe", str(bad), str(recording), "--model", "tiny.en", "--output-dir", str(out_dir)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.wav" in err[0] and "not a recognised audio file" in err[0]
    assert json.loads((out_dir / "call.json").read_text())["segments"]
    assert not (out_dir / "notes.json").exists()
