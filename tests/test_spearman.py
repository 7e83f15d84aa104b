"""Phase 2's dev-pair Spearman correlation is computed in numpy (scipy is no dependency)."""

import math
import random

import numpy
import pytest

from spacy_threephase.contrastive.selection import average_ranks, spearman


def test_average_ranks_share_tied_ranks():
    assert average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert average_ranks([]).tolist() == []


def test_spearman_hand_computed_with_ties():
    # ranks a: [1, 2.5, 2.5, 4, 5]; ranks b: [2, 1, 4, 4, 4]
    # deviations from the mean rank 3: a [-2, -.5, -.5, 1, 2], b [-1, -2, 1, 1, 1]
    # sum(da*db) = 2 + 1 - .5 + 1 + 2 = 5.5; sum(da^2) = 9.5; sum(db^2) = 8
    rho = spearman([0.1, 0.4, 0.4, 0.7, 0.9], [1, 0, 2, 2, 2])
    assert rho == pytest.approx(5.5 / math.sqrt(9.5 * 8), abs=1e-15)


def test_spearman_perfect_and_degenerate():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1], [2]))
    assert math.isnan(spearman([1, float("nan"), 3], [1, 2, 3]))


def test_spearman_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for n in (3, 10, 257):
        a = [rng.choice([0.0, 0.25, 0.5, 1.0]) if rng.random() < 0.3 else rng.random() for _ in range(n)]
        b = [float(rng.randint(0, 1)) for _ in range(n)]
        if len(set(b)) < 2:
            b[0], b[1] = 0.0, 1.0
        assert spearman(a, b) == stats.spearmanr(a, b).correlation
        assert numpy.array_equal(average_ranks(a), stats.rankdata(a))
