import json

import pytest

from spacy_threephase.metrics import exclusive_metrics, format_table, multilabel_metrics


def test_exclusive_metrics_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    m = exclusive_metrics(gold, pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["per_class"]["a"] == {
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8),
        "support": 3,
    }
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    text = format_table(m)
    assert "confusion matrix" in text and "macro F1" in text
    json.dumps(m)


def test_multilabel_metrics_exact_match_accuracy():
    gold = [["a", "b"], ["a"], ["b"]]
    pred = [["a", "b"], ["a", "b"], []]
    m = multilabel_metrics(gold, pred, ["a", "b"])
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["per_class"]["a"]["precision"] == 1.0
    assert m["per_class"]["b"]["recall"] == pytest.approx(0.5)
    assert "confusion_matrix" not in m


def test_class_never_predicted_has_zero_precision():
    m = exclusive_metrics(["a", "b"], ["a", "a"], ["a", "b"])
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
