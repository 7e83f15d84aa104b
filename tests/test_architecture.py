"""Phase-3 classifier: pooled vector equals phases 1-2's, gradients reach the encoder."""

from pathlib import Path

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


def make_nlp(encoder_dir, *, pooling="mean", freeze=False, exclusive=True, **head):
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
                **head,
            }
        },
    )
    examples = [
        Example.from_dict(nlp.make_doc(t), {"cats": {lab: float(lab == y) for lab in LABELS}}) for t, y in TRAIN
    ]
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


def spacy_train_settings(tmp_path, encoder_dir) -> dict:
    """Write TRAIN as train/dev .spacy files; overrides for `spacy train` with configs/textcat.cfg."""
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    for split in ("train", "dev"):
        db = DocBin()
        for text, label in TRAIN:
            doc = nlp.make_doc(text)
            doc.cats = {lab: float(lab == label) for lab in LABELS}
            db.add(doc)
        db.to_disk(tmp_path / f"{split}.spacy")
    return {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "dev.spacy"),
        "paths.encoder": str(encoder_dir),
        "training.eval_frequency": 2,
        "components.textcat.model.hidden_width": 8,
    }


TEXTCAT_CFG = Path(__file__).resolve().parents[1] / "configs" / "textcat.cfg"


def test_freeze_encoder_in_spacy_train_keeps_weights(tiny_encoder_dir, tmp_path):
    from spacy.cli.train import train

    overrides = {
        **spacy_train_settings(tmp_path, tiny_encoder_dir),
        "components.textcat.model.freeze_encoder": True,
        "training.max_epochs": 2,
    }
    train(TEXTCAT_CFG, tmp_path / "out", overrides=overrides)
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


def test_the_encoder_warms_up_from_its_own_first_update():
    """The encoder's warm-up counts its own updates: when it first learns at step 3 (the head
    trained alone before), it starts at the bottom of its warm-up, as the head did at step 0."""
    opt = build_two_rate_adamw(learn_rate=1e-2, encoder_learn_rate=1e-4, warmup_steps=2)
    enc_key, head_key = (2, "encoder.weight"), (1, "W")
    enc, head = numpy.zeros(4, dtype="f"), numpy.zeros(4, dtype="f")
    rates = []
    for step in range(6):
        head, _ = opt(head_key, head, numpy.ones(4, dtype="f"))
        if step >= 3:
            rates.append(opt.encoder_rate(opt.nr_update[enc_key]))
            enc, _ = opt(enc_key, enc, numpy.ones(4, dtype="f"))
        opt.step_schedules()
    assert rates == pytest.approx([5e-5, 1e-4, 1e-4])
    assert opt.nr_update[enc_key] == 3 and opt.nr_update[head_key] == 6


def test_without_a_head_only_start_the_encoder_rate_follows_the_head_schedule():
    opt = build_two_rate_adamw(learn_rate=1e-2, encoder_learn_rate=1e-4, warmup_steps=4)
    key = (2, "encoder.weight")
    for _ in range(6):
        assert opt.encoder_rate(opt.nr_update[key]) / opt.learn_rate == pytest.approx(1e-2)
        opt(key, numpy.zeros(4, dtype="f"), numpy.ones(4, dtype="f"))
        opt.step_schedules()
    with pytest.raises(ValueError, match="warmup_steps"):
        build_two_rate_adamw(warmup_steps=-1)


def adapted_copy(encoder_dir, tmp_path, adapted_by):
    """A copy of the tiny encoder whose threephase.json says which phases changed it."""
    import json
    import shutil

    path = tmp_path / "adapted"
    shutil.copytree(encoder_dir, path)
    (path / "threephase.json").write_text(json.dumps({"pooling": "mean", "adapted_by": adapted_by}))
    return path


def run_updates(nlp, examples, callback, steps, epoch=0):
    """`steps` updates as spaCy's loop makes them (before_update first); the encoder's weights
    after each."""
    optimizer = build_two_rate_adamw(learn_rate=1e-2, encoder_learn_rate=1e-3, warmup_steps=0)
    seen = []
    for step in range(steps):
        callback(nlp, {"step": step, "epoch": epoch})
        nlp.update(examples, sgd=optimizer)
        seen.append(_trf_weights(nlp))
    return seen


def changed(a, b):
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_head_first_holds_an_adapted_encoder_for_its_steps(tiny_encoder_dir, tmp_path, capsys):
    from spacy_threephase.head_first import configure_head_first

    encoder = adapted_copy(tiny_encoder_dir, tmp_path, ["contrastive"])
    nlp, examples = make_nlp(encoder, encoder=str(encoder))
    assert nlp.get_pipe("textcat").model.attrs["encoder_adapted_by"] == ["contrastive"]
    start = _trf_weights(nlp)
    head_start = nlp.get_pipe("textcat").model.get_ref("output_layer").get_param("W").copy()
    after = run_updates(nlp, examples, configure_head_first(steps=3, epochs=2), steps=5)
    assert not any(changed(start, w) for w in after[:3])  # steps 0-2: the encoder is held
    assert changed(after[2], after[4])  # then it learns
    assert not numpy.array_equal(head_start, nlp.get_pipe("textcat").model.get_ref("output_layer").get_param("W"))
    assert "the encoder was changed by contrastive" in capsys.readouterr().err


def test_head_first_probe_fits_the_head_on_frozen_vectors(tiny_encoder_dir, tmp_path, capsys):
    """probe_epochs: before the first update the head is fitted on the frozen encoder's
    vectors (its loss falls, the encoder stays as it is, the head then scores the training
    texts better than the untrained head); a base encoder (when = "adapted") gets no probe."""
    from spacy_threephase.head_first import configure_head_first

    encoder = adapted_copy(tiny_encoder_dir, tmp_path, ["contrastive"])
    nlp, examples = make_nlp(encoder, encoder=str(encoder))
    textcat = nlp.get_pipe("textcat")
    start = _trf_weights(nlp)

    def loss():
        docs = list(nlp.get_pipe("transformer").pipe([eg.predicted.copy() for eg in examples]))
        return textcat.get_loss(examples, textcat.model.predict(docs))[0]

    before = loss()
    callback = configure_head_first(steps=0, probe_epochs=30, probe_learn_rate=0.01, corpus=lambda nlp: examples)
    callback(nlp, {"step": 0, "epoch": 0})
    err = capsys.readouterr().err
    assert f"fitted the head on the frozen encoder's vectors of {len(examples)} texts for 30 epochs" in err
    first, last = (float(x) for x in err.split("(loss ")[1].split(",")[0].split(" -> "))
    assert last < first
    assert not changed(start, _trf_weights(nlp))
    assert loss() < before / 2
    callback(nlp, {"step": 1, "epoch": 0})  # only at the first step
    assert "fitted the head" not in capsys.readouterr().err

    frozen, frozen_examples = make_nlp(encoder, encoder=str(encoder), freeze=True)  # a wrapped listener
    configure_head_first(probe_epochs=1, corpus=lambda nlp: frozen_examples)(frozen, {"step": 0, "epoch": 0})
    assert "fitted the head" in capsys.readouterr().err

    base, base_examples = make_nlp(tiny_encoder_dir, encoder=str(tiny_encoder_dir))
    configure_head_first(probe_epochs=3, corpus=lambda nlp: base_examples)(base, {"step": 0, "epoch": 0})
    assert "fitted the head" not in capsys.readouterr().err


def test_head_first_leaves_a_base_encoder_alone(tiny_encoder_dir):
    """Plain fine-tuning: the base encoder (no threephase.json) learns from the start."""
    from spacy_threephase.head_first import configure_head_first

    nlp, examples = make_nlp(tiny_encoder_dir, encoder=str(tiny_encoder_dir))
    assert nlp.get_pipe("textcat").model.attrs["encoder_adapted_by"] == []
    start = _trf_weights(nlp)
    after = run_updates(nlp, examples, configure_head_first(steps=3, epochs=2), steps=3)
    assert changed(start, after[1])  # step 0 sends no gradient (zero output layer); step 1 does


@pytest.mark.parametrize(
    "settings, epoch, held",
    [
        ({"steps": 3, "epochs": 1}, 1, False),  # past the epoch limit
        ({"steps": 3, "epochs": 2, "when": "never"}, 0, False),
        ({"steps": 3, "epochs": 2, "when": "always"}, 0, True),
    ],
)
def test_head_first_limits(tiny_encoder_dir, tmp_path, settings, epoch, held):
    from spacy_threephase.head_first import configure_head_first

    base = settings.get("when") == "always"
    encoder = tiny_encoder_dir if base else adapted_copy(tiny_encoder_dir, tmp_path, ["dae"])
    nlp, examples = make_nlp(encoder, encoder=str(encoder))
    start = _trf_weights(nlp)
    after = run_updates(nlp, examples, configure_head_first(**settings), steps=3, epoch=epoch)
    assert (not changed(start, after[2])) == held


def test_head_first_rejects_bad_settings():
    from spacy_threephase.head_first import configure_head_first

    with pytest.raises(ValueError, match="when must be one of"):
        configure_head_first(when="sometimes")
    with pytest.raises(ValueError, match=">= 0"):
        configure_head_first(steps=-1)
    with pytest.raises(ValueError, match=">= 0"):
        configure_head_first(alone_below=-1)
    for limit in ("min_texts", "max_texts", "alone_below"):
        with pytest.raises(ValueError, match="min_texts, max_texts, alone_below and probe_epochs need corpus"):
            configure_head_first(**{limit: 10})
    with pytest.raises(ValueError, match="probe_epochs need corpus"):
        configure_head_first(probe_epochs=3)
    with pytest.raises(ValueError, match="probe_epochs must be an integer >= 0"):
        configure_head_first(probe_epochs=-1, corpus=lambda nlp: [])
    with pytest.raises(ValueError, match="probe_learn_rate must be > 0"):
        configure_head_first(probe_epochs=3, probe_learn_rate=0, corpus=lambda nlp: [])
    with pytest.raises(ValueError, match=r"max_texts \(5\) is below min_texts \(10\)"):
        configure_head_first(min_texts=10, max_texts=5, corpus=lambda nlp: [])


def test_head_first_is_the_default_in_spacy_train(tiny_encoder_dir, tmp_path, capsys):
    """spaCy's own `spacy train` with configs/textcat.cfg on 6 texts (2 epochs of 12 batches,
    min_batches 10): the shipped alone_below (300) keeps an adapted encoder as it was for the
    whole run, past the head-first window of `steps`; without it, a run inside the head-only
    window does so only when the corpus has at least min_texts (1,000; here 6) and at most
    max_texts texts; never with when = "never", and never for a base encoder (FT)."""
    from spacy.cli.train import train

    encoder = adapted_copy(tiny_encoder_dir, tmp_path, ["dae", "contrastive"])
    overrides = {**spacy_train_settings(tmp_path, encoder), "training.max_epochs": 2, "training.batcher.size": 2}
    fresh = _trf_weights(make_nlp(tiny_encoder_dir)[0])
    whole_run = "the head trains alone for the whole run, the encoder stays as it is (6 training texts"
    window = "the head trains alone for the first 2 epochs, at most 100 steps"
    cases = (  # [training.before_update] settings (others: the config's), the encoder held, what it says
        ({}, True, whole_run),
        ({"steps": 1, "epochs": 1}, True, whole_run),
        ({"when": "never"}, False, None),
        ({"alone_below": 0}, False, None),
        ({"alone_below": 6}, False, None),  # 6 texts are not fewer than 6
        ({"alone_below": 0, "min_texts": 6}, True, window),
        ({"alone_below": 0, "min_texts": 1, "max_texts": 5}, False, None),
    )
    for n, (settings, held, said) in enumerate(cases):
        out = tmp_path / f"out-{n}"
        settings = {f"training.before_update.{k}": v for k, v in settings.items()}
        capsys.readouterr()
        train(TEXTCAT_CFG, out, overrides={**overrides, **settings})
        err = capsys.readouterr().err
        assert (said in err) if said else "[head_first]" not in err, (settings, err)
        trained = spacy.load(out / "model-last")
        assert trained.get_pipe("textcat").model.attrs["encoder_adapted_by"] == ["dae", "contrastive"]
        assert (not changed(fresh, _trf_weights(trained))) == held, settings
    train(TEXTCAT_CFG, tmp_path / "ft", overrides={**overrides, "paths.encoder": str(tiny_encoder_dir)})
    assert changed(fresh, _trf_weights(spacy.load(tmp_path / "ft" / "model-last")))


def _all_weights(nlp):
    """Every weight of the trained pipeline: the encoder's tensors and the head's parameters."""
    weights = {f"transformer/{k}": v.numpy() for k, v in _trf_weights(nlp).items()}
    for i, node in enumerate(nlp.get_pipe("textcat").model.walk()):
        weights.update({f"textcat/{i}/{p}": node.get_param(p) for p in node.param_names if node.has_param(p)})
    return weights


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(numpy.array_equal(a[k], b[k]) for k in a)


def test_head_first_outside_its_corpus_sizes_trains_as_without_it(tiny_encoder_dir, tmp_path):
    """Above max_texts and at or above alone_below the callback (which counts the corpus)
    changes nothing: `spacy train` gives the same weights, bit for bit, as with no
    before_update callback at all (the config of runs made before the callback existed)."""
    from spacy.cli.train import train
    from thinc.api import Config

    encoder = adapted_copy(tiny_encoder_dir, tmp_path, ["dae", "contrastive"])
    overrides = {**spacy_train_settings(tmp_path, encoder), "training.max_epochs": 2, "training.batcher.size": 2}
    without = Config().from_disk(TEXTCAT_CFG, interpolate=False)
    without["training"]["before_update"] = None
    without.to_disk(tmp_path / "without.cfg")
    limits = [f"training.before_update.{k}" for k in ("min_texts", "max_texts", "alone_below")]
    runs = {  # name: (config, overrides); 6 training texts
        "without": (tmp_path / "without.cfg", {}),
        "above max_texts": (TEXTCAT_CFG, dict(zip(limits, (1, 5, 6)))),
        "held": (TEXTCAT_CFG, dict(zip(limits, (6, 0, 0)))),
        "alone": (TEXTCAT_CFG, dict(zip(limits, (1, 5, 7)))),
    }
    weights = {}
    for name, (config, settings) in runs.items():
        train(config, tmp_path / name, overrides={**overrides, **settings})
        weights[name] = _all_weights(spacy.load(tmp_path / name / "model-last"))
    assert same_weights(weights["without"], weights["above max_texts"])
    assert not same_weights(weights["without"], weights["held"])  # the comparison tells runs apart
    assert not same_weights(weights["without"], weights["alone"])


def test_bad_activation_is_rejected():
    with pytest.raises(ValueError, match="activation"):
        build_textcat_mlp(activation="sigmoidish")


# --- the MLP head's layers ---------------------------------------------------------------

ACTIVATION_FUNCTIONS = {  # the non-linearities TextCatMLP.v1 offers, written out in torch
    "gelu": lambda x: torch.nn.functional.gelu(x),  # exact (erf) GELU, as thinc's
    "relu": torch.relu,
    "swish": torch.nn.functional.silu,
    "mish": torch.nn.functional.mish,
    "hard_swish": lambda x: x * torch.clamp(0.2 * x + 0.5, 0, 1),  # thinc's hard sigmoid
}
THINC_NAMES = {"gelu": "gelu", "relu": "relu", "swish": "swish", "mish": "mish", "hard_swish": "hardswish"}


def _leaves(model):
    """The model's layers in execution order, with chain combinators expanded."""
    from thinc.layers.chain import forward as chain_forward

    from spacy_threephase.architectures import head_first_forward

    if model._func in (chain_forward, head_first_forward):
        return [leaf for layer in model.layers for leaf in _leaves(layer)]
    return [model]


def _stages(leaves):
    """Leaf names as the head's stages: thinc fuses Linear with the activation (`gelu`,
    `relu`, ...) and with the softmax, so a fused layer counts as "linear" + its function."""
    out = []
    for leaf in leaves:
        if leaf.name in THINC_NAMES.values() or leaf.name == "softmax":
            out += ["linear", leaf.name]
        else:
            out.append(leaf.name)
    return out


@pytest.mark.parametrize("exclusive", [True, False])
@pytest.mark.parametrize("activation", sorted(ACTIVATION_FUNCTIONS))
def test_mlp_head_layers_dims_and_function(tiny_encoder_dir, exclusive, activation):
    """TextCatMLP.v1: pooled vector (h) -> Linear(h, hidden) -> non-linearity -> dropout ->
    Linear(hidden, K) -> softmax (exclusive) / sigmoid (multi-label)."""
    h, hidden, k = 32, 24, len(LABELS)
    nlp, _ = make_nlp(tiny_encoder_dir, exclusive=exclusive, hidden_width=hidden, activation=activation, dropout=0.5)
    pipe = nlp.get_pipe("textcat" if exclusive else "textcat_multilabel")
    model = pipe.model
    assert model.attrs["multi_label"] is (not exclusive)
    leaves = _leaves(model)
    assert [leaf.name for leaf in leaves[:2]] == ["transformer-listener", "sentence_pooling"]
    head = leaves[2:]
    last = "softmax" if exclusive else "logistic"
    assert _stages(head) == ["linear", THINC_NAMES[activation], "dropout", "linear", last]
    first_linear, dropout, second_linear = head[0], head[1], head[-1] if exclusive else head[-2]
    assert dropout.attrs["dropout_rate"] == 0.5
    # dims after initialisation: the encoder's width in, hidden_width, one output per label
    assert (first_linear.get_dim("nI"), first_linear.get_dim("nO")) == (h, hidden)
    assert (second_linear.get_dim("nI"), second_linear.get_dim("nO")) == (hidden, k)
    assert first_linear.get_param("W").shape == (hidden, h) and first_linear.get_param("b").shape == (hidden,)
    assert second_linear.get_param("W").shape == (k, hidden) and second_linear.get_param("b").shape == (k,)
    assert model.get_ref("output_layer") is second_linear
    assert model.get_dim("nO") == k

    # the function: the head's output, computed by hand from the pooled vectors and the weights
    texts = ["play some jazz music in the kitchen", "will it rain in london", "book a table", "wake me up at six"]
    docs = list(nlp.pipe(texts))
    pooled = torch.tensor(sentence_pooling("mean").predict([d._.trf_data for d in docs]))
    assert pooled.shape == (len(texts), h)
    W1, b1 = (torch.tensor(first_linear.get_param(n)) for n in ("W", "b"))
    # the output layer starts at zero in thinc; give it weights so that the check means something
    rng = numpy.random.default_rng(0)
    second_linear.set_param("W", rng.normal(size=(k, hidden)).astype("f"))
    second_linear.set_param("b", rng.normal(size=(k,)).astype("f"))
    W2, b2 = (torch.tensor(second_linear.get_param(n)) for n in ("W", "b"))
    logits = ACTIVATION_FUNCTIONS[activation](pooled @ W1.T + b1) @ W2.T + b2
    expected = torch.softmax(logits, dim=1) if exclusive else torch.sigmoid(logits)
    scores = model.predict([nlp(t) for t in texts])
    numpy.testing.assert_allclose(scores, expected.numpy(), rtol=1e-4, atol=1e-5)
    cats = [nlp(t).cats for t in texts]
    numpy.testing.assert_allclose(
        [[c[label] for label in pipe.labels] for c in cats], expected.numpy(), rtol=1e-4, atol=1e-5
    )
    if exclusive:
        numpy.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    else:  # independent probabilities: no constraint on the sum
        assert ((scores > 0) & (scores < 1)).all()
        assert not numpy.allclose(scores.sum(axis=1), 1.0, atol=1e-2)

    # dropout acts on the activations, in training only: each hidden unit is either dropped
    # (0) or kept and scaled by 1 / (1 - rate)
    X = pooled.numpy()
    activated = (X @ W1.numpy().T) + b1.numpy()
    activated = ACTIVATION_FUNCTIONS[activation](torch.tensor(activated)).numpy()
    y_train, _ = dropout(head[0](X, is_train=True)[0], is_train=True)
    y_eval = dropout.predict(head[0].predict(X))
    numpy.testing.assert_allclose(y_eval, activated, rtol=1e-4, atol=1e-5)
    dropped = y_train == 0
    assert dropped.any() and (~dropped).any()
    numpy.testing.assert_allclose(y_train[~dropped], activated[~dropped] / 0.5, rtol=1e-4, atol=1e-5)
