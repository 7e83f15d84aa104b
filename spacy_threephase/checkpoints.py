"""What a resumable checkpoint belongs to, where it lives, and reading it back.

Phases 1, 2 and Joint keep their checkpoint in `<output>.checkpoint/`: accelerate's state
(model, optimizer, scheduler, GradScaler, every process's RNGs) in `state-<step>/` plus our
progress (`trainer.pt`: epoch, position, selection, history, the phases' own RNG objects), and
`checkpoint.json`, replaced atomically, naming the complete state directory. A kill at any
moment leaves the previous checkpoint or the new one. Phase 3 (finetune/) keeps a single
`checkpoint.pt` there and uses `read_checkpoint`.
"""

import hashlib
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

from .errors import UserError

POINTER_FILE = "checkpoint.json"
PROGRESS_FILE = "trainer.pt"
# Settings that do not change the result: a checkpoint stays valid when only these differ.
NON_RESULT_SETTINGS = ("progress", "checkpoint_every", "torch_threads")


def checkpoint_dir_for(output_dir: Union[str, Path]) -> Path:
    """`<output>.checkpoint/`, next to the output directory."""
    output_dir = Path(output_dir)
    return output_dir.parent / f"{output_dir.name}.checkpoint"


def world_size() -> int:
    """Number of training processes (torchrun / accelerate launch set WORLD_SIZE)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """True in a one-process run and on rank 0 of a multi-process one (before accelerate starts too)."""
    return os.environ.get("RANK", "0") in ("", "0")


def fingerprint(config_text: str, inputs: Iterable[Union[str, Path]], extra: Any = None) -> str:
    """What a checkpoint belongs to: the config, the size and mtime of each input file (or of
    each file in an input directory), the number of processes and anything else that changes
    the run."""
    h = hashlib.sha256(config_text.encode("utf8"))
    for item in inputs:
        path = Path(item)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                st = f.stat()
                h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode("utf8"))
            except OSError:
                h.update(f"{f}|missing\n".encode("utf8"))
    h.update(json.dumps(extra, sort_keys=True, default=str).encode("utf8"))
    h.update(f"world_size={world_size()}".encode("utf8"))
    return h.hexdigest()


def config_fingerprint_text(config) -> str:
    """The config as text, without the settings that do not change the result."""
    data = {sec: dict(config[sec]) for sec in config}
    for key in NON_RESULT_SETTINGS:
        data.get("training", {}).pop(key, None)
    return json.dumps(data, sort_keys=True, default=str)


def global_rng_state() -> Dict[str, Any]:
    """The python, numpy and torch (CPU and every CUDA device) random states (phase 3)."""
    import numpy
    import torch

    state = {"python": random.getstate(), "numpy": numpy.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: Dict[str, Any]) -> None:
    import numpy
    import torch

    random.setstate(state["python"])
    numpy.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_checkpoint(path: Path, fingerprint: str, resume: Optional[bool], desc: str, announce: bool = True):
    """Phase 3: the state saved in the file `path` when a run may continue from it, else None.

    resume=True makes a missing or foreign checkpoint an error; otherwise a checkpoint of
    another config or other inputs is ignored (with a message when `announce`).
    """
    import torch

    if not path.exists():
        if resume:
            raise UserError(f"--resume: no checkpoint at {path}")
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a corrupt file cannot come from os.replace, but be clear anyway
        raise UserError(f"{path}: cannot read the checkpoint ({err}); delete {path.parent} to start again") from None
    return _matching(state, path, fingerprint, resume, desc, announce)


def _matching(state, path: Path, fingerprint: str, resume: Optional[bool], desc: str, announce: bool):
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        if resume:
            raise UserError(
                f"{path}: the checkpoint is from another config or other input files; "
                f"delete {path.parent} or leave out --resume to start again"
            )
        if announce:
            print(
                f"[{desc}] {path.parent}: checkpoint is from another config or other inputs; starting from scratch",
                file=sys.stderr,
                flush=True,
            )
        return None
    return state


def read_pointer(checkpoint_dir: Path, fingerprint: str, resume: Optional[bool], desc: str, announce: bool = True):
    """Phases 1, 2, Joint: {"state": <state directory>, "step": N, ...} when a run may continue
    from `checkpoint_dir`, else None (same rules as read_checkpoint)."""
    path = checkpoint_dir / POINTER_FILE
    if not path.exists():
        if resume:
            raise UserError(f"--resume: no checkpoint at {checkpoint_dir}")
        return None
    try:
        pointer = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read the checkpoint ({err}); delete {checkpoint_dir} to start again") from None
    pointer = _matching(pointer, path, fingerprint, resume, desc, announce)
    if pointer is not None and not (checkpoint_dir / str(pointer.get("state"))).is_dir():
        raise UserError(
            f"{path}: its state directory {pointer.get('state')!r} is missing; delete {checkpoint_dir} to start again"
        )
    return pointer


def write_pointer(checkpoint_dir: Path, pointer: Dict[str, Any]) -> None:
    """Point at a complete state directory (atomic), then delete the older ones."""
    tmp = checkpoint_dir / f".{POINTER_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(pointer), encoding="utf8")
    os.replace(tmp, checkpoint_dir / POINTER_FILE)
    for old in checkpoint_dir.glob("state-*"):
        if old.name != pointer["state"]:
            shutil.rmtree(old, ignore_errors=True)
