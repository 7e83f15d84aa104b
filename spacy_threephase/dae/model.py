"""The denoising auto-encoder: encoder + pooling -> one vector -> decoder -> clean text.

As in TSDAE (Wang et al., 2021) and sentence-transformers' `DenoisingAutoEncoderLoss`:
the decoder is the causal-LM version of the encoder's own architecture with
cross-attention added, and the cross-attention's keys/values are ONLY the pooled
sentence vector (a memory of length 1). It reconstructs the clean text with teacher
forcing; the loss is token cross-entropy (eq. 1 of the paper). The decoder's transformer
weights are tied to the encoder's (all but the cross-attention, which the encoder lacks,
and the LM head), so the adapted encoder is what the reconstruction loss trains.

Speed: the LM head (hidden -> vocabulary) is the most expensive layer for small models
such as MiniLM; for the architectures we know it is applied only to the non-padding
target positions instead of to the whole padded batch. The cross-attention over the
one-vector memory skips its queries, keys and attention product (`cross_attention.py`).
For the BERT family the encoder runs on the noisy texts' real wordpieces only
(`packed_encoder.py`): word deletion leaves a length-bucketed batch a third padding.
With the word embeddings fixed and `bf16_head`, the LM head's vocabulary projection runs
in bfloat16 (`Bf16Projection`): on CPUs with AMX tiles that matrix product is 2-3x faster;
the logits come back as float32. With the word embeddings fixed, the projection and the
cross-entropy are computed together a few rows at a time (`lm_loss.py`). On a CPU, dropout
draws its masks from 16-bit random integers (`dropout.py`) instead of one-thread Bernoulli draws.
"""

import contextlib
from typing import Dict, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..encoder import from_pretrained_fused, pool
from ..errors import UserError
from ..packed_encoder import packable, packed_sentence_vectors
from .cross_attention import one_vector_cross_attention
from .dropout import install_fast_dropout
from .lm_loss import ProjectedCrossEntropy

# Causal-LM classes whose forward is exactly `head(base_model(...).last_hidden_state)`
# with a single head module: for these we apply the head to the target positions only.
_HEAD_ONLY_ON_TARGETS = {
    "BertLMHeadModel": "cls",
    "RobertaForCausalLM": "lm_head",
    "XLMRobertaForCausalLM": "lm_head",
    "CamembertForCausalLM": "lm_head",
}


def cpu_has_bf16_matrix_units() -> bool:
    """True on CPUs with AMX tiles (bfloat16 matrix products in hardware; torch's private probe)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # noqa: BLE001 - an unknown build: stay in float32
        return False


class Bf16Projection:
    """The forward of a frozen `nn.Linear` in bfloat16: its weight cast once, the input and the
    bias (which still trains, its gradient float32) cast per call, the product and its backward
    in bfloat16, the result float32. Only for a weight that does not change."""

    def __init__(self, linear: nn.Linear):
        self.linear = linear
        self.weight = linear.weight.detach().to(torch.bfloat16)

    def __call__(self, x: Tensor) -> Tensor:
        bias = self.linear.bias
        bias = None if bias is None else bias.to(torch.bfloat16)  # added in the product: no float32 pass
        return F.linear(x.to(torch.bfloat16), self.weight, bias).float()


class DenoisingAutoEncoder(nn.Module):
    """Encoder (a transformers base model) + pooling + tied cross-attention decoder."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        pooling: str,
        *,
        train_word_embeddings: bool = True,
        bf16_head: bool = False,
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.pooling = pooling
        self._head_name: Optional[str] = _HEAD_ONLY_ON_TARGETS.get(type(decoder).__name__)
        self.packed = packable(encoder)  # the noisy texts' padding skipped (`packed_encoder.py`)
        one_vector_cross_attention(decoder)  # the memory is one vector: skip what cannot change the result
        install_fast_dropout(self)  # on a CPU, dropout masks drawn 16 bits an element (`dropout.py`)
        self._projected_loss: Optional[ProjectedCrossEntropy] = None
        if not train_word_embeddings:
            self.freeze_word_embeddings()
            head = decoder.get_output_embeddings()
            if bf16_head and isinstance(head, nn.Linear):
                head.forward = Bf16Projection(head)  # the module, its weight and state dict stay as they are
            if self._head_name is not None and isinstance(head, nn.Linear):
                self._projected_loss = ProjectedCrossEntropy(head, bf16=bf16_head)

    def freeze_word_embeddings(self) -> int:
        """Keep the word-embedding matrix (shared by the encoder, the decoder and, tied, the LM
        head) fixed: no dense vocabulary-sized gradient, clipping or optimizer update per step.
        Returns the number of parameters frozen."""
        frozen = {}
        for module in (self.encoder.get_input_embeddings(), self.decoder.get_input_embeddings()):
            frozen[id(module.weight)] = module.weight
        head = self.decoder.get_output_embeddings()
        if head is not None:
            frozen[id(head.weight)] = head.weight
        for weight in frozen.values():
            weight.requires_grad_(False)
        return sum(w.numel() for w in frozen.values())

    def encode(self, features: Dict[str, Tensor]) -> Tensor:
        """The sentence vector of (noisy) texts: encoder, then pooling. (batch, hidden)"""
        if self.packed:
            return packed_sentence_vectors(self.encoder, features, self.pooling)
        hidden = self.encoder(**features).last_hidden_state
        return pool(hidden, features["attention_mask"], self.pooling)

    def _decoder_kwargs(self, sentence_vectors: Tensor, input_ids: Tensor, attention_mask: Optional[Tensor]):
        memory = sentence_vectors[:, None, :]  # (batch, 1, hidden): the only thing cross-attention sees
        memory_mask = torch.ones(memory.shape[:2], dtype=torch.long, device=memory.device)
        return dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=memory,
            encoder_attention_mask=memory_mask,
            use_cache=False,
        )

    def decode(self, sentence_vectors: Tensor, input_ids: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
        """Teacher-forced next-token logits (batch, length, vocab) given sentence vectors."""
        return self.decoder(**self._decoder_kwargs(sentence_vectors, input_ids, attention_mask)).logits

    def reconstruction_loss(self, sentence_vectors: Tensor, target: Dict[str, Tensor]) -> Tensor:
        """Cross-entropy of the clean target text given the sentence vectors.

        Shifted as in causal LM: position t predicts token t+1; padding positions
        (attention_mask 0) are ignored.
        """
        ids, mask = target["input_ids"], target["attention_mask"]
        inputs, labels = ids[:, :-1], ids[:, 1:]
        keep = mask[:, 1:].bool()
        kwargs = self._decoder_kwargs(sentence_vectors, inputs, mask[:, :-1])
        if self._head_name is not None:
            hidden = self.decoder.base_model(**kwargs).last_hidden_state
            head = getattr(self.decoder, self._head_name)
            if self._projected_loss is not None:  # the fixed vocabulary projection fused with the loss
                with self._projected_loss.projection_skipped():
                    features = head(hidden[keep])
                return self._projected_loss(features, labels[keep])
            logits = head(hidden[keep])
        else:
            logits = self.decoder(**kwargs).logits[keep]
        return F.cross_entropy(logits.float(), labels[keep])

    def forward(self, noisy: Dict[str, Tensor], clean: Dict[str, Tensor]) -> Tensor:
        return self.reconstruction_loss(self.encode(noisy), clean)


def build_decoder(source: str, encoder: nn.Module, *, name: Optional[str] = None, tie: bool = True) -> nn.Module:
    """Load the causal-LM + cross-attention version of the encoder at `source`.

    With `tie`, the decoder's base-model parameters are shared with the encoder's
    (everything but the cross-attention). An architecture that transformers cannot run
    as such a decoder is a UserError that says so.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    name = name or source
    config = AutoConfig.from_pretrained(source)
    model_type = getattr(config, "model_type", "?")
    unsupported = (
        f"{name}: a {model_type!r} encoder cannot be used for phase 1 (DAE): its architecture has no "
        "causal-LM decoder with cross-attention in transformers; use a BERT-family (e.g. all-MiniLM-*) "
        "or RoBERTa-family encoder, or skip phase 1"
    )
    config.is_decoder = True
    config.add_cross_attention = True
    try:
        with _quiet_transformers():
            decoder = from_pretrained_fused(AutoModelForCausalLM, source, config=config)
    except (ValueError, KeyError) as err:
        raise UserError(f"{unsupported} ({_first_line(err)})") from None
    if not any("cross" in n for n, _ in decoder.named_parameters()):
        raise UserError(f"{unsupported} (its causal-LM class ignores add_cross_attention)")
    if decoder.config.hidden_size != encoder.config.hidden_size:
        raise UserError(
            f"{name}: decoder hidden size {decoder.config.hidden_size} "
            f"!= encoder hidden size {encoder.config.hidden_size}"
        )
    if tie:
        if tie_encoder_to_decoder(encoder, decoder.base_model) == 0:
            raise UserError(f"{name}: could not tie any decoder weight to the encoder; are they the same architecture?")
    return decoder


def tie_encoder_to_decoder(encoder: nn.Module, decoder_base: nn.Module) -> int:
    """Make the encoder use the decoder's parameters wherever names and shapes match.

    Like sentence-transformers' `_tie_encoder_decoder_weights`: the encoder's parameter
    is replaced by the decoder's Parameter object (so the decoder's LM head, tied to its
    word embeddings, stays tied), after copying the encoder's current values into it.
    Decoder-only parameters (cross-attention) have no counterpart and stay separate.
    Returns the number of tied parameters.
    """
    modules = dict(encoder.named_modules())
    tied = 0
    for full_name, param in decoder_base.named_parameters():
        module_name, _, attr = full_name.rpartition(".")
        target = modules.get(module_name)
        current = getattr(target, attr, None) if target is not None else None
        if not isinstance(current, nn.Parameter) or current.shape != param.shape:
            continue
        with torch.no_grad():
            param.copy_(current)
        setattr(target, attr, param)
        tied += 1
    return tied


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
