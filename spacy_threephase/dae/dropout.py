"""Dropout on a CPU with its mask drawn 16 random bits per element instead of one float.

PyTorch's CPU dropout draws one Bernoulli sample per element from a generator that runs on one
thread, so a second thread cannot share it: torch.profiler put `aten::bernoulli_` at 5.6 % of
phase 1's step at 2 threads (benchmarks/results/profile-phase1.md). `fast_dropout` draws
64-bit random words (a quarter of the draws), cuts them into 16-bit integers and keeps an
element where its integer is at least `round(p * 65536)`: a Bernoulli mask whose drop
probability is p rounded to a multiple of 1/65536 (0.1 -> 0.100006), scaled by the exact
1 / (1 - that probability), so the output's expectation is the input as with `nn.Dropout`.
It uses torch's default generator, so `torch.manual_seed` and checkpointed RNG states make it
reproducible as before. On other devices, and outside training, the module's own forward runs.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

_LEVELS = 1 << 16


def fast_dropout(x: Tensor, p: float) -> Tensor:
    """x with each element zeroed with probability ~p (see the module doc), the rest scaled."""
    drop = round(p * _LEVELS)
    if drop == 0:
        return x
    if drop >= _LEVELS:
        return x * 0.0
    n = x.numel()
    with torch.no_grad():
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        draws = words.view(torch.int16)[:n].view(x.shape)  # uniform over -32768 .. 32767
        mask = (draws >= drop - _LEVELS // 2).to(x.dtype).mul_(_LEVELS / (_LEVELS - drop))
    return x * mask


class FastDropout:
    """The forward of an `nn.Dropout` instance: `fast_dropout` in training on a CPU."""

    def __init__(self, module: nn.Dropout):
        self.module = module

    def __call__(self, x: Tensor) -> Tensor:
        module = self.module
        if not module.training or module.p == 0 or x.device.type != "cpu" or module.inplace:
            return F.dropout(x, module.p, module.training, module.inplace)
        return fast_dropout(x, module.p)


def install_fast_dropout(model: nn.Module) -> int:
    """Give every `nn.Dropout` in `model` the CPU-fast forward; returns how many (0 once done)."""
    count = 0
    for module in model.modules():
        if type(module) is nn.Dropout and not isinstance(vars(module).get("forward"), FastDropout):
            module.forward = FastDropout(module)
            count += 1
    return count
