"""Phase 3 with `use_averages = true`: the encoder's parameter averages are what is evaluated
and saved (thinc's own `use_params` swaps only the head's), and a resumed run keeps them."""

from types import SimpleNamespace

import numpy
import pytest
import spacy
import torch
from faults import Interrupted, interrupt_at
from test_phase3_resume import CONFIG, assert_same_outcome, outcome, settings, write_corpus
from thinc.api import Adam, PyTorchWrapper

from spacy_threephase.finetune import train_pipeline
from spacy_threephase.finetune.averages import shim_averages
from spacy_threephase.finetune.loop import PHASE


def trained_wrapper():
    torch.manual_seed(0)
    model = PyTorchWrapper(torch.nn.Linear(3, 3))
    X = numpy.ones((4, 3), dtype="f")
    model.initialize(X)
    optimizer = Adam(0.1, use_averages=True)
    for _ in range(5):
        Y, backprop = model.begin_update(X)
        backprop(Y)
        model.finish_update(optimizer)
    return model, optimizer, X


def test_shim_averages_swaps_in_the_averages_and_restores_the_weights():
    model, optimizer, X = trained_wrapper()
    nlp = SimpleNamespace(pipeline=[("pipe", SimpleNamespace(model=model))])
    raw = model.predict(X)
    with model.use_params(optimizer.averages):  # thinc alone: the shim's weights stay raw
        assert numpy.allclose(model.predict(X), raw)
    (shim,) = model.shims
    linear = shim._model
    with shim_averages(nlp, optimizer.averages):
        averaged = {name: p.detach().numpy().copy() for name, p in linear.named_parameters()}
        out = model.predict(X)
    for name, value in averaged.items():
        assert numpy.allclose(value, optimizer.averages[(shim.id, name)])
    assert not numpy.allclose(out, raw)
    assert numpy.allclose(model.predict(X), raw)  # restored


@pytest.fixture(scope="module")
def runs(tiny_encoder_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("averages")
    corpus = write_corpus(root / "corpus")
    plain = {**settings(corpus, tiny_encoder_dir), "training.optimizer.use_averages": False}
    averaged = {**plain, "training.optimizer.use_averages": True}
    out_plain = train_pipeline(CONFIG, root / "plain", overrides=plain, checkpoint_every=4)
    out_averaged = train_pipeline(CONFIG, root / "averaged", overrides=averaged, checkpoint_every=4)
    return averaged, out_plain, out_averaged


def test_averaged_run_saves_averaged_encoder_weights(runs):
    """Averaging does not change the updates, so the plain run's weights are the averaged run's
    raw weights: the saved encoder must differ from them (it equalled them before the fix)."""
    _, plain, averaged = runs
    _, cats_plain, w_plain = outcome(plain / "model-last")
    _, cats_averaged, w_averaged = outcome(averaged / "model-last")
    trained = [k for k in w_plain if "encoder.layer" in k and k.endswith("weight")]
    assert trained
    assert all(not torch.allclose(w_plain[k], w_averaged[k]) for k in trained)
    assert cats_plain != cats_averaged
    assert spacy.load(averaged / "model-best")("is it going to snow").cats


def test_averaged_run_resumes_to_the_same_pipelines(runs, tmp_path):
    overrides, _, ref = runs
    out = tmp_path / "out"
    with interrupt_at(11, PHASE), pytest.raises(Interrupted):
        train_pipeline(CONFIG, out, overrides=overrides, checkpoint_every=4)
    train_pipeline(CONFIG, out, overrides=overrides, checkpoint_every=4)
    assert_same_outcome(out / "model-last", ref / "model-last")
    assert_same_outcome(out / "model-best", ref / "model-best")
