"""Joint's module for the Trainer: L = dae_weight * L_DAE + cl_weight * L_CL on one encoder.

A batch is (DAE text indices, contrastive batch). The DAE texts are a stream that goes through
them in a new random order each round, a function of (seed, position) only, so a resumed run
gets the same batches; the noise stream and the loss parts since the last evaluation are
checkpointed (state_dict / load_state_dict, registered with accelerate).
"""

import random
from typing import Dict, List, Sequence

import numpy
import torch
from torch import nn

from ..contrastive.task import ContrastiveTask
from ..dae.objective import DAEObjective


class LossParts:
    """(L_DAE, L_CL) of every step since the last evaluation; checkpointed."""

    def __init__(self):
        self.steps: List[tuple] = []

    def state_dict(self):
        return {"steps": list(self.steps)}

    def load_state_dict(self, state) -> None:
        self.steps = [tuple(c) for c in state["steps"]]


class JointObjective(nn.Module):
    def __init__(self, dae: DAEObjective, task: ContrastiveTask, pooling: str, *, dae_weight: float, cl_weight: float):
        super().__init__()
        self.dae, self.task, self.pooling = dae, task, pooling
        self.dae_weight, self.cl_weight = float(dae_weight), float(cl_weight)
        self.parts = LossParts()

    def forward(self, batch) -> torch.Tensor:
        dae_items, cl_batch = batch
        total, parts = 0.0, [float("nan"), float("nan")]
        if self.dae_weight:
            l_dae = self.dae(dae_items)
            parts[0] = float(l_dae.detach())
            total = total + self.dae_weight * l_dae
        if self.cl_weight:
            l_cl = self.task.loss(self.dae.dae.encoder, self.pooling, cl_batch)
            parts[1] = float(l_cl.detach())
            total = total + self.cl_weight * l_cl
        self.parts.steps.append(tuple(parts))
        return total

    def loss_parts(self) -> Dict[str, float]:
        """Mean L_DAE and L_CL since the last call."""
        done, self.parts.steps = self.parts.steps, []
        if not done:  # before training
            return {}
        arr, out = numpy.array(done, dtype=float), {}
        if self.dae_weight:
            out["dae_loss"] = float(numpy.nanmean(arr[:, 0]))
        if self.cl_weight:
            out["cl_loss"] = float(numpy.nanmean(arr[:, 1]))
        return out


class _Batch(tuple):
    """(dae_items, cl_batch); len() = number of contrastive examples (the Trainer's count)."""

    def __len__(self) -> int:
        return len(self[1])


def build_joint_objective(enc, task: ContrastiveTask, dae_texts: Sequence[str], settings) -> JointObjective:
    """The shared encoder, its tied DAE decoder (noise stream seeded apart from phase 1's) and the task."""
    from ..dae.model import DenoisingAutoEncoder, build_decoder

    t, j = settings["training"], settings["joint"]
    dae = DenoisingAutoEncoder(enc.model, build_decoder(enc.path, enc.model, name=enc.name), enc.pooling)
    noise = DAEObjective(dae, enc.tokenizer, enc.max_length, dae_texts, settings["noise"], t.seed + 1)
    return JointObjective(noise, task, enc.pooling, dae_weight=j.dae_weight, cl_weight=j.cl_weight)


def dae_stream_batch(n: int, size: int, position: int, seed: int) -> List[int]:
    """The `position`-th DAE batch of `size` from a stream over range(n), reshuffled each round."""
    out, orders = [], {}
    for pos in range(position * size, (position + 1) * size):
        rnd, i = divmod(pos, n)
        if rnd not in orders:
            order = list(range(n))
            random.Random(seed * 100003 + rnd).shuffle(order)
            orders[rnd] = order
        out.append(orders[rnd][i])
    return out


def joint_batches(
    cl_batches: Sequence, n_dae: int, dae_batch_size: int, first_position: int, seed: int
) -> List[_Batch]:
    return [
        _Batch((dae_stream_batch(n_dae, dae_batch_size, first_position + i, seed), b)) for i, b in enumerate(cl_batches)
    ]
