"""An empty text gets a real prediction, the one for a whitespace-only text (both are just
[CLS] [SEP] to the encoder): for exclusive classes, probabilities that sum to 1, and no crash
when a batch mixes empty and non-empty texts."""

import pytest
from test_phase3_pooling import TRAIN, build_pipeline, examples_for
from thinc.api import Adam


def trained(encoder, factory="textcat", **model_overrides):
    nlp = build_pipeline(encoder, factory, **model_overrides)
    examples = examples_for(nlp, TRAIN, nlp.get_pipe("textcat").labels)
    sgd = Adam(0.01)
    for _ in range(5):  # the output layer starts at zero: untrained, every text is uniform
        nlp.update(examples, sgd=sgd)
    return nlp


def test_empty_text_is_a_distribution(tiny_encoder_dir):
    nlp = trained(tiny_encoder_dir)
    blank = nlp(" ").cats
    assert max(blank.values()) - min(blank.values()) > 1e-4  # not trivially uniform
    empty = nlp("").cats
    assert sum(empty.values()) == pytest.approx(1.0, abs=1e-5)
    assert empty == pytest.approx(blank, abs=1e-6)


def test_batch_with_empty_texts(tiny_encoder_dir):
    nlp = trained(tiny_encoder_dir)
    texts = ["", "play some jazz music", " ", ""]
    docs = list(nlp.pipe(texts, batch_size=4))
    alone = [nlp(t).cats for t in texts]
    for doc, cats in zip(docs, alone):
        assert doc.cats == pytest.approx(cats, abs=1e-5)
        assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)
    assert len(docs[0]._.trf_data.align.lengths) == 0  # nothing is aligned to a doc without tokens


def test_empty_text_multilabel(tiny_encoder_dir):
    nlp = trained(tiny_encoder_dir, "textcat_multilabel", exclusive_classes=False)
    empty = nlp("").cats
    assert empty == pytest.approx(nlp(" ").cats, abs=1e-6)
    assert all(0.0 < v < 1.0 for v in empty.values())


def test_training_batch_with_an_empty_text(tiny_encoder_dir):
    nlp = trained(tiny_encoder_dir)
    examples = examples_for(nlp, TRAIN + [("", "food")], nlp.get_pipe("textcat").labels)
    losses = nlp.update(examples, sgd=Adam(0.01))
    assert losses["textcat"] > 0
