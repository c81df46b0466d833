"""The learned flag and category scorers: the numpy training maths, the shipped weights, and that
the live engine features a call exactly as training does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callstream.evaluation import training
from callstream.evaluation.insights import DATA_DIR, analyse, check_call, load_calls
from callstream.nlp import learned, taxonomy
from callstream.nlp.embedder import SentenceEmbedder
from callstream.nlp.engine import CallText, InsightsEngine, TranscriptSegment
from callstream.nlp.taxonomy import RISK_FLAG_IDS


def test_hashed_ngrams_are_stable_and_unit_length() -> None:
    a = learned.hashed_ngrams("Baba ananipiga kila siku.")
    assert a == learned.hashed_ngrams("baba ANANIPIGA kila siku")  # case and punctuation do not matter
    assert abs(sum(v * v for v in a.values()) - 1.0) < 1e-6
    assert all(0 <= k < learned.HASH_SIZE for k in a)
    # Swahili forms of one verb share character n-grams.
    shared = set(learned.hashed_ngrams("ananipiga")) & set(learned.hashed_ngrams("alinipiga"))
    assert len(shared) >= 3
    assert learned.hashed_ngrams("") == {}


def test_sentence_features_add_the_clauses_beside_the_ngrams() -> None:
    text = "He beat me."
    plain = learned.sentence_features(text, [])
    assert plain == learned.hashed_ngrams(text)
    beaten = learned.sentence_features(text, ["beat|s=they|o=caller", "beat|t=past"])
    threatened = learned.sentence_features(text, ["beat|s=they|o=caller", "beat|t=future"])
    assert beaten != threatened  # the same words, read as different clauses
    clause_length = np.sqrt(sum((beaten.get(k, 0.0) - plain.get(k, 0.0)) ** 2 for k in set(beaten) | set(plain)))
    assert abs(clause_length - learned.CLAUSE_WEIGHT) < 1e-6


def test_sparse_design_matches_dense_maths() -> None:
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(5, 3)).astype(np.float32)
    hashed = [{1: 0.5, 7: 0.5}, {}, {learned.HASH_SIZE - 1: 1.0}, {1: 1.0}, {3: 0.2, 4: 0.4}]
    design = training.Design(dense, hashed)
    full = np.zeros((5, 3 + learned.HASH_SIZE), dtype=np.float32)
    full[:, :3] = dense
    for i, row in enumerate(hashed):
        for k, v in row.items():
            full[i, 3 + k] = v
    w = rng.normal(size=(3 + learned.HASH_SIZE, 2)).astype(np.float32)
    g = rng.normal(size=(5, 2)).astype(np.float32)
    np.testing.assert_allclose(design.dot(w), full @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(design.tdot(g), full.T @ g, rtol=1e-5, atol=1e-5)


def test_logistic_regression_learns_a_separable_rule() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    y = (x[:, :1] + 0.5 * x[:, 1:2] > 0.3).astype(np.float32)
    w, b = training.fit_logistic(training.Design(x, [{}] * len(x)), y, np.ones_like(y), l2=1e-4, steps=300)
    predicted = (training.Design(x, [{}] * len(x)).dot(w) + b) > 0
    assert np.mean(predicted == (y > 0.5)) > 0.97


def test_shipped_model_fits_the_taxonomy_and_never_saw_the_held_out_sets() -> None:
    model = learned.load()
    tax = taxonomy.load()
    assert model.flags.flag_ids == RISK_FLAG_IDS
    assert set(model.categories.category_ids) == {c.id for c in tax.categories}
    assert 0.05 <= model.flags.threshold <= 0.95
    for name in training.HELD_OUT_SETS:
        assert name not in model.trained_on.split(": ", 1)[1].split(", ")
    assert model.flags.sentence_weights.shape == (2 * 384 + learned.HASH_SIZE, len(RISK_FLAG_IDS))


@pytest.fixture(scope="module")
def engine() -> InsightsEngine:
    return InsightsEngine.load()


def test_live_engine_scores_a_call_as_training_does(engine: InsightsEngine) -> None:
    """The threshold was chosen on training's view of each call; the engine must see the same."""
    model = learned.load()
    calls = load_calls(DATA_DIR / "insights_train1.jsonl")[:4]
    embedder = SentenceEmbedder()
    for call in calls:
        features = training.featurise(call, "train1", embedder, engine.clauses)
        offline = training.live_flag_scores(
            [features],
            model.flags.sentence_weights,
            model.flags.sentence_bias,
            model.flags.call_weights,
            model.flags.call_bias,
        )[0]
        state = CallText()
        live = np.zeros(len(RISK_FLAG_IDS), dtype=np.float32)
        for i, turn in enumerate(call.turns):
            engine.add_segment(state, TranscriptSegment(i * 6.0, i * 6.0 + 5, turn.leg, turn.text, "en"))
            if state.learned_scores is not None:
                live = np.maximum(live, state.learned_scores.flag_scores(model.flags))
        np.testing.assert_allclose(live, offline, atol=2e-3)


def test_edited_taxonomy_falls_back_to_embeddings_for_categories(tmp_path: Path) -> None:
    text = taxonomy.DEFAULT_PATH.read_text().replace('id = "nutrition"', 'id = "food"', 1)
    path = tmp_path / "taxonomy.toml"
    path.write_text(text)
    edited = InsightsEngine.load(path)
    call = load_calls(DATA_DIR / "insights_train1.jsonl")[0]
    snapshot = analyse(edited, call)
    assert {c.id for c in snapshot.categories} == {c.id for c in taxonomy.load(path).categories}


def test_a_configured_flag_threshold_replaces_the_trained_one(engine: InsightsEngine) -> None:
    said = TranscriptSegment(0.0, 4.0, "caller", "Hello, I wanted to ask about the school holidays.", "en")
    assert engine.add_segment(CallText(), said) == []
    eager = InsightsEngine.load(flag_threshold=1e-6)  # every learned score reaches it
    assert {flag.id for flag in eager.add_segment(CallText(), said)} == set(RISK_FLAG_IDS)


def test_labelled_sets_follow_the_labelling_rules() -> None:
    """Every labelled call names known ids, and its entities and evidence are words of the call."""
    tax = taxonomy.load()
    paths = sorted(DATA_DIR.glob("insights_*.jsonl"))
    assert {p.stem.removeprefix("insights_") for p in paths} >= {*training.TRAINING_SETS, *training.HELD_OUT_SETS}
    for path in paths:
        for call in load_calls(path):
            assert check_call(call, tax) == [], (path.name, call.id)


def test_sentence_a_learned_flag_cites_is_marked_for_the_summary(engine: InsightsEngine) -> None:
    # A call whose "they go down the pits, they carry the ore" matches no pattern: the learned
    # scorer raises child_labour on it.
    call = load_calls(DATA_DIR / "insights_train5.jsonl")[6]
    state = CallText()
    raised = []
    for i, turn in enumerate(call.turns):
        raised += engine.add_segment(state, TranscriptSegment(i * 6.0, i * 6.0 + 5, turn.leg, turn.text, "en"))
    assert "child_labour" in {f.id for f in raised}
    for flag in raised:
        cited = [s for s in state.sentences if s.text == flag.evidence and s.at_s == flag.at]
        assert cited and all(s.flagged for s in cited), flag
