from callstream.evaluation.wer import corpus_wer, normalise


def test_normalise_keeps_inner_apostrophes_only():
    assert normalise("“God bless 'em,” I'll   SAY—fine.") == ["god", "bless", "em", "i'll", "say", "fine"]


def test_corpus_wer_is_pooled_over_reference_words():
    assert corpus_wer([("a b c d", "a b x d"), ("e f", "")]) == 3 / 6
    assert corpus_wer([("Hello, world!", "hello world")]) == 0.0
