"""Pair sampling for the Siamese phase: shuffled copies paired position by position.

For each of `multiplier` rounds, two independent random permutations of the (imbalance-
corrected) examples are paired position by position. Self-pairs (the same text on both
sides) and repeated unordered pairs are dropped, then positives (pair score > 0: same class,
same top-level class for hierarchical labels, at least one shared label for multi-label) and
negatives (score 0) are balanced 50/50 by down-sampling the larger group.

Memory is O(multiplier * n): only the `multiplier * n` candidates are ever held (as int64
arrays), never the n^2 possible pairs.

Default `multiplier` (None): `1 + max(2, ceil(log2(K)))` for K classes (K=2 -> 3, K=7 -> 4,
K=10 -> 5). It grows with log2(K) like the authors' default; the `1 +` compensates for the
positives being only about 1/K of random candidates, which the 50/50 balancing then limits.
"""

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy
import spacy

from .labels import LabelIndex


@dataclass
class Pairs:
    first: numpy.ndarray  # example indices (int64)
    second: numpy.ndarray
    score: numpy.ndarray  # float32 pair labels in [0, 1]

    def __len__(self) -> int:
        return len(self.first)

    @property
    def n_positive(self) -> int:
        return int((self.score > 0).sum())

    def batches(self, batch_size: int):
        """Lists of (i, j, score) tuples, `batch_size` pairs each."""
        out = []
        for start in range(0, len(self), batch_size):
            end = start + batch_size
            out.append(
                list(
                    zip(self.first[start:end].tolist(), self.second[start:end].tolist(), self.score[start:end].tolist())
                )
            )
        return out


def default_multiplier(n_classes: int) -> int:
    return 1 + max(2, math.ceil(math.log2(max(2, n_classes))))


class ShuffledPairSampler:
    def __init__(self, multiplier: Optional[int] = None, balance: bool = True):
        if multiplier is not None and multiplier < 1:
            raise ValueError(f"multiplier must be >= 1 (or null for the default), got {multiplier}")
        self.multiplier = multiplier
        self.balance = balance

    def resolve_multiplier(self, n_classes: int) -> int:
        return self.multiplier if self.multiplier is not None else default_multiplier(n_classes)

    def __call__(
        self, index: LabelIndex, seed: int, keys: Optional[Sequence[int]] = None, n_classes: Optional[int] = None
    ) -> Pairs:
        """Sample pairs of the examples behind `index` (a LabelIndex over their labels).

        `keys[i]` identifies example i's text: two examples with the same key (an exact copy)
        count as the same item for the no-self-pair and no-duplicate rules.
        """
        n = len(index.ids)
        rng = numpy.random.default_rng(seed)
        if n < 2:
            return Pairs(numpy.zeros(0, numpy.int64), numpy.zeros(0, numpy.int64), numpy.zeros(0, numpy.float32))
        keys = numpy.arange(n, dtype=numpy.int64) if keys is None else numpy.asarray(keys, dtype=numpy.int64)
        n_classes = n_classes if n_classes is not None else len(index.sets)
        m = self.resolve_multiplier(n_classes)
        first = numpy.concatenate([rng.permutation(n) for _ in range(m)])
        second = numpy.concatenate([rng.permutation(n) for _ in range(m)])
        ka, kb = keys[first], keys[second]
        keep = ka != kb
        first, second, ka, kb = first[keep], second[keep], ka[keep], kb[keep]
        base = int(keys.max()) + 1
        unordered = numpy.minimum(ka, kb) * base + numpy.maximum(ka, kb)
        del ka, kb
        _, where = numpy.unique(unordered, return_index=True)
        del unordered
        where.sort()
        first, second = first[where], second[where]
        score = index.scores(first, second)
        if self.balance:
            pos = numpy.flatnonzero(score > 0)
            neg = numpy.flatnonzero(score <= 0)
            if len(pos) == 0 or len(neg) == 0:
                warnings.warn(
                    f"pairs: only {'negative' if len(pos) == 0 else 'positive'} pairs could be drawn; not balancing"
                )
            else:
                k = min(len(pos), len(neg))
                pos = rng.choice(pos, size=k, replace=False) if len(pos) > k else pos
                neg = rng.choice(neg, size=k, replace=False) if len(neg) > k else neg
                chosen = numpy.concatenate([pos, neg])
                first, second, score = first[chosen], second[chosen], score[chosen]
        order = rng.permutation(len(first))
        return Pairs(first[order], second[order], score[order].astype(numpy.float32))


@spacy.registry.misc("spacy_threephase.shuffled_pairs.v1")
def shuffled_pairs(multiplier: Optional[int] = None, balance: bool = True) -> ShuffledPairSampler:
    """Pair sampler: `multiplier` shuffled copies (None = 1 + max(2, ceil(log2 K))), 50/50 if `balance`."""
    return ShuffledPairSampler(multiplier=multiplier, balance=balance)
