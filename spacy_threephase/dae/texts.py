"""Read the phase-1 texts file: one text per line, blank lines skipped, bad bytes named by line."""

from pathlib import Path
from typing import Dict, List, Optional, Union

from ..errors import DataError, UserError


def read_texts(path: Union[str, Path], counts: Optional[Dict[str, int]] = None) -> List[str]:
    """One text per line; blank and whitespace-only lines are skipped (counted in
    `counts["blank"]` when a dict is given)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: texts file does not exist")
    texts = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf8").strip()
            except UnicodeDecodeError:
                raise DataError(path, number, "not valid UTF-8") from None
            if line:
                texts.append(line)
            elif counts is not None:
                counts["blank"] = counts.get("blank", 0) + 1
    if not texts:
        raise UserError(f"{path}: no texts (the file is empty or has only blank lines)")
    return texts
