"""Phase 1's vocabulary projection fused with the cross-entropy (`dae/lm_loss.py`): the loss and
the gradients of `cross_entropy(linear(x), y)` whatever the chunking, in float32 and in bfloat16,
and the DAE's loss unchanged by it."""

import pytest
import torch
from test_dae import batch
from torch.nn import functional as F

from spacy_threephase.dae import DenoisingAutoEncoder, build_decoder
from spacy_threephase.dae.lm_loss import ProjectedCrossEntropy
from spacy_threephase.dae.model import Bf16Projection
from spacy_threephase.encoder import load_encoder


def projection(vocab=50, hidden=8):
    torch.manual_seed(0)
    linear = torch.nn.Linear(hidden, vocab)
    linear.weight.requires_grad_(False)
    return linear


def reference(linear, features, targets, bf16):
    logits = Bf16Projection(linear)(features) if bf16 else linear(features)
    return F.cross_entropy(logits.float(), targets)


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("rows", [1, 3, 64])  # one row a chunk, a ragged last chunk, one chunk
def test_loss_and_gradients_are_those_of_cross_entropy(bf16, rows):
    linear = projection()
    features = torch.randn(10, 8) * 3
    targets = torch.randint(0, 50, (10,))
    results = []
    for fused in (False, True):
        x = features.clone().requires_grad_(True)
        linear.bias.grad = None
        if fused:
            loss_fn = ProjectedCrossEntropy(linear, bf16=bf16)
            loss_fn.rows = rows
            loss = loss_fn(x, targets)
        else:
            loss = reference(linear, x, targets, bf16)
        (2.5 * loss).backward()  # the backward scales by the incoming gradient
        results.append((loss.detach(), x.grad, linear.bias.grad.clone()))
    tol = dict(rtol=2e-2, atol=2e-3) if bf16 else dict(rtol=1e-5, atol=1e-6)
    for got, want in zip(results[1], results[0]):
        assert torch.allclose(got, want, **tol)
    assert results[1][1].abs().sum() > 0 and results[1][2].abs().sum() > 0


def test_it_needs_a_fixed_weight():
    linear = torch.nn.Linear(4, 6)
    with pytest.raises(ValueError, match="fixed weight"):
        ProjectedCrossEntropy(linear)


def test_projection_skipped_restores_the_layer():
    linear = projection()
    x = torch.randn(2, 8)
    loss_fn = ProjectedCrossEntropy(linear)
    with loss_fn.projection_skipped():
        assert linear(x) is x
    assert "forward" not in vars(linear) and linear(x).shape == (2, 50)
    bf16 = Bf16Projection(linear)
    linear.forward = bf16
    with loss_fn.projection_skipped():
        assert linear(x) is x
    assert vars(linear)["forward"] is bf16


@pytest.mark.parametrize("bf16_head", [False, True])
def test_the_dae_loss_is_unchanged(bf16_head, tiny_encoder_dir):
    torch.manual_seed(0)
    enc = load_encoder(tiny_encoder_dir, max_length=32)
    dae = DenoisingAutoEncoder(
        enc.model, build_decoder(enc.path, enc.model), enc.pooling, train_word_embeddings=False, bf16_head=bf16_head
    ).eval()
    assert dae._projected_loss is not None
    noisy = batch(enc, ["jazz kitchen", "me seven"])
    clean = batch(enc, ["play some jazz music in the kitchen", "wake me up at seven"])
    results = []
    for fused in (dae._projected_loss, None):
        dae._projected_loss = fused
        dae.zero_grad()
        loss = dae(noisy, clean)
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in dae.named_parameters() if p.grad is not None}))
    (fused_loss, fused_grads), (loss, grads) = results
    tol = dict(rel=1e-2) if bf16_head else dict(rel=1e-5)
    assert fused_loss == pytest.approx(loss, **tol)
    assert fused_grads.keys() == grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(
            fused_grads[name], grad, rtol=5e-2 if bf16_head else 1e-4, atol=1e-3 if bf16_head else 1e-6
        ), name


def test_not_used_when_the_word_embeddings_train(tiny_encoder_dir):
    enc = load_encoder(tiny_encoder_dir, max_length=32)
    dae = DenoisingAutoEncoder(enc.model, build_decoder(enc.path, enc.model), enc.pooling, train_word_embeddings=True)
    assert dae._projected_loss is None


def test_it_follows_the_layer_when_the_model_moves():
    """`model.to(device)` replaces each parameter's data: the loss must use the moved weight, not a
    copy taken when it was built (which would sit on the old device)."""
    linear = projection()
    loss_fn = ProjectedCrossEntropy(linear)
    features, targets = torch.randn(6, 8), torch.randint(0, 50, (6,))
    before = loss_fn(features, targets)
    linear.weight.data = torch.randn(50, 8)  # what Module.to() does to a parameter
    assert loss_fn.weight.data_ptr() == linear.weight.data_ptr()
    after = loss_fn(features, targets)
    assert not torch.isclose(before, after)
    assert torch.isclose(after, reference(linear, features, targets, bf16=False))


def test_bf16_reuses_an_installed_projections_cast(tiny_encoder_dir):
    enc = load_encoder(tiny_encoder_dir, max_length=32)
    dae = DenoisingAutoEncoder(
        enc.model, build_decoder(enc.path, enc.model), enc.pooling, train_word_embeddings=False, bf16_head=True
    )
    head = dae.decoder.get_output_embeddings()
    assert dae._projected_loss.weight is vars(head)["forward"].weight  # one bfloat16 copy, not two
