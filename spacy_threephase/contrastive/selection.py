"""Dev metrics for model selection in phases 1, 2 and Joint.

- k-NN accuracy: each dev text takes the label set most frequent among its `k` most
  cosine-similar train texts (the original train set, without the imbalance copies); ties go
  to the label set with the larger summed similarity. Correct = exact match of the label set
  (for multi-label data: the whole set). Default k = 5.
- Nearest-centroid accuracy: each dev text takes the label set whose mean train vector is the
  most cosine-similar. Closer to what phase 3's head does with the vectors (one region per
  class, every class weighted alike) than k-NN, which rewards tight clusters of a few texts
  and favours large classes.
- `selection_metric` (`[training]`) says which of the two is the selection score.
- Spearman correlation between cos(u, v) and the pair label over dev pairs drawn like the
  train pairs (same sampler, fixed seed); it breaks ties between epochs of equal accuracy.
  Computed in numpy (`spearman`, equal to scipy.stats.spearmanr) so scipy is no dependency.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy
import torch

from .embedding import encode
from .pairs import Pairs


def knn_predict(
    train_vecs: torch.Tensor, train_keys: Sequence, query_vecs: torch.Tensor, k: int = 5, chunk: int = 1024
) -> List:
    k = max(1, min(k, len(train_keys)))
    preds = []
    for start in range(0, len(query_vecs), chunk):
        sims = query_vecs[start : start + chunk] @ train_vecs.T
        top_sim, top_idx = sims.topk(k, dim=1)
        for sim_row, idx_row in zip(top_sim.tolist(), top_idx.tolist()):
            votes: Dict = {}
            for s, j in zip(sim_row, idx_row):
                count, total = votes.get(train_keys[j], (0, 0.0))
                votes[train_keys[j]] = (count + 1, total + s)
            preds.append(max(votes.items(), key=lambda kv: kv[1])[0])
    return preds


def knn_accuracy(train_vecs, train_keys, query_vecs, query_keys, k: int = 5) -> float:
    if not len(query_keys):
        return float("nan")
    preds = knn_predict(train_vecs, train_keys, query_vecs, k)
    return sum(p == g for p, g in zip(preds, query_keys)) / len(query_keys)


def average_ranks(values) -> numpy.ndarray:
    """1-based ranks; tied values share the mean of their ranks (scipy's rankdata "average")."""
    x = numpy.asarray(values, dtype=numpy.float64).ravel()
    n = len(x)
    order = numpy.argsort(x, kind="mergesort")
    inverse = numpy.empty(n, dtype=numpy.intp)
    inverse[order] = numpy.arange(n, dtype=numpy.intp)
    sorted_x = x[order]
    starts = numpy.r_[True, sorted_x[1:] != sorted_x[:-1]] if n else numpy.zeros(0, dtype=bool)
    group = numpy.cumsum(starts)[inverse]  # 1-based index of each value's tie group
    bounds = numpy.r_[numpy.nonzero(starts)[0], n]  # group g spans sorted positions bounds[g-1]..bounds[g]-1
    return 0.5 * (bounds[group] + bounds[group - 1] + 1)


def spearman(a, b) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks (as scipy.stats.spearmanr).

    NaN when either side is constant, has fewer than 2 values or contains NaN.
    """
    a = numpy.asarray(a, dtype=numpy.float64).ravel()
    b = numpy.asarray(b, dtype=numpy.float64).ravel()
    if len(a) != len(b):
        raise ValueError(f"spearman: {len(a)} vs {len(b)} values")
    if len(a) < 2 or numpy.isnan(a).any() or numpy.isnan(b).any():
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.min() == ra.max() or rb.min() == rb.max():
        return float("nan")
    # numpy.corrcoef on the ranks, exactly as spearmanr does (same rounding, clipped to [-1, 1])
    return float(numpy.corrcoef(ra, rb)[0, 1])


def pair_spearman(vecs: torch.Tensor, pairs: Pairs) -> float:
    if len(pairs) < 3 or numpy.all(pairs.score == pairs.score[0]):
        return float("nan")
    cos = (vecs[torch.from_numpy(pairs.first)] * vecs[torch.from_numpy(pairs.second)]).sum(-1).numpy()
    return spearman(cos, pairs.score)


def class_gap(vecs: torch.Tensor, keys: Sequence) -> Tuple[float, float]:
    """Mean cosine of same-class pairs and of different-class pairs (distinct items)."""
    sims = vecs @ vecs.T
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    lab = torch.tensor([ids[k] for k in keys])
    same = lab[:, None] == lab[None, :]
    off = ~torch.eye(len(keys), dtype=torch.bool)
    s, d = sims[same & off], sims[~same]
    return (float(s.mean()) if len(s) else float("nan"), float(d.mean()) if len(d) else float("nan"))


def centroid_predict(train_vecs: torch.Tensor, train_keys: Sequence, query_vecs: torch.Tensor) -> List:
    """Each query's label set: the one whose mean train vector is the most cosine-similar."""
    classes = list(dict.fromkeys(train_keys))
    index = {key: i for i, key in enumerate(classes)}
    rows = torch.tensor([index[key] for key in train_keys])
    sums = torch.zeros(len(classes), train_vecs.shape[1], dtype=train_vecs.dtype).index_add_(0, rows, train_vecs)
    nearest = (query_vecs @ torch.nn.functional.normalize(sums, dim=1).T).argmax(1).tolist()
    return [classes[c] for c in nearest]


def centroid_accuracy(train_vecs: torch.Tensor, train_keys: Sequence, query_vecs: torch.Tensor, query_keys) -> float:
    """Share of queries whose most cosine-similar class mean (of the train vectors) is their class."""
    if not len(query_keys):
        return float("nan")
    preds = centroid_predict(train_vecs, train_keys, query_vecs)
    return sum(p == g for p, g in zip(preds, query_keys)) / len(query_keys)


SELECTION_METRICS = {"knn": "knn_acc", "centroid": "centroid_acc"}


def selection_label(metric: str) -> str:
    """How phase summaries name the selection score, e.g. "dev centroid_acc"."""
    return f"dev {SELECTION_METRICS[metric]}"


def selection_score(metrics: Dict[str, float], n_dev: int, metric: str = "centroid") -> float:
    """The accuracy named by `metric` (knn or centroid); ties (same accuracy) broken by the
    dev-pair Spearman correlation.

    The Spearman term is scaled to less than half an accuracy step (1 / n_dev), so it never
    outranks a real accuracy difference.
    """
    acc = metrics.get(SELECTION_METRICS[metric], float("nan"))
    score = -1.0 if math.isnan(acc) else acc
    rho = metrics.get("spearman", float("nan"))
    if rho is not None and not math.isnan(rho):
        score += 0.25 / max(1, n_dev) * rho
    return score


class DevEvaluator:
    """Called by the Trainer at each evaluation: returns (selection score, metrics)."""

    def __init__(
        self,
        enc,
        device,
        train_texts: List[str],
        train_keys: List,
        dev_texts: List[str],
        dev_keys: List,
        dev_pairs: Optional[Pairs],
        *,
        k: int = 5,
        batch_size: int = 64,
        metric: str = "centroid",
    ):
        if metric not in SELECTION_METRICS:
            raise ValueError(f"selection_metric must be one of {sorted(SELECTION_METRICS)}, not {metric!r}")
        self.metric = metric
        self.enc, self.device = enc, device
        self.train_texts, self.train_keys = train_texts, train_keys
        self.dev_texts, self.dev_keys = dev_texts, dev_keys
        self.dev_pairs, self.k, self.batch_size = dev_pairs, k, batch_size

    def scored(self) -> Tuple[Dict[str, float], numpy.ndarray]:
        """The metrics, and per dev text whether the selection metric's prediction is right."""
        was_training = self.enc.model.training
        self.enc.model.eval()
        try:
            train_vecs = encode(self.enc, self.train_texts, self.device, self.batch_size)
            dev_vecs = encode(self.enc, self.dev_texts, self.device, self.batch_size)
        finally:
            self.enc.model.train(was_training)
        predictions = {
            "knn": knn_predict(train_vecs, self.train_keys, dev_vecs, self.k),
            "centroid": centroid_predict(train_vecs, self.train_keys, dev_vecs),
        }
        hits = {name: numpy.array([p == g for p, g in zip(ps, self.dev_keys)]) for name, ps in predictions.items()}
        nan = float("nan")
        out = {SELECTION_METRICS[name]: float(h.mean()) if len(h) else nan for name, h in hits.items()}
        if self.dev_pairs is not None:
            out["spearman"] = pair_spearman(dev_vecs, self.dev_pairs)
        same, diff = class_gap(dev_vecs, self.dev_keys)
        out["dev_same_cos"], out["dev_diff_cos"] = same, diff
        return out, hits[self.metric]

    def metrics(self) -> Dict[str, float]:
        return self.scored()[0]

    def __call__(self, epoch: int):
        """(selection score, metrics, per-text 0/1 of the selection metric) for the Trainer."""
        m, hits = self.scored()
        return selection_score(m, len(self.dev_texts), self.metric), m, hits
