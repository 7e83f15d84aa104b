"""Evaluate and save phase 3's pipeline with the optimizer's parameter averages, encoder included.

With `use_averages = true` thinc's optimizer keeps a moving average of every parameter it
updates, and spaCy evaluates and saves the pipeline under `nlp.use_params(averages)`. thinc
8.3's PyTorch shim looks those averages up under keys its optimizer never writes
("pytorch_<id>_<name>" against `(id, name)`), so under `spacy train` only the thinc head is
averaged and the transformer's weights stay the raw last ones. `use_averages` swaps in the
encoder's averages as well.
"""

import contextlib
from typing import Dict, Iterator, Optional, Tuple

from thinc.api import xp2torch

from .state import shim_modules


def torch_modules(nlp) -> Iterator[Tuple[int, object]]:
    """(shim id, PyTorch module) for every PyTorch model in the pipeline, once each."""
    seen = set()
    for _key, shim, module in shim_modules(nlp):
        if shim.id not in seen:
            seen.add(shim.id)
            yield shim.id, module


@contextlib.contextmanager
def shim_averages(nlp, averages: Dict[Tuple[int, str], object]):
    """The averaged values in place of the PyTorch parameters that have one, then the raw
    values back."""
    swapped = []
    try:
        for shim_id, module in torch_modules(nlp):
            for name, param in module.named_parameters():
                average = averages.get((shim_id, name))
                if average is not None:
                    swapped.append((param, param.data))
                    param.data = xp2torch(average, device=param.device).to(param.dtype)
        yield
    finally:
        for param, raw in swapped:
            param.data = raw


@contextlib.contextmanager
def use_averages(nlp, averages: Optional[dict]):
    """`nlp.use_params(averages)` for the thinc layers and `shim_averages` for the encoder; a
    no-op without averages (`use_averages = false`)."""
    if not averages:
        yield
        return
    with nlp.use_params(averages), shim_averages(nlp, averages):
        yield
