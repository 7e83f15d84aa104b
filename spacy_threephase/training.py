"""The training engine of phases 1, 2 and Joint: accelerate runs it, we add selection and resume.

A phase hands over a torch module whose `forward(batch)` returns the loss, and a function
`make_batches(epoch)` (a function of the seed and the epoch only). accelerate does device
placement, mixed precision on CUDA (bf16 where supported, else fp16 with a GradScaler), DDP
gradient synchronisation when launched with several processes (`accelerate launch` or
`torchrun`; gloo on CPU, nccl on CUDA), gradient clipping, and saving/loading the state. Each
process takes its share of every epoch's batches (`split_between_processes`).

On top of that:
- AdamW (no decay for biases and LayerNorm) and transformers' linear warm-up/decay schedule;
- model selection: `evaluate()` (higher is better) scores the encoder the phase starts from,
  then every `eval_steps` steps (or `evals_per_epoch` times an epoch) and at every epoch end;
  the best candidate's weights are restored at the end, which may be the input, unchanged;
  with `min_gain_z` > 0 and an evaluator that scores each dev text, the best checkpoint
  replaces the input only when its per-text gain over it is significant (`paired_z`); with
  `prefer_final_z` > 0, a run that reached the end of its schedule writes its final (annealed)
  weights instead of an earlier best that is ahead of them only within noise;
- resume: every `checkpoint_every` steps accelerate's state (with the phase's own state
  holders) plus our progress (epoch, position, selection, history) go to `<output>.checkpoint/`;
  the same command started again continues and ends with the weights of an uninterrupted run;
- callbacks after every step (spacy_threephase.callbacks), for tests.
"""

import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from .callbacks import after_step
from .checkpoints import PROGRESS_FILE, read_pointer, write_pointer
from .errors import UserError
from .outputs import atomic_torch_save
from .settings import TrainingSection
from .significance import paired_z


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    steps: int
    seconds: float
    examples: int
    score: Optional[float] = None
    extra: Dict[str, float] = field(default_factory=dict)


@dataclass
class Evaluation:
    step: int
    epoch: float  # epochs done (fractional)
    score: float
    metrics: Dict[str, float]


def build_accelerator(settings: TrainingSection):
    """One Accelerator per run (its process state is shared by the runs of one process)."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    use_cuda = settings.gpu_id >= 0
    if use_cuda and not torch.cuda.is_available():
        raise UserError(f"gpu_id={settings.gpu_id}: CUDA is not available on this machine; use gpu_id = -1 for the CPU")
    precision = "no"
    if use_cuda and settings.mixed_precision:
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    AcceleratorState._reset_state(reset_partial_state=False)  # a new run may ask for other precision
    return Accelerator(
        cpu=not use_cuda,
        mixed_precision=precision,
        step_scheduler_with_optimizer=False,  # our schedule counts this process's steps
        # pooling leaves e.g. BERT's pooler without a gradient
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def build_optimizer(model, settings: TrainingSection):
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # one fused kernel for all parameters: a quarter of the foreach version's time on a CPU
        return torch.optim.AdamW(groups, lr=settings.learning_rate, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=settings.learning_rate, foreach=True)


def cpu_copy(module) -> Dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class Trainer:
    """fit(make_batches, steps_per_epoch, evaluate) -> per-epoch records; see the module doc.

    selected: the module whose weights the phase writes (the encoder); selection keeps and
    restores its weights only. checkpointed: the phase's own state holders (state_dict /
    load_state_dict, e.g. its noise stream), registered with accelerate's checkpointing.
    resume: None = continue from a matching checkpoint if there is one; True = there must be
    one; False = start from scratch (an old checkpoint is discarded).
    """

    def __init__(
        self,
        model,
        settings: TrainingSection,
        *,
        desc: str,
        selected=None,
        log_path: Optional[Path] = None,
        checkpoint_dir: Optional[Union[str, Path]] = None,
        fingerprint: str = "",
        resume: Optional[bool] = None,
        checkpointed: Optional[List[Any]] = None,
    ):
        self.settings, self.desc = settings, desc
        self.accelerator = build_accelerator(settings)
        self.model = model
        self.selected = selected if selected is not None else model
        self.log_path = Path(log_path) if log_path else None
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.fingerprint, self.resume = fingerprint, resume
        self.accelerator.register_for_checkpointing(*(checkpointed or []))
        self.history: List[EpochRecord] = []
        self.evaluations: List[Evaluation] = []
        self.step = 0
        self.resumed_from: Optional[int] = None
        self.best: Optional[Evaluation] = None
        self._best_state = None
        # the significance check (min_gain_z): the input's weights and per-text dev scores, the best's scores
        self._input_state = None
        self._input_items = None
        self._best_items = None
        self.significance: Optional[Dict[str, Any]] = None
        self._last_items = None  # the latest evaluation's per-text dev scores (prefer_final_z)
        self.preferred_final: Optional[Dict[str, Any]] = None
        self.eval_seconds = 0.0  # wall time spent on selection evaluations (this process, this run)

    @property
    def device(self):
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def out_of_patience(self) -> bool:
        """`patience` evaluations in a row without a new best (selection on)."""
        s = self.settings
        if not (s.select_best and s.patience and self.best is not None):
            return False
        return sum(e.step > self.best.step for e in self.evaluations) >= s.patience

    @property
    def kept_input(self) -> bool:
        """True when selection kept the encoder the phase started from."""
        return self.best is not None and self.best.step == 0

    def say(self, msg: str) -> None:
        if self.is_main:
            print(f"[{self.desc}] {msg}", file=sys.stderr, flush=True)

    # -- the loop ------------------------------------------------------------------------------

    def fit(self, make_batches: Callable[[int], List[Any]], steps_per_epoch: int, evaluate=None) -> List[EpochRecord]:
        from tqdm import tqdm
        from transformers import get_linear_schedule_with_warmup

        s, acc = self.settings, self.accelerator
        per_rank = max(1, steps_per_epoch) // acc.num_processes
        if per_rank < 1:
            raise UserError(
                f"{self.desc}: {steps_per_epoch} batches per epoch cannot be shared by {acc.num_processes} processes; "
                "use a smaller batch_size or fewer processes"
            )
        epochs = self.epochs_for(per_rank)
        if epochs > s.epochs:
            self.say(
                f"{s.epochs} epochs of {per_rank} steps are fewer than min_steps {s.min_steps}: "
                f"training {epochs} epochs"
            )
        total = max(1, epochs * per_rank)
        if s.max_steps:
            total = min(total, s.max_steps)
        optimizer = build_optimizer(self.model, s)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(round(s.warmup_ratio * total)), total)
        self.wrapped, self.optimizer, self.scheduler = acc.prepare(self.model, optimizer, scheduler)
        # Evaluations: every eval_steps steps; else evals_per_epoch times an epoch and at each
        # epoch's end, or, when min_steps stretched the run, as many as the configured epochs
        # would have had, spread evenly over the steps (plus one at the end).
        stretched = epochs > s.epochs
        by_step = bool(s.eval_steps) or stretched
        if s.eval_steps:
            eval_every = s.eval_steps
        elif stretched:
            eval_every = max(1, math.ceil(total / (s.epochs * s.evals_per_epoch)))
        else:
            eval_every = max(1, math.ceil(per_rank / s.evals_per_epoch))

        start_epoch, skip, saved = 0, 0, self._resume()
        if saved is not None:
            start_epoch, skip = saved["epoch"], saved["step_in_epoch"]
        elif evaluate is not None and s.select_best:
            self._evaluate(evaluate, 0, per_rank, label="before training")
        done = bool(s.max_steps and self.step >= s.max_steps)
        for epoch in range(start_epoch, epochs):
            if done:
                break
            batches = self._shard(make_batches(epoch))
            if saved is not None and epoch == start_epoch:
                totals = dict(saved["totals"])
                totals["start"] = time.time() - totals.pop("seconds")
            else:
                skip, totals = 0, {"loss": 0.0, "steps": 0, "examples": 0, "start": time.time()}
            self.wrapped.train()
            bar = tqdm(
                range(skip, len(batches)),
                desc=f"{self.desc} epoch {epoch + 1}/{epochs}",
                initial=skip,
                total=len(batches),
                disable=not s.progress or not self.is_main,
                leave=False,
                file=sys.stderr,
                dynamic_ncols=True,
            )
            for i in bar:
                loss = self._update(batches[i])
                self.step += 1
                totals["loss"] += loss
                totals["steps"] += 1
                totals["examples"] += len(batches[i])
                bar.set_postfix(loss=f"{totals['loss'] / totals['steps']:.4f}")
                done = bool(s.max_steps and self.step >= s.max_steps)
                last = done or i == len(batches) - 1
                final = done or (last and epoch == epochs - 1)
                scored = None
                due = self.step % eval_every == 0 if by_step else (i + 1) % eval_every == 0
                if evaluate is not None and (due or final or (last and not stretched)):
                    scored = self._evaluate(evaluate, self.step, per_rank)
                    self.wrapped.train()
                    if self.out_of_patience:
                        self.say(f"{s.patience} evaluations without a new best: stopping at step {self.step}")
                        done = True
                if last or done:  # a stretched run's many short epochs print only when scored
                    self._finish_epoch(epoch, totals, scored, quiet=stretched and scored is None)
                if s.checkpoint_every and self.step % s.checkpoint_every == 0 and not done:
                    self._save(epoch, i + 1, totals)  # after an epoch's last batch: resume skips it whole
                after_step(self.desc, self.step, self.selected)
                if done:
                    break
            bar.close()
        self._prefer_final(total)
        self._check_significance()
        if self._best_state is not None and s.select_best:
            self.selected.load_state_dict(self._best_state)
            if self.kept_input and self.significance is None:
                self.say("no evaluation beat the encoder this phase started from: writing it unchanged")
        self.wrapped.eval()
        return self.history

    def _prefer_final(self, total: int) -> None:
        """With prefer_final_z > 0: when the run ended its schedule (the learning rate decayed to
        0) and an earlier checkpoint scored best, write the final weights unless the best beats
        them by a paired z of at least prefer_final_z on the per-text dev scores. The final
        weights must still score above the input."""
        s = self.settings
        if not (s.select_best and s.prefer_final_z > 0 and self.best is not None and self.best.step > 0):
            return
        final = self.evaluations[-1] if self.evaluations else None
        if final is None or final.step != self.step or self.step < total or final.step == self.best.step:
            return  # stopped by patience before the schedule's end, or the best is the final weights
        if self._best_items is None or self._last_items is None:
            return  # an evaluator without per-text scores (phase 1's held-out loss)
        start = next((e for e in self.evaluations if e.step == 0), None)
        if start is not None and final.score <= start.score:
            return
        z = paired_z(self._last_items, self._best_items)
        self.preferred_final = {"best_step": self.best.step, "final_step": final.step, "z": round(z, 3)}
        if z >= s.prefer_final_z:
            self.say(
                f"step {self.best.step} is ahead of the final weights beyond noise (z {z:.2f} >= "
                f"prefer_final_z {s.prefer_final_z:g}): writing step {self.best.step}"
            )
            return
        self.say(
            f"step {self.best.step} scored best, the final weights (step {final.step}) within noise of it "
            f"(z {z:.2f} < prefer_final_z {s.prefer_final_z:g}): writing the final weights"
        )
        self.best, self._best_items, self._best_state = final, self._last_items, cpu_copy(self.selected)

    def _check_significance(self) -> None:
        """With min_gain_z > 0: the best checkpoint must beat the input by a paired z of at least
        min_gain_z on the per-text dev scores, else the input is written unchanged."""
        s = self.settings
        if not (s.select_best and s.min_gain_z > 0 and self.best is not None and self.best.step > 0):
            return
        if self._input_items is None or self._best_items is None or self._input_state is None:
            return  # an evaluator without per-text scores (phase 1's held-out loss): any gain counts
        z = paired_z(self._input_items, self._best_items)
        kept = z >= s.min_gain_z
        self.significance = {"best_step": self.best.step, "z": round(z, 3), "min_gain_z": s.min_gain_z, "kept": kept}
        if kept:
            self.say(f"step {self.best.step}'s dev gain over the input is significant (z {z:.2f} >= {s.min_gain_z:g})")
            return
        self.say(
            f"step {self.best.step}'s dev gain over the input is within noise (z {z:.2f} < min_gain_z "
            f"{s.min_gain_z:g}): writing the input encoder unchanged"
        )
        self.best = next(e for e in self.evaluations if e.step == 0)
        self._best_state = self._input_state

    def epochs_for(self, steps_per_epoch: int) -> int:
        """The configured epochs, raised so that the run makes at least min_steps steps."""
        s = self.settings
        if s.min_steps and s.epochs * steps_per_epoch < s.min_steps:
            return math.ceil(s.min_steps / max(1, steps_per_epoch))
        return s.epochs

    def _update(self, batch) -> float:
        import torch

        s, acc = self.settings, self.accelerator
        loss = self.wrapped(batch)
        if not torch.isfinite(loss):
            raise UserError(
                f"{self.desc}: loss became {loss.item()} at step {self.step}; "
                "lower learning_rate or disable mixed_precision"
            )
        acc.backward(loss)
        if s.max_grad_norm and s.max_grad_norm > 0:
            acc.clip_grad_norm_(self.wrapped.parameters(), s.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def _shard(self, batches: list) -> list:
        """This process's equal share of the epoch's batches (the remainder is dropped)."""
        batches = list(batches)
        n = self.accelerator.num_processes
        if n <= 1:
            return batches
        with self.accelerator.split_between_processes(batches[: len(batches) // n * n]) as mine:
            return list(mine)

    def _evaluate(self, evaluate, step: int, per_rank: int, label: Optional[str] = None) -> Evaluation:
        import torch

        self.wrapped.eval()
        started = time.time()
        with torch.no_grad():
            score, metrics, *per_text = evaluate()  # per_text: [scores of each dev text], if given
        self.eval_seconds += time.time() - started
        items = per_text[0] if per_text else None
        self._last_items = items
        result = Evaluation(step, round(step / per_rank, 4), float(score), dict(metrics or {}))
        self.evaluations.append(result)
        better = self.best is None or result.score > self.best.score
        if better:
            self.best, self._best_items = result, items
            if self.settings.select_best:
                self._best_state = cpu_copy(self.selected)
        if step == 0 and self.settings.select_best and self.settings.min_gain_z > 0:
            self._input_state, self._input_items = self._best_state, items
        shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if isinstance(v, float))
        self.say(
            f"{label or f'step {step} (epoch {result.epoch:g})'}: dev {shown}"
            + (" (best so far)" if better and step else "")
        )
        return result

    def _finish_epoch(
        self, epoch: int, totals: Dict[str, float], scored: Optional[Evaluation], quiet: bool = False
    ) -> None:
        steps = int(totals["steps"])
        record = EpochRecord(
            epoch + 1, totals["loss"] / max(1, steps), steps, time.time() - totals["start"], int(totals["examples"])
        )
        if scored is not None:
            record.score, record.extra = scored.score, dict(scored.metrics)
        self.history.append(record)
        if not quiet:
            self.say(
                f"epoch {record.epoch}: loss {record.loss:.4f}, {record.steps} steps, "
                f"{record.examples / max(record.seconds, 1e-9):.1f} examples/s"
            )
        self._write_log(record)

    def _write_log(self, record: EpochRecord) -> None:
        if self.log_path is not None and self.is_main:
            import json

            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf8") as fh:
                fh.write(json.dumps(asdict(record)) + "\n")

    # -- checkpoints ---------------------------------------------------------------------------

    def _save(self, epoch: int, step_in_epoch: int, totals: Dict[str, float]) -> None:
        """accelerate's state and our progress in `state-<step>/`, then the pointer (atomic)."""
        if self.checkpoint_dir is None:
            return
        acc = self.accelerator
        state_dir = self.checkpoint_dir / f"state-{self.step:08d}"
        if self.is_main:
            shutil.rmtree(state_dir, ignore_errors=True)
            state_dir.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(state_dir), safe_serialization=False)  # tied DAE weights: not safetensors
        if self.is_main:
            totals = {**{k: v for k, v in totals.items() if k != "start"}, "seconds": time.time() - totals["start"]}
            progress = {
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "step": self.step,
                "totals": totals,
                "history": [asdict(r) for r in self.history],
                "evaluations": [asdict(e) for e in self.evaluations],
                "best": asdict(self.best) if self.best else None,
                "best_state": self._best_state,
                "input_state": self._input_state,
                "input_items": self._input_items,
                "best_items": self._best_items,
            }
            atomic_torch_save(progress, state_dir / PROGRESS_FILE)
            write_pointer(
                self.checkpoint_dir, {"fingerprint": self.fingerprint, "state": state_dir.name, "step": self.step}
            )
        acc.wait_for_everyone()

    def _resume(self) -> Optional[Dict[str, Any]]:
        import torch

        acc = self.accelerator
        if self.checkpoint_dir is None:
            return None
        if self.resume is False:
            if self.is_main and self.checkpoint_dir.exists():
                shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
            acc.wait_for_everyone()
            return None
        pointer = read_pointer(self.checkpoint_dir, self.fingerprint, self.resume, self.desc, announce=self.is_main)
        if pointer is None:
            return None
        state_dir = self.checkpoint_dir / pointer["state"]
        acc.load_state(str(state_dir))
        saved = torch.load(state_dir / PROGRESS_FILE, map_location="cpu", weights_only=False)
        self.step = saved["step"]
        self.resumed_from = self.step
        self.history = [EpochRecord(**r) for r in saved["history"]]
        self.evaluations = [Evaluation(**e) for e in saved["evaluations"]]
        self.best = Evaluation(**saved["best"]) if saved["best"] else None
        self._best_state = saved["best_state"]
        self._input_state = saved.get("input_state")
        self._input_items, self._best_items = saved.get("input_items"), saved.get("best_items")
        self.say(f"resuming from {state_dir}: epoch {saved['epoch'] + 1}, step {self.step}")
        for record in self.history:  # the interrupted run's log went with its temporary directory
            self._write_log(record)
        return saved

    def remove_checkpoint(self) -> None:
        """Called once the final output is written."""
        if self.checkpoint_dir is not None and self.is_main and self.checkpoint_dir.exists():
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        self.accelerator.wait_for_everyone()
