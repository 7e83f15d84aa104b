"""The decoder's cross-attention over a one-vector memory (`dae/cross_attention.py`): the same
output as the block's own forward without dropout, the same in distribution with it, and the
block's own forward wherever the shortcut does not apply."""

import pytest
import torch
from test_dae import build_tiny_roberta

from spacy_threephase.dae.cross_attention import OneVectorCrossAttention, one_vector_cross_attention
from spacy_threephase.dae.model import DenoisingAutoEncoder, build_decoder
from spacy_threephase.encoder import load_encoder


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny_roberta"))


def blocks(path):
    torch.manual_seed(0)
    enc = load_encoder(path, max_length=32)
    decoder = DenoisingAutoEncoder(enc.model, build_decoder(enc.path, enc.model), enc.pooling).decoder
    return decoder, [m.crossattention for m in decoder.modules() if hasattr(m, "crossattention")]


def original(block, *args):
    return type(block).forward(block, *args)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_the_decoders_blocks_use_it_and_match_without_dropout(kind, tiny_encoder_dir, roberta_dir):
    decoder, found = blocks(tiny_encoder_dir if kind == "bert" else roberta_dir)
    assert found and all(isinstance(vars(b).get("forward"), OneVectorCrossAttention) for b in found)
    assert one_vector_cross_attention(decoder) == 0  # installed once
    hidden = torch.randn(3, 7, found[0].output.dense.weight.shape[0])
    memory = torch.randn(3, 1, hidden.shape[-1])
    for block in found:
        block.eval()
        fast = block(hidden, None, None, memory)[0]
        assert torch.allclose(fast, original(block, hidden, None, None, memory)[0], atol=1e-5)
        block.train()  # training without dropout: also the same
        block.self.dropout_prob = 0.0
        block.self.dropout.p = 0.0
        block.output.dropout.p = 0.0
        vars(block)["forward"].dropout_p = 0.0
        fast = block(hidden, None, None, memory)[0]
        assert torch.allclose(fast, original(block, hidden, None, None, memory)[0], atol=1e-5)


def test_with_attention_dropout_it_matches_in_distribution(tiny_encoder_dir):
    """Without the LayerNorm and the residual, the block's output is linear in the dropped
    weights: its mean over draws is the output without dropout, its spread the original's."""
    _, found = blocks(tiny_encoder_dir)
    block = found[0]
    block.output.dropout.p = 0.0  # only the attention dropout is random here
    block.output.LayerNorm = torch.nn.Identity()
    p = vars(block)["forward"].dropout_p
    assert p > 0
    hidden = torch.zeros(2, 5, block.output.dense.weight.shape[0])
    memory = torch.randn(2, 1, hidden.shape[-1])
    block.eval()
    expected = block(hidden, None, None, memory)[0]
    block.train()
    torch.manual_seed(1)
    fast = torch.stack([block(hidden, None, None, memory)[0] for _ in range(4000)])
    slow = torch.stack([original(block, hidden, None, None, memory)[0] for _ in range(4000)])
    assert not torch.allclose(fast[0], fast[1])  # dropout is on
    scale = expected.abs().mean().item()
    assert (fast.mean(0) - expected).abs().mean() < 0.02 * scale
    assert (slow.mean(0) - expected).abs().mean() < 0.02 * scale  # (the original's, for reference)
    assert torch.allclose(fast.std(0), slow.std(0), rtol=0.1, atol=0.02 * scale)


def test_a_longer_memory_uses_the_blocks_own_forward(tiny_encoder_dir):
    _, found = blocks(tiny_encoder_dir)
    block = found[0]
    block.eval()
    hidden = torch.randn(2, 5, block.output.dense.weight.shape[0])
    memory = torch.randn(2, 3, hidden.shape[-1])
    out = block(hidden, None, None, memory)[0]
    assert torch.equal(out, original(block, hidden, None, None, memory)[0])
