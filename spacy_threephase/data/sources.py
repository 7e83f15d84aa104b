"""Find and read the splits of a data source: a directory, one file or a Hugging Face id."""

from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import UserError
from .readers import SUFFIXES, ReadResult, load_hf_dataset, read_split

SPLIT_STEMS = {"train": ("train",), "dev": ("dev", "validation", "valid"), "test": ("test",)}


def find_split_files(directory: Path) -> Dict[str, Path]:
    """Map "train"/"dev"/"test" to the files for them in `directory` (train is required)."""
    found: Dict[str, Path] = {}
    for split, stems in SPLIT_STEMS.items():
        matches = [directory / f"{stem}{suffix}" for stem in stems for suffix in SUFFIXES]
        matches = [m for m in matches if m.is_file()]
        if len(matches) > 1:
            names = ", ".join(m.name for m in matches)
            raise UserError(f"{directory}: several files for the {split} split ({names}); keep one")
        if matches:
            found[split] = matches[0]
    if "train" not in found:
        raise UserError(f"{directory}: no train file found (expected train.jsonl, train.csv or train.tsv)")
    return found


def looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or "\\" in source or Path(source).suffix.lower() in SUFFIXES


def load_source(
    source, *, text_field: str, label_field: str, label_sep: Optional[str], hf_config: Optional[str]
) -> Tuple[Dict[str, ReadResult], str]:
    """Read every split the source has; returns ({split: ReadResult}, description of the source)."""
    fields = dict(text_field=text_field, label_field=label_field, label_sep=label_sep)
    text = str(source)
    if text.startswith("hf:"):
        return load_hf_dataset(text[3:], hf_config, **fields), text
    path = Path(source).expanduser()
    if path.is_dir():
        return {split: read_split(f, **fields) for split, f in find_split_files(path).items()}, str(path)
    if path.is_file():
        return {"train": read_split(path, **fields)}, str(path)
    if looks_like_path(text):
        raise UserError(f"{source}: no such file or directory")
    try:
        return load_hf_dataset(text, hf_config, **fields), f"hf:{text}"
    except UserError as err:
        if type(err) is not UserError:
            raise
        raise UserError(f"{source}: no such local file or directory, and {err}") from None
