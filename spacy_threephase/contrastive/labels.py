"""Similarity scores between the label sets of two examples (the pair label of eq. 2).

- single label, flat: 1 if equal else 0;
- single label, hierarchical (`A/B`): the fraction of levels that match from the top, over the
  deeper of the two paths (`A/B` vs `A/C` -> 0.5, `A` vs `A/B` -> 0.5);
- several labels (multi-label): the Jaccard overlap of the two label sets (with hierarchical
  labels, each label is compared as a whole path).
"""

from typing import Dict, List, Sequence, Tuple

import numpy

LabelSet = Tuple[str, ...]


def level_fraction(a: str, b: str) -> float:
    pa, pb = a.split("/"), b.split("/")
    depth = max(len(pa), len(pb))
    match = 0
    for x, y in zip(pa, pb):
        if x != y:
            break
        match += 1
    return match / depth


def label_score(a: Sequence[str], b: Sequence[str], hierarchical: bool = False) -> float:
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    if len(sa) == 1 and len(sb) == 1:
        x, y = next(iter(sa)), next(iter(sb))
        if hierarchical:
            return level_fraction(x, y)
        return 1.0 if x == y else 0.0
    return len(sa & sb) / len(sa | sb)


class LabelIndex:
    """Maps each example's label set to a small integer id and scores pairs of ids fast.

    With up to `matrix_limit` distinct label sets the scores are a precomputed matrix
    (vectorised lookups); otherwise they are computed per pair with a cache.
    """

    def __init__(self, labels: Sequence[Sequence[str]], hierarchical: bool = False, matrix_limit: int = 1024):
        self.hierarchical = hierarchical
        ids: Dict[LabelSet, int] = {}
        self.ids = numpy.empty(len(labels), dtype=numpy.int64)
        for i, lab in enumerate(labels):
            key = tuple(sorted(set(lab)))
            self.ids[i] = ids.setdefault(key, len(ids))
        self.sets: List[LabelSet] = [None] * len(ids)  # type: ignore
        for key, idx in ids.items():
            self.sets[idx] = key
        self.matrix = None
        if len(self.sets) <= matrix_limit:
            u = len(self.sets)
            self.matrix = numpy.zeros((u, u), dtype=numpy.float32)
            for x in range(u):
                for y in range(x, u):
                    self.matrix[x, y] = self.matrix[y, x] = label_score(self.sets[x], self.sets[y], hierarchical)
        self._cache: Dict[Tuple[int, int], float] = {}

    def scores(self, first: numpy.ndarray, second: numpy.ndarray) -> numpy.ndarray:
        """Pair scores for example indices `first[k]`, `second[k]`."""
        a, b = self.ids[first], self.ids[second]
        if self.matrix is not None:
            return self.matrix[a, b]
        out = numpy.empty(len(a), dtype=numpy.float32)
        for k, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
            key = (x, y) if x <= y else (y, x)
            if key not in self._cache:
                self._cache[key] = label_score(self.sets[key[0]], self.sets[key[1]], self.hierarchical)
            out[k] = self._cache[key]
        return out

    def score_matrix(self, items: numpy.ndarray) -> numpy.ndarray:
        """All-against-all scores for a batch of example indices (for in-batch losses)."""
        items = numpy.asarray(items)
        n = len(items)
        first = numpy.repeat(items, n)
        second = numpy.tile(items, n)
        return self.scores(first, second).reshape(n, n)
