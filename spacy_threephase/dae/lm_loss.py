"""Phase 1's last step, the vocabulary projection and the cross-entropy, taken a few rows at a time.

`cross_entropy(linear(features), targets)` materialises a (target tokens, vocabulary) matrix of
logits (30,522 columns for MiniLM), then its log-softmax, then the same two again backwards:
several passes over a matrix far larger than the CPU's caches. With the projection's weight
fixed (phase 1's default: word embeddings are not trained), `ProjectedCrossEntropy` computes the
loss and its gradients for the features and the bias together, in chunks of rows small enough to
stay in cache, during the forward pass; the backward pass only scales them. The arithmetic is the
same: the product in the weight's precision (bfloat16 with `bf16`, as `Bf16Projection`), logits,
log-softmax and the gradient `softmax - one_hot` in float32.
"""

import contextlib
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

CACHE_ELEMENTS = 1 << 20  # float32 logits a chunk may hold (4 MB; 34 rows of MiniLM's vocabulary)


class _ProjectedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: Tensor, bias: Optional[Tensor], weight: Tensor, targets: Tensor, rows: int) -> Tensor:
        n = features.shape[0]
        grad_features = torch.empty_like(features)
        grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=features.device)
        total = torch.zeros((), dtype=torch.float32, device=features.device)
        inputs = features.to(weight.dtype)
        b = None if bias is None else bias.to(weight.dtype)
        for start in range(0, n, rows):
            log_probs = F.log_softmax(F.linear(inputs[start : start + rows], weight, b).float(), dim=1)
            target = targets[start : start + rows, None]
            total -= log_probs.gather(1, target).sum()
            grad = log_probs.exp_()  # softmax
            grad.scatter_add_(1, target, grad.new_full(target.shape, -1.0))  # - one_hot
            grad_bias += grad.sum(dim=0)
            grad_features[start : start + rows] = (grad.to(weight.dtype) @ weight).to(features.dtype)
        scale = 1.0 / max(1, n)
        ctx.save_for_backward(grad_features.mul_(scale), grad_bias.mul_(scale))
        ctx.has_bias = bias is not None
        return total * scale

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        grad_features, grad_bias = ctx.saved_tensors
        bias_grad = (grad_bias * grad_output) if ctx.has_bias else None
        return grad_features * grad_output, bias_grad, None, None, None


class ProjectedCrossEntropy:
    """`(features, targets) -> cross_entropy(linear(features), targets)` (mean over rows) for an
    `nn.Linear` whose weight does not change; its bias may train. `bf16`: the product in bfloat16
    (the weight cast once), the rest in float32."""

    def __init__(self, linear: nn.Linear, *, bf16: bool = False):
        if linear.weight.requires_grad:
            raise ValueError("ProjectedCrossEntropy needs a fixed weight (word embeddings not trained)")
        self.linear, self.bf16 = linear, bf16
        self._bf16_weight: Optional[Tensor] = None
        self.rows = max(16, CACHE_ELEMENTS // linear.weight.shape[0])

    @property
    def weight(self) -> Tensor:
        """The layer's weight as it is now (a model moved to a GPU after this was built moves it
        too), in bfloat16 with `bf16`: the `Bf16Projection`'s cast where one is installed, else
        cast once per device."""
        weight = self.linear.weight.detach()
        if not self.bf16:
            return weight
        installed = getattr(vars(self.linear).get("forward"), "weight", None)  # a Bf16Projection's cast
        if isinstance(installed, Tensor) and installed.dtype == torch.bfloat16 and installed.device == weight.device:
            return installed
        if self._bf16_weight is None or self._bf16_weight.device != weight.device:
            self._bf16_weight = weight.to(torch.bfloat16)
        return self._bf16_weight

    def __call__(self, features: Tensor, targets: Tensor) -> Tensor:
        return _ProjectedCrossEntropy.apply(features, self.linear.bias, self.weight, targets, self.rows)

    @contextlib.contextmanager
    def projection_skipped(self):
        """Inside: the linear layer returns its input, so that the LM head it ends gives the features."""
        own = self.linear.__dict__.get("forward")  # e.g. a Bf16Projection installed on the instance
        self.linear.forward = _identity
        try:
            yield
        finally:
            if own is None:
                del self.linear.forward
            else:
                self.linear.forward = own


def _identity(x: Tensor) -> Tensor:
    return x
