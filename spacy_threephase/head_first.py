"""Phase 3 trains the head alone first when phases 1-2 changed the encoder.

A new classifier head starts random. Fine-tuned through it from the first step, the encoder
gets large, noisy gradients that undo part of what phases 1-2 taught it (Kumar et al., ICLR
2022: linear probing, then fine-tuning). `spacy_threephase.head_first.v1` is a spaCy
`[training.before_update]` callback, so `spacy train` and `spacy threephase train` both run
it: before each update it tells every TextCatMLP head whether this update trains the head
alone. It does so for the first `epochs` epochs, at most `steps` steps, when the training
corpus has at least `min_texts` and at most `max_texts` texts, and (with `when = "adapted"`)
only when the encoder was changed by phases 1-2, as its `threephase.json` records; a base
encoder (plain fine-tuning) trains from the first step. On 320 texts training the head
alone first cost accuracy, on 2,000 it gained, on 8,544 it made no difference one seed could
resolve (benchmarks/RESULTS.md); above `max_texts` training is exactly as without the callback.
On a training corpus of fewer than `alone_below` texts (and the same `when`) the head trains
alone for the whole run: the encoder stays as phases 1-2 left it, as SetFit puts a head on its
contrastively tuned body. On 40 sst5 texts fine-tuning the encoder through the head lost what
phase 2 had gained (benchmarks/RESULTS.md, "Phase 3 on tiny data").
With `probe_epochs`, the head is first fitted on the frozen encoder's sentence vectors of the
training texts (encoded once; `linear_probe`) at the first step, where the encoder test and the
corpus sizes apply, so fine-tuning starts from a trained head rather than a random one.
The encoder's learning-rate warm-up starts with its first update (spacy_threephase.AdamW.v1).
The head-only state lives in `architectures.HEAD_ONLY` for the process, not in the saved
model.
"""

import sys
from typing import Any, Callable, Dict, Iterable, List, Optional

from spacy import registry

from .architectures import HEAD_ONLY
from .errors import SettingError
from .linear_probe import check_probe_settings, probe

WHEN = ("adapted", "always", "never")


@registry.callbacks("spacy_threephase.head_first.v1")
def configure_head_first(
    steps: int = 100,
    epochs: float = 2,
    when: str = "adapted",
    min_texts: int = 0,
    max_texts: int = 0,
    corpus: Optional[Callable[[Any], Iterable[Any]]] = None,
    alone_below: int = 0,
    probe_epochs: int = 0,
    probe_learn_rate: float = 0.001,
) -> Callable[[Any, Dict], None]:
    """steps, epochs: the head trains alone while step < steps and epoch < epochs (both
    0-based); when: "adapted" (only if phases 1-2 changed the encoder), "always" or "never";
    min_texts, max_texts: only when the training corpus (`corpus`, usually ${corpora.train},
    counted once at the first step) has at least min_texts and, unless max_texts is 0, at
    most max_texts texts; alone_below: on a corpus of fewer texts, the head trains alone for
    the whole run (0: never); probe_epochs: at the first step, where the encoder test and the
    corpus sizes above apply (the `steps` window need not), first fit the head for this many
    epochs on the frozen encoder's vectors of `corpus` at probe_learn_rate (0: no probe)."""
    if when not in WHEN:
        raise SettingError(f"spacy_threephase.head_first.v1: when must be one of {', '.join(WHEN)}, not {when!r}")
    counts = (steps, min_texts, max_texts, alone_below)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in counts) or epochs < 0:
        raise SettingError(
            "spacy_threephase.head_first.v1: steps, epochs, min_texts, max_texts and alone_below must be >= 0"
        )
    check_probe_settings(probe_epochs, probe_learn_rate)
    if (min_texts or max_texts or alone_below or probe_epochs) and corpus is None:
        raise SettingError(
            "spacy_threephase.head_first.v1: min_texts, max_texts, alone_below and probe_epochs need corpus "
            "(e.g. corpus = ${corpora.train})"
        )
    if max_texts and max_texts < min_texts:
        raise SettingError(f"spacy_threephase.head_first.v1: max_texts ({max_texts}) is below min_texts ({min_texts})")
    n_texts: List[int] = []  # counted at the first update

    def before_update(nlp, info: Dict[str, Any]) -> None:
        step, epoch = info["step"], info["epoch"]
        if (min_texts or max_texts or alone_below) and not n_texts:
            n_texts.append(sum(1 for _ in corpus(nlp)))
        size_fits = not n_texts or (n_texts[0] >= min_texts and (not max_texts or n_texts[0] <= max_texts))
        whole_run = bool(n_texts) and n_texts[0] < alone_below
        for name, pipe in nlp.pipeline:
            model = getattr(pipe, "model", None)
            if getattr(model, "name", None) != "textcat_mlp":
                continue
            adapted_by = model.attrs.get("encoder_adapted_by") or []
            wanted = when == "always" or (when == "adapted" and bool(adapted_by))
            why = f"the encoder was changed by {', '.join(adapted_by)}" if adapted_by else 'when = "always"'
            if wanted and step == 0 and probe_epochs and (whole_run or size_fits):
                probe(nlp, name, model, list(corpus(nlp)), epochs=probe_epochs, learn_rate=probe_learn_rate)
            if wanted and (whole_run or (size_fits and step < steps and epoch < epochs)):
                if step == 0:
                    how_long = (
                        f"the whole run, the encoder stays as it is ({n_texts[0]} training texts, fewer than "
                        f"alone_below = {alone_below}; {why})"
                        if whole_run
                        else f"the first {epochs:g} epochs, at most {steps} steps ({why})"
                    )
                    print(f"[head_first] {name}: the head trains alone for {how_long}", file=sys.stderr, flush=True)
                HEAD_ONLY.add(model.id)
            else:
                HEAD_ONLY.discard(model.id)

    return before_update
