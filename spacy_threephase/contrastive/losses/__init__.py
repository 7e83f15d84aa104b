"""Phase-2 losses, one per file (sentence-transformers' losses/ style).

Each loss is a torch module with an `input_kind` attribute that tells the training loop
what it consumes:

- "pairs": called as `loss(u, v, scores)` with the pooled vectors of the two sides of a
  batch of pairs and their pair labels in [0, 1];
- "texts": called as `loss(embeddings, targets)` with the pooled vectors of a batch of
  labelled single texts and the B x B matrix of their label similarities (1 = same class).
"""

from .cosine_mse import CosineMSELoss, cosine_mse_loss
from .in_batch_cosine_mse import InBatchCosineMSELoss, in_batch_cosine_mse_loss
from .supcon import SupConLoss, supcon_loss

INPUT_KINDS = ("pairs", "texts")

__all__ = [
    "CosineMSELoss",
    "InBatchCosineMSELoss",
    "SupConLoss",
    "cosine_mse_loss",
    "in_batch_cosine_mse_loss",
    "supcon_loss",
    "INPUT_KINDS",
]
