from pathlib import Path

import pytest

from callstream import models, settings

REPO = Path(__file__).resolve().parents[1]


def test_documented_default_config_equals_built_in_defaults():
    assert settings.load(REPO / "config" / "callstream.toml", environ={}) == settings.Settings()


def test_unknown_key_is_rejected_with_its_path(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[asr]\nmodle = "base"\n')
    with pytest.raises(settings.SettingsError, match=r"unknown field `modle`.*\$\.asr"):
        settings.load(path, environ={})


def test_environment_overrides_a_key():
    loaded = settings.load(
        None,
        environ={
            "CALLSTREAM_HTTP_PORT": "9000",
            "CALLSTREAM_ASR_LANGUAGE": "sw",
            "CALLSTREAM_ASR_LANGUAGES": '["sw","en"]',
        },
    )
    assert loaded.http.port == 9000 and loaded.asr.language == "sw" and loaded.asr.languages == ["sw", "en"]


def test_a_flag_threshold_outside_0_to_1_is_refused():
    assert settings.load(None, environ={"CALLSTREAM_NLP_FLAG_THRESHOLD": "0.63"}).nlp.flag_threshold == 0.63
    with pytest.raises(settings.SettingsError, match=r"flag_threshold"):
        settings.load(None, environ={"CALLSTREAM_NLP_FLAG_THRESHOLD": "1.5"})


def test_missing_model_directory_is_one_clear_error(tmp_path):
    with pytest.raises(models.ModelError, match=r"has no model\.bin"):
        models.resolve_whisper(str(tmp_path))
    with pytest.raises(models.ModelError, match="does not exist"):
        models.resolve_whisper("/nonexistent/whisper")


def test_base_model_is_assembled_once_and_verified(tmp_path):
    path = Path(models.assemble_whisper_base(tmp_path))
    assert (path / "model.bin").stat().st_size == 2 * 72608766
    (path / "model.bin.sha256").write_text("stale\n")  # a stale stamp forces a verified re-join
    assert models.assemble_whisper_base(tmp_path) == path
    assert (path / "model.bin.sha256").read_text().strip() == models.WHISPER_BASE_SHA256
