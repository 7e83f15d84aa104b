"""Sentence vectors from a BERT-family encoder computed on the real wordpieces only.

A padded batch spends the encoder's dense layers (query/key/value, attention output,
feed-forward: nearly all of its arithmetic) on padding positions too. Phase 1's noisy inputs
are the worst case: word deletion leaves texts of random length, so a length-bucketed batch of
clean texts is a third padding once corrupted. `packed_sentence_vectors` runs the same layers
on the batch's real wordpieces stacked into one (tokens, hidden) matrix; only the attention
product, which needs the sequences apart, is taken on the padded layout (SDPA, padding masked
as the model does). It is the model's own computation with the same parameters: the pooled
vectors equal `pool(model(**features).last_hidden_state, ...)` up to float rounding, dropout
included in distribution (hidden dropout per real wordpiece, attention dropout in SDPA), and
the gradients reach the same parameters. The query, key and value projections run as one
product of the three weights concatenated, so that one padded (tokens, 3 * hidden) matrix is
scattered for the attention instead of three (a micro-benchmark found no speed difference
between one product and three).

Only architectures whose layers have exactly BERT's structure are packed (BERT, RoBERTa and
the models sharing their classes, absolute positions, no head pruning or feed-forward
chunking); `packable(model)` says whether a model qualifies, and callers fall back to the
model's own forward otherwise.
"""

from typing import Dict

import torch
from torch import Tensor
from torch.nn import functional as F

_LAYER_CLASSES = {"BertLayer", "RobertaLayer", "XLMRobertaLayer", "CamembertLayer"}
_ATTENTION_CLASSES = {
    "BertSelfAttention",
    "BertSdpaSelfAttention",
    "RobertaSelfAttention",
    "RobertaSdpaSelfAttention",
    "XLMRobertaSelfAttention",
    "XLMRobertaSdpaSelfAttention",
    "CamembertSelfAttention",
    "CamembertSdpaSelfAttention",
}


def packable(model) -> bool:
    """True for an encoder (not decoder) of BERT's layer structure that this module can run."""
    config = getattr(model, "config", None)
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if config is None or layers is None or getattr(model, "embeddings", None) is None:
        return False
    if config.is_decoder or getattr(config, "chunk_size_feed_forward", 0):
        return False
    for layer in layers:
        attention = layer.attention
        if type(layer).__name__ not in _LAYER_CLASSES or type(attention.self).__name__ not in _ATTENTION_CLASSES:
            return False
        if attention.self.position_embedding_type != "absolute" or attention.pruned_heads:
            return False
    return True


def packed_sentence_vectors(model, features: Dict[str, Tensor], pooling: str) -> Tensor:
    """(batch, hidden) pooled sentence vectors of a padded batch, computed without its padding.

    model: a `packable` transformers base model; features: input_ids, attention_mask (and
    token_type_ids) as the tokenizer returns them, padding on the right; pooling: "mean" or "cls".
    """
    mask = features["attention_mask"].bool()
    batch, width = mask.shape
    embedded = model.embeddings(input_ids=features["input_ids"], token_type_ids=features.get("token_type_ids"))
    positions = mask.reshape(-1).nonzero().squeeze(1)  # the real wordpieces' rows in (batch * width)
    hidden = embedded.reshape(batch * width, -1).index_select(0, positions)
    key_mask = mask[:, None, None, :]  # (batch, 1, 1, width): True = attend
    for layer in model.encoder.layer:
        hidden = _packed_layer(layer, hidden, positions, key_mask, batch, width)
    if pooling == "cls":
        starts = torch.arange(batch, device=mask.device) * width
        return hidden[torch.searchsorted(positions, starts)]
    lengths = mask.sum(dim=1)
    rows = torch.repeat_interleave(torch.arange(batch, device=mask.device), lengths)
    sums = hidden.new_zeros(batch, hidden.shape[1]).index_add(0, rows, hidden)
    return sums / lengths.clamp(min=1).unsqueeze(1).to(hidden.dtype)


def _packed_layer(layer, hidden: Tensor, positions: Tensor, key_mask: Tensor, batch: int, width: int) -> Tensor:
    attention = layer.attention
    sa, so = attention.self, attention.output
    heads, size = sa.num_attention_heads, sa.attention_head_size
    weight = torch.cat([sa.query.weight, sa.key.weight, sa.value.weight])
    bias = torch.cat([sa.query.bias, sa.key.bias, sa.value.bias])
    qkv = F.linear(hidden, weight, bias)  # (tokens, 3 * heads * size)
    padded = qkv.new_zeros(batch * width, qkv.shape[1]).index_copy(0, positions, qkv)
    padded = padded.view(batch, width, 3, heads, size).permute(2, 0, 3, 1, 4)  # (3, batch, heads, width, size)
    context = F.scaled_dot_product_attention(
        padded[0],
        padded[1],
        padded[2],
        attn_mask=key_mask,
        dropout_p=sa.dropout.p if sa.training else 0.0,
    )
    context = context.transpose(1, 2).reshape(batch * width, heads * size).index_select(0, positions)
    attended = so.LayerNorm(so.dropout(so.dense(context)) + hidden)
    out = layer.output
    return out.LayerNorm(out.dropout(out.dense(layer.intermediate(attended))) + attended)
