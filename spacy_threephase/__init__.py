"""spacy-threephase: DAE -> supervised contrastive -> MLP fine-tuning for spaCy textcat."""

from .about import __version__

__all__ = ["__version__"]
