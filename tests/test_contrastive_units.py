"""Phase 2 building blocks: imbalance ratio/correction, stop-word variants, pairs, losses."""

import random
import time
import tracemalloc

import numpy
import pytest
import torch

from spacy_threephase.contrastive.imbalance import (
    ImbalanceCorrection,
    delete_stop_words,
    imbalance_correction,
    ratio,
    stop_words_for,
)
from spacy_threephase.contrastive.labels import LabelIndex, label_score, level_fraction
from spacy_threephase.contrastive.losses import (
    CosineMSELoss,
    SupConLoss,
    cosine_mse_loss,
    supcon_loss,
)
from spacy_threephase.contrastive.pairs import default_multiplier, shuffled_pairs

# --- imbalance -------------------------------------------------------------------------


def test_ratio_endpoints_and_threshold():
    assert ratio(1, 100, 4.0) == pytest.approx(4.0)
    assert ratio(100, 100, 4.0) == pytest.approx(0.0)
    assert ratio(1, 1, 4.0) == 0.0  # N == 1 guarded
    # ratio 1 is reached at n = N ** ((max - 1) / max)  (eq. 7)
    assert ratio(100**0.75, 100, 4.0) == pytest.approx(1.0)
    assert ratio(10, 100, 4.0) == pytest.approx(2.0)
    assert ratio(20, 100, 4.0) < 1.5 <= ratio(15, 100, 4.0)
    texts = [f"t {i} x" for i in range(135)]
    labels = [["big"]] * 100 + [["n20"]] * 20 + [["n15"]] * 15
    after = {r["class"]: r["after"] for r in imbalance_correction()(texts, labels).table}
    assert after == {"big": 100, "n20": 20, "n15": 30}  # f(20)=1.40 < min_ratio; f(15)=1.65 -> round 2


def _dataset():
    texts, labels = [], []
    for i in range(100):
        texts.append(f"play the song number {i} in the kitchen")
        labels.append(["Big"])
    for i in range(10):
        texts.append(f"what is the weather in town {i} for the weekend")
        labels.append(["Mid"])
    texts.append("book a table at the restaurant for me")
    labels.append(["Tiny"])
    return texts, labels


def test_class_sizes_after_correction():
    texts, labels = _dataset()
    out = imbalance_correction()(texts, labels, seed=0)
    sizes = {r["class"]: (r["before"], r["after"]) for r in out.table}
    assert sizes["Big"] == (100, 100)
    assert sizes["Mid"] == (10, 20)  # f(10) = 2.0 -> round(2) * 10
    assert sizes["Tiny"] == (1, 4)  # f(1) = max_ratio = 4
    assert len(out.texts) == len(out.labels) == len(out.source) == 124
    assert out.texts[:111] == texts  # originals kept, in order
    assert "Tiny" in out.format_table()


def test_extra_imb_and_disabled():
    texts, labels = _dataset()
    extra = imbalance_correction(max_ratio=20.0, min_ratio=1.5)(texts, labels, seed=0)
    assert {r["class"]: r["after"] for r in extra.table}["Tiny"] == 20
    off = imbalance_correction(enabled=False)(texts, labels, seed=0)
    assert off.texts == texts and off.table == []


def test_multilabel_uses_rarest_label():
    texts = [f"text number {i} about the stuff" for i in range(30)]
    labels = [["A"]] * 27 + [["A", "B"]] * 3
    out = ImbalanceCorrection()(texts, labels, seed=0)
    after = {r["class"]: r["after"] for r in out.table}
    f = ratio(3, 30, 4.0)
    assert after["B"] == round(f) * 3
    assert all(lab == ["A", "B"] for lab in out.labels[30:])


def test_stop_word_variants_differ_and_keep_a_word():
    stops = stop_words_for("en")
    rng = random.Random(0)
    for text in ["what is the weather in the city", "book a table for me", "the a an"]:
        for _ in range(20):
            variant = delete_stop_words(text, stops, rng)
            assert variant != text
            assert len(variant.split()) >= 1
            assert set(variant.split()) <= set(text.split())
    assert delete_stop_words("jazz", stops, rng) == "jazz"
    assert delete_stop_words("play jazz", stops, rng) == "play jazz"  # no stop word: plain copy
    texts, labels = _dataset()
    out = imbalance_correction()(texts, labels, seed=0)
    for text, src in zip(out.texts[111:], out.source[111:]):
        assert text != texts[src]


def test_correction_deterministic():
    texts, labels = _dataset()
    a = imbalance_correction()(texts, labels, seed=3)
    b = imbalance_correction()(texts, labels, seed=3)
    assert a.texts == b.texts


# --- pair labels -----------------------------------------------------------------------


def test_label_scores():
    assert level_fraction("Sports/Football", "Sports/Tennis") == 0.5
    assert level_fraction("Sports/Football", "Sports/Football") == 1.0
    assert level_fraction("Sports", "Sports/Football") == 0.5  # max depth as denominator
    assert level_fraction("A/B/C", "A/B/D") == pytest.approx(2 / 3)
    assert label_score(["Sci/Tech"], ["Sci/Sports"]) == 0.0  # flat unless hierarchical
    assert label_score(["Sci/Tech"], ["Sci/Sports"], hierarchical=True) == 0.5
    assert label_score(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)  # Jaccard
    assert label_score(["a", "b"], ["a", "b"]) == 1.0
    idx = LabelIndex([["a"], ["b"], ["a", "b"]], matrix_limit=0)  # cached path
    assert idx.scores(numpy.array([0, 0, 2]), numpy.array([1, 2, 2])).tolist() == pytest.approx([0.0, 0.5, 1.0])


# --- pairs -----------------------------------------------------------------------------


def _labels(n=200, k=5, seed=0):
    rng = random.Random(seed)
    return [[f"c{min(k - 1, int(rng.expovariate(0.7)))}"] for _ in range(n)]


def test_pair_properties():
    labels = _labels()
    index = LabelIndex(labels)
    pairs = shuffled_pairs(multiplier=4)(index, seed=1)
    a, b = pairs.first.tolist(), pairs.second.tolist()
    assert all(x != y for x, y in zip(a, b))
    unordered = {(min(x, y), max(x, y)) for x, y in zip(a, b)}
    assert len(unordered) == len(pairs)
    pos = int((pairs.score > 0).sum())
    assert pos == len(pairs) - pos > 0
    for x, y, s in zip(a, b, pairs.score.tolist()):
        assert s == (1.0 if labels[x] == labels[y] else 0.0)
    assert len(pairs) <= 4 * len(labels)
    unbalanced = shuffled_pairs(multiplier=4, balance=False)(index, seed=1)
    assert len(unbalanced) > len(pairs)


def test_pairs_keys_treat_copies_as_one_item():
    labels = [["a"], ["a"], ["b"], ["b"]] * 10
    keys = [0, 0, 1, 1] * 10  # every text repeated: only the pair (0, 1) is possible
    pairs = shuffled_pairs(multiplier=5, balance=False)(LabelIndex(labels), seed=0, keys=keys)
    ka = numpy.asarray(keys)
    assert len(pairs) == 1 and ka[pairs.first[0]] != ka[pairs.second[0]]


def test_pairs_deterministic_and_seed_dependent():
    index = LabelIndex(_labels())
    s = shuffled_pairs()
    p1, p2, p3 = s(index, seed=7), s(index, seed=7), s(index, seed=8)
    assert p1.first.tolist() == p2.first.tolist() and p1.second.tolist() == p2.second.tolist()
    assert p1.first.tolist() != p3.first.tolist()


def test_ordinal_scores_fall_with_the_distance_on_the_scale():
    order = ["very negative", "negative", "neutral", "positive", "very positive"]
    labels = [[x] for x in order] + [["negative"]]
    index = LabelIndex(labels, order=order)
    m = index.score_matrix(numpy.arange(len(labels)))
    assert m[0].tolist() == [1.0, 0.75, 0.5, 0.25, 0.0, 0.75]
    assert m[1, 5] == 1.0 and (m == m.T).all()
    # the cached path (more label sets than matrix_limit) gives the same scores
    small = LabelIndex(labels, order=order, matrix_limit=1)
    assert small.matrix is None and (small.score_matrix(numpy.arange(len(labels))) == m).all()
    assert label_score(["negative"], ["very negative"]) == 0.0  # flat without an order


def _expected_hierarchical(a: str, b: str) -> float:
    """Reference pair score of two single hierarchical labels: matching levels from the top
    over the deeper path (written out here, independently of labels.level_fraction)."""
    pa, pb = a.split("/"), b.split("/")
    k = 0
    while k < min(len(pa), len(pb)) and pa[k] == pb[k]:
        k += 1
    return k / max(len(pa), len(pb))


def _expected_jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b)


def _draw(texts, label_of, hierarchical, matrix_limit, multiplier=6, seed=0):
    """Pairs over `texts` as phase 2 draws them (labels looked up per text, text keys)."""
    labels = [label_of[t] for t in texts]
    index = LabelIndex(labels, hierarchical=hierarchical, matrix_limit=matrix_limit)
    keys = list(range(len(texts)))  # every text is distinct
    pairs = shuffled_pairs(multiplier=multiplier)(index, seed=seed, keys=keys)
    drawn = [
        (texts[i], texts[j], s) for i, j, s in zip(pairs.first.tolist(), pairs.second.tolist(), pairs.score.tolist())
    ]
    return pairs, drawn


@pytest.mark.parametrize("matrix_limit", [1024, 0])  # precomputed score matrix / per-pair cache
def test_hierarchical_pair_scores_and_balance(matrix_limit):
    paths = ["Sports/Football", "Sports/Tennis", "News/Politics", "News/Weather", "Music"]
    label_of = {f"text {i} about {p.lower().replace('/', ' ')}": [p] for i in range(12) for p in paths}
    texts = list(label_of)
    pairs, drawn = _draw(texts, label_of, True, matrix_limit)
    assert len(drawn) > 50
    for a, b, score in drawn:
        assert a != b
        assert score == pytest.approx(_expected_hierarchical(label_of[a][0], label_of[b][0])), (a, b)
    values = {round(s, 4) for _, _, s in drawn}
    # A/B vs A/B -> 1, A/B vs A/C -> 0.5, A/B vs C/D -> 0, A vs A/B -> 0.5
    assert values == {0.0, 0.5, 1.0}
    half = [(label_of[a][0], label_of[b][0]) for a, b, s in drawn if s == 0.5]
    assert any(x.split("/")[0] == y.split("/")[0] and x != y for x, y in half)
    assert all(x.split("/")[0] == y.split("/")[0] for x, y in half)
    # balanced: as many positives (score > 0, half-similar included) as negatives
    positives = sum(1 for _, _, s in drawn if s > 0)
    assert positives == len(drawn) - positives == pairs.n_positive
    # the same labels read as flat classes: only equal paths are similar
    _, flat = _draw(texts, label_of, False, matrix_limit)
    assert {round(s, 4) for _, _, s in flat} == {0.0, 1.0}
    assert all(s == float(label_of[a] == label_of[b]) for a, b, s in flat)


@pytest.mark.parametrize("matrix_limit", [1024, 0])
def test_multilabel_pair_scores_are_jaccard_and_balanced(matrix_limit):
    sets = [["a", "b"], ["b", "c"], ["a"], ["c"], ["a", "b", "c"], ["d"], ["c", "d"]]
    label_of = {f"example {i} number {k}": s for i in range(10) for k, s in enumerate(sets)}
    texts = list(label_of)
    pairs, drawn = _draw(texts, label_of, False, matrix_limit)
    assert len(drawn) > 50
    for a, b, score in drawn:
        assert score == pytest.approx(_expected_jaccard(label_of[a], label_of[b])), (label_of[a], label_of[b])
    values = {round(s, 4) for _, _, s in drawn}
    assert {0.0, 1.0} < values and values & {round(1 / 3, 4), 0.5, round(2 / 3, 4)}  # partial overlaps drawn
    positives = sum(1 for _, _, s in drawn if s > 0)
    assert positives == len(drawn) - positives == pairs.n_positive


def test_multilabel_hierarchical_compares_whole_paths():
    """Several labels: Jaccard over whole paths (A/B and A/C share nothing); one label each:
    the level fraction."""
    sets = [["A/B", "C/D"], ["A/B"], ["A/C"], ["C/D"], ["A/C", "E/F"]]
    label_of = {f"doc {i} kind {k}": s for i in range(10) for k, s in enumerate(sets)}
    texts = list(label_of)
    _, drawn = _draw(texts, label_of, True, 1024)

    def expected(x, y):
        if len(set(x)) == 1 and len(set(y)) == 1:
            return _expected_hierarchical(x[0], y[0])
        return _expected_jaccard(x, y)

    for a, b, score in drawn:
        assert score == pytest.approx(expected(label_of[a], label_of[b])), (label_of[a], label_of[b])
    pairs_seen = {(tuple(label_of[a]), tuple(label_of[b])) for a, b, _ in drawn}
    assert (("A/B",), ("A/C",)) in pairs_seen or (("A/C",), ("A/B",)) in pairs_seen
    assert any(len(x) > 1 or len(y) > 1 for x, y in pairs_seen)


def test_default_multiplier_grows_with_classes():
    assert default_multiplier(2) == 3
    assert default_multiplier(7) == 4
    assert default_multiplier(10) == 5
    assert default_multiplier(100) == 8


def test_pair_generation_memory_100k():
    n = 100_000
    rng = numpy.random.default_rng(0)
    labels = [[f"c{int(x)}"] for x in rng.integers(0, 20, size=n)]
    index = LabelIndex(labels)
    tracemalloc.start()
    start = time.time()
    pairs = shuffled_pairs()(index, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(pairs) > 0
    assert peak < 300 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert time.time() - start < 30
    print(f"100k items: {len(pairs)} pairs, peak {peak / 2**20:.1f} MiB, {time.time() - start:.2f}s")


# --- losses ----------------------------------------------------------------------------


def test_cosine_mse_loss():
    loss = cosine_mse_loss()
    assert isinstance(loss, CosineMSELoss) and loss.input_kind == "pairs"
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    v = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    assert float(loss(u, v, torch.tensor([1.0, 0.0]))) == pytest.approx(0.0)
    assert float(loss(u, v, torch.tensor([0.0, 1.0]))) == pytest.approx(1.0)


def test_supcon_lower_for_clustered_embeddings():
    torch.manual_seed(0)
    loss = supcon_loss(temperature=0.1)
    assert isinstance(loss, SupConLoss) and loss.input_kind == "texts"
    labels = torch.arange(4).repeat_interleave(8)
    centers = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1) * 5
    clustered = centers[labels] + 0.3 * torch.randn(32, 16)
    targets = (labels[:, None] == labels[None, :]).float()
    shuffled = clustered[torch.randperm(32)]
    assert float(loss(clustered, targets)) < float(loss(shuffled, targets)) - 0.5
    # no positives at all -> zero, still differentiable
    emb = torch.randn(4, 8, requires_grad=True)
    out = loss(emb, torch.eye(4))
    out.backward()
    assert float(out.detach()) == 0.0


def test_registered_functions_resolve():
    from spacy import registry

    for name in [
        "spacy_threephase.cosine_mse_loss.v1",
        "spacy_threephase.supcon_loss.v1",
        "spacy_threephase.shuffled_pairs.v1",
        "spacy_threephase.imbalance_correction.v1",
    ]:
        assert callable(registry.misc.get(name))
