"""Phase 3: spaCy's training loop, made resumable (`python -m spacy threephase train`).

The same config and the same steps as `spacy train` (spaCy's `train_while_improving`):
update, finish_update, evaluate every `eval_frequency` steps, stop on `patience`,
`max_steps` or `max_epochs`, write model-best and model-last. On top of it:

- every `checkpoint_every` steps the whole training state goes to `<output>.checkpoint/`
  (weights, optimizer moments and schedules, dropout schedule, python/numpy/torch RNG
  states, step, epoch, evaluation history, losses); the same command started again continues
  from it and ends with the weights of an uninterrupted run (exactly on the CPU);
- after the last step, one more dev evaluation when that step was not an evaluation step
  (so model-best is never the untrained pipeline of step 0 on data too small for
  `eval_frequency`);
- each epoch is shuffled by `random.Random(seed + epoch)`, so a resumed run can skip to the
  batch where the killed one stopped (spaCy shuffles with the global RNG instead, so the two
  commands give different, equally valid, runs for one seed);
- model-best and model-last appear in the output directory together at the end, by renaming
  a complete temporary directory; an existing output is only replaced with `overwrite=True`,
  and only once the new one is complete. A killed run leaves the old output as it was.
"""
import random
import shutil
import sys
from pathlib import Path
from timeit import default_timer as timer
from typing import IO, Any, Dict, Iterator, Optional, Tuple, Union

from ..config import load_config, validation_summary
from ..errors import UserError
from ..outputs import atomic_output_dir, check_output_dir
from ..training import _test_fault_hook, checkpoint_dir_for, fingerprint, global_rng_state, set_global_rng_state
from .checkpoint import CheckpointDir
from .state import get_optimizer_state, get_weights, parameter_names, set_optimizer_state, set_weights

DIR_MODEL_BEST = "model-best"
DIR_MODEL_LAST = "model-last"


def train_pipeline(
    config_path: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    overrides: Optional[Dict[str, Any]] = None,
    use_gpu: int = -1,
    overwrite: bool = False,
    resume: Optional[bool] = None,
    checkpoint_every: int = 200,
    stdout: Optional[IO] = None,
    stderr: Optional[IO] = None,
) -> Path:
    """Train a pipeline from a spaCy training config; returns the output directory.

    resume: None = continue from `<output>.checkpoint/` when it belongs to the same config
    and inputs; True = there must be such a checkpoint; False = start again.
    checkpoint_every: steps between checkpoints (0 = none).
    """
    from spacy import util

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite)
    if checkpoint_every < 0:
        raise UserError(f"--checkpoint-every: must be 0 (no checkpoints) or a number of steps, not {checkpoint_every}")
    config = load_config(config_path, overrides, interpolate=False)
    _check_known_settings(config, config_path)
    _check_data_paths(config, config_path)
    checkpoints = CheckpointDir(checkpoint_dir_for(output_dir), fingerprint(config.to_str(), _input_paths(config)))
    saved = checkpoints.load(resume)
    if use_gpu >= 0:
        util.require_gpu(use_gpu)
    with _config_errors(config_path):
        nlp, T, train_corpus, dev_corpus = _initialize(config, use_gpu)
    run = _Run(nlp, T, train_corpus, dev_corpus, checkpoints, checkpoint_every, stdout, stderr)
    if saved is not None:
        run.restore(saved)
        print(f"[phase 3] resuming from {checkpoints.state_file}: step {run.step}", file=stderr, flush=True)
    run.train()
    with atomic_output_dir(output_dir, overwrite) as tmp:
        run.save(tmp / DIR_MODEL_LAST)
        best = checkpoints.best_dir()
        shutil.copytree(best if best is not None else tmp / DIR_MODEL_LAST, tmp / DIR_MODEL_BEST)
    checkpoints.discard()
    return output_dir


def _initialize(config, use_gpu: int):
    from spacy.schemas import ConfigSchemaTraining
    from spacy.training.initialize import init_nlp
    from spacy.util import registry, resolve_dot_names

    nlp = init_nlp(config, use_gpu=use_gpu)
    interpolated = nlp.config.interpolate()
    T = registry.resolve(interpolated["training"], schema=ConfigSchemaTraining)
    train_corpus, dev_corpus = resolve_dot_names(interpolated, [T["train_corpus"], T["dev_corpus"]])
    return nlp, T, train_corpus, dev_corpus


class _Run:
    """One phase-3 run: its loop state, and what a checkpoint holds of it."""

    def __init__(self, nlp, T, train_corpus, dev_corpus, checkpoints: CheckpointDir, checkpoint_every: int, stdout, stderr):
        from spacy.training.loop import create_before_to_disk_callback, create_evaluation_callback
        from thinc.api import constant, fix_random_seed

        self.nlp, self.T, self.checkpoints = nlp, T, checkpoints
        self.checkpoint_every = checkpoint_every
        self.stdout, self.stderr = stdout, stderr
        self.seed = T["seed"] if T["seed"] is not None else 0
        fix_random_seed(self.seed)
        self.optimizer = T["optimizer"]
        self.dropouts = constant(T["dropout"]) if isinstance(T["dropout"], float) else T["dropout"]
        self.evaluate = create_evaluation_callback(nlp, dev_corpus, T["score_weights"])
        self.before_to_disk = create_before_to_disk_callback(T["before_to_disk"])
        self.batches = _train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"], self.seed)
        self.names = parameter_names(nlp)
        self.step = -1  # the last step done
        self.results: list = []  # (score, step) of each evaluation
        self.losses: Dict[str, float] = {}
        self.words_seen = 0
        self.seconds = 0.0

    # -- checkpoints ------------------------------------------------------------------------

    def state(self, epoch: int) -> Dict[str, Any]:
        return {
            "version": 1,
            "step": self.step,
            "epoch": epoch,
            "results": list(self.results),
            "losses": dict(self.losses),
            "words_seen": self.words_seen,
            "seconds": self.seconds,
            "weights": get_weights(self.nlp),
            "optimizer": get_optimizer_state(self.optimizer, self.names),
            "rng": global_rng_state(),
        }

    def restore(self, saved: Dict[str, Any]) -> None:
        try:
            set_weights(self.nlp, saved["weights"])
            for _ in range(saved["step"] + 1):  # schedules are generators: replay them
                self.optimizer.step_schedules()
                next(self.dropouts)
            set_optimizer_state(self.optimizer, saved["optimizer"], self.names)
        except (ValueError, KeyError) as err:
            raise UserError(f"{self.checkpoints.state_file}: does not fit this pipeline ({err}); delete {self.checkpoints.path} to start again") from None
        for _ in range(saved["step"] + 1):  # the batches the killed run had used
            next(self.batches)
        set_global_rng_state(saved["rng"])
        self.step = saved["step"]
        self.results = [tuple(r) for r in saved["results"]]
        self.losses = dict(saved["losses"])
        self.words_seen = saved["words_seen"]
        self.seconds = saved["seconds"]

    # -- training ---------------------------------------------------------------------------

    def train(self) -> None:
        """spaCy's train_while_improving, step for step, with checkpoints; and one more dev
        evaluation after the last step when that step was not an evaluation step (spaCy
        skips it, so with fewer than `eval_frequency` steps its model-best is the untrained
        step-0 pipeline)."""
        from spacy.training.loop import subdivide_batch

        nlp, T, optimizer = self.nlp, self.T, self.optimizer
        frozen, annotating = T["frozen_components"], T["annotating_components"]
        with nlp.select_pipes(disable=frozen):
            log_step, finalize_logger = T["logger"](nlp, self.stdout, self.stderr)
        start = timer() - self.seconds
        epoch = 0
        try:
            for epoch, batch in self.batches:
                self.step += 1
                step = self.step
                if T["before_update"]:
                    T["before_update"](nlp, {"step": step, "epoch": epoch})
                dropout = next(self.dropouts)
                for subbatch in subdivide_batch(batch, T["accumulate_gradient"]):
                    nlp.update(subbatch, drop=dropout, losses=self.losses, sgd=False, exclude=frozen, annotates=annotating)
                for name, proc in nlp.pipeline:
                    if name not in frozen and getattr(proc, "is_trainable", False) and proc.model not in (True, False, None):
                        proc.finish_update(optimizer)
                optimizer.step_schedules()
                self.words_seen += sum(len(eg) for eg in batch)
                self.seconds = timer() - start
                self._log_step(log_step, epoch, evaluate=not step % T["eval_frequency"])
                best_score, neg_best_step = max((s, -st) for s, st in self.results)
                done = bool(T["patience"] and (step + neg_best_step) >= T["patience"]) or bool(T["max_steps"] and step >= T["max_steps"])
                if self.checkpoint_every and (step + 1) % self.checkpoint_every == 0 and not done:
                    self.checkpoints.save_state(self.state(epoch))
                _test_fault_hook()
                if done:
                    break
            if self.step >= 0 and self.results[-1][1] != self.step:
                self.seconds = timer() - start
                self._log_step(log_step, epoch, evaluate=True)
        finally:
            finalize_logger()

    def _log_step(self, log_step, epoch: int, evaluate: bool) -> None:
        """Evaluate on dev when asked (saving a new best), then hand the step to the logger."""
        from spacy.training.loop import update_meta

        nlp, T, optimizer, step = self.nlp, self.T, self.optimizer, self.step
        score, other_scores, is_best = None, None, None
        if evaluate:
            with nlp.use_params(optimizer.averages):
                score, other_scores = self.evaluate()
            self.results.append((score, step))
            is_best = score == max(self.results)[0]
        info = {
            "epoch": epoch,
            "step": step,
            "score": score,
            "other_scores": other_scores,
            "losses": self.losses,
            "checkpoints": self.results,
            "seconds": int(self.seconds),
            "words": self.words_seen,
        }
        if is_best is not None:
            with nlp.select_pipes(disable=T["frozen_components"]):
                update_meta(T, nlp, info)
            if is_best:
                with nlp.use_params(optimizer.averages):
                    self.checkpoints.save_best(self.before_to_disk(nlp), step)
        log_step(info if is_best is not None else None)
        if is_best is not None:
            self.losses = {}

    def save(self, path: Path) -> None:
        with self.nlp.use_params(self.optimizer.averages):
            self.before_to_disk(self.nlp).to_disk(path)


def _train_batches(nlp, corpus, batcher, max_epochs: int, seed: int) -> Iterator[Tuple[int, list]]:
    """spaCy's create_train_batches, with each epoch's order a function of (seed, epoch)."""
    epoch = 0
    examples = None
    if max_epochs >= 0:
        examples = list(corpus(nlp))
        if not examples:
            raise UserError("the training corpus is empty")
    while max_epochs < 1 or epoch != max_epochs:
        if examples is not None:
            order = list(examples)
            random.Random(seed * 100003 + epoch).shuffle(order)
        else:  # max_epochs = -1: stream the corpus as it is
            order = corpus(nlp)
        for batch in batcher(order):
            yield epoch, batch
        epoch += 1


def _input_paths(config) -> list:
    """Files and directories named in [paths]: a checkpoint belongs to their current contents."""
    found = []
    for value in config.get("paths", {}).values():
        if isinstance(value, str) and value and Path(value).exists():
            found.append(Path(value))
    return found


def _check_known_settings(config, config_path) -> None:
    """spaCy ignores unknown keys in [training] and [nlp] (a typo silently does nothing): refuse them."""
    from spacy.schemas import ConfigSchemaNlp, ConfigSchemaTraining

    for section, schema in (("training", ConfigSchemaTraining), ("nlp", ConfigSchemaNlp)):
        unknown = sorted(set(config.get(section, {})) - set(schema.model_fields))
        if unknown:
            raise UserError(f"{config_path}: [{section}] {unknown[0]}: unknown setting (known: {', '.join(sorted(schema.model_fields))})")


def _check_data_paths(config, config_path) -> None:
    """The usual mistake, caught before the (slow) pipeline set-up: a missing corpus file."""
    paths = config.get("paths", {})
    for key in ("train", "dev"):
        value = paths.get(key)
        if value in (None, "", "null"):
            raise UserError(f"{config_path}: paths.{key} is not set; pass --paths.{key} PATH")
        if isinstance(value, str) and not Path(value).exists():
            raise UserError(f"{value}: {'training' if key == 'train' else 'development'} data not found (paths.{key})")


class _config_errors:
    """spaCy's and confection's config errors as one line naming the config file."""

    def __init__(self, config_path):
        self.config_path = config_path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        from confection import ConfigValidationError

        if exc is not None and isinstance(exc, ConfigValidationError):
            raise UserError(f"{self.config_path}: {validation_summary(exc)}") from None
        return False
