"""Read one labelled split (JSON Lines, CSV/TSV or a Hugging Face dataset) into records."""

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..errors import DataError, UserError

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
CSV_SUFFIXES = (".csv", ".tsv")
SUFFIXES = JSONL_SUFFIXES + CSV_SUFFIXES


@dataclass
class Record:
    """One example: its text, its label(s) and the line it came from (1-based)."""

    text: str
    labels: List[str]
    line: int


@dataclass
class ReadResult:
    """The examples of one split, how many empty texts were skipped, and whether any label was a list."""

    path: str
    records: List[Record] = field(default_factory=list)
    skipped_empty: int = 0
    multi_label: bool = False


def read_split(
    path: Union[str, Path],
    *,
    text_field: str = "text",
    label_field: str = "label",
    label_sep: Optional[str] = None,
) -> ReadResult:
    """Read a .jsonl/.json (one object per line) or .csv/.tsv (header row) file.

    Raises DataError(path, line, problem) for malformed lines, missing text or
    label, undecodable bytes, an empty file or a file with only empty texts.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    text = _decode(path)
    if not text.strip():
        raise DataError(path, 1, "empty file: no examples")
    result = ReadResult(path=str(path))
    parse = _parse_jsonl if suffix in JSONL_SUFFIXES else _parse_csv
    parse(path, text, result, text_field, label_field, label_sep)
    if not result.records:
        raise DataError(path, 1, f"no examples with a non-empty text ({result.skipped_empty} empty texts skipped)")
    return result


def _decode(path: Path) -> str:
    data = path.read_bytes()
    bom = data.startswith(b"\xef\xbb\xbf")
    try:
        return data[3:].decode("utf-8") if bom else data.decode("utf-8")
    except UnicodeDecodeError as err:
        offset = err.start + (3 if bom else 0)
        line = data[:offset].count(b"\n") + 1
        raise DataError(
            path, line, f"not valid UTF-8 (byte {data[offset]:#04x} at byte offset {offset}); save the file as UTF-8"
        ) from None


def _add(result: ReadResult, path, line: int, text: Any, label: Any, text_field: str, label_sep: Optional[str]) -> None:
    """Validate one (text, label) pair and append it, or count it as an empty text."""
    if text is None:
        raise DataError(path, line, f"missing text (field {text_field!r} is null)")
    if not isinstance(text, str):
        raise DataError(path, line, f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        result.skipped_empty += 1
        return
    labels, is_list = parse_label(path, line, label, label_sep)
    result.multi_label = result.multi_label or is_list
    result.records.append(Record(text=text.strip(), labels=labels, line=line))


def parse_label(path, line: int, value: Any, label_sep: Optional[str] = None):
    """Turn a label value into (labels, is_list). Strings, numbers and lists of them are accepted."""
    if isinstance(value, str) and label_sep and label_sep in value:
        value = value.split(label_sep)
        is_list = True
    elif isinstance(value, list):
        is_list = True
    else:
        is_list = bool(label_sep)
        value = [value]
    labels: List[str] = []
    for item in value:
        if item is None:
            raise DataError(path, line, "missing label (null)")
        if isinstance(item, bool):
            item = str(item).lower()
        elif isinstance(item, float) and item.is_integer():
            item = str(int(item))
        elif isinstance(item, (int, float)):
            item = str(item)
        if not isinstance(item, str):
            raise DataError(
                path, line, f"label must be a string, a number or a list of them, got {type(item).__name__}"
            )
        item = item.strip()
        if not item:
            raise DataError(path, line, "missing label (empty string)")
        if item not in labels:
            labels.append(item)
    if not labels and not is_list:
        raise DataError(path, line, "missing label")
    return labels, is_list


def _missing(path, line: int, kind: str, name: str, found) -> DataError:
    found = ", ".join(repr(f) for f in found) or "none"
    return DataError(path, line, f"missing {kind} {name!r} ({kind}s found: {found})")


def _parse_jsonl(path, text, result, text_field, label_field, label_sep) -> None:
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        if line_no == 1 and line.startswith("["):
            raise DataError(path, 1, "this is a JSON array; write one JSON object per line (JSON Lines)")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, line_no, f"malformed JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(path, line_no, f"expected a JSON object, got {type(obj).__name__}")
        for name in (text_field, label_field):
            if name not in obj:
                raise _missing(path, line_no, "field", name, obj.keys())
        _add(result, path, line_no, obj[text_field], obj[label_field], text_field, label_sep)


def _csv_label(value: str, label_sep: Optional[str]) -> Any:
    """A CSV cell holding a JSON list (`["a", "b"]`) is read as multi-label."""
    stripped = value.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError:
            return value
        if isinstance(parsed, list):
            return parsed
    return value


def _parse_csv(path, text, result, text_field, label_field, label_sep) -> None:
    tsv = Path(path).suffix.lower() == ".tsv"
    options = dict(delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else dict(delimiter=",", strict=True)
    reader = csv.reader(text.splitlines(keepends=True), **options)
    start = 1
    try:
        header = next(reader)
        header = [h.strip() for h in header]
        for name in (text_field, label_field):
            if name not in header:
                raise _missing(path, 1, "column", name, header)
        t_idx, l_idx = header.index(text_field), header.index(label_field)
        start = reader.line_num + 1
        for row in reader:
            line_no, start = start, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise DataError(path, line_no, f"expected {len(header)} fields like the header, found {len(row)}")
            _add(result, path, line_no, row[t_idx], _csv_label(row[l_idx], label_sep), text_field, label_sep)
    except csv.Error as err:
        raise DataError(path, start, f"malformed CSV: {err}") from None


def load_hf_dataset(
    name: str,
    config: Optional[str] = None,
    *,
    text_field: str = "text",
    label_field: str = "label",
    label_sep: Optional[str] = None,
    data_files: Any = None,
    **load_kwargs,
) -> Dict[str, ReadResult]:
    """Load a Hugging Face dataset with `datasets.load_dataset(name, config)`.

    Returns {"train"/"dev"/"test": ReadResult}; "validation"/"valid" become "dev".
    ClassLabel ids are mapped to names. Splits whose labels are all -1 (unlabelled,
    like GLUE test sets) are left out, so that the caller carves them from train.
    """
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise UserError("the `datasets` package is needed to read Hugging Face datasets") from None
    if data_files is not None:
        load_kwargs["data_files"] = data_files
    try:
        loaded = datasets.load_dataset(name, config, **load_kwargs)
    except Exception as err:  # noqa: BLE001 - any failure here is the user's to act on
        what = f"{name!r}" + (f" (config {config!r})" if config else "")
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"could not load the Hugging Face dataset {what}: {first}. If you are offline or it is private, "
            "download it and pass a local directory with train.jsonl/.csv (and optionally dev, test) instead"
        ) from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    out: Dict[str, ReadResult] = {}
    for split_name, split in loaded.items():
        ours = _SPLIT_NAMES.get(split_name.lower())
        if ours is None or ours in out:
            continue
        result = _read_hf_split(f"hf:{name}[{split_name}]", split, text_field, label_field, label_sep)
        if result is not None:
            out[ours] = result
    if "train" not in out:
        raise UserError(f"Hugging Face dataset {name!r} has no labelled train split (splits: {', '.join(loaded)})")
    return out


_SPLIT_NAMES = {"train": "train", "validation": "dev", "valid": "dev", "dev": "dev", "test": "test"}


def _read_hf_split(where: str, split, text_field, label_field, label_sep) -> Optional[ReadResult]:
    import datasets

    columns = list(split.column_names)
    for name in (text_field, label_field):
        if name not in columns:
            raise _missing(where, 1, "column", name, columns)
    feature = split.features[label_field]
    inner = getattr(feature, "feature", None)
    names = (
        feature
        if isinstance(feature, datasets.ClassLabel)
        else inner
        if isinstance(inner, datasets.ClassLabel)
        else None
    )
    result = ReadResult(path=where)
    unlabelled, first_unlabelled = 0, None
    for i, (text, label) in enumerate(zip(split[text_field], split[label_field]), start=1):
        if names is not None:
            if isinstance(label, list):
                label = [names.int2str(v) for v in label if v is not None and v >= 0]
            elif label is None or label < 0:
                unlabelled += 1
                first_unlabelled = first_unlabelled or i
                continue
            else:
                label = names.int2str(label)
        _add(result, where, i, text, label, text_field, label_sep)
    if unlabelled and not result.records:
        return None
    if unlabelled:
        raise DataError(where, first_unlabelled, f"no label (-1) here and in {unlabelled - 1} other examples")
    if not result.records:
        raise DataError(where, 1, f"no examples with a non-empty text ({result.skipped_empty} empty texts skipped)")
    return result
