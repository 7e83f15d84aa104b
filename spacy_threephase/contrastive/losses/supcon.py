"""In-batch supervised contrastive loss (SupCon, Khosla et al. 2020, "L_out" form).

For each anchor i with at least one positive in the batch:
`-sum_p w_ip * log softmax_{a != i}(z_i . z_a / T)[p] / sum_p w_ip`, averaged over anchors,
where z are L2-normalised embeddings and w_ip is the label similarity of i and p (1 for the
same class; fractional for hierarchical / multi-label data). Anchors without a positive in
the batch are skipped.
"""

import spacy
import torch
from torch import nn


class SupConLoss(nn.Module):
    input_kind = "texts"

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.normalize(embeddings.float(), dim=-1)
        n = z.shape[0]
        logits = z @ z.T / self.temperature
        eye = torch.eye(n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(eye, float("-inf"))
        log_prob = torch.log_softmax(logits, dim=1).masked_fill(eye, 0.0)
        weights = targets.to(z.device, z.dtype).masked_fill(eye, 0.0)
        denom = weights.sum(dim=1)
        has_pos = denom > 0
        if not bool(has_pos.any()):
            return (z * 0.0).sum()  # no positives in this batch: zero loss, keeps the graph
        per_anchor = -(weights * log_prob).sum(dim=1)[has_pos] / denom[has_pos]
        return per_anchor.mean()


@spacy.registry.misc("spacy_threephase.supcon_loss.v1")
def supcon_loss(temperature: float = 0.1) -> SupConLoss:
    return SupConLoss(temperature=temperature)
