"""Mixed precision on a CPU in phase 1: with the word embeddings fixed, the LM head's vocabulary
projection runs in bfloat16 (where the CPU has AMX tiles); the loss and gradients stay those of
float32 within bfloat16's precision, and nothing of it reaches the saved weights."""

import pytest
import torch
from test_dae import CONFIG, FAST, batch, build_tiny_roberta

from spacy_threephase.dae import DenoisingAutoEncoder, build_decoder, train_dae
from spacy_threephase.dae import model as dae_model
from spacy_threephase.encoder import load_encoder


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny_roberta"))


def build(path, bf16_head):
    torch.manual_seed(0)  # the decoder's new cross-attention: the same draw for both
    enc = load_encoder(path, max_length=32)
    decoder = build_decoder(enc.path, enc.model)
    return enc, DenoisingAutoEncoder(enc.model, decoder, enc.pooling, train_word_embeddings=False, bf16_head=bf16_head)


def loss_and_grads(path, bf16_head):
    enc, dae = build(path, bf16_head)
    dae.eval()
    clean = batch(enc, ["play some jazz music in the kitchen", "wake me up at seven"])
    loss = dae(batch(enc, ["jazz kitchen", "me seven"]), clean)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in dae.named_parameters() if p.grad is not None}
    return dae, loss.item(), grads


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_bf16_head_matches_float32_within_bf16_precision(kind, tiny_encoder_dir, roberta_dir):
    path = tiny_encoder_dir if kind == "bert" else roberta_dir
    _, loss32, grads32 = loss_and_grads(path, False)
    dae, loss16, grads16 = loss_and_grads(path, True)
    assert "forward" in vars(dae.decoder.get_output_embeddings())  # the bf16 projection is in use
    assert loss16 == pytest.approx(loss32, rel=2e-2)
    assert grads16.keys() == grads32.keys()
    assert not any("word_embeddings" in n for n in grads16)  # fixed: no gradient
    assert any(n.endswith("bias") and ("predictions" in n or "lm_head" in n) for n in grads16)  # the bias trains
    flat32 = torch.cat([g.flatten() for g in grads32.values()])
    flat16 = torch.cat([grads16[n].flatten() for n in grads32])
    assert torch.nn.functional.cosine_similarity(flat32, flat16, dim=0) > 0.99
    for name, g32 in grads32.items():  # every gradient of some size points the same way
        if g32.norm() > 1e-3 * flat32.norm():  # (not e.g. the key biases, whose gradient is ~0 in theory)
            cos = torch.nn.functional.cosine_similarity(g32.flatten(), grads16[name].flatten(), dim=0)
            assert cos > 0.95, name
    # the saved weights are float32 and the head's weight is still the (tied) word embeddings
    state = dae.decoder.state_dict()
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())
    assert dae.decoder.get_output_embeddings().weight is dae.encoder.get_input_embeddings().weight


def test_bf16_head_needs_the_word_embeddings_fixed(tiny_encoder_dir):
    enc = load_encoder(tiny_encoder_dir, max_length=32)
    dae = DenoisingAutoEncoder(enc.model, build_decoder(enc.path, enc.model), enc.pooling, bf16_head=True)
    assert "forward" not in vars(dae.decoder.get_output_embeddings())  # a trained weight stays float32


@pytest.mark.parametrize("mixed", [True, False])
def test_phase1_uses_it_with_mixed_precision_on_amx(mixed, tiny_encoder_dir, tmp_path, monkeypatch):
    from conftest import TINY_TEXTS

    calls = []  # the precision of the vocabulary projection each training loss used
    original = dae_model.ProjectedCrossEntropy.__call__
    monkeypatch.setattr(
        dae_model.ProjectedCrossEntropy,
        "__call__",
        lambda self, *a: calls.append(self.weight.dtype) or original(self, *a),
    )
    monkeypatch.setattr("spacy_threephase.dae.train.cpu_has_bf16_matrix_units", lambda: True)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TINY_TEXTS) + "\n", encoding="utf8")
    overrides = {**FAST, "training.mixed_precision": mixed}
    train_dae(CONFIG, texts, tmp_path / "out", encoder=str(tiny_encoder_dir), overrides=overrides)
    assert calls and set(calls) == {torch.bfloat16 if mixed else torch.float32}


def test_cpu_probe_is_a_bool():
    assert isinstance(dae_model.cpu_has_bf16_matrix_units(), bool)
