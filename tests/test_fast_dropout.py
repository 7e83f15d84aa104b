"""Phase 1's CPU dropout (`dae/dropout.py`): a Bernoulli mask with the configured probability on
every element (no pattern across the 16-bit pieces of a random word), unbiased, reproducible from
the seed, with the gradient of dropout; the module's own forward outside training."""

import pytest
import torch

from spacy_threephase.dae.dropout import FastDropout, fast_dropout, install_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drop_rate_and_expectation(p):
    torch.manual_seed(0)
    x = torch.ones(1_000_000)
    y = fast_dropout(x, p)
    dropped = (y == 0).float()
    # every one of the four 16-bit pieces of each random word drops at the rate p
    assert torch.allclose(dropped.view(-1, 4).mean(0), torch.full((4,), p), atol=3e-3)
    assert float(y.mean()) == pytest.approx(1.0, abs=3e-3)  # unbiased
    values = torch.unique(y).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)
    a, b = dropped.view(-1, 4)[:, 0], dropped.view(-1, 4)[:, 1]  # neighbours independent
    assert abs(float(((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std()))) < 0.01


def test_reproducible_from_the_seed_and_new_each_call():
    x = torch.randn(64, 32)
    torch.manual_seed(3)
    first, second = fast_dropout(x, 0.1), fast_dropout(x, 0.1)
    torch.manual_seed(3)
    assert torch.equal(fast_dropout(x, 0.1), first)
    assert not torch.equal(first, second)


def test_gradient_is_the_mask():
    x = torch.randn(200, 30, requires_grad=True)
    y = fast_dropout(x, 0.2)
    y.sum().backward()
    kept = y != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - 0.2)), rtol=1e-4)
    assert (x.grad[~kept] == 0).all() and (~kept).any()


def test_shapes_and_edge_probabilities():
    x = torch.randn(3, 5, 7)  # a count not divisible by 4
    assert fast_dropout(x, 0.1).shape == x.shape
    assert fast_dropout(x, 0.0) is x
    assert (fast_dropout(x, 1.0) == 0).all()


def test_installed_forward_keeps_the_modules_behaviour():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 4), torch.nn.Dropout(0.3), torch.nn.Sequential(torch.nn.Dropout(0.1))
    )
    assert install_fast_dropout(model) == 2
    assert install_fast_dropout(model) == 0  # once
    drop = model[1]
    assert isinstance(vars(drop)["forward"], FastDropout)
    x = torch.randn(1000, 4)
    drop.eval()
    assert torch.equal(drop(x), x)  # not training: identity
    drop.train()
    assert ((drop(x) == 0).float().mean() - 0.3).abs() < 0.03
    drop.p = 0.0
    assert torch.equal(drop(x), x)
    assert "forward" not in vars(model[0])  # other layers untouched


def test_phase_1_model_uses_it(tiny_encoder_dir):
    from spacy_threephase.dae import DenoisingAutoEncoder, build_decoder
    from spacy_threephase.encoder import load_encoder

    enc = load_encoder(tiny_encoder_dir, max_length=32)
    dae = DenoisingAutoEncoder(enc.model, build_decoder(enc.path, enc.model), enc.pooling)
    drops = [m for m in dae.modules() if type(m) is torch.nn.Dropout]
    assert len(drops) > 4 and all(isinstance(vars(m).get("forward"), FastDropout) for m in drops)
    assert any(m in drops for m in dae.encoder.modules()) and any(m in drops for m in dae.decoder.modules())
