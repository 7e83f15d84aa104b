"""The encoder run on the real wordpieces only (`packed_encoder.py`): the same sentence vectors and
gradients as the model's own padded forward, dropout applied, phase 1 using it, and the model's
own forward wherever the packed one does not apply."""

import pytest
import torch
from test_dae import build_tiny_roberta

from spacy_threephase.dae.model import DenoisingAutoEncoder, build_decoder
from spacy_threephase.encoder import load_encoder, pool, tokenize
from spacy_threephase.packed_encoder import packable, packed_sentence_vectors

TEXTS = [
    "hi",
    "the weather in paris tomorrow",
    "play some music by the band from the radio station",
    "book a table",
    "what is the rating of this book and who wrote it",
]


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny_roberta"))


@pytest.fixture(params=["bert", "roberta"])
def encoder(request, tiny_encoder_dir, roberta_dir):
    torch.manual_seed(0)
    return load_encoder(tiny_encoder_dir if request.param == "bert" else roberta_dir, max_length=64)


def padded(model, features, pooling):
    return pool(model(**features).last_hidden_state, features["attention_mask"], pooling)


def batch(enc):
    features = tokenize(enc.tokenizer, TEXTS, enc.max_length)
    lengths = features["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) == len(TEXTS)  # every row padded differently
    return features


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_same_vectors_and_gradients_as_the_padded_forward(encoder, pooling):
    model, features = encoder.model, batch(encoder)
    assert packable(model)
    model.eval()
    weights = torch.randn(len(TEXTS), model.config.hidden_size)
    grads = []
    for run in (padded, packed_sentence_vectors):
        model.zero_grad()
        vectors = run(model, features, pooling)
        (vectors * weights).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        if run is padded:
            expected = vectors.detach()
    assert torch.allclose(vectors, expected, atol=1e-5)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name, grad in grads[0].items():
        assert torch.allclose(grads[1][name], grad, atol=1e-5), name


def test_padding_changes_nothing(encoder):
    """A text's vector does not depend on how much padding its batch gives it."""
    model = encoder.model.eval()
    features = batch(encoder)
    alone = packed_sentence_vectors(model, tokenize(encoder.tokenizer, TEXTS[:1], encoder.max_length), "mean")
    assert torch.allclose(packed_sentence_vectors(model, features, "mean")[:1], alone, atol=1e-5)


def test_dropout_is_applied_like_the_models_own(encoder):
    """In training mode both forwards draw dropout: the vectors vary, with the same mean and spread."""
    model, features = encoder.model, batch(encoder)
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        draws = {
            run: torch.stack([run(model, features, "mean") for _ in range(300)])
            for run in (padded, packed_sentence_vectors)
        }
    own, ours = draws[padded], draws[packed_sentence_vectors]
    assert ours.std(0).mean() > 0.02  # dropout is on
    standard_error = ((ours.var(0) + own.var(0)) / len(ours)).sqrt()
    assert ((ours.mean(0) - own.mean(0)).abs() / standard_error).max() < 5
    assert float(ours.std(0).mean()) == pytest.approx(float(own.std(0).mean()), rel=0.1)


def test_every_dropout_of_the_models_own_forward_is_drawn(encoder, monkeypatch):
    """The same dropout modules run, and SDPA gets the same attention dropout, in both forwards."""
    model, features = encoder.model, batch(encoder)
    model.train()
    calls, sdpa = [], torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(("sdpa", kwargs.get("dropout_p")))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout):
            module.register_forward_hook(lambda m, i, o, name=name: calls.append((name, m.p)))
    seen = []
    for run in (padded, packed_sentence_vectors):
        calls.clear()
        run(model, features, "mean")
        seen.append(sorted(calls, key=str))
    assert seen[0] == seen[1]
    assert ("sdpa", model.config.attention_probs_dropout_prob) in seen[1] and len(seen[1]) > 3


def test_phase_1_encodes_packed(tiny_encoder_dir):
    enc = load_encoder(tiny_encoder_dir, max_length=32)
    dae = DenoisingAutoEncoder(enc.model, build_decoder(enc.path, enc.model), enc.pooling).eval()
    assert dae.packed
    features = tokenize(enc.tokenizer, TEXTS, enc.max_length)
    assert torch.allclose(dae.encode(features), padded(enc.model, features, enc.pooling), atol=1e-5)


def test_other_architectures_keep_their_own_forward(tiny_encoder_dir):
    enc = load_encoder(tiny_encoder_dir, max_length=32)
    decoder = build_decoder(enc.path, enc.model)
    assert not packable(decoder.base_model)  # a decoder (causal, cross-attention)
    assert not packable(torch.nn.Linear(2, 2))
    enc.model.encoder.layer[0].attention.self.position_embedding_type = "relative_key"
    assert not packable(enc.model)
    dae = DenoisingAutoEncoder(enc.model, decoder, enc.pooling)
    assert not dae.packed
    enc.model.encoder.layer[0].attention.self.position_embedding_type = "absolute"
    enc.model.encoder.layer[1].attention.prune_heads([0])
    assert not packable(enc.model)
