"""The dev evaluator of phases 1, 2 and Joint (k-NN and nearest-centroid accuracy), with its train
vectors capped for speed."""

import random
from collections import defaultdict
from typing import List

from .corpus import Split
from .selection import DevEvaluator


def stratified_subset(split: Split, limit: int, seed: int) -> Split:
    """At most `limit` examples of `split`, each class (label set) keeping its share (at least one)."""
    if not limit or len(split) <= limit:
        return split
    by_class = defaultdict(list)
    for i, key in enumerate(split.keys):
        by_class[key].append(i)
    rng = random.Random(f"knn-{seed}")
    keep: List[int] = []
    for key in sorted(by_class):
        members = by_class[key]
        keep.extend(rng.sample(members, max(1, round(limit * len(members) / len(split)))))
    keep.sort()
    return Split([split.texts[i] for i in keep], [split.labels[i] for i in keep])


def dev_evaluator(enc, device, train: Split, dev: Split, training, dev_pairs=None) -> DevEvaluator:
    """() -> (selection score, metrics) on up to `knn_max_dev` dev texts, with neighbours and class
    means from up to `knn_max_train` train texts; the score is the accuracy `selection_metric`
    names. dev_pairs(dev split) -> Pairs for the Spearman tie-break."""
    neighbours = stratified_subset(train, training.knn_max_train, training.seed)
    dev = stratified_subset(dev, training.knn_max_dev, training.seed + 1)
    pairs = dev_pairs(dev) if dev_pairs is not None else None
    evaluator = DevEvaluator(
        enc,
        device,
        neighbours.texts,
        neighbours.keys,
        dev.texts,
        dev.keys,
        pairs,
        k=training.knn_k,
        batch_size=training.eval_batch_size,
        metric=training.selection_metric,
    )
    return lambda: evaluator(None)
