"""Write outputs safely: to a temporary sibling path first, then rename into place."""

import contextlib
import shutil
import uuid
from pathlib import Path
from typing import Iterator, Union

from .errors import UserError


def check_output_dir(path: Union[str, Path], overwrite: bool) -> Path:
    """Refuse to replace an existing, non-empty output unless asked to."""
    path = Path(path)
    if path.exists() and not overwrite:
        if path.is_file() or any(path.iterdir()):
            raise UserError(
                f"{path}: output already exists; pass --overwrite to replace it "
                "(the old one is only removed once the new one is complete)"
            )
    return path


@contextlib.contextmanager
def atomic_output_dir(path: Union[str, Path], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; on success it replaces `path`.

    If the block raises (or the process dies), `path` is left as it was and the
    temporary directory is removed (or left behind with a `.tmp-` name).
    """
    path = check_output_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temporary directories of earlier runs that were killed: never a valid output, remove.
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        path.rename(old)
    tmp.rename(path)
    if old is not None:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def atomic_torch_save(obj, path: Union[str, Path]) -> None:
    """torch.save to a temporary file, flushed to disk, then renamed over `path`: a crash at
    any moment leaves either the old file or the new one, never half of one."""
    import os

    import torch

    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with tmp.open("wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def output_dir_for_rank(path: Union[str, Path], overwrite: bool = False) -> Iterator[Path]:
    """atomic_output_dir on the process that writes (rank 0, or the only process); a throwaway
    temporary directory on the other ranks of a distributed (torchrun) run."""
    import os
    import tempfile

    if int(os.environ.get("RANK", "0") or 0) == 0:
        with atomic_output_dir(path, overwrite) as tmp:
            yield tmp
    else:
        with tempfile.TemporaryDirectory(prefix="threephase-rank-") as tmp:
            yield Path(tmp)
