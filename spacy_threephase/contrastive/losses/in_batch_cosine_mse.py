"""The paper's per-pair loss (eqs. 2-3) over every pair inside a batch of texts encoded once.

`(score(y_i, y_j) - cos(u_i, u_j))^2` for every unordered pair i < j of the batch (the
diagonal, a text with itself, is left out). Why: the shuffled-copies sampler pays two encoder
passes per pair and, with many classes, keeps few positive pairs after its 50/50 balancing; a
batch of B texts encoded once gives B(B-1)/2 pairs, and class-aware batches
(`spacy_threephase.class_batches.v1`) make sure that positives are among them.

In-batch pairs are mostly negatives (about (K-1)/K of them for K equally frequent classes),
so a plain mean would be dominated by the negatives. The paper balances positives and
negatives 50/50 by down-sampling; here both groups are kept and weighted instead:

    loss = w * mean over positive pairs + (1 - w) * mean over negative pairs

with w = `positive_weight` (0.5 = the paper's balance). A pair is positive when its score is
> 0 (same class; for hierarchical labels a shared top level, target = the level fraction;
for multi-label a non-empty overlap, target = the Jaccard score) and negative when it is 0.
A batch with only one kind of pair gives the plain mean over its pairs. For a batch whose
pairs are already balanced, w = 0.5 gives exactly `CosineMSELoss` over those pairs; with
w = n_pos / (n_pos + n_neg) it is `CosineMSELoss` over all in-batch pairs, unweighted.

Pairs of the same text twice (an exact copy from the imbalance correction, or a class
topped up by repetition) have target 1 and cosine ~1 in eval mode, so they add ~0 loss;
with dropout on they act as SimCSE-style positives.
"""

import spacy
import torch
from torch import nn


class InBatchCosineMSELoss(nn.Module):
    input_kind = "texts"

    def __init__(self, positive_weight: float = 0.5):
        super().__init__()
        if not 0.0 <= positive_weight <= 1.0:
            raise ValueError(f"positive_weight must be in [0, 1], got {positive_weight}")
        self.positive_weight = float(positive_weight)

    def forward(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.normalize(embeddings.float(), dim=-1, eps=1e-8)
        n = z.shape[0]
        if n < 2:
            return (z * 0.0).sum()  # no pair: zero loss, keeps the graph
        cos = z @ z.T  # one B x B matrix, float32
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=z.device), diagonal=1)
        scores = targets.to(z.device, torch.float32)[upper]
        errors = (scores - cos[upper]) ** 2
        positive = scores > 0
        n_pos = int(positive.sum())
        if n_pos == 0 or n_pos == errors.numel():
            return errors.mean()
        w = self.positive_weight
        return w * errors[positive].mean() + (1.0 - w) * errors[~positive].mean()


@spacy.registry.misc("spacy_threephase.in_batch_cosine_mse_loss.v1")
def in_batch_cosine_mse_loss(positive_weight: float = 0.5) -> InBatchCosineMSELoss:
    """Eq. (3) over all in-batch pairs; positives and negatives weighted w / (1 - w)."""
    return InBatchCosineMSELoss(positive_weight=positive_weight)
