"""In-batch pairs for phase 2: the weighted in-batch cosine MSE loss and class-aware batches."""

import math
import time
import tracemalloc
from collections import Counter

import numpy
import pytest
import spacy
import torch

from spacy_threephase.contrastive.class_batches import ClassBatchSampler, class_batches
from spacy_threephase.contrastive.imbalance import imbalance_correction
from spacy_threephase.contrastive.labels import LabelIndex
from spacy_threephase.contrastive.losses import CosineMSELoss, InBatchCosineMSELoss, in_batch_cosine_mse_loss

# --- loss ----------------------------------------------------------------------------------

R = 1 / math.sqrt(2)
# cosines: (0,1) 0, (0,2) R, (0,3) -1, (1,2) R, (1,3) 0, (2,3) -R
VECS = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
LABELS_AABB = [["a"], ["a"], ["b"], ["b"]]


def _targets(labels, hierarchical=False):
    index = LabelIndex(labels, hierarchical=hierarchical)
    return torch.from_numpy(index.score_matrix(numpy.arange(len(labels))))


def _pair_loss(vecs, targets):
    """CosineMSELoss over every unordered pair i < j of the batch."""
    i, j = torch.triu_indices(len(vecs), len(vecs), offset=1)
    return CosineMSELoss()(vecs[i], vecs[j], targets[i, j])


def test_hand_computed_4x4():
    targets = _targets(LABELS_AABB)
    pos = ((1 - 0) ** 2 + (1 + R) ** 2) / 2  # pairs (0,1), (2,3)
    neg = (R**2 + 1 + R**2 + 0) / 4  # pairs (0,2), (0,3), (1,2), (1,3)
    assert InBatchCosineMSELoss()(VECS, targets).item() == pytest.approx(0.5 * pos + 0.5 * neg, rel=1e-6)
    assert in_batch_cosine_mse_loss(positive_weight=0.25)(VECS, targets).item() == pytest.approx(
        0.25 * pos + 0.75 * neg, rel=1e-6
    )


def test_hierarchical_fractions_are_positives_with_their_score():
    targets = _targets([["A/x"], ["A/y"], ["B/z"], ["B/z"]], hierarchical=True)
    assert targets[0, 1] == 0.5 and targets[2, 3] == 1.0
    pos = ((0.5 - 0) ** 2 + (1 + R) ** 2) / 2
    neg = (R**2 + 1 + R**2 + 0) / 4
    assert InBatchCosineMSELoss()(VECS, targets).item() == pytest.approx(0.5 * pos + 0.5 * neg, rel=1e-6)


def test_equals_pair_loss_on_balanced_batch():
    # labels a, a, a, b: 3 positive pairs (among the a's) and 3 negative pairs (each a with b).
    # CosineMSELoss over k positives and k negatives is (sum_pos + sum_neg) / 2k
    # = 0.5 * mean_pos + 0.5 * mean_neg, i.e. the in-batch loss with positive_weight 0.5.
    vecs = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    targets = _targets([["a"], ["a"], ["a"], ["b"]])
    assert InBatchCosineMSELoss()(vecs, targets).item() == pytest.approx(_pair_loss(vecs, targets).item(), rel=1e-5)


def test_equals_unweighted_pair_loss_with_the_positive_fraction_as_weight():
    # In general: w = n_pos / n_pairs turns w * mean_pos + (1 - w) * mean_neg into the plain mean.
    gen = torch.Generator().manual_seed(1)
    vecs = torch.randn(16, 8, generator=gen)
    labels = [[f"c{k}"] for k in torch.randint(0, 3, (16,), generator=gen).tolist()]
    targets = _targets(labels)
    upper = torch.triu(torch.ones(16, 16, dtype=torch.bool), diagonal=1)
    w = float((targets[upper] > 0).float().mean())
    assert 0 < w < 1
    got = InBatchCosineMSELoss(positive_weight=w)(vecs, targets).item()
    assert got == pytest.approx(_pair_loss(vecs, targets).item(), rel=1e-5)


def test_one_kind_of_pair_is_the_plain_mean_and_tiny_batches():
    vecs = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    for labels in ([["a"]] * 5, [[f"c{k}"] for k in range(5)]):
        targets = _targets(labels)
        expected = _pair_loss(vecs, targets).item()
        assert InBatchCosineMSELoss(0.9)(vecs, targets).item() == pytest.approx(expected, rel=1e-5)
    one = torch.randn(1, 4, requires_grad=True)
    loss = InBatchCosineMSELoss()(one, torch.ones(1, 1))
    assert loss.item() == 0.0
    loss.backward()  # keeps the graph
    with pytest.raises(ValueError):
        InBatchCosineMSELoss(positive_weight=1.5)


def test_gradient_flows_in_float32():
    layer = torch.nn.Linear(6, 4).to(torch.bfloat16)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    targets = _targets([["a"], ["a"], ["b"], ["b"], ["c"], ["c"], ["a"], ["b"]])
    loss = InBatchCosineMSELoss()(layer(x), targets)
    assert loss.dtype == torch.float32
    loss.backward()
    grad = layer.weight.grad.float()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert InBatchCosineMSELoss.input_kind == "texts"


def test_loss_registered():
    assert isinstance(spacy.registry.misc.get("spacy_threephase.in_batch_cosine_mse_loss.v1")(), InBatchCosineMSELoss)


# --- class-aware batches -----------------------------------------------------------------------


def _many_class_index(n=15000, k=150, seed=0):
    rng = numpy.random.default_rng(seed)
    # imbalanced: class sizes from a Zipf-like weighting, every class present
    weights = 1.0 / numpy.arange(1, k + 1) ** 0.7
    ids = numpy.concatenate([numpy.arange(k), rng.choice(k, size=n - k, p=weights / weights.sum())])
    return LabelIndex([[f"intent_{c}"] for c in ids.tolist()])


def _check_epoch(index, batches, per_class, texts_per_batch):
    n = len(index.ids)
    seen = Counter(i for batch in batches for i in batch)
    assert set(seen) == set(range(n))  # every example at least once
    sizes = numpy.bincount(index.ids)
    assert sum(seen.values()) <= n + int((sizes > 0).sum()) * (per_class - 1)
    assert all(len(b) == texts_per_batch for b in batches[:-1]) and 0 < len(batches[-1]) <= texts_per_batch
    for batch in batches:
        counts = Counter(index.ids[batch].tolist())
        assert min(counts.values()) >= per_class
        assert all(c % per_class == 0 for c in counts.values())  # whole chunks only


def test_many_classes_every_batch_has_per_class_of_each_class():
    index = _many_class_index()
    sampler = class_batches(per_class=4)
    batches = sampler(index, batch_size=32, seed=0)
    assert len(batches) == sampler.batches_per_epoch(index, 32)
    _check_epoch(index, batches, 4, 32)
    # an epoch is about one pass: at most K * (per_class - 1) extra texts
    assert sum(map(len, batches)) < 15000 + 150 * 3


def test_classes_per_batch_and_batch_size_rules():
    index = _many_class_index(n=3000, k=30)
    sampler = ClassBatchSampler(classes_per_batch=5, per_class=2)
    batches = sampler(index, batch_size=16, seed=0)
    _check_epoch(index, batches, 2, 10)
    assert sampler.texts_per_batch(16) == 10
    assert ClassBatchSampler(per_class=4).texts_per_batch(30) == 28  # rounded down to whole chunks
    with pytest.raises(ValueError):
        ClassBatchSampler(classes_per_batch=9, per_class=2)(index, batch_size=16, seed=0)
    with pytest.raises(ValueError):
        ClassBatchSampler(per_class=4)(index, batch_size=3, seed=0)
    with pytest.raises(ValueError):
        ClassBatchSampler(per_class=0)


def test_deterministic_in_seed():
    index = _many_class_index(n=2000, k=20)
    sampler = ClassBatchSampler(per_class=4)
    assert sampler(index, batch_size=32, seed=7) == sampler(index, batch_size=32, seed=7)
    assert sampler(index, batch_size=32, seed=7) != sampler(index, batch_size=32, seed=8)
    assert sampler.batches_per_epoch(index, 32) == len(sampler(index, batch_size=32, seed=8))


def test_small_classes_and_remainders():
    # a: 10 (two full chunks + a last one overlapping), b: 3 (< per_class: cycles), c: 1
    index = LabelIndex([["a"]] * 10 + [["b"]] * 3 + [["c"]])
    batches = ClassBatchSampler(per_class=4)(index, batch_size=8, seed=0)
    _check_epoch(index, batches, 4, 8)
    chunks = [b[k : k + 4] for b in batches for k in range(0, len(b), 4)]
    by_class = {}
    for chunk in chunks:
        by_class.setdefault(int(index.ids[chunk[0]]), []).append(chunk)
    assert [len(by_class[c]) for c in range(3)] == [3, 1, 1]
    assert all(len(set(ch)) == 4 for ch in by_class[0])  # a big class never repeats inside a chunk
    assert sorted(set(by_class[1][0])) == [10, 11, 12] and by_class[2][0] == [13] * 4


def test_classes_spread_over_batches():
    # two equal classes, 8 chunks per batch: each class's chunks are spread evenly, so no full
    # batch is one class only (with a plain shuffle of chunks that happens by chance)
    index = LabelIndex([["a"]] * 640 + [["b"]] * 640)
    for seed in range(5):
        for batch in ClassBatchSampler(per_class=4)(index, batch_size=32, seed=seed):
            assert len(set(index.ids[batch].tolist())) == 2


def test_large_index_is_fast_and_linear_in_memory():
    n = 100_000
    index = _many_class_index(n=n, k=150, seed=1)
    sampler = ClassBatchSampler(per_class=4)
    sampler(index, batch_size=64, seed=0)  # warm-up (imports, allocator)
    tracemalloc.start()
    start = time.perf_counter()
    batches = sampler(index, batch_size=64, seed=1)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 2.0
    assert peak < 200 * n  # a few O(N) arrays and the returned lists; N^2 would be 10^10
    assert len(batches) == sampler.batches_per_epoch(index, 64)


def _batch_has_positive(index, batch):
    scores = index.score_matrix(numpy.asarray(batch))
    off = ~numpy.eye(len(batch), dtype=bool)
    return bool((scores[off] > 0).any())


def test_hierarchical_and_multilabel_batches_have_positives():
    rng = numpy.random.default_rng(0)
    paths = [f"top{t}/leaf{leaf}" for t in range(6) for leaf in range(5)]
    hier = LabelIndex([[paths[k]] for k in rng.integers(0, len(paths), 3000).tolist()], hierarchical=True)
    batches = ClassBatchSampler(per_class=4)(hier, batch_size=32, seed=0)
    _check_epoch(hier, batches, 4, 32)
    assert all(_batch_has_positive(hier, b) for b in batches)
    fractional = [hier.score_matrix(numpy.asarray(b)) for b in batches]
    assert any(((m > 0) & (m < 1)).any() for m in fractional)  # siblings: fractional positives

    names = [f"l{k}" for k in range(12)]
    multi = LabelIndex([sorted(set(rng.choice(names, size=rng.integers(1, 3)).tolist())) for _ in range(3000)])
    batches = ClassBatchSampler(per_class=4)(multi, batch_size=32, seed=0)
    _check_epoch(multi, batches, 4, 32)
    assert all(_batch_has_positive(multi, b) for b in batches)


def test_imbalance_corrected_copies_flow_through():
    texts = [f"play the song number {i} in the kitchen" for i in range(100)]
    texts += [f"what is the weather in town {i} for the weekend" for i in range(10)]
    texts += ["book a table at the restaurant for me"]
    labels = [["Big"]] * 100 + [["Mid"]] * 10 + [["Tiny"]]
    corrected = imbalance_correction()(texts, labels, seed=0)
    assert len(corrected.texts) == 124  # Mid 10 -> 20, Tiny 1 -> 4
    index = LabelIndex(corrected.labels)
    batches = ClassBatchSampler(per_class=4)(index, batch_size=16, seed=0)
    _check_epoch(index, batches, 4, 16)
    tiny = [i for i, lab in enumerate(corrected.labels) if lab == ["Tiny"]]
    chunks = [b[k : k + 4] for b in batches for k in range(0, len(b), 4)]
    assert [sorted(ch) for ch in chunks if ch[0] in tiny] == [tiny]  # original + 3 variants, no repeats


def test_length_sorted_reduces_padding():
    index = _many_class_index(n=4000, k=40)
    lengths = numpy.random.default_rng(5).integers(3, 120, size=4000)
    plain = ClassBatchSampler(per_class=4)(index, batch_size=32, seed=0)
    sorted_ = ClassBatchSampler(per_class=4, length_sorted=True)(index, batch_size=32, seed=0, lengths=lengths)
    _check_epoch(index, sorted_, 4, 32)

    def padded(batches):
        return sum(int(lengths[b].max()) * len(b) for b in batches)

    assert padded(sorted_) < 0.8 * padded(plain)
    again = ClassBatchSampler(per_class=4, length_sorted=True)(index, batch_size=32, seed=1, lengths=lengths)
    assert again != sorted_
    with pytest.raises(ValueError):
        ClassBatchSampler(length_sorted=True)(index, batch_size=32, seed=0)


def test_sampler_registered():
    sampler = spacy.registry.misc.get("spacy_threephase.class_batches.v1")(per_class=2)
    assert isinstance(sampler, ClassBatchSampler) and sampler.per_class == 2


def _positive_partners(sampler, epochs=10, n=40):
    """Across `epochs`, the texts that share a chunk (a positive pair) with text 0, on 5 classes
    of n / 5 texts whose lengths within a class are far apart (10, 20, 30, ...)."""
    index = LabelIndex([[f"c{i % 5}"] for i in range(n)])
    lengths = numpy.array([10 * (1 + i // 5) for i in range(n)])
    partners = set()
    for seed in range(epochs):
        for batch in sampler(index, batch_size=32, seed=seed, lengths=lengths):
            for k in range(0, len(batch), sampler.per_class):
                chunk = batch[k : k + sampler.per_class]
                if 0 in chunk:
                    partners.update(chunk)
    return partners - {0}


@pytest.mark.parametrize("name", ["contrastive", "joint"])
def test_shipped_sampler_sorts_large_epochs_and_draws_small_ones_at_random(name):
    """The shipped phase-2 and Joint samplers sort a class by length on 1,000 texts, so a text's
    positives are its length neighbours (the same 3 every epoch here); on 40 texts (8 a class,
    few-shot data) they are drawn at random, and text 0 meets all 7 classmates."""
    from thinc.api import Config

    from spacy_threephase.configs import default_config_path

    pairs = Config().from_disk(default_config_path(name), interpolate=False)["pairs"]
    shipped = spacy.registry.resolve({"pairs": pairs})["pairs"]
    assert isinstance(shipped, ClassBatchSampler)
    assert len(_positive_partners(shipped, n=1000)) == 3
    assert len(_positive_partners(ClassBatchSampler(per_class=4, length_sorted=False), n=1000)) > 20
    assert len(_positive_partners(shipped, n=40)) == 7
    assert len(_positive_partners(ClassBatchSampler(per_class=4, length_sorted=True), n=40)) == 3


def test_random_below_draws_exactly_the_unsorted_batches():
    """Below `random_below` examples a length-sorted sampler makes the unsorted sampler's
    batches, seed for seed (so resume and determinism are as without sorting); at the
    threshold it sorts."""
    index = LabelIndex([[f"c{i % 5}"] for i in range(40)])
    lengths = numpy.array([10 * (1 + i // 5) for i in range(40)])
    for seed in range(3):
        unsorted = ClassBatchSampler(per_class=4)(index, batch_size=32, seed=seed, lengths=lengths)
        sorted_ = ClassBatchSampler(per_class=4, length_sorted=True)(index, batch_size=32, seed=seed, lengths=lengths)
        below = ClassBatchSampler(per_class=4, length_sorted=True, random_below=41)
        at = ClassBatchSampler(per_class=4, length_sorted=True, random_below=40)
        assert below(index, batch_size=32, seed=seed, lengths=lengths) == unsorted
        assert at(index, batch_size=32, seed=seed, lengths=lengths) == sorted_
        assert sorted_ != unsorted
    with pytest.raises(ValueError, match="random_below"):
        ClassBatchSampler(random_below=-1)
