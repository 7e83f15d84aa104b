"""Optimizer and schedule for phase 3: one schedule, two learning rates.

spaCy's stock recipe gives the encoder and the new classifier head the same small learning
rate, which leaves a freshly initialised head badly under-trained on many-class data. Here
the head (thinc parameters) gets `learn_rate` and the transformer (parameters of the
PyTorch model inside spacy-transformers) gets `encoder_learn_rate`, both following the
same warm-up schedule.
"""

from typing import Iterable, Tuple

from spacy import registry
from thinc.api import Optimizer


class TwoRateOptimizer(Optimizer):
    """thinc's Adam(W), with the learning rate of PyTorch-shim parameters scaled."""

    def __init__(self, *args, encoder_lr_scale: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder_lr_scale = encoder_lr_scale

    def __call__(self, key: Tuple[int, str], weights, gradient, *, lr_scale: float = 1.0):
        if is_encoder_param(key):
            lr_scale = lr_scale * self.encoder_lr_scale
        return super().__call__(key, weights, gradient, lr_scale=lr_scale)


def is_encoder_param(key: Tuple[int, str]) -> bool:
    """thinc layers name their parameters "W", "b", "E", ...; a PyTorch shim passes the
    module's dotted parameter names ("embeddings.word_embeddings.weight")."""
    return "." in key[1]


@registry.optimizers("spacy_threephase.AdamW.v1")
def build_two_rate_adamw(
    learn_rate: float = 1e-3,
    encoder_learn_rate: float = 5e-5,
    warmup_steps: int = 50,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    L2: float = 0.01,
    grad_clip: float = 1.0,
    use_averages: bool = False,
) -> Optimizer:
    """AdamW (decoupled weight decay L2, gradient clipping) with two learning rates.

    learn_rate: the classifier head's rate; encoder_learn_rate: the transformer's. Both warm
    up linearly over `warmup_steps` and then stay constant (spaCy's early stopping on dev
    decides the run length, and the best dev checkpoint is kept).
    """
    if learn_rate <= 0 or encoder_learn_rate < 0:
        raise ValueError("spacy_threephase.AdamW.v1: learning rates must be positive")
    return TwoRateOptimizer(
        warmup_constant(learn_rate, warmup_steps),
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        L2=L2,
        L2_is_weight_decay=True,
        grad_clip=grad_clip,
        use_averages=use_averages,
        use_radam=False,
        encoder_lr_scale=encoder_learn_rate / learn_rate,
    )


@registry.schedules("spacy_threephase.warmup_constant.v1")
def warmup_constant(initial_rate: float, warmup_steps: int) -> Iterable[float]:
    """Linear warm-up from initial_rate / warmup_steps to `initial_rate`, then constant."""
    step = 0
    while True:
        if warmup_steps > 0 and step < warmup_steps:
            yield initial_rate * (step + 1) / warmup_steps
        else:
            yield initial_rate
        step += 1
