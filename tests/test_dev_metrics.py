"""The dev scores phases 1, 2 and Joint select on: k-NN and nearest-centroid accuracy, and the
`selection_metric` setting that picks one of them."""

import math
from types import SimpleNamespace

import pytest
import torch
from test_bad_input import LABELLED, corpus, one_line_error, run
from test_selection import CL_CONFIG

from spacy_threephase.contrastive.selection import centroid_accuracy, knn_accuracy, selection_score
from spacy_threephase.settings import ContrastiveTrainingSection


def at(*degrees: float) -> torch.Tensor:
    """Unit vectors in the plane at these angles."""
    r = torch.tensor(degrees, dtype=torch.float32) * math.pi / 180
    return torch.stack([r.cos(), r.sin()], dim=1)


# Five texts of a large class spread over 20-40 degrees and two of a small class at 0 and 10.
TRAIN = at(20, 25, 30, 35, 40, 0, 10)
TRAIN_KEYS = [("big",)] * 5 + [("small",)] * 2
# A small-class text at 5 degrees: its 5 nearest are 0, 10 (small) and 20, 25, 30 (big), so the
# k-NN vote says big; the class means are at 5 (small) and 30 (big), so the centroid says small.
# A big-class text at 45 degrees: both say big.
DEV = at(5, 45)
DEV_KEYS = [("small",), ("big",)]


def test_knn_and_centroid_accuracy_disagree_where_a_large_class_crowds_the_neighbours():
    assert knn_accuracy(TRAIN, TRAIN_KEYS, DEV, DEV_KEYS, k=5) == 0.5
    assert centroid_accuracy(TRAIN, TRAIN_KEYS, DEV, DEV_KEYS) == 1.0
    # with k = 1 the nearest text (0 or 10 degrees, both small) decides: k-NN is right too
    assert knn_accuracy(TRAIN, TRAIN_KEYS, DEV, DEV_KEYS, k=1) == 1.0
    assert math.isnan(centroid_accuracy(TRAIN, TRAIN_KEYS, DEV[:0], []))


def test_centroid_is_the_mean_direction_not_the_nearest_member():
    """Class a: texts at 0 and 90 degrees (mean direction 45); class b: one text at 60. A dev text
    at 50 is nearer a's mean (5 degrees off) than b (10 off), though b's text is its nearest."""
    train, keys = at(0, 90, 60), ["a", "a", "b"]
    assert centroid_accuracy(train, keys, at(50), ["a"]) == 1.0
    assert knn_accuracy(train, keys, at(50), ["a"], k=1) == 0.0


def test_selection_score_follows_the_metric_and_spearman_only_breaks_ties():
    metrics = {"knn_acc": 0.5, "centroid_acc": 0.75, "spearman": 1.0}
    assert selection_score(metrics, 100, "knn") == pytest.approx(0.5 + 0.25 / 100)
    assert selection_score(metrics, 100, "centroid") == pytest.approx(0.75 + 0.25 / 100)
    one_text_better = {"knn_acc": 0.5, "centroid_acc": 0.76, "spearman": -1.0}
    assert selection_score(one_text_better, 100, "centroid") > selection_score(metrics, 100, "centroid")


def test_selection_metric_setting():
    import inspect

    from spacy_threephase.contrastive.selection import DevEvaluator, selection_label

    assert ContrastiveTrainingSection().selection_metric == "centroid"
    # the functions' defaults are the setting's, so a caller that passes nothing selects as configs do
    for func in (selection_score, DevEvaluator):
        assert inspect.signature(func).parameters["metric"].default == "centroid"
    assert selection_label("centroid") == "dev centroid_acc" and selection_label("knn") == "dev knn_acc"
    assert ContrastiveTrainingSection(selection_metric="knn").selection_metric == "knn"
    with pytest.raises(ValueError, match="selection_metric"):
        ContrastiveTrainingSection(selection_metric="cosine")


def test_the_evaluator_scores_with_the_configured_metric(monkeypatch):
    """DevEvaluator encodes train and dev texts (here: the vectors above) and returns the
    accuracy `metric` names, with both accuracies in its metrics."""
    from spacy_threephase.contrastive import selection

    vectors = {"t": TRAIN, "d": DEV}
    monkeypatch.setattr(selection, "encode", lambda enc, texts, device, batch_size: vectors[texts[0][0]])
    train_texts, dev_texts = [f"t{i}" for i in range(len(TRAIN))], ["d0", "d1"]
    for metric, expected in (("knn", 0.5), ("centroid", 1.0)):
        enc = SimpleNamespace(model=torch.nn.Linear(1, 1))  # only switched to eval mode and back
        evaluator = selection.DevEvaluator(
            enc, "cpu", train_texts, TRAIN_KEYS, dev_texts, DEV_KEYS, None, metric=metric
        )
        score, metrics, hits = evaluator(0)  # hits: per dev text, right or not (for min_gain_z)
        assert score == expected and (metrics["knn_acc"], metrics["centroid_acc"]) == (0.5, 1.0)
        assert hits.dtype == bool and len(hits) == 2 and hits.mean() == expected
    with pytest.raises(ValueError, match="selection_metric must be one of"):
        selection.DevEvaluator(None, "cpu", [], [], [], [], None, metric="cosine")


def test_phase2_logs_both_accuracies_and_records_the_metric(tiny_encoder_dir, tmp_path):
    from test_selection import CL

    from spacy_threephase.contrastive.train import train_contrastive

    c = corpus(tmp_path / "c", LABELLED)
    m = train_contrastive(
        CL_CONFIG,
        c,
        tmp_path / "out",
        encoder=str(tiny_encoder_dir),
        overrides={**CL, "training.epochs": 1, "training.selection_metric": "centroid"},
    )
    assert m["selection_score"] == "dev centroid_acc"
    assert m["evaluations"] and all({"knn_acc", "centroid_acc"} <= e["metrics"].keys() for e in m["evaluations"])
    assert all(abs(e["score"] - e["metrics"]["centroid_acc"]) < 0.25 for e in m["evaluations"])


def test_a_bad_selection_metric_is_one_line(tiny_encoder_dir, tmp_path):
    c = corpus(tmp_path / "c", LABELLED)
    code, output = run(
        "contrastive",
        CL_CONFIG,
        c,
        tmp_path / "out",
        "--encoder",
        tiny_encoder_dir,
        "--training.selection_metric",
        "cosine",
    )
    assert code == 1 and "selection_metric" in one_line_error(output), output
    assert not (tmp_path / "out").exists()
