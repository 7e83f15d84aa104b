"""Classification metrics: accuracy, macro precision/recall/F1, per-class scores, confusion."""

from typing import Dict, List, Sequence


def exclusive_metrics(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> Dict:
    """Metrics for single-label classification. `labels` fixes the row/column order."""
    index = {label: i for i, label in enumerate(labels)}
    n = len(labels)
    confusion = [[0] * n for _ in range(n)]
    for g, p in zip(gold, pred):
        confusion[index[g]][index[p]] += 1
    per_class = {}
    for label, i in index.items():
        tp = confusion[i][i]
        predicted = sum(confusion[r][i] for r in range(n))
        support = sum(confusion[i])
        per_class[label] = _prf(tp, predicted, support)
    total = len(gold)
    correct = sum(confusion[i][i] for i in range(n))
    return {
        "n_examples": total,
        "accuracy": correct / total if total else 0.0,
        **_macro(per_class),
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": confusion,
    }


def multilabel_metrics(gold: List[Sequence[str]], pred: List[Sequence[str]], labels: Sequence[str]) -> Dict:
    """Metrics for multi-label classification; accuracy is exact-match (subset) accuracy."""
    per_class = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, pred) if label in g and label in p)
        predicted = sum(1 for p in pred if label in p)
        support = sum(1 for g in gold if label in g)
        per_class[label] = _prf(tp, predicted, support)
    total = len(gold)
    exact = sum(1 for g, p in zip(gold, pred) if set(g) == set(p))
    return {
        "n_examples": total,
        "accuracy": exact / total if total else 0.0,
        **_macro(per_class),
        "per_class": per_class,
        "labels": list(labels),
    }


def _prf(tp: int, predicted: int, support: int) -> Dict:
    precision = tp / predicted if predicted else 0.0
    recall = tp / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def _macro(per_class: Dict[str, Dict]) -> Dict:
    k = max(1, len(per_class))
    return {
        f"macro_{name}": sum(scores[name] for scores in per_class.values()) / k
        for name in ("precision", "recall", "f1")
    }


def format_table(metrics: Dict) -> str:
    """A plain-text report: overall scores, per-class table, confusion matrix."""
    lines = [
        f"accuracy        {metrics['accuracy']:.4f}   ({metrics['n_examples']} examples)",
        f"macro precision {metrics['macro_precision']:.4f}",
        f"macro recall    {metrics['macro_recall']:.4f}",
        f"macro F1        {metrics['macro_f1']:.4f}",
        "",
    ]
    width = max([len(label) for label in metrics["labels"]] + [5])
    lines.append(f"{'label':<{width}}  precision  recall      f1  support")
    for label in metrics["labels"]:
        s = metrics["per_class"][label]
        lines.append(f"{label:<{width}}  {s['precision']:9.4f}  {s['recall']:6.4f}  {s['f1']:6.4f}  {s['support']:7d}")
    if "confusion_matrix" in metrics:
        lines += ["", "confusion matrix (rows: gold, columns: predicted, in label order above)"]
        cell = max(4, max(len(str(v)) for row in metrics["confusion_matrix"] for v in row) + 1)
        for label, row in zip(metrics["labels"], metrics["confusion_matrix"]):
            lines.append(f"{label:<{width}}  " + "".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)
