"""Configuration: one tree of msgspec Structs decoded from TOML; unknown keys are rejected."""

from __future__ import annotations

import os
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Literal

import msgspec


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class AudioSocketSettings(Section):
    host: str = "127.0.0.1"
    port: int = 9092  # connections here are the caller leg
    agent_port: int = 0  # when set, connections here are the agent leg of the call with the same UUID
    max_calls: int = 64
    max_payload_bytes: int = 16_384


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = 8080


class AsrSettings(Section):
    model: str = "base"  # "base", "tiny.en", a CTranslate2 model directory, or a faster-whisper hub name
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "default"  # "default": int8 on CPU, float16 on CUDA
    cpu_threads: int = 0  # 0: one per core
    language: str = "auto"  # "auto" detects per utterance; or an ISO code such as "en"
    languages: list[str] = msgspec.field(default_factory=list)  # with "auto": choose only among these
    beam_size: int = 1
    partial_beam_size: int = 1
    partial_interval_ms: int = 1_000
    min_partial_ms: int = 1_000
    # 0 = chosen for the device: see resolve_asr_tuning (CPU: 4, 2, 20 s, 10 s; GPU: 16, 16, 30 s, 30 s).
    max_batch: int = 0
    max_partial_batch: int = 0
    window_s: float = 0
    fast_window_s: float = 0
    max_pending_finals: int = 256
    no_speech_threshold: float = 0.6
    speculative_finals: bool = True
    cache_dir: str = ""  # where the default model is assembled; "" = $CALLSTREAM_CACHE_DIR or ~/.cache/callstream


class VadSettings(Section):
    threshold: float = 0.5
    negative_threshold: float = 0.35
    min_silence_ms: int = 300
    min_speech_ms: int = 250
    pre_roll_ms: int = 200
    post_roll_ms: int = 100
    max_utterance_s: float = 15.0
    tick_ms: int = 32
    gap_fill_ms: int = 200  # a pause in the audio stream this long counts as silence (DTMF); 0: off


class NlpSettings(Section):
    enabled: bool = True
    taxonomy: str = ""  # categories and risk-flag rules; "" = config/taxonomy.toml shipped with callstream
    update_interval_s: float = 2.0  # at most one insights update per call this often (alerts are not debounced)
    max_defer_s: float = 0.2  # NLP work waits up to this long while the ASR executor is decoding
    translate: bool = True  # translate non-English speech to English (Whisper) for the NLP; needs a multilingual model
    # Any of "PERSON", "PHONE", "PLACE": replaced by "[LABEL]" in every transcript and insight stored or pushed.
    mask_pii: list[Literal["PERSON", "PHONE", "PLACE"]] = msgspec.field(default_factory=list)
    max_pending: int = 10_000  # segments waiting for the NLP thread
    # The learned risk-flag scorers' threshold; 0 = the one chosen in training. Lower raises more flags.
    flag_threshold: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)] = 0.0


class RecordingSettings(Section):
    dir: str = "var/recordings"  # uploaded audio, kept until the recording is deleted
    max_upload_mb: float = 500.0
    max_duration_s: float = 4 * 3600.0
    workers: int = 1  # recordings transcribed at once, each in its own process
    worker_threads: int = 0  # CTranslate2 threads per worker; 0 = one per core
    worker_nice: int = 19  # workers run at this CPU priority, so live calls always come first
    yield_to_live: bool = True  # pause the workers (SIGSTOP) while the live ASR executor has work
    beam_size: int = 1
    translate: bool = True  # also translate non-English speech to English for the insights
    max_attempts: int = 2  # a job whose worker died this many times is failed, not retried
    # POST /v1/recording-done fetches recording_url only from these hosts (exact names); empty: disabled.
    webhook_allowed_hosts: list[str] = msgspec.field(default_factory=list)
    webhook_timeout_s: float = 120.0
    spool_dir: str = ""  # when set, finished recordings dropped here are queued (the file name is the call id)
    spool_poll_s: float = 5.0


class StoreSettings(Section):
    path: str = "var/callstream.db"


class EventSettings(Section):
    max_queued_per_subscriber: int = 1_000
    recent_calls: int = 100


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


class Settings(Section):
    audiosocket: AudioSocketSettings = msgspec.field(default_factory=AudioSocketSettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    asr: AsrSettings = msgspec.field(default_factory=AsrSettings)
    vad: VadSettings = msgspec.field(default_factory=VadSettings)
    nlp: NlpSettings = msgspec.field(default_factory=NlpSettings)
    recordings: RecordingSettings = msgspec.field(default_factory=RecordingSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    events: EventSettings = msgspec.field(default_factory=EventSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    shutdown_timeout_s: float = 10.0


class SettingsError(ValueError):
    pass


ENV_PREFIX = "CALLSTREAM_"


def _apply_env(tree: dict[str, object], environ: dict[str, str]) -> None:
    """CALLSTREAM_<SECTION>_<KEY>=value overrides one key (for secrets and per-host tweaks)."""
    for section, section_type in typing.get_type_hints(Settings).items():
        for key in getattr(section_type, "__struct_fields__", ()):
            value = environ.get(f"{ENV_PREFIX}{section}_{key}".upper())
            if value is not None:
                tree.setdefault(section, {})[key] = _env_value(value)  # type: ignore[index, union-attr]


def _env_value(text: str) -> object:
    """A TOML value when it parses as one (numbers, ["en", "sw"]), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    tree: dict[str, object] = {}
    if path is not None:
        try:
            tree = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SettingsError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    _apply_env(tree, dict(os.environ if environ is None else environ))
    try:
        return msgspec.convert(tree, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{path or 'environment'}: {exc}") from None
