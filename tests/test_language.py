"""Tier 1: how a final's language is chosen from detection, earlier utterances and the allowed set."""

from callstream.asr.whisper import choose_language, top_candidates


def test_a_short_ambiguous_utterance_does_not_flip_the_call():
    prior = {"sw": 6.0}  # two earlier utterances, clearly Swahili
    assert choose_language({"pt": 0.4, "sw": 0.3}, audio_s=2.0, prior=prior) == "sw"


def test_strong_long_evidence_switches_language():
    assert choose_language({"en": 0.95, "sw": 0.03}, audio_s=8.0, prior={"sw": 3.0}) == "en"


def test_allowed_languages_filter_detection():
    detected = [("<|pt|>", 0.3), ("<|sw|>", 0.19), ("<|es|>", 0.12), ("<|en|>", 0.05)]
    assert top_candidates(detected, frozenset({"en", "sw"})) == {"sw": 0.19, "en": 0.05}
    assert list(top_candidates(detected, frozenset())) == ["pt", "sw", "es", "en"]
