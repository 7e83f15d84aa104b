"""Class-aware batches of texts for the in-batch phase-2 losses ("texts" input kind).

Why: with random batches and many classes (K = 150, batch 32) most batches hold no two texts
of the same class, so an in-batch loss sees no positive pair. Here every batch is made of
*chunks* of `per_class` texts of one class each, so every batch has positives whatever K is.

One epoch (a pure function of `seed`; the loop passes seed + epoch):

1. The "class" of an example is its label-set id (`LabelIndex.ids`): the label for flat
   single-label data, the full path for hierarchical labels (siblings still give fractional
   positives through the score matrix), the exact label set for multi-label data.
   Oversampled copies from the imbalance correction are simply more examples of their class.
2. Each class's examples are shuffled (or, with `length_sorted`, sorted by jittered length)
   and cut into ceil(n_c / per_class) chunks of exactly `per_class` texts. The last chunk
   of a class is its final `per_class` examples, so when n_c is not a multiple of
   `per_class` it overlaps the previous chunk: up to per_class - 1 examples of that class are
   seen twice in the epoch. A class with fewer than `per_class` examples fills its one chunk
   by cycling through them (the repeats are pairs of a text with itself: target 1, ~0 loss,
   SimCSE-like positives under dropout). Every example appears at least once per epoch; the
   epoch holds sum_c ceil(n_c / per_class) * per_class <= N + K * (per_class - 1) texts.
3. Chunks are ordered so that each class's chunks are spread evenly over the epoch (chunk r of
   a class with m chunks gets the key (r + U[0,1)) / m): every batch's mix of classes follows
   the class frequencies and a class rarely fills a batch by itself. With `length_sorted`
   the chunks are ordered by (jittered) maximum length instead and the full batches shuffled
   (less padding). The price: sorted by length, a class's chunks are runs of its length
   neighbours, so a text's positives are the same few texts every epoch (with 8 texts a
   class, always the same 3). The shipped configs turn it on for epochs of `random_below`
   (1,000) examples or more: drawn at random, the positives gave the better encoder frozen
   and won on sst5, but 3-Phase then ended below plain fine-tuning on 2,000 sst2 texts and
   all of clinc150 and clinc150_imb, and summed over the cells measured both ways sorted was
   ahead (benchmarks/RESULTS.md, "Phase 2's positives sorted by length again"). Below
   `random_below` examples (few-shot data: 8 or 64 texts a class) the chunks are drawn at
   random all the same: there sorting saves no time worth having, fixes every text's
   partners, and cost 3-Phase 1.4 points at 8 sst5 texts a class (RESULTS.md, "Phase 2's
   positives at random on small data").
4. Batches are `classes_per_batch` consecutive chunks (default batch_size // per_class), i.e.
   `classes_per_batch * per_class` texts; only the last batch of the epoch may be smaller
   (fewer chunks, each still complete).

Memory and time are O(N): a few int64 arrays of N entries, no pair structure.
"""

import math
from typing import List, Optional

import numpy
import spacy

from .labels import LabelIndex

# Relative noise on the lengths when `length_sorted`: chunks change between epochs while the
# texts of one batch stay of similar length.
LENGTH_JITTER = 0.1


class ClassBatchSampler:
    def __init__(
        self,
        classes_per_batch: Optional[int] = None,
        per_class: int = 4,
        length_sorted: bool = False,
        random_below: int = 0,
    ):
        if per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {per_class}")
        if classes_per_batch is not None and classes_per_batch < 1:
            raise ValueError(
                f"classes_per_batch must be >= 1 (or null for batch_size // per_class), got {classes_per_batch}"
            )
        if random_below < 0:
            raise ValueError(f"random_below must be >= 0, got {random_below}")
        self.classes_per_batch = classes_per_batch
        self.per_class = per_class
        self.length_sorted = length_sorted
        self.random_below = random_below

    def sorts(self, n_examples: int) -> bool:
        """Whether an epoch of `n_examples` examples is sorted by length (see `random_below`)."""
        return self.length_sorted and n_examples >= self.random_below

    def chunks_per_batch(self, batch_size: int) -> int:
        """Chunks of `per_class` texts in a batch; `batch_size` caps the texts per batch."""
        most = batch_size // self.per_class
        if most < 1:
            raise ValueError(f"batch_size ({batch_size}) must be >= per_class ({self.per_class})")
        if self.classes_per_batch is None:
            return most
        if self.classes_per_batch > most:
            raise ValueError(
                f"classes_per_batch * per_class ({self.classes_per_batch} * {self.per_class})"
                f" exceeds batch_size ({batch_size})"
            )
        return self.classes_per_batch

    def texts_per_batch(self, batch_size: int) -> int:
        return self.chunks_per_batch(batch_size) * self.per_class

    def batches_per_epoch(self, index: LabelIndex, batch_size: int) -> int:
        """len(sampler(index, ...)) for any seed: it depends on the class sizes only."""
        sizes = numpy.bincount(index.ids) if len(index.ids) else numpy.zeros(0, numpy.int64)
        n_chunks = int(((sizes + self.per_class - 1) // self.per_class).sum())
        return math.ceil(n_chunks / self.chunks_per_batch(batch_size))

    def __call__(
        self, index: LabelIndex, *, batch_size: int, seed: int, lengths: Optional[numpy.ndarray] = None
    ) -> List[List[int]]:
        """One epoch's batches: lists of example indices into the examples behind `index`."""
        per_batch = self.chunks_per_batch(batch_size)
        n = len(index.ids)
        if n == 0:
            return []
        p = self.per_class
        rng = numpy.random.default_rng(seed)
        cls = numpy.asarray(index.ids, dtype=numpy.int64)
        by_length = self.sorts(n)
        if by_length:
            if lengths is None or len(lengths) != n:
                raise ValueError("length_sorted batches need `lengths`, one per example")
            noise = rng.uniform(1.0 - LENGTH_JITTER, 1.0 + LENGTH_JITTER, size=n)
            within = numpy.asarray(lengths, dtype=numpy.float64) * noise
        else:
            within = rng.random(n)
        order = numpy.lexsort((within, cls))  # grouped by class, random / by length inside
        sizes = numpy.bincount(cls)
        present = numpy.flatnonzero(sizes)
        sizes = sizes[present]
        starts = numpy.concatenate([[0], numpy.cumsum(sizes)[:-1]])
        n_chunks = (sizes + p - 1) // p
        chunk_class = numpy.repeat(numpy.arange(len(sizes)), n_chunks)  # position in `present`
        first_chunk = numpy.concatenate([[0], numpy.cumsum(n_chunks)[:-1]])
        rank = numpy.arange(len(chunk_class)) - first_chunk[chunk_class]
        size_of = sizes[chunk_class]
        # offset of each chunk's first text inside its class; a short class cycles from 0
        begin = numpy.minimum(rank * p, numpy.maximum(size_of - p, 0))
        offsets = begin[:, None] + numpy.arange(p)[None, :]
        offsets = numpy.where(size_of[:, None] < p, numpy.arange(p)[None, :] % size_of[:, None], offsets)
        chunks = order[starts[chunk_class][:, None] + offsets]  # (n_chunks, p) example indices
        if by_length:
            key = numpy.asarray(lengths, dtype=numpy.float64)[chunks].max(axis=1) * rng.uniform(
                1.0 - LENGTH_JITTER, 1.0 + LENGTH_JITTER, size=len(chunks)
            )
        else:
            key = (rank + rng.random(len(chunks))) / n_chunks[chunk_class]
        chunks = chunks[numpy.argsort(key, kind="stable")]
        flat = chunks.reshape(-1).tolist()
        step = per_batch * p
        batches = [flat[i : i + step] for i in range(0, len(flat), step)]
        if by_length:  # shuffle the batches, the short one (if any) stays last
            full = len(batches) - (len(batches[-1]) < step)
            batches = [batches[i] for i in rng.permutation(full).tolist()] + batches[full:]
        return batches


@spacy.registry.misc("spacy_threephase.class_batches.v1")
def class_batches(
    classes_per_batch: Optional[int] = None, per_class: int = 4, length_sorted: bool = False, random_below: int = 0
) -> ClassBatchSampler:
    """Batches of `per_class` texts of each of `classes_per_batch` classes (None = batch_size // per_class).

    `length_sorted` sorts each class by length before it is cut into chunks, for epochs of at
    least `random_below` examples (0 = always); smaller epochs draw the chunks at random."""
    return ClassBatchSampler(
        classes_per_batch=classes_per_batch,
        per_class=per_class,
        length_sorted=length_sorted,
        random_below=random_below,
    )
