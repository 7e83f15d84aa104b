"""`python tests/rank_digest_cli.py DIGEST_DIR ARGS...` = `python -m spacy_threephase ARGS...`
where, after every training step, each process writes a digest of the encoder's weights to
DIGEST_DIR/rank<N>.txt (a step callback): the test compares the ranks of a multi-process run."""

import hashlib
import os
import sys
from pathlib import Path

from spacy_threephase.callbacks import STEP_CALLBACKS
from spacy_threephase.cli import main

DIGESTS = Path(sys.argv[1])


def write_digest(phase, step, model) -> None:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    rank = os.environ.get("RANK", "0")
    (DIGESTS / f"rank{rank}.txt").write_text(f"{step} {h.hexdigest()}\n")


if __name__ == "__main__":
    STEP_CALLBACKS.append(write_digest)
    DIGESTS.mkdir(parents=True, exist_ok=True)
    sys.argv = ["spacy_threephase", *sys.argv[2:]]
    main()
