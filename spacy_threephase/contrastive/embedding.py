"""Texts -> pooled sentence vectors, with the shared tokenization and pooling of encoder.py."""

from typing import List

import torch

from ..encoder import LoadedEncoder, pool, tokenize


def embed(enc: LoadedEncoder, texts: List[str], device) -> torch.Tensor:
    """Pooled vectors for a batch (keeps the graph: used for training)."""
    batch = {k: v.to(device) for k, v in tokenize(enc.tokenizer, texts, enc.max_length).items()}
    hidden = enc.model(**batch).last_hidden_state
    return pool(hidden, batch["attention_mask"], enc.pooling)


@torch.no_grad()
def encode(enc: LoadedEncoder, texts: List[str], device, batch_size: int = 64) -> torch.Tensor:
    """L2-normalised float32 vectors on the CPU (no gradient; batches sorted by length)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty((len(texts), enc.model.config.hidden_size), dtype=torch.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        vecs = embed(enc, [texts[i] for i in idx], device).float()
        out[idx] = torch.nn.functional.normalize(vecs, dim=-1).cpu()
    return out
