"""Phase 1's texts: the texts file (one per line, blank lines skipped, bad bytes named by line),
the held-out share that scores selection when there are no labels, and the DAE texts of Joint."""

import random
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

from ..errors import DataError, UserError


def read_texts(path: Union[str, Path], say: Optional[Callable[[str], None]] = None) -> List[str]:
    """One text per line; blank and whitespace-only lines are skipped (and counted, through `say`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: texts file does not exist")
    texts, blank = [], 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf8").strip()
            except UnicodeDecodeError:
                raise DataError(path, number, "not valid UTF-8") from None
            if line:
                texts.append(line)
            else:
                blank += 1
    if not texts:
        raise UserError(f"{path}: no texts (the file is empty or has only blank lines)")
    if blank and say is not None:
        say(f"{path}: skipped {blank} blank or whitespace-only lines; training on {len(texts)} texts")
    return texts


def split_heldout(n: int, training, labelled: bool) -> Tuple[List[int], List[int]]:
    """(held-out, training) text indices. Held out, to score selection without labels: a fixed
    random share (`heldout_fraction`, at most `heldout_max`, chosen by the seed); none when
    selection is off or a labelled dev set scores it."""
    held = 0 if labelled or not training.select_best else min(training.heldout_max, int(training.heldout_fraction * n))
    order = list(range(n))
    if held:
        random.Random(f"heldout-{training.seed}").shuffle(order)
    return sorted(order[:held]), sorted(order[held:])


def joint_dae_texts(setting: str, corpus_dir: Path, train_texts: List[str]) -> Tuple[List[str], str, Optional[Path]]:
    """Joint's DAE texts: (texts, where from, the file read or None). `setting` is [joint]
    dae_texts: "auto" = CORPUS_DIR/texts.txt when present, else the train texts; "train"; a file."""
    path = corpus_dir / "texts.txt" if setting == "auto" else Path(setting)
    if setting == "train" or (setting == "auto" and not path.is_file()):
        return list(train_texts), "train texts", None
    return read_texts(path), str(path), path
