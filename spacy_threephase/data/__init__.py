"""Data preparation: read labelled splits, carve dev/test, write .spacy and phase-1/2 inputs."""

from .convert import convert_dataset
from .readers import ReadResult, Record, load_hf_dataset, read_split

__all__ = ["convert_dataset", "read_split", "load_hf_dataset", "Record", "ReadResult"]
