"""Phase 3: spaCy's training loop, made resumable (`python -m spacy threephase train`).

It mirrors spaCy 3.8.x's `spacy/training/loop.py` (`train`, `train_while_improving`,
`create_train_batches`; checked against 3.8.18, and tests/test_phase3_parity.py runs both
on one config): the same seeding, epoch shuffles (python's global RNG), batches, updates,
dropout and optimizer schedules, evaluations every `eval_frequency` steps, stops on
`patience`, `max_steps` or `max_epochs`, the same console lines, and the same `info` dicts
for the logger (epoch, step, score, other_scores, losses, checkpoints, seconds, words, and
on evaluation steps output_path), so one seed gives the same losses and scores step by step
as `spacy train`. The intentional differences:

- checkpoints and resume: every `checkpoint_every` steps the whole training state goes to
  `<output>.checkpoint/` (weights, optimizer moments and schedules, python/numpy/torch RNG
  states, step, epoch, evaluation history, losses, and python's RNG state wherever drawing a
  batch used it, e.g. spaCy's shuffle at the start of an epoch). The same command started
  again rebuilds the pipeline, replays the dropout and optimizer schedules and the batches
  up to the checkpoint (each draw from the saved RNG state, so the batches, batcher
  schedules included, are those of the killed run, although spacy-transformers draws from
  python's RNG on every update), restores the state and continues: it ends with the
  weights of an uninterrupted run (exactly on the CPU);
- after the last step, one more dev evaluation when that step was not an evaluation step
  (spaCy skips it, so with fewer than `eval_frequency` steps its model-best is the untrained
  pipeline of step 0); the logger gets that step a second time, evaluated;
- model-best (and patience) never fall on the evaluation of step 0 once a later evaluation
  exists: that pipeline has had one update at the bottom of the warm-up, in effect an
  untrained head, and on a small dev set it can score above the trained ones by chance
  (`_Run.candidates`); spaCy would ship it;
- where the pipeline of an evaluation goes: spaCy writes `<output>/model-last` (and copies it
  to model-best on a new best) at every evaluation and sets `info["output_path"]` to it; here
  it goes to `<output>.checkpoint/model-last` (a new best is copied to `best-<step>/` there),
  `info["output_path"]` names that directory (what loggers that upload or load the pipeline
  need: it exists while they see it, and the next evaluation replaces it, as spaCy's), and
  model-best and model-last appear in the output directory together at the end, by renaming
  a complete temporary directory. An existing output is only replaced with
  `overwrite=True`, and only once the new one is complete;
- on an error spaCy saves the weights of the moment as model-last; here a failed or killed
  run leaves the old output as it was and its checkpoint to resume from.
- with `use_averages = true` the encoder's parameter averages are used too when evaluating
  and saving (`averages.use_averages`); spaCy's train() averages only the thinc head, because
  thinc's PyTorch shim never finds the encoder's averages.
"""

import random
import shutil
import sys
from pathlib import Path
from timeit import default_timer as timer
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union

from ..callbacks import after_step
from ..checkpoints import checkpoint_dir_for, fingerprint, global_rng_state, set_global_rng_state
from ..config import load_config, validation_summary
from ..errors import SettingError, UserError
from ..gpu import require_spacy_gpu
from ..outputs import atomic_output_dir, check_output_dir
from .averages import use_averages
from .checkpoint import CheckpointDir
from .state import get_optimizer_state, get_weights, parameter_names, set_optimizer_state, set_weights

DIR_MODEL_BEST = "model-best"
DIR_MODEL_LAST = "model-last"
PHASE = "finetune"  # the phase name step callbacks get (spacy_threephase.callbacks)
STATE_VERSION = 2  # 2: batches replayed with python's RNG as recorded (1: shuffled by (seed, epoch))


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
    from spacy.training.initialize import init_nlp

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
        require_spacy_gpu(use_gpu)
    with _config_errors(config_path):
        nlp = init_nlp(config, use_gpu=use_gpu)
        run = _Run(nlp, use_gpu, checkpoints, checkpoint_every, stdout, stderr)
    if saved is not None:
        run.restore(saved)
        print(f"[phase 3] resuming from {checkpoints.state_file}: step {run.step}", file=stderr, flush=True)
    run.train()
    with atomic_output_dir(output_dir, overwrite) as tmp:
        last = checkpoints.last_dir()
        if run.saved_step == run.step and last is not None:  # the last step was evaluated and saved
            shutil.copytree(last, tmp / DIR_MODEL_LAST)
        else:
            run.save(tmp / DIR_MODEL_LAST)
        best = checkpoints.best_dir()
        shutil.copytree(best if best is not None else tmp / DIR_MODEL_LAST, tmp / DIR_MODEL_BEST)
    checkpoints.discard()
    return output_dir


class _Run:
    """One phase-3 run: its loop state, and what a checkpoint holds of it."""

    def __init__(self, nlp, use_gpu: int, checkpoints: CheckpointDir, checkpoint_every: int, stdout, stderr):
        """As spaCy's `train()`: seed, GPU allocator, then the [training] objects, in that order."""
        from spacy.schemas import ConfigSchemaTraining
        from spacy.training.loop import create_before_to_disk_callback, create_evaluation_callback
        from spacy.util import registry, resolve_dot_names
        from thinc.api import constant, fix_random_seed, set_gpu_allocator

        config = nlp.config.interpolate()
        if config["training"]["seed"] is not None:
            fix_random_seed(config["training"]["seed"])
        if use_gpu >= 0 and config["training"]["gpu_allocator"]:
            set_gpu_allocator(config["training"]["gpu_allocator"])
        T = registry.resolve(config["training"], schema=ConfigSchemaTraining)
        train_corpus, dev_corpus = resolve_dot_names(config, [T["train_corpus"], T["dev_corpus"]])
        self.nlp, self.T, self.checkpoints = nlp, T, checkpoints
        self.checkpoint_every = checkpoint_every
        self.stdout, self.stderr = stdout, stderr
        self.optimizer = T["optimizer"]
        self.dropouts = constant(T["dropout"]) if isinstance(T["dropout"], float) else T["dropout"]
        self.evaluate = create_evaluation_callback(nlp, dev_corpus, T["score_weights"])
        self.before_to_disk = create_before_to_disk_callback(T["before_to_disk"])
        self.batches = _TrainBatches(nlp, train_corpus, T["batcher"], T["max_epochs"])
        self.names = parameter_names(nlp)
        self.step = -1  # the last step done
        self.results: list = []  # (score, step) of each evaluation
        self.losses: Dict[str, float] = {}
        self.words_seen = 0
        self.seconds = 0.0
        self.saved_step: Optional[int] = None  # the step of <checkpoint>/model-last
        self._start = 0.0

    # -- checkpoints ------------------------------------------------------------------------

    def state(self, epoch: int) -> Dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "step": self.step,
            "epoch": epoch,
            "results": list(self.results),
            "losses": dict(self.losses),
            "words_seen": self.words_seen,
            "seconds": self.seconds,
            "weights": get_weights(self.nlp),
            "optimizer": get_optimizer_state(self.optimizer, self.names),
            "rng": global_rng_state(),
            "batch_rng": dict(self.batches.rng_states),
        }

    def restore(self, saved: Dict[str, Any]) -> None:
        if saved.get("version") != STATE_VERSION:
            raise UserError(
                f"{self.checkpoints.state_file}: a checkpoint of an earlier version; "
                f"delete {self.checkpoints.path} to start again"
            )
        try:
            set_weights(self.nlp, saved["weights"])
            for _ in range(saved["step"] + 1):  # schedules are generators: replay them
                self.optimizer.step_schedules()
                next(self.dropouts)
            set_optimizer_state(self.optimizer, saved["optimizer"], self.names)
        except (ValueError, KeyError) as err:
            raise UserError(
                f"{self.checkpoints.state_file}: does not fit this pipeline ({err}); "
                f"delete {self.checkpoints.path} to start again"
            ) from None
        self.batches.replay(saved["batch_rng"], saved["step"] + 1)  # the batches the killed run had used
        set_global_rng_state(saved["rng"])
        self.step = saved["step"]
        self.results = [tuple(r) for r in saved["results"]]
        self.losses = dict(saved["losses"])
        self.words_seen = saved["words_seen"]
        self.seconds = saved["seconds"]

    # -- training ---------------------------------------------------------------------------

    def train(self) -> None:
        """spaCy's train_while_improving and the logging of train(), step for step, with
        checkpoints; and one more dev evaluation after the last step when that step was not
        an evaluation step."""
        from spacy.training.loop import subdivide_batch
        from wasabi import Printer

        nlp, T, optimizer = self.nlp, self.T, self.optimizer
        frozen, annotating = T["frozen_components"], T["annotating_components"]
        msg = Printer(no_print=True)
        self.stdout.write(msg.info(f"Pipeline: {nlp.pipe_names}") + "\n")
        if frozen:
            self.stdout.write(msg.info(f"Frozen components: {frozen}") + "\n")
        if annotating:
            self.stdout.write(msg.info(f"Set annotations on update for: {annotating}") + "\n")
        self.stdout.write(msg.info(f"Initial learn rate: {optimizer.learn_rate}") + "\n")
        with nlp.select_pipes(disable=frozen):
            log_step, finalize_logger = T["logger"](nlp, self.stdout, self.stderr)
        self._start = timer() - self.seconds
        epoch = 0
        try:
            for epoch, batch in self.batches:
                self.step += 1
                step = self.step
                if T["before_update"]:
                    T["before_update"](nlp, {"step": step, "epoch": epoch})
                dropout = next(self.dropouts)
                for subbatch in subdivide_batch(batch, T["accumulate_gradient"]):
                    nlp.update(
                        subbatch, drop=dropout, losses=self.losses, sgd=False, exclude=frozen, annotates=annotating
                    )
                for name, proc in nlp.pipeline:
                    trainable = getattr(proc, "is_trainable", False) and proc.model not in (True, False, None)
                    if name not in frozen and trainable:
                        proc.finish_update(optimizer)
                optimizer.step_schedules()
                self.words_seen += sum(len(eg) for eg in batch)
                self._log_step(log_step, epoch, evaluate=not step % T["eval_frequency"])
                best_score, neg_best_step = max((s, -st) for s, st in self.candidates())
                done = bool(T["patience"] and (step + neg_best_step) >= T["patience"])
                done = done or bool(T["max_steps"] and step >= T["max_steps"])
                if self.checkpoint_every and (step + 1) % self.checkpoint_every == 0 and not done:
                    self.checkpoints.save_state(self.state(epoch))
                after_step(PHASE, step + 1, nlp)  # steps done, as phases 1 and 2 count them
                if done:
                    break
            if self.step >= 0 and self.results[-1][1] != self.step:
                self._log_step(log_step, epoch, evaluate=True)
        finally:
            finalize_logger()

    def candidates(self) -> List[Tuple[float, int]]:
        """The (score, step) evaluations model-best and patience are taken from: every one but
        step 0's once a later one exists. Step 0's pipeline has had one update at the bottom of
        the warm-up (a new head is in effect untrained); on a small, noisy dev set it can
        outscore the trained pipelines, and spaCy then ships it as model-best."""
        if len(self.results) > 1 and self.results[0][1] == 0:
            return self.results[1:]
        return self.results

    def _log_step(self, log_step, epoch: int, evaluate: bool) -> None:
        """Evaluate on dev when asked (saving the pipeline as spaCy's train() does), then hand
        the step's info to the logger."""
        from spacy.training.loop import update_meta

        nlp, T, optimizer, step = self.nlp, self.T, self.optimizer, self.step
        score, other_scores, is_best = None, None, None
        if evaluate:
            with use_averages(nlp, optimizer.averages):
                score, other_scores = self.evaluate()
            self.results.append((score, step))
            is_best = score == max(self.candidates())[0]
        self.seconds = timer() - self._start
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
            info["output_path"] = str(self._save_evaluated(is_best))
        log_step(info if is_best is not None else None)
        if is_best is not None:
            self.losses = {}

    def _save_evaluated(self, is_best: bool) -> Path:
        """The pipeline of this evaluation to <checkpoint>/model-last (and best-<step>/ on a
        new best), where spaCy's train() writes <output>/model-last (and model-best)."""
        with use_averages(self.nlp, self.optimizer.averages):
            last = self.checkpoints.save_last(self.before_to_disk(self.nlp))
        if is_best:
            self.checkpoints.save_best(self.step)
        self.saved_step = self.step
        return last

    def save(self, path: Path) -> None:
        with use_averages(self.nlp, self.optimizer.averages):
            self.before_to_disk(self.nlp).to_disk(path)


class _TrainBatches:
    """spaCy's `create_train_batches` (the same epochs, shuffled in place with python's global
    RNG), and able to replay the batches of a killed run.

    The draws of the batches are not the only users of python's RNG (spacy-transformers draws
    from it on every update), so a replay from the seed alone would shuffle differently. For
    each batch whose drawing used python's RNG (the first batch of an epoch: spaCy's shuffle,
    a shuffling or augmenting corpus, a batcher using it), the RNG state it started from is
    recorded in `rng_states`, keyed by the batch's position; a checkpoint keeps them, and a
    replay starts those draws from the same states. Other batches' draws do not depend on it.
    """

    def __init__(self, nlp, corpus, batcher, max_epochs: int):
        self.rng_states: Dict[int, Any] = {}
        self.drawn = 0
        self._replaying: Dict[int, Any] = {}
        self._batches = _create_train_batches(nlp, corpus, batcher, max_epochs)

    def __iter__(self) -> Iterator[Tuple[int, List]]:
        return self

    def __next__(self) -> Tuple[int, List]:
        n = self.drawn
        if n in self._replaying:
            random.setstate(self._replaying.pop(n))
        before = random.getstate()
        item = next(self._batches)
        if random.getstate() != before:
            self.rng_states[n] = before
        self.drawn += 1
        return item

    def replay(self, rng_states: Dict[int, Any], n: int) -> None:
        """Draw the first n batches again, as the run that recorded `rng_states` drew them."""
        self._replaying = dict(rng_states)
        for _ in range(n):
            next(self)
        self._replaying = {}


def _create_train_batches(nlp, corpus, batcher, max_epochs: int) -> Iterator[Tuple[int, List]]:
    """spaCy's create_train_batches, line for line, with a one-line error for an empty corpus."""
    epoch = 0
    examples: Any = None
    if max_epochs >= 0:
        examples = list(corpus(nlp))
        if not examples:
            raise UserError("the training corpus is empty")
    while max_epochs < 1 or epoch != max_epochs:
        if max_epochs >= 0:
            random.shuffle(examples)
        else:
            examples = corpus(nlp)
        for batch in batcher(examples):
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
            known = ", ".join(sorted(schema.model_fields))
            raise UserError(f"{config_path}: [{section}] {unknown[0]}: unknown setting (known: {known})")


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
    """spaCy's and confection's config errors, and our registered functions' SettingErrors, as
    one line naming the config file."""

    def __init__(self, config_path):
        self.config_path = config_path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        from confection import ConfigValidationError

        if exc is not None and isinstance(exc, ConfigValidationError):
            raise UserError(f"{self.config_path}: {validation_summary(exc)}") from None
        if exc is not None and isinstance(exc, SettingError):
            raise UserError(f"{self.config_path}: {exc}") from None
        return False
