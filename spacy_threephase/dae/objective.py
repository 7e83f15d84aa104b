"""Phase 1's training objective and its dev score without labels.

`DAEObjective.forward(batch)` takes a batch of text indices: it corrupts each text with the
noise function (a new corruption every time a text is seen, from a `NoiseStream`), tokenizes
the noisy texts, collates the clean targets from the texts tokenized once, and returns the
reconstruction loss of the DenoisingAutoEncoder.
"""

import random
from typing import List, Sequence

import torch
from torch import nn

from ..batching import TokenizedTexts, to_device
from ..encoder import tokenize
from .model import DenoisingAutoEncoder


class NoiseStream:
    """The randomness of the corruptions: reseeded when an epoch starts (so an epoch's noise is
    a function of seed and epoch), and checkpointed in between (state_dict / load_state_dict,
    registered with accelerate), so that a resumed run corrupts exactly as the killed one."""

    def __init__(self, seed: int):
        self.seed, self.epoch, self.rng = seed, None, random.Random(f"noise-{seed}")

    def start_epoch(self, epoch: int) -> None:
        if self.epoch != epoch:  # a run resumed inside `epoch` keeps its restored state
            self.rng.seed(f"noise-{self.seed}-{epoch}")
            self.epoch = epoch

    def state_dict(self):
        return {"epoch": self.epoch, "rng": self.rng.getstate()}

    def load_state_dict(self, state) -> None:
        self.epoch = state["epoch"]
        self.rng.setstate(state["rng"])


class DAEObjective(nn.Module):
    def __init__(self, dae: DenoisingAutoEncoder, tokenizer, max_length: int, texts: Sequence[str], noise, seed: int):
        super().__init__()
        self.dae = dae
        self.tokenizer, self.max_length, self.noise = tokenizer, max_length, noise
        self.texts = list(texts)
        self.clean = TokenizedTexts(tokenizer, self.texts, max_length)
        self.noise_stream = NoiseStream(seed)

    def loss(self, items: Sequence[int], rng: random.Random) -> torch.Tensor:
        device = next(self.dae.parameters()).device
        noisy = tokenize(self.tokenizer, [self.noise(self.texts[i], rng) for i in items], self.max_length)
        return self.dae(to_device(noisy, device), to_device(self.clean.collate(items), device))

    def forward(self, batch: List[int]) -> torch.Tensor:
        return self.loss(batch, self.noise_stream.rng)


class HeldOutLoss:
    """() -> (-reconstruction loss, metrics) on held-out texts under a fixed corruption."""

    def __init__(self, objective: DAEObjective, items: Sequence[int], batch_size: int, seed: int):
        self.objective, self.items, self.batch_size, self.seed = objective, list(items), batch_size, seed

    def __call__(self):
        rng = random.Random(f"heldout-{self.seed}")  # the same corruption at every evaluation
        total, n = 0.0, 0
        for start in range(0, len(self.items), self.batch_size):
            batch = self.items[start : start + self.batch_size]
            total += float(self.objective.loss(batch, rng)) * len(batch)
            n += len(batch)
        loss = total / max(1, n)
        return -loss, {"heldout_loss": loss}
