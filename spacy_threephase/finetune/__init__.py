"""Phase 3: fine-tune the pipeline (spaCy's training loop, resumable)."""

from .loop import train_pipeline

__all__ = ["train_pipeline"]
