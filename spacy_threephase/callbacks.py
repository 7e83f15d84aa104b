"""Step callbacks: functions called after every optimizer step of phases 1-3.

The training loops call `after_step(phase, step, model)` (model: the module being trained in
phases 1, 2 and Joint, the `nlp` object in phase 3); nothing is registered in normal use. Tests
register callbacks to slow a run down (so that a process can be killed mid-run), to interrupt
it at a given step, or to inspect it; a wrapper script can do the same for a subprocess. The
loops never read environment variables for this.
"""

import contextlib
from typing import Any, Callable, Iterator, List

StepCallback = Callable[[str, int, Any], None]  # (phase name, global step after the update, model)

STEP_CALLBACKS: List[StepCallback] = []


def after_step(phase: str, step: int, model: Any = None) -> None:
    for callback in list(STEP_CALLBACKS):
        callback(phase, step, model)


@contextlib.contextmanager
def step_callback(callback: StepCallback) -> Iterator[StepCallback]:
    """Register `callback` for the duration of a `with` block."""
    STEP_CALLBACKS.append(callback)
    try:
        yield callback
    finally:
        STEP_CALLBACKS.remove(callback)
