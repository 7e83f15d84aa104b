"""spaCy reader `spacy_threephase.JsonlCorpus.v1`: train straight from the normalised .jsonl files."""

import json
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Union

import spacy
from spacy.language import Language
from spacy.training import Example

from ..errors import DataError, UserError
from .readers import read_split
from .writers import cats_for


@spacy.registry.readers("spacy_threephase.JsonlCorpus.v1")
def create_jsonl_corpus(
    path: Union[str, Path],
    *,
    labels: Optional[List[str]] = None,
    multi_label: bool = False,
    limit: int = 0,
) -> Callable[[Language], Iterator[Example]]:
    """Read `{"text", "labels"}` lines (as written by `threephase data`) into Examples with cats.

    `labels` defaults to the list in labels.json next to the file. Unless
    `multi_label` (or labels.json says so), each example must have exactly one label.
    """
    path = Path(path)
    meta = _labels_json(path) if labels is None else {}
    label_set = list(labels) if labels is not None else list(meta.get("labels", []))
    multi = bool(multi_label or meta.get("multi_label", False))

    def read(nlp: Language) -> Iterator[Example]:
        records = read_split(path, label_field="labels").records
        if limit:
            records = records[:limit]
        for rec in records:
            for label in rec.labels:
                if label not in label_set:
                    raise DataError(path, rec.line, f"label {label!r} is not in the label set {label_set}")
            if not multi and len(rec.labels) != 1:
                raise DataError(path, rec.line, f"expected exactly one label (not multi-label), got {rec.labels}")
            doc = nlp.make_doc(rec.text)
            yield Example.from_dict(doc, {"cats": cats_for(rec.labels, label_set)})

    return read


def _labels_json(path: Path) -> dict:
    meta_path = path.parent / "labels.json"
    if not meta_path.is_file():
        raise UserError(f"{path}: no labels given and no labels.json next to it; pass `labels` to the reader")
    try:
        return json.loads(meta_path.read_text(encoding="utf8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{meta_path}: cannot be read as JSON ({err})") from None
