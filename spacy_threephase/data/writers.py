"""Write converted splits: spaCy DocBin, normalised JSON Lines and the phase-1 text file."""

import json
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

from spacy.language import Language
from spacy.tokens import DocBin

from .readers import Record


def cats_for(labels: Iterable[str], label_set: Sequence[str]) -> Dict[str, float]:
    """Every label of `label_set` with 1.0 where it is in `labels`, else 0.0."""
    present = set(labels)
    return {label: 1.0 if label in present else 0.0 for label in label_set}


def write_docbin(nlp: Language, records: Sequence[Record], label_set: Sequence[str], path: Path) -> None:
    docbin = DocBin(store_user_data=False)
    for rec in records:
        doc = nlp.make_doc(rec.text)
        doc.cats = cats_for(rec.labels, label_set)
        docbin.add(doc)
    docbin.to_disk(path)


def write_jsonl(records: Sequence[Record], path: Path) -> None:
    with Path(path).open("w", encoding="utf8") as f:
        for rec in records:
            f.write(json.dumps({"text": rec.text, "labels": list(rec.labels)}, ensure_ascii=False) + "\n")


def one_line(text: str) -> str:
    """The text on one line: line breaks (and other line separators) become spaces."""
    return " ".join(text.splitlines()).strip()


def write_texts(records: Sequence[Record], path: Path) -> None:
    with Path(path).open("w", encoding="utf8") as f:
        for rec in records:
            f.write(one_line(rec.text) + "\n")


def write_json(data: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf8")


def label_counts(records: Sequence[Record], label_set: List[str]) -> Dict[str, int]:
    counts = {label: 0 for label in label_set}
    for rec in records:
        for label in rec.labels:
            counts[label] = counts.get(label, 0) + 1
    return counts
