"""Fit phase 3's new head on the frozen encoder's sentence vectors before fine-tuning.

Kumar et al. (ICLR 2022) fine-tune after a *converged* linear probe: a head trained to the
end on the frozen features sends the encoder small, informed gradients instead of a random
head's large, noisy ones. Trained inside spaCy's loop, the head alone still runs the
transformer forward at every step, so a converged probe costs as much as epochs of training.
Here the training texts are encoded once (no dropout, in batches, so memory stays
O(texts x width)), and the MLP head (hidden layer and output) trains on those vectors for a
few epochs, which takes seconds. `spacy_threephase.head_first.v1` calls it at phase 3's first
step (`probe_epochs`); the loop then fine-tunes encoder and head from the fitted head.
"""

import sys
import time
from typing import Any, List

import numpy
from spacy.training import Example
from spacy.util import minibatch
from thinc.api import Adam, Model, chain
from thinc.types import Floats2d

from .errors import SettingError


def upstream_transformer(nlp, model: Model):
    """The pipeline component whose output the head's listener (its first layer) receives."""
    listener = model.layers[0]
    if listener.name.startswith("stop_gradient("):  # freeze_encoder wraps the listener
        listener = listener.layers[0]
    for _, pipe in nlp.pipeline:
        if listener in getattr(pipe, "listeners", ()):
            return pipe
    raise SettingError(
        "head_first probe: no transformer component feeds the textcat head's listener; "
        "the probe needs a `transformer` component upstream of the textcat"
    )


def frozen_vectors(nlp, model: Model, examples: List[Example], batch_size: int = 64) -> Floats2d:
    """The pooled sentence vector of each example's text, as the head sees it at prediction
    time (the encoder in eval mode), computed batch by batch."""
    transformer = upstream_transformer(nlp, model)
    pooling = model.layers[1]
    parts = []
    for batch in minibatch([eg.predicted for eg in examples], batch_size):
        outputs = transformer.predict(batch)
        parts.append(pooling.predict(outputs.doc_data))
    return model.ops.xp.concatenate(parts) if parts else model.ops.alloc2f(0, 0)


def fit_head(
    model: Model,
    vectors: Floats2d,
    truths: Floats2d,
    not_missing: Floats2d,
    *,
    epochs: int,
    learn_rate: float,
    batch_size: int = 32,
    seed: int = 0,
) -> List[float]:
    """Train the head's layers (all but the listener and the pooling) on fixed vectors with
    spaCy's textcat gradient (scores - truths, missing labels masked); the mean loss of each
    epoch."""
    head = chain(*model.layers[2:])
    optimizer = Adam(learn_rate)
    rng = numpy.random.default_rng(seed)
    xp = model.ops.xp
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(vectors))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = xp.asarray(order[start : start + batch_size])
            scores, backprop = head.begin_update(vectors[idx])
            d_scores = (scores - truths[idx]) * not_missing[idx]
            total += float((d_scores**2).sum())
            backprop(d_scores)
            head.finish_update(optimizer)
        losses.append(total / max(len(order), 1))
    return losses


def probe(nlp, name: str, model: Model, examples: List[Example], *, epochs: int, learn_rate: float, seed: int = 0):
    """Fit `name`'s head on frozen vectors of `examples` and say so in one line."""
    if not examples or not epochs:
        return
    pipe = nlp.get_pipe(name)
    started = time.perf_counter()
    vectors = frozen_vectors(nlp, model, examples)
    truths, not_missing = pipe._examples_to_truth(examples)
    xp = model.ops.xp
    losses = fit_head(
        model,
        vectors,
        xp.asarray(truths, dtype="float32"),
        xp.asarray(not_missing, dtype="float32"),
        epochs=epochs,
        learn_rate=learn_rate,
        seed=seed,
    )
    print(
        f"[head_first] {name}: fitted the head on the frozen encoder's vectors of {len(examples)} texts for "
        f"{epochs} epochs (loss {losses[0]:.4f} -> {losses[-1]:.4f}, {time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
        flush=True,
    )


def check_probe_settings(epochs: Any, learn_rate: Any) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise SettingError(f"spacy_threephase.head_first.v1: probe_epochs must be an integer >= 0, not {epochs!r}")
    if isinstance(learn_rate, bool) or not isinstance(learn_rate, (int, float)) or not learn_rate > 0:
        raise SettingError(f"spacy_threephase.head_first.v1: probe_learn_rate must be > 0, not {learn_rate!r}")
