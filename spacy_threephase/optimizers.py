"""Optimizer and schedules for phase 3: two learning rates, each with its own warm-up.

spaCy's stock recipe gives the encoder and the new classifier head the same small learning
rate, which leaves a freshly initialised head badly under-trained on many-class data. Here
the head (thinc parameters) gets `learn_rate` and the transformer (parameters of the
PyTorch model inside spacy-transformers) gets `encoder_learn_rate`. Each rate warms up
linearly over `warmup_steps`, counted from that parameter's first update: when the head
trains alone first (spacy_threephase.head_first.v1), the encoder's warm-up starts when it
starts to learn.
"""

from typing import Iterable, Tuple

from spacy import registry
from thinc.api import Optimizer

from .errors import SettingError


class TwoRateOptimizer(Optimizer):
    """thinc's Adam(W) whose PyTorch-shim (encoder) parameters follow their own rate.

    `learn_rate` (a schedule) is the head's rate. An encoder parameter's rate is
    `encoder_rate(n)` after n updates of that parameter: a linear warm-up over `warmup_steps`
    to `encoder_learn_rate`. The counts are thinc's `nr_update`, which a resumed phase 3
    restores with the optimizer state.
    """

    def __init__(self, *args, encoder_learn_rate: float, warmup_steps: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder_learn_rate = encoder_learn_rate
        self.encoder_warmup_steps = warmup_steps

    def encoder_rate(self, updates: int) -> float:
        return warmed_up(self.encoder_learn_rate, self.encoder_warmup_steps, updates)

    def __call__(self, key: Tuple[int, str], weights, gradient, *, lr_scale: float = 1.0):
        if is_encoder_param(key):
            lr_scale = lr_scale * self.encoder_rate(self.nr_update[key]) / self.learn_rate
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
    decides the run length, and the best dev checkpoint is kept); the encoder's warm-up
    starts with its first update.
    """
    if learn_rate <= 0 or encoder_learn_rate < 0:
        raise SettingError("spacy_threephase.AdamW.v1: learning rates must be positive")
    if warmup_steps < 0:
        raise SettingError("spacy_threephase.AdamW.v1: warmup_steps must be >= 0")
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
        encoder_learn_rate=encoder_learn_rate,
        warmup_steps=warmup_steps,
    )


@registry.schedules("spacy_threephase.warmup_constant.v1")
def warmup_constant(initial_rate: float, warmup_steps: int) -> Iterable[float]:
    """Linear warm-up from initial_rate / warmup_steps to `initial_rate`, then constant."""
    step = 0
    while True:
        yield warmed_up(initial_rate, warmup_steps, step)
        step += 1


def warmed_up(rate: float, warmup_steps: int, step: int) -> float:
    """The rate at `step` (0-based) of a linear warm-up over `warmup_steps`, then constant."""
    if warmup_steps > 0 and step < warmup_steps:
        return rate * (step + 1) / warmup_steps
    return rate
