"""Texts tokenized once and length-bucketed batches (phases 1, 2 and Joint)."""

import random

import numpy
import pytest
import torch
from conftest import TINY_TEXTS

from spacy_threephase.batching import TokenizedTexts, bucketed_batches, count_batches


def test_collated_batches_equal_the_per_batch_tokenization(tiny_encoder_dir):
    """Tokenizing once and padding per batch gives exactly the tensors encoder.tokenize gives
    (the spacy-transformers cut at max_length included), so phase 3 sees the same function."""
    from spacy_threephase.encoder import load_encoder, tokenize

    enc = load_encoder(str(tiny_encoder_dir), max_length=9)
    texts = TINY_TEXTS + [" ".join(TINY_TEXTS)]  # one text longer than max_length
    tokens = TokenizedTexts(enc.tokenizer, texts, enc.max_length)
    assert tokens.lengths.max() == 9 and len(tokens) == len(texts)
    for items in ([0, 1, 2], [12, 3], [5]):
        expected = tokenize(enc.tokenizer, [texts[i] for i in items], enc.max_length)
        got = tokens.collate(items)
        assert got.keys() == expected.keys()
        for key in got:
            assert torch.equal(got[key], expected[key]), key


@pytest.mark.parametrize("n,batch_size,chunk", [(0, 4, 50), (7, 4, 1), (100, 8, 3), (1003, 16, 50)])
def test_bucketed_batches_cover_every_item_once_and_cut_padding(n, batch_size, chunk):
    rng = random.Random(n)
    lengths = numpy.array([rng.randint(1, 60) for _ in range(n)])
    batches = bucketed_batches(lengths, batch_size, seed=3, chunk_batches=chunk)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert len(batches) == count_batches(n, batch_size, chunk)
    assert batches == bucketed_batches(lengths, batch_size, seed=3, chunk_batches=chunk)  # a function of the seed
    if n > 100:
        assert batches != bucketed_batches(lengths, batch_size, seed=4, chunk_batches=chunk)

        def padding(bs):
            return sum(len(b) * lengths[b].max() - lengths[b].sum() for b in bs)

        shuffled = bucketed_batches(lengths, batch_size, seed=3, chunk_batches=1)  # plain random batches
        assert padding(batches) < 0.5 * padding(shuffled)
