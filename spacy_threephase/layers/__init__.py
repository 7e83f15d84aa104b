from .sentence_pooling import sentence_pooling

__all__ = ["sentence_pooling"]
