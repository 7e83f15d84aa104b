"""Evaluate a trained pipeline on a labelled .spacy (or normalised .jsonl) test file."""

import json
from pathlib import Path
from typing import Dict, List, Tuple, Union

from .errors import UserError
from .metrics import exclusive_metrics, format_table, multilabel_metrics


def load_gold(nlp, path: Union[str, Path]) -> Tuple[List[str], List[List[str]]]:
    """Texts and gold label lists from a DocBin (.spacy) or a normalised .jsonl file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: test file does not exist")
    texts, gold = [], []
    if path.suffix == ".spacy":
        from spacy.tokens import DocBin

        for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
            texts.append(doc.text)
            gold.append([label for label, value in doc.cats.items() if value >= 0.5])
    else:
        with path.open(encoding="utf8") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}:{i}: malformed JSON ({err.msg})") from None
                labels = record.get("labels", record.get("label"))
                texts.append(record["text"])
                gold.append(labels if isinstance(labels, list) else [str(labels)])
    if not texts:
        raise UserError(f"{path}: no examples to evaluate")
    return texts, gold


def textcat_component(nlp):
    for name, pipe in nlp.pipeline:
        if pipe.__class__.__name__ in ("TextCategorizer", "MultiLabel_TextCategorizer"):
            return name, pipe
    raise UserError("pipeline has no textcat or textcat_multilabel component")


def evaluate_pipeline(nlp, test_path: Union[str, Path], batch_size: int = 64, threshold: float = 0.5) -> Dict:
    name, pipe = textcat_component(nlp)
    labels = list(pipe.labels)
    multi_label = pipe.__class__.__name__ == "MultiLabel_TextCategorizer"
    texts, gold = load_gold(nlp, test_path)
    unknown = sorted({g for labels_ in gold for g in labels_} - set(labels))
    if unknown:
        raise UserError(f"{test_path}: labels the model does not know: {', '.join(unknown)}")
    pred = []
    for doc in nlp.pipe(texts, batch_size=batch_size):
        if multi_label:
            pred.append([label for label in labels if doc.cats[label] >= threshold])
        else:
            pred.append(max(labels, key=lambda label: doc.cats[label]))
    if multi_label:
        metrics = multilabel_metrics(gold, pred, labels)
    else:
        gold_single = [g[0] if g else "" for g in gold]
        if "" in gold_single:
            raise UserError(f"{test_path}: an example has no label, but the model is single-label")
        metrics = exclusive_metrics(gold_single, pred, labels)
    metrics["component"] = name
    metrics["multi_label"] = multi_label
    return metrics


def write_metrics(metrics: Dict, output_dir: Union[str, Path]) -> Dict[str, Path]:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / "metrics.json", "txt": output_dir / "metrics.txt"}
    for kind, path in paths.items():
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(
            json.dumps(metrics, indent=2) if kind == "json" else format_table(metrics) + "\n", encoding="utf8"
        )
        tmp.replace(path)
    return paths
