"""Read the normalised labelled corpus: train.jsonl / dev.jsonl (+ optional labels.json).

Lines are `{"text": "...", "labels": ["A", ...]}`; a raw `{"text", "label": "A"}` line is
accepted too. `labels.json` ({"labels", "multi_label", "hierarchical"}, optionally
"label_order") is optional: without it, multi_label is inferred (any line with several labels)
and hierarchical is false (a "/" in a label name, e.g. AG News' "Sci/Tech", is not taken as a
hierarchy unless labels.json says so). "label_order" lists the labels of an ordered scale from
one end to the other (`data --ordered`): phase 2 then scores pairs by their distance on it.
"""

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

from ..errors import DataError, UserError


@dataclass
class Split:
    texts: List[str]
    labels: List[List[str]]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def keys(self) -> List[Tuple[str, ...]]:
        return [tuple(sorted(set(x))) for x in self.labels]


@dataclass
class LabelledCorpus:
    train: Split
    dev: Optional[Split]
    labels: List[str]
    multi_label: bool
    hierarchical: bool
    dev_carved: bool = False
    label_order: Optional[List[str]] = None


def read_jsonl(path: Path) -> Split:
    texts, labels = [], []
    with Path(path).open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf8")
            except UnicodeDecodeError:
                raise DataError(path, n, "not valid UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(path, n, f"not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise DataError(path, n, 'expected an object with a string "text"')
            labs = obj.get("labels", obj.get("label"))
            if isinstance(labs, str):
                labs = [labs]
            if not isinstance(labs, list) or not labs or not all(isinstance(x, str) and x for x in labs):
                raise DataError(path, n, '"labels" must be a non-empty list of label strings')
            if not obj["text"].strip():
                raise DataError(path, n, "empty text")
            texts.append(obj["text"])
            labels.append(list(dict.fromkeys(labs)))
    return Split(texts, labels)


def read_corpus(corpus_dir: Union[str, Path]) -> LabelledCorpus:
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise UserError(f"{corpus_dir}: corpus directory does not exist")
    train_path = corpus_dir / "train.jsonl"
    if not train_path.exists():
        raise UserError(f"{corpus_dir}: no train.jsonl (run the data step first)")
    train = read_jsonl(train_path)
    if not len(train):
        raise DataError(train_path, None, "no examples")
    dev = read_jsonl(corpus_dir / "dev.jsonl") if (corpus_dir / "dev.jsonl").exists() else None
    if dev is not None and not len(dev):
        dev = None
    meta = {}
    meta_path = corpus_dir / "labels.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf8"))
        except json.JSONDecodeError as err:
            raise DataError(meta_path, err.lineno, f"not valid JSON ({err.msg})") from None
    seen = sorted({x for labs in train.labels for x in labs})
    corpus = LabelledCorpus(
        train=train,
        dev=dev,
        labels=list(meta.get("labels") or seen),
        multi_label=bool(meta.get("multi_label", any(len(x) > 1 for x in train.labels))),
        hierarchical=bool(meta.get("hierarchical", False)),
    )
    if meta.get("label_order") is not None:
        corpus.label_order = _check_label_order(meta["label_order"], corpus, meta_path, corpus_dir)
    return corpus


def _check_label_order(order, corpus: LabelledCorpus, meta_path: Path, corpus_dir: Path) -> List[str]:
    """labels.json's "label_order": distinct label strings that cover every single-label example."""
    if not isinstance(order, list) or len(order) < 2 or not all(isinstance(x, str) and x for x in order):
        raise DataError(meta_path, None, '"label_order" must be a list of at least 2 label strings')
    if len(set(order)) != len(order):
        raise DataError(meta_path, None, f'"label_order" names a label twice: {order}')
    if corpus.multi_label or corpus.hierarchical:
        kind = "multi-label" if corpus.multi_label else "hierarchical"
        raise DataError(meta_path, None, f'"label_order" is for single-label flat classes, but the labels are {kind}')
    known = set(order)
    for name, split in (("train.jsonl", corpus.train), ("dev.jsonl", corpus.dev)):
        for labels in split.labels if split is not None else ():
            if labels[0] not in known:
                raise DataError(
                    corpus_dir / name, None, f"label {labels[0]!r} is not in labels.json's label_order {order}"
                )
    return list(order)


def carve_dev(train: Split, fraction: float, seed: int) -> Tuple[Split, Split]:
    """Stratified split of train (by label set): about `fraction` of each class with >= 2
    examples (at least one, never its last example) goes to dev."""
    rng = random.Random(seed)
    by_class = defaultdict(list)
    for i, key in enumerate(train.keys):
        by_class[key].append(i)
    dev_idx = []
    for key in sorted(by_class):
        members = by_class[key]
        if len(members) < 2:
            continue
        rng.shuffle(members)
        take = min(len(members) - 1, max(1, round(fraction * len(members))))
        dev_idx.extend(members[:take])
    dev_set = set(dev_idx)
    keep = [i for i in range(len(train)) if i not in dev_set]
    dev_idx.sort()
    pick = lambda idx: Split([train.texts[i] for i in idx], [train.labels[i] for i in idx])  # noqa: E731
    return pick(keep), pick(dev_idx)


def load_train_dev(
    corpus_dir: Union[str, Path], dev_fraction: float, seed: int, tag: str
) -> Tuple[LabelledCorpus, Split, Split, int]:
    """Read a corpus for phase 2 / Joint: carve a stratified dev set off train when there is
    none (and say so on stderr), and require two classes. Returns (corpus, train, dev, n_classes)."""
    import sys

    corpus = read_corpus(corpus_dir)
    train, dev = corpus.train, corpus.dev
    if dev is None:
        train, dev = carve_dev(train, dev_fraction, seed)
        corpus.dev_carved = True
        print(
            f"[{tag}] {corpus_dir}: no dev.jsonl; carved a stratified dev set of {len(dev)} examples off train "
            f"(seed {seed}); training on the other {len(train)}",
            file=sys.stderr,
            flush=True,
        )
    n_classes = len({x for labs in train.labels for x in labs})
    if n_classes < 2:
        raise UserError(
            f"{corpus_dir}: contrastive learning needs at least two classes in train.jsonl, found {n_classes}"
        )
    return corpus, train, dev, n_classes
