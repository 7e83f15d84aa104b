"""Cross-attention over a memory of one vector, without the work that cannot change its result.

The DAE decoder's cross-attention sees only the pooled sentence vector (a memory of length
1), so every attention weight is softmax over one key = 1: the queries, keys and the
attention product do nothing. Each head's output is that head's slice of the value
projection of the sentence vector, the same for every position. What stays per position is
attention dropout, which drops the single weight (a head's whole contribution) with
probability p and scales the rest by 1 / (1 - p). So, per layer:

    u[b, h]      = W_O[:, head h] @ value(memory)[b, head h]          (once per text)
    out[b, t]    = sum_h keep[b, t, h] / (1 - p) * u[b, h] + b_O       (keep: Bernoulli(1 - p))
    output       = LayerNorm(dropout(out) + hidden)                    (as BertSelfOutput)

which is the attention block's output in distribution (exactly, without dropout) at a
fraction of the cost: no query or key projection, an output projection per text instead of
per token, no attention kernel. `one_vector_cross_attention(decoder)` installs it on every
BERT-style cross-attention block (`self.value`, `output.dense/dropout/LayerNorm`); a memory
longer than one vector falls back to the block's own forward.
"""

from typing import Optional

import torch
from torch import Tensor, nn


class OneVectorCrossAttention:
    """The forward of one cross-attention block (e.g. BertAttention) for a memory of length 1."""

    def __init__(self, block: nn.Module):
        self.block, self.original = block, block.forward
        attention = block.self
        self.heads, self.head_size = attention.num_attention_heads, attention.attention_head_size
        dropout = getattr(attention, "dropout", None)
        self.dropout_p = float(getattr(attention, "dropout_prob", getattr(dropout, "p", 0.0)))

    def __call__(
        self,
        hidden_states: Tensor,
        attention_mask: Optional[Tensor] = None,
        head_mask: Optional[Tensor] = None,
        encoder_hidden_states: Optional[Tensor] = None,
        encoder_attention_mask: Optional[Tensor] = None,
        past_key_value=None,
        output_attentions: bool = False,
        *args,
        **kwargs,
    ):
        memory = encoder_hidden_states
        if memory is None or memory.shape[1] != 1 or head_mask is not None or output_attentions or args or kwargs:
            return self.original(
                hidden_states,
                attention_mask,
                head_mask,
                encoder_hidden_states,
                encoder_attention_mask,
                past_key_value,
                output_attentions,
                *args,
                **kwargs,
            )
        block, out = self.block, self.block.output
        batch, length, hidden = hidden_states.shape
        value = block.self.value(memory).view(batch, self.heads, self.head_size)
        weight = out.dense.weight.view(out.dense.weight.shape[0], self.heads, self.head_size)
        per_head = torch.einsum("bnd,ond->bno", value, weight)  # (batch, heads, hidden): W_O @ v, head by head
        p = self.dropout_p if block.training else 0.0
        if p > 0:
            keep = torch.rand(batch, length, self.heads, device=memory.device) >= p
            mixed = torch.einsum("btn,bno->bto", keep.to(per_head.dtype) / (1 - p), per_head)
        else:
            mixed = per_head.sum(1, keepdim=True).expand(batch, length, per_head.shape[-1])
        if out.dense.bias is not None:
            mixed = mixed + out.dense.bias
        output = out.LayerNorm(out.dropout(mixed) + hidden_states)
        return (output, ())  # no attention weights; an empty cache (use_cache is off in the DAE)


def one_vector_cross_attention(decoder: nn.Module) -> int:
    """Install OneVectorCrossAttention on every BERT-style cross-attention block; their number."""
    count = 0
    for module in decoder.modules():
        block = getattr(module, "crossattention", None)
        if block is None or "forward" in vars(block):
            continue
        attention, output = getattr(block, "self", None), getattr(block, "output", None)
        needed = [(attention, "value"), (attention, "num_attention_heads"), (output, "dense"), (output, "LayerNorm")]
        if all(owner is not None and hasattr(owner, name) for owner, name in needed):
            block.forward = OneVectorCrossAttention(block)
            count += 1
    return count
