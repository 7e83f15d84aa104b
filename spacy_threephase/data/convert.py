"""Convert a labelled data set into train/dev/test `.spacy` files plus what phases 1 and 2 read."""

from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Union

import spacy

from ..errors import DataError, UserError
from ..outputs import atomic_output_dir
from .readers import ReadResult
from .sources import load_source
from .split import stratified_split
from .writers import label_counts, write_docbin, write_json, write_jsonl, write_texts

SPLITS = ("train", "dev", "test")


def convert_dataset(
    source: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    text_field: str = "text",
    label_field: str = "label",
    label_sep: Optional[str] = None,
    hf_config: Optional[str] = None,
    dev_ratio: float = 0.1,
    test_ratio: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
    lang: str = "en",
    hierarchical: Optional[bool] = None,
    ordered: Optional[str] = None,
) -> dict:
    """Read `source`, carve missing dev/test splits from train, validate, write `output_dir`.

    Returns the contents of labels.json plus "sizes", "carved" and "output_dir".
    hierarchical: None = labels with "/" are levels of a hierarchy (`Sports/Football`);
    False = every label is a flat class, "/" or not (`Sci/Tech`); True = insist on "/" levels.
    ordered: the labels of an ordered scale, comma-separated from one end to the other
    ("very negative,negative,neutral,positive,very positive"); written to labels.json as
    "label_order", it gives phase 2 pair scores that fall with the distance on the scale.
    """
    _check_ratios(dev_ratio, test_ratio)
    splits, described = load_source(
        source, text_field=text_field, label_field=label_field, label_sep=label_sep, hf_config=hf_config
    )
    carved = _carve_missing(splits, dev_ratio, test_ratio, seed)
    if hierarchical is None:
        hierarchical = any("/" in label for result in splits.values() for rec in result.records for label in rec.labels)
    label_set = _check_labels(splits, hierarchical)
    records = {name: splits[name].records for name in SPLITS}
    stats = {
        "labels": label_set,
        "multi_label": any(splits[name].multi_label for name in SPLITS),
        "hierarchical": bool(hierarchical) and any("/" in label for label in label_set),
        "counts": {name: label_counts(records[name], label_set) for name in SPLITS},
        "skipped_empty": {name: splits[name].skipped_empty for name in SPLITS},
        "source": described,
        "files": {name: splits[name].path for name in SPLITS},
        "carved": carved,
        "seed": seed,
    }
    if ordered is not None:
        stats["label_order"] = _label_order(ordered, label_set, stats)
    nlp = _blank(lang)
    with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
        for name in SPLITS:
            write_docbin(nlp, records[name], label_set, tmp / f"{name}.spacy")
            write_jsonl(records[name], tmp / f"{name}.jsonl")
        write_texts(records["train"], tmp / "texts.txt")
        write_json(stats, tmp / "labels.json")
    return {**stats, "sizes": {name: len(records[name]) for name in SPLITS}, "output_dir": str(output_dir)}


def _label_order(ordered: str, label_set: List[str], stats: dict) -> List[str]:
    """`--ordered` as a list: every train label once, on single-label flat data."""
    order = [part.strip() for part in ordered.split(",")]
    if stats["multi_label"] or stats["hierarchical"]:
        kind = "multi-label" if stats["multi_label"] else "hierarchical"
        raise UserError(f"--ordered is for single-label flat classes; these labels are {kind}")
    if any(not part for part in order) or len(set(order)) != len(order):
        raise UserError(f"--ordered must name each label once, comma-separated; got {ordered!r}")
    missing, unknown = sorted(set(label_set) - set(order)), sorted(set(order) - set(label_set))
    problems = ([f"missing {missing}"] if missing else []) + ([f"not in train {unknown}"] if unknown else [])
    if problems:
        raise UserError(f"--ordered must list exactly the {len(label_set)} train labels: {'; '.join(problems)}")
    return order


def _check_ratios(dev_ratio: float, test_ratio: float) -> None:
    for name, value in (("dev ratio", dev_ratio), ("test ratio", test_ratio)):
        if not 0 < value < 1:
            raise UserError(f"{name} must be between 0 and 1 (exclusive), got {value}")
    if dev_ratio + test_ratio >= 1:
        raise UserError(f"dev ratio + test ratio must be below 1, got {dev_ratio} + {test_ratio}")


def _blank(lang: str):
    try:
        return spacy.blank(lang)
    except Exception as err:  # noqa: BLE001 - spaCy raises ImportError/ValueError for unknown codes
        raise UserError(f"unknown spaCy language code {lang!r}: {err}") from None


def _carve_missing(splits: Dict[str, ReadResult], dev_ratio: float, test_ratio: float, seed: int) -> List[str]:
    """Carve test, then dev, from train where the source lacks them; returns the carved names."""
    train = splits["train"]
    carved = []
    remaining = 1.0
    for name, ratio in (("test", test_ratio), ("dev", dev_ratio)):
        if name in splits:
            continue
        kept, out = stratified_split(train.records, ratio / remaining, seed=seed)
        if not out:
            raise DataError(train.path, None, f"too few examples ({len(train.records)}) to carve a {name} split")
        remaining -= ratio
        train = ReadResult(
            path=train.path, records=kept, skipped_empty=train.skipped_empty, multi_label=train.multi_label
        )
        splits[name] = ReadResult(path=f"{train.path} ({name} carved with seed {seed})", records=out)
        carved.append(name)
    splits["train"] = train
    return sorted(carved, key=SPLITS.index)


def _check_labels(splits: Dict[str, ReadResult], hierarchical: bool = True) -> List[str]:
    """The sorted train label set; needs 2+ classes and covers every dev/test label."""
    train = splits["train"]
    counts = Counter(label for rec in train.records for label in rec.labels)
    if len(counts) < 2:
        only = f"only one class ({next(iter(counts))!r})" if counts else "no labels"
        raise DataError(
            train.path,
            train.records[0].line,
            f"{only} in {len(train.records)} training examples; a classifier needs at least 2",
        )
    for result in splits.values():
        for rec in result.records:
            for label in rec.labels:
                if hierarchical and "/" in label and any(not part.strip() for part in label.split("/")):
                    raise DataError(result.path, rec.line, f"hierarchical label {label!r} has an empty level")
    for name in ("dev", "test"):
        result = splits[name]
        for rec in result.records:
            for label in rec.labels:
                if label not in counts:
                    raise DataError(
                        result.path, rec.line, f"label {label!r} never occurs in train ({len(counts)} train labels)"
                    )
    return sorted(counts)
