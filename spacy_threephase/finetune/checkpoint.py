"""Phase 3's checkpoint directory, `<output>.checkpoint/`:

    checkpoint.pt     the training state after some step (weights, optimizer, RNGs, history)
    model-last/       the pipeline as of the last evaluation (what info["output_path"] names)
    best-00000150/    model-best as of step 150 (a copy of model-last/ at that step)

Each is written under a temporary name and renamed into place, so a kill at any moment
leaves the last complete checkpoint. A best-* directory newer than checkpoint.pt may exist
(a new best found after the last checkpoint); a resumed run removes it and finds it again.
"""

import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

from ..checkpoints import read_checkpoint
from ..errors import UserError
from ..outputs import atomic_torch_save

CHECKPOINT_FILE = "checkpoint.pt"
LAST_DIR = "model-last"


class CheckpointDir:
    def __init__(self, path: Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.best: Optional[str] = None  # the best-* directory of the current run
        self._kept: Optional[str] = None  # the best-* directory the last checkpoint refers to

    @property
    def state_file(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def load(self, resume: Optional[bool]) -> Optional[Dict[str, Any]]:
        """The saved state when there is one to continue from (see `resume` in train_pipeline)."""
        state = None if resume is False else read_checkpoint(self.state_file, self.fingerprint, resume, "phase 3")
        if state is None:
            self.discard()
            return None
        self.best = self._kept = state.get("best")
        if self.best is not None and not (self.path / self.best).is_dir():
            raise UserError(f"{self.path / self.best}: missing from the checkpoint; delete {self.path} to start again")
        self._prune()
        return state

    def discard(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path)

    def save_last(self, nlp) -> Path:
        """Write the pipeline of this evaluation to model-last/ (replacing the previous one)."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".{LAST_DIR}.tmp-{os.getpid()}"
        nlp.to_disk(tmp)
        self._replace(tmp, LAST_DIR)
        return self.path / LAST_DIR

    def save_best(self, step: int) -> None:
        """model-best as of `step`: a copy of model-last/, just written for that step."""
        name = f"best-{step:08d}"
        tmp = self.path / f".{name}.tmp-{os.getpid()}"
        shutil.copytree(self.path / LAST_DIR, tmp)
        self._replace(tmp, name)  # replaces one left by a killed run that got past this step
        self.best = name
        self._prune()

    def _replace(self, tmp: Path, name: str) -> None:
        if (self.path / name).exists():
            shutil.rmtree(self.path / name)
        tmp.rename(self.path / name)

    def save_state(self, state: Dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({**state, "fingerprint": self.fingerprint, "best": self.best}, self.state_file)
        self._kept = self.best
        self._prune()

    def best_dir(self) -> Optional[Path]:
        return self.path / self.best if self.best else None

    def last_dir(self) -> Optional[Path]:
        return self.path / LAST_DIR if (self.path / LAST_DIR).is_dir() else None

    def _prune(self) -> None:
        """Keep the current best and the one the checkpoint refers to; drop leftovers."""
        if not self.path.exists():
            return
        for p in self.path.iterdir():
            if p.name.startswith(".") and ".tmp-" in p.name:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            elif p.name.startswith("best-") and p.name not in (self.best, self._kept):
                shutil.rmtree(p, ignore_errors=True)
