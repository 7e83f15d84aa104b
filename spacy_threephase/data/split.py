"""Carve a stratified, seeded held-out split from a list of records."""

import random
from collections import Counter, defaultdict
from typing import Dict, List, Sequence, Tuple

from .readers import Record


def stratified_split(records: Sequence[Record], ratio: float, seed: int = 0) -> Tuple[List[Record], List[Record]]:
    """Return (kept, carved): about `ratio` of each class goes to `carved`.

    Records are grouped by label; a multi-label record counts for its rarest
    label. A group of 2 or more gives at least one record to `carved` and keeps
    at least one; a group of one stays. Both lists keep the input order.
    Same records + seed -> same split.
    """
    freq = Counter(label for rec in records for label in rec.labels)
    groups: Dict[str, List[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        key = min(rec.labels, key=lambda label: (freq[label], label)) if rec.labels else ""
        groups[key].append(i)
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
