"""Fault injection for the resume tests: stop a run in process at a given step, or kill the CLI
in a subprocess (slowed down by tests/slow_cli.py) as soon as its checkpoint exists."""

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

from spacy_threephase.callbacks import step_callback

TESTS = Path(__file__).resolve().parent


class Interrupted(BaseException):
    """Not an Exception: nothing in the code under test may catch it."""


def interrupt_at(n: int, phase=None) -> contextlib.AbstractContextManager:
    """A step callback (a `with` block) that raises Interrupted after the n-th step (1-based) of
    `phase` (any phase when None)."""

    def callback(name, step, model):
        if step == n and phase in (None, name):
            raise Interrupted()

    return step_callback(callback)


def kill_after_checkpoint(args: list, checkpoint: Path, timeout: float = 120.0) -> None:
    """Run `python -m spacy_threephase ARGS` at 0.15 s a step; SIGKILL it once `checkpoint` exists."""
    cmd = [sys.executable, str(TESTS / "slow_cli.py"), "0.15", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=TESTS.parent)
    deadline = time.time() + timeout
    try:
        while not checkpoint.exists():
            assert proc.poll() is None, f"finished before a checkpoint appeared:\n{proc.stdout.read().decode()}"
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
