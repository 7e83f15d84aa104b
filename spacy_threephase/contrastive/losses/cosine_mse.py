"""The paper's loss (eq. 3): `(label - cos(u, v))^2`, mean over the batch of pairs."""

import spacy
import torch
from torch import nn


class CosineMSELoss(nn.Module):
    input_kind = "pairs"

    def forward(self, u: torch.Tensor, v: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        cos = torch.nn.functional.cosine_similarity(u.float(), v.float(), dim=-1)
        return ((scores.to(cos.dtype) - cos) ** 2).mean()


@spacy.registry.misc("spacy_threephase.cosine_mse_loss.v1")
def cosine_mse_loss() -> CosineMSELoss:
    return CosineMSELoss()
