"""What a resumable ablation (`ablate --resume`) has finished, per seed: `work/seedN/progress.json`.

    {"steps":    {"dae": 812.4, ...},              seconds of each finished encoder phase
     "results":  {"ft": {...run...}, ...},         each finished variant (phase 3 + test scores)
     "attempts": {"cl_dae": {"started": t, "carried": s}}}   the unfinished one

A step killed part-way continues from its last checkpoint (`<output>.checkpoint/`) when it is
run again. Its wall time is what the kept work cost: each killed attempt counts from its start
to its last checkpoint (the work after that is lost and done again, and not counted twice),
plus the attempt that finishes. The file is replaced atomically after every change.
"""

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional

from .checkpoints import POINTER_FILE, checkpoint_dir_for
from .finetune.checkpoint import CHECKPOINT_FILE

FILE = "progress.json"
# the file a checkpoint directory's last complete save rewrites: phases 1/2/Joint, phase 3
CHECKPOINT_MARKERS = (POINTER_FILE, CHECKPOINT_FILE)


def last_checkpoint_time(output_dir: Path) -> Optional[float]:
    """When the last complete checkpoint of the run writing `output_dir` was saved (None: none)."""
    folder = checkpoint_dir_for(output_dir)
    times = [(folder / name).stat().st_mtime for name in CHECKPOINT_MARKERS if (folder / name).exists()]
    return max(times) if times else None


class Progress:
    def __init__(self, folder: Path, enabled: bool):
        """enabled=False: a run that is not resumable (nothing read, nothing skipped)."""
        self.path = Path(folder) / FILE
        self.enabled = enabled
        self.data: Dict[str, Any] = {"steps": {}, "results": {}, "attempts": {}}
        if enabled and self.path.exists():
            self.data.update(json.loads(self.path.read_text(encoding="utf8")))

    def finished_step(self, name: str, output_dir: Path) -> Optional[float]:
        """The seconds of a finished step whose output is still there, else None."""
        seconds = self.data["steps"].get(name)
        if seconds is None or not (Path(output_dir) / "metrics.json").exists():
            return None
        return seconds

    def result(self, variant: str) -> Optional[Dict[str, Any]]:
        return self.data["results"].get(variant)

    def start(self, name: str, output_dir: Path) -> float:
        """Record the start of an attempt at `name`; returns the seconds kept from killed attempts."""
        carried = 0.0
        before = self.data["attempts"].get(name)
        if self.enabled and before is not None:
            carried = before["carried"]
            last = last_checkpoint_time(Path(output_dir))
            if last is not None and last > before["started"]:
                carried += last - before["started"]
        self.data["attempts"][name] = {"started": time.time(), "carried": carried}
        self._save()
        return carried

    def finish_step(self, name: str, seconds: float) -> None:
        self.data["steps"][name] = seconds
        self.data["attempts"].pop(name, None)
        self._save()

    def finish_variant(self, variant: str, step: str, run: Dict[str, Any]) -> None:
        self.data["results"][variant] = run
        self.data["attempts"].pop(step, None)
        self._save()

    def _save(self) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{FILE}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.data, indent=1, default=str), encoding="utf8")
        os.replace(tmp, self.path)
