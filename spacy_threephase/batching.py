"""Texts tokenized once per run, padded per batch, and length-bucketed batch orders.

`TokenizedTexts` holds each text's wordpieces exactly as `encoder.tokenize` produces them for
a batch (whole text with special tokens, cut at max_length), so a batch collated from it is
the same tensor phase 3 sees; the tokenizer runs once per run instead of once per epoch.

`bucketed_batches` shuffles, sorts by length within chunks of `chunk_batches` batches, cuts
the chunks into batches and shuffles the batches: batches are random in content and order
but near-uniform in length, so little is computed for padding. A function of the seed only.
"""

from typing import Dict, List, Sequence

import numpy


class TokenizedTexts:
    def __init__(self, tokenizer, texts: Sequence[str], max_length: int, chunk: int = 4096):
        from .encoder import _quiet_tokenizer_logging, _restore_logging

        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        self.ids: List[numpy.ndarray] = []
        level = _quiet_tokenizer_logging()
        try:
            for start in range(0, len(texts), chunk):
                enc = tokenizer(
                    list(texts[start : start + chunk]),
                    add_special_tokens=True,
                    padding=False,
                    truncation=False,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                )
                self.ids.extend(numpy.asarray(row[:max_length], dtype=numpy.int64) for row in enc["input_ids"])
        finally:
            _restore_logging(level)
        self.lengths = numpy.array([len(x) for x in self.ids], dtype=numpy.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def collate(self, items: Sequence[int]) -> Dict[str, "torch.Tensor"]:  # noqa: F821
        """input_ids / attention_mask (/ token_type_ids) of `items`, padded to the longest."""
        import torch

        rows = [self.ids[i] for i in items]
        width = max(len(r) for r in rows)
        ids = numpy.full((len(rows), width), self.pad_id, dtype=numpy.int64)
        mask = numpy.zeros((len(rows), width), dtype=numpy.int64)
        for k, row in enumerate(rows):
            ids[k, : len(row)] = row
            mask[k, : len(row)] = 1
        out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self.token_types:
            out["token_type_ids"] = torch.zeros_like(out["input_ids"])
        return out


def bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, chunk_batches: int = 50) -> List[List[int]]:
    """Index batches of `batch_size` (the last of each chunk may be smaller); see module doc."""
    lengths = numpy.asarray(lengths)
    rng = numpy.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = batch_size * max(1, chunk_batches)
    batches: List[List[int]] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        if chunk_batches > 1:
            part = part[numpy.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size].tolist() for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]


def count_batches(n: int, batch_size: int, chunk_batches: int = 50) -> int:
    """len(bucketed_batches(...)) for n items (each chunk ends in a possibly smaller batch)."""
    chunk = batch_size * max(1, chunk_batches)
    full, rest = divmod(n, chunk)
    return full * -(-chunk // batch_size) + -(-rest // batch_size)


def to_device(features: Dict[str, "torch.Tensor"], device) -> Dict[str, "torch.Tensor"]:  # noqa: F821
    return {k: v.to(device, non_blocking=True) for k, v in features.items()}
