"""Carve a stratified, seeded held-out split from a list of records."""
import random
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

from .readers import Record


def stratified_split(records: Sequence[Record], ratio: float, seed: int = 0) -> Tuple[List[Record], List[Record]]:
    """Return (kept, carved): about `ratio` of each class goes to `carved`.

    Records are grouped by their (sorted) label set. A group of 2 or more gives at
    least one record to `carved` and keeps at least one; a group of one stays.
    Both lists keep the input order. Same records + seed -> same split.
    """
    groups: Dict[Tuple[str, ...], List[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        groups[tuple(sorted(rec.labels))].append(i)
    rng = random.Random(seed)
    carved = set()
    for key in sorted(groups):
        idx = groups[key]
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, round(len(idx) * ratio)))
        carved.update(rng.sample(idx, k))
    kept = [r for i, r in enumerate(records) if i not in carved]
    out = [r for i, r in enumerate(records) if i in carved]
    return kept, out
