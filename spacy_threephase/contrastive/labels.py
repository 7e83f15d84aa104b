"""Similarity scores between the label sets of two examples (the pair label of eq. 2).

- single label, flat: 1 if equal else 0;
- single label, hierarchical (`A/B`): the fraction of levels that match from the top, over the
  deeper of the two paths (`A/B` vs `A/C` -> 0.5, `A` vs `A/B` -> 0.5);
- several labels (multi-label): the Jaccard overlap of the two label sets (with hierarchical
  labels, each label is compared as a whole path);
- single label, ordered (`label_order` in labels.json, e.g. very negative < ... < very
  positive): 1 - |rank(a) - rank(b)| / (K - 1), so neighbours on the scale are more alike
  than its two ends (K = 5: 1, 0.75, 0.5, 0.25, 0). Eq. 2's score(y_i, y_j) allows any
  similarity in [0, 1]; flat scores would put "negative" as far from "very negative" as from
  "very positive".
"""

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

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


def ordinal_score(a: str, b: str, ranks: Mapping[str, int]) -> float:
    """1 at the same rank, falling linearly to 0 between the two ends of the scale."""
    return 1.0 - abs(ranks[a] - ranks[b]) / max(1, len(ranks) - 1)


def label_score(
    a: Sequence[str], b: Sequence[str], hierarchical: bool = False, ranks: Optional[Mapping[str, int]] = None
) -> float:
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    if len(sa) == 1 and len(sb) == 1:
        x, y = next(iter(sa)), next(iter(sb))
        if ranks is not None:
            return ordinal_score(x, y, ranks)
        if hierarchical:
            return level_fraction(x, y)
        return 1.0 if x == y else 0.0
    return len(sa & sb) / len(sa | sb)


class LabelIndex:
    """Maps each example's label set to a small integer id and scores pairs of ids fast.

    With up to `matrix_limit` distinct label sets the scores are a precomputed matrix
    (vectorised lookups); otherwise they are computed per pair with a cache. `order` (labels
    from one end of an ordered scale to the other) gives single labels ordinal scores.
    """

    def __init__(
        self,
        labels: Sequence[Sequence[str]],
        hierarchical: bool = False,
        matrix_limit: int = 1024,
        order: Optional[Sequence[str]] = None,
    ):
        self.hierarchical = hierarchical
        self.ranks = {label: i for i, label in enumerate(order)} if order else None
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
                    score = label_score(self.sets[x], self.sets[y], hierarchical, self.ranks)
                    self.matrix[x, y] = self.matrix[y, x] = score
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
                self._cache[key] = label_score(self.sets[key[0]], self.sets[key[1]], self.hierarchical, self.ranks)
            out[k] = self._cache[key]
        return out

    def score_matrix(self, items: numpy.ndarray) -> numpy.ndarray:
        """All-against-all scores for a batch of example indices (for in-batch losses)."""
        items = numpy.asarray(items)
        n = len(items)
        first = numpy.repeat(items, n)
        second = numpy.tile(items, n)
        return self.scores(first, second).reshape(n, n)
