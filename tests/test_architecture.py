"""Phase-3 classifier: pooled vector equals phases 1-2's, gradients reach the encoder."""
import numpy
import pytest
import spacy
import torch
from spacy.training import Example

from spacy_threephase.architectures import build_textcat_mlp
from spacy_threephase.encoder import load_encoder, pool, tokenize
from spacy_threephase.layers import sentence_pooling
from spacy_threephase.optimizers import build_two_rate_adamw, is_encoder_param

LABELS = ["music", "weather", "food"]
TRAIN = [
    ("play some jazz music in the kitchen", "music"),
    ("play the new album by the beatles", "music"),
    ("what is the weather like in paris tomorrow", "weather"),
    ("will it rain in london this weekend", "weather"),
    ("book a table for two at an italian restaurant", "food"),
    ("find me a cheap place to eat sushi", "food"),
]


def make_nlp(encoder_dir, *, pooling="mean", freeze=False, exclusive=True):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy_threephase.TransformerModel.v1",
                "name": str(encoder_dir),
                "get_spans": {"@span_getters": "spacy-transformers.doc_spans.v1"},
                "tokenizer_config": {"use_fast": True},
            },
            "set_extra_annotations": {"@annotation_setters": "spacy-transformers.null_annotation_setter.v1"},
        },
    )
    nlp.add_pipe(
        "textcat" if exclusive else "textcat_multilabel",
        config={
            "model": {
                "@architectures": "spacy_threephase.TextCatMLP.v1",
                "exclusive_classes": exclusive,
                "hidden_width": 16,
                "pooling": pooling,
                "freeze_encoder": freeze,
            }
        },
    )
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": {l: float(l == y) for l in LABELS}}) for t, y in TRAIN]
    nlp.initialize(lambda: examples)
    return nlp, examples


def pipeline_vector(nlp, text, pooling):
    doc = nlp(text)
    layer = sentence_pooling(pooling)
    return layer.predict([doc._.trf_data])[0]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooled_vector_matches_plain_transformers(tiny_encoder_dir, pooling):
    nlp, _ = make_nlp(tiny_encoder_dir, pooling=pooling)
    enc = load_encoder(tiny_encoder_dir, pooling=pooling)
    long_text = " ".join(["play some jazz music in the kitchen"] * 20)  # past model_max_length (64)
    texts = ["play some jazz music in the kitchen", "Will it RAIN in London?", long_text]
    batch = tokenize(enc.tokenizer, texts, enc.max_length)
    assert batch["input_ids"].shape[1] == 64
    with torch.no_grad():
        hidden = enc.model(**batch).last_hidden_state
        expected = pool(hidden, batch["attention_mask"], pooling).numpy()
    for i, text in enumerate(texts):
        got = pipeline_vector(nlp, text, pooling)
        numpy.testing.assert_allclose(got, expected[i], rtol=1e-4, atol=1e-5)


def test_cats_are_probabilities(tiny_encoder_dir):
    nlp, _ = make_nlp(tiny_encoder_dir)
    doc = nlp("play some music")
    assert set(doc.cats) == set(LABELS)
    assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)
    assert len(nlp("").cats) == 3  # empty text does not crash


def test_multilabel_uses_logistic(tiny_encoder_dir):
    nlp, _ = make_nlp(tiny_encoder_dir, exclusive=False)
    cats = nlp("play some music").cats
    assert all(0.0 <= v <= 1.0 for v in cats.values())
    assert sum(cats.values()) != pytest.approx(1.0, abs=1e-3)


def _trf_weights(nlp):
    model = nlp.get_pipe("transformer").model.layers[0].shims[0]._model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_gradients_reach_encoder_unless_frozen(tiny_encoder_dir):
    nlp, examples = make_nlp(tiny_encoder_dir)
    before = _trf_weights(nlp)
    optimizer = nlp.create_optimizer()
    for _ in range(2):  # the output layer starts at zero, so the first step sends no gradient down
        nlp.update(examples, sgd=optimizer)
    after = _trf_weights(nlp)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("encoder.layer" in k for k in changed)


def test_frozen_pooling_sends_zero_gradient(tiny_encoder_dir):
    nlp, _ = make_nlp(tiny_encoder_dir)
    trf_data = nlp("play some jazz music")._.trf_data
    for grad_factor, expect_zero in ((0.0, True), (1.0, False)):
        layer = sentence_pooling("mean", grad_factor=grad_factor)
        out, backprop = layer.begin_update([trf_data])
        d = backprop(numpy.ones_like(out))
        grad = d[0].model_output["last_hidden_state"]
        assert (abs(grad).sum() == 0) == expect_zero


def test_freeze_encoder_in_spacy_train_keeps_weights(tiny_encoder_dir, tmp_path):
    from spacy.cli.train import train
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    for split in ("train", "dev"):
        db = DocBin()
        for text, label in TRAIN:
            doc = nlp.make_doc(text)
            doc.cats = {l: float(l == label) for l in LABELS}
            db.add(doc)
        db.to_disk(tmp_path / f"{split}.spacy")
    from pathlib import Path

    cfg = Path(__file__).resolve().parents[1] / "configs" / "textcat.cfg"
    overrides = {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "dev.spacy"),
        "paths.encoder": str(tiny_encoder_dir),
        "components.textcat.model.freeze_encoder": True,
        "training.max_epochs": 2,
        "training.eval_frequency": 2,
        "components.textcat.model.hidden_width": 8,
    }
    train(cfg, tmp_path / "out", overrides=overrides)
    trained = spacy.load(tmp_path / "out" / "model-last")
    fresh, _ = make_nlp(tiny_encoder_dir)
    w1, w2 = _trf_weights(trained), _trf_weights(fresh)
    assert all(torch.equal(w1[k], w2[k]) for k in w2)


def test_two_rate_optimizer_scales_encoder_updates():
    opt = build_two_rate_adamw(learn_rate=1e-2, encoder_learn_rate=1e-4, warmup_steps=0)
    assert is_encoder_param((1, "encoder.layer.0.weight")) and not is_encoder_param((1, "W"))
    head = numpy.zeros(4, dtype="f")
    enc = numpy.zeros(4, dtype="f")
    grad = numpy.ones(4, dtype="f")
    head, _ = opt((1, "W"), head, grad.copy())
    enc, _ = opt((2, "encoder.weight"), enc, grad.copy())
    assert abs(head[0]) == pytest.approx(100 * abs(enc[0]), rel=1e-3)


def test_bad_activation_is_rejected():
    with pytest.raises(ValueError, match="activation"):
        build_textcat_mlp(activation="sigmoidish")
