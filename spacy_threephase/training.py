"""Training machinery shared by phase 1 (DAE) and phase 2 (contrastive).

One loop: AdamW, linear warm-up then linear decay, gradient clipping, a tqdm progress bar
with the running loss, a per-epoch log, CPU or CUDA (mixed precision on CUDA), and
optional model selection (keep the weights of the best epoch by a dev score).

Faults: every `checkpoint_every` steps the complete training state (weights, optimizer,
scheduler, GradScaler, python/numpy/torch RNGs, the callers' own RNG objects, position in
the epoch, best epoch so far, history) is written atomically to a checkpoint directory; a
run started again with the same inputs continues from it and ends with the same weights as
an uninterrupted run (batches must be a function of (seed, epoch)).

Several processes: when WORLD_SIZE > 1 (torchrun), the process group is initialised (nccl on
CUDA, gloo on CPU), each rank takes an equal share of every epoch's batches, gradients are
averaged over the ranks after each backward pass, and only rank 0 logs, shows the progress
bar and writes checkpoints.
"""

import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Type, TypeVar, Union

from .errors import UserError
from .outputs import atomic_torch_save

T = TypeVar("T")


@dataclass
class TrainingSettings:
    """The `[training]` section of a phase-1/phase-2 config."""

    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_steps: int = 0  # 0 = no limit beyond `epochs`
    seed: int = 0
    gpu_id: int = -1  # -1 = CPU; >= 0 = that CUDA device
    mixed_precision: bool = True  # only used on CUDA
    progress: bool = True
    checkpoint_every: int = 500  # steps between resumable checkpoints; 0 = no checkpoints


def settings_from_section(cls: Type[T], section: Optional[Dict[str, Any]], where: str) -> T:
    """Build a settings dataclass from a config section, with one-line errors for unknown
    keys and wrong types (`where` names the config file and section)."""
    section = dict(section or {})
    known = {f.name: f for f in fields(cls)}
    for key in section:
        if key not in known:
            raise UserError(f"{where}: unknown setting {key!r}; known settings: {', '.join(known)}")
    values = {}
    for key, value in section.items():
        default = known[key].default
        expected = type(default) if default is not None and not callable(default) else None
        if expected is bool and not isinstance(value, bool):
            raise UserError(f"{where}: {key} must be true or false, got {value!r}")
        if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise UserError(f"{where}: {key} must be an integer, got {value!r}")
        if expected is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{where}: {key} must be a number, got {value!r}")
            value = float(value)
        if expected is str and not isinstance(value, str):
            raise UserError(f"{where}: {key} must be a string, got {value!r}")
        values[key] = value
    return cls(**values)


def set_seed(seed: int) -> None:
    import numpy
    import torch

    random.seed(seed)
    numpy.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def world_size() -> int:
    """Number of training processes (torchrun sets WORLD_SIZE); 1 without torchrun."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main_process() -> bool:
    """True in a single-process run and on rank 0 of a distributed one (the rank that writes)."""
    return rank() == 0


def init_distributed(device) -> bool:
    """Initialise torch.distributed when launched with WORLD_SIZE > 1 (idempotent)."""
    if world_size() <= 1:
        return False
    import torch.distributed as dist

    if not dist.is_available():
        raise UserError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        import atexit

        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return True


def distributed_barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()


def pick_device(gpu_id: int):
    import torch

    if gpu_id is None or gpu_id < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"gpu_id={gpu_id}: CUDA is not available on this machine; use gpu_id = -1 for the CPU")
    if world_size() > 1:
        # one GPU per process: LOCAL_RANK picks it (gpu_id only says "use the GPU")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device(f"cuda:{local}")
    return torch.device(f"cuda:{gpu_id}")


def checkpoint_dir_for(output_dir: Union[str, Path]) -> Path:
    """`<output>.checkpoint/`, next to the output directory."""
    output_dir = Path(output_dir)
    return output_dir.parent / f"{output_dir.name}.checkpoint"


def fingerprint(config_text: str, inputs: Iterable[Union[str, Path]], extra: Any = None) -> str:
    """What a checkpoint belongs to: the config, the size and mtime of each input file (or of
    each file in an input directory), and anything else that changes the run."""
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


# Settings that do not change the result: a checkpoint stays valid when only these differ.
NON_RESULT_SETTINGS = ("progress", "checkpoint_every", "torch_threads")


def config_fingerprint_text(config) -> str:
    """The config as text, without the settings that do not change the result."""
    data = {sec: dict(config[sec]) for sec in config}
    for key in NON_RESULT_SETTINGS:
        data.get("training", {}).pop(key, None)
    return json.dumps(data, sort_keys=True, default=str)


def global_rng_state() -> Dict[str, Any]:
    """The python, numpy and torch (CPU and every CUDA device) random states."""
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
        if isinstance(state["cuda"], torch.Tensor):  # checkpoints of earlier versions: one device
            torch.cuda.set_rng_state(state["cuda"])
        else:
            torch.cuda.set_rng_state_all(state["cuda"])


def read_checkpoint(path: Path, fingerprint: str, resume: Optional[bool], desc: str, announce: bool = True) -> Optional[Dict[str, Any]]:
    """The state saved in `path` when a run may continue from it, else None.

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
    if state.get("fingerprint") != fingerprint:
        if resume:
            raise UserError(f"{path}: the checkpoint is from another config or other input files; delete {path.parent} or leave out --resume to start again")
        if announce:
            print(f"[{desc}] {path.parent}: checkpoint is from another config or other inputs; starting from scratch", file=sys.stderr, flush=True)
        return None
    return state


def linear_warmup_decay(optimizer, warmup_steps: int, total_steps: int):
    import torch

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        remaining = max(1, total_steps - warmup_steps)
        return max(0.0, (total_steps - step) / remaining)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_adamw(model, settings: TrainingSettings):
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # foreach: one vectorised update per parameter group instead of a Python loop over
    # ~100 tensors (the optimizer step was about a quarter of a CPU training step).
    return torch.optim.AdamW(groups, lr=settings.learning_rate, foreach=True)


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    steps: int
    seconds: float
    examples: int
    score: Optional[float] = None
    extra: Dict[str, float] = field(default_factory=dict)


CHECKPOINT_FILE = "checkpoint.pt"


class Trainer:
    """Runs `compute_loss` over batches for a number of epochs.

    make_batches(epoch) -> list of batches (each a list of examples; must be a function of the
    seed and the epoch only, so that a resumed run sees the same batches); compute_loss(batch)
    -> scalar tensor. evaluate(epoch) -> (score, extra metrics) or None, called after each
    epoch with the model in eval mode; the best-scoring epoch's weights are restored at the end.

    checkpoint_dir: where resumable checkpoints go (None = none). fingerprint: what the
    checkpoint belongs to (config + inputs); a checkpoint with another fingerprint is not used.
    resume: None = continue from a matching checkpoint if there is one; True = there must be
    one; False = start from scratch (an old checkpoint is discarded).
    rng_objects: the caller's own random state holders (objects with getstate/setstate, e.g.
    random.Random), saved in checkpoints and restored after make_batches(epoch) on resume.
    """

    def __init__(
        self,
        model,
        settings: TrainingSettings,
        *,
        steps_per_epoch: int,
        desc: str = "train",
        log_path: Optional[Path] = None,
        checkpoint_dir: Optional[Union[str, Path]] = None,
        fingerprint: str = "",
        resume: Optional[bool] = None,
        rng_objects: Optional[Dict[str, Any]] = None,
    ):
        import torch

        self.model = model
        self.settings = settings
        self.device = pick_device(settings.gpu_id)
        self.world_size = world_size()
        self.rank = rank()
        self.distributed = init_distributed(self.device)
        self.is_main = self.rank == 0
        self.model.to(self.device)
        per_rank = max(1, steps_per_epoch) // self.world_size
        if per_rank < 1:
            raise UserError(f"{desc}: {steps_per_epoch} batches per epoch cannot be shared by {self.world_size} processes; use a smaller batch_size or fewer processes")
        self.steps_per_epoch = per_rank
        total = max(1, settings.epochs * per_rank)
        if settings.max_steps:
            total = min(total, settings.max_steps)
        self.total_steps = total
        self.optimizer = build_adamw(model, settings)
        self.scheduler = linear_warmup_decay(self.optimizer, int(round(settings.warmup_ratio * total)), total)
        self.use_amp = self.device.type == "cuda" and settings.mixed_precision
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.desc = desc
        self.log_path = Path(log_path) if log_path else None
        self.history: List[EpochRecord] = []
        self.step = 0
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.fingerprint = fingerprint
        self.resume = resume
        self.rng_objects = dict(rng_objects or {})
        self.resumed_from: Optional[int] = None  # global step of the checkpoint we continued from

    def autocast(self):
        import contextlib

        import torch

        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

    # -- checkpoints -------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Optional[Path]:
        return self.checkpoint_dir / CHECKPOINT_FILE if self.checkpoint_dir else None

    def _rng_state(self) -> Dict[str, Any]:
        state = global_rng_state()
        state["objects"] = {name: obj.getstate() for name, obj in self.rng_objects.items()}
        return state

    def _set_rng_state(self, state: Dict[str, Any]) -> None:
        set_global_rng_state(state)
        for name, obj in self.rng_objects.items():
            if name in state.get("objects", {}):
                obj.setstate(state["objects"][name])

    def save_checkpoint(self, epoch: int, step_in_epoch: int, epoch_acc: Dict[str, float], best_score: float, best_state) -> None:
        """Write the whole training state atomically (tmp file + os.replace); rank 0 only."""
        if self.checkpoint_path is None or not self.is_main:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "version": 1,
            "fingerprint": self.fingerprint,
            "model": {k: v.detach().to("cpu") for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": self._rng_state(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "step": self.step,
            "epoch_acc": dict(epoch_acc),
            "best_score": best_score,
            "best_state": best_state,
            "history": [dict(r.__dict__) for r in self.history],
        }
        atomic_torch_save(state, self.checkpoint_path)
        (self.checkpoint_dir / "fingerprint.txt").write_text(self.fingerprint + "\n", encoding="utf8")

    def _load_checkpoint(self) -> Optional[Dict[str, Any]]:
        path = self.checkpoint_path
        if path is None or self.resume is False:
            if path is not None and self.resume is False and self.checkpoint_dir.exists() and self.is_main:
                shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
            distributed_barrier()
            return None
        return read_checkpoint(path, self.fingerprint, self.resume, self.desc, announce=self.is_main)

    def remove_checkpoint(self) -> None:
        """Called once the final output is written."""
        if self.checkpoint_dir is not None and self.is_main and self.checkpoint_dir.exists():
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

    # -- training ------------------------------------------------------------------------------

    def _shard(self, batches: list) -> list:
        """This rank's equal share of the epoch's batches (the remainder is dropped)."""
        batches = list(batches)
        if self.world_size <= 1:
            return batches
        n = len(batches) // self.world_size
        return batches[self.rank : n * self.world_size : self.world_size]

    def _average_gradients(self) -> None:
        import torch
        import torch.distributed as dist

        params = [p for p in self.model.parameters() if p.requires_grad]
        grads = []
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def fit(
        self,
        make_batches: Callable[[int], Iterable[list]],
        compute_loss: Callable[[list], Any],
        evaluate: Optional[Callable[[int], Optional[tuple]]] = None,
    ) -> List[EpochRecord]:
        import torch
        from tqdm import tqdm

        s = self.settings
        best_score, best_state = -math.inf, None
        start_epoch, skip, acc = 0, 0, None
        saved = self._load_checkpoint()
        if saved is not None:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.scaler.load_state_dict(saved["scaler"])
            self.step = saved["step"]
            start_epoch, skip, acc = saved["epoch"], saved["step_in_epoch"], saved["epoch_acc"]
            best_score, best_state = saved["best_score"], saved["best_state"]
            self.history = [EpochRecord(**r) for r in saved["history"]]
            self.resumed_from = self.step
            if self.is_main:
                print(f"[{self.desc}] resuming from {self.checkpoint_path}: epoch {start_epoch + 1}, step {self.step}", file=sys.stderr, flush=True)
                for record in self.history:  # the log of the interrupted run went with its temporary directory
                    self._write_log(record)
        done = bool(s.max_steps and self.step >= s.max_steps)
        every = max(0, s.checkpoint_every)
        for epoch in range(start_epoch, s.epochs):
            if done:
                break
            self.model.train()
            batches = self._shard(make_batches(epoch))
            if saved is not None and epoch == start_epoch:
                self._set_rng_state(saved["rng"])  # after make_batches: it may reseed the caller's RNGs
                total_loss, n_steps, n_examples = acc["loss"], int(acc["steps"]), int(acc["examples"])
                start = time.time() - acc["seconds"]
            else:
                skip, start, total_loss, n_steps, n_examples = 0, time.time(), 0.0, 0, 0
            bar = tqdm(
                batches[skip:],
                desc=f"{self.desc} epoch {epoch + 1}/{s.epochs}",
                initial=skip,
                total=len(batches),
                disable=not s.progress or not self.is_main,
                leave=False,
                file=sys.stderr,
                dynamic_ncols=True,
            )
            for batch in bar:
                with self.autocast():
                    loss = compute_loss(batch)
                if not torch.isfinite(loss):
                    raise UserError(f"{self.desc}: loss became {loss.item()} at step {self.step}; lower learning_rate or disable mixed_precision")
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.distributed:
                    self._average_gradients()
                self.scaler.unscale_(self.optimizer)
                if s.max_grad_norm and s.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.max_grad_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                n_steps += 1
                n_examples += len(batch)
                total_loss += float(loss.detach())
                bar.set_postfix(loss=f"{total_loss / n_steps:.4f}")
                if s.max_steps and self.step >= s.max_steps:
                    done = True
                if every and self.step % every == 0 and not done:
                    acc_now = {"loss": total_loss, "steps": n_steps, "examples": n_examples, "seconds": time.time() - start}
                    self.save_checkpoint(epoch, n_steps, acc_now, best_score, best_state)
                _test_fault_hook()
                if done:
                    break
            bar.close()
            record = EpochRecord(epoch + 1, total_loss / max(1, n_steps), n_steps, time.time() - start, n_examples)
            if evaluate is not None:
                self.model.eval()
                with torch.no_grad():
                    result = evaluate(epoch)
                if result is not None:
                    record.score, record.extra = float(result[0]), dict(result[1] or {})
                    if record.score > best_score:
                        best_score = record.score
                        best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.history.append(record)
            self._log(record)
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return self.history

    def _log(self, record: EpochRecord) -> None:
        if not self.is_main:
            return
        msg = f"[{self.desc}] epoch {record.epoch}: loss {record.loss:.4f}, {record.steps} steps, {record.examples / max(record.seconds, 1e-9):.1f} examples/s"
        if record.score is not None:
            msg += f", dev score {record.score:.4f}"
            msg += "".join(f", {k} {v:.4f}" for k, v in record.extra.items())
        print(msg, file=sys.stderr, flush=True)
        self._write_log(record)

    def _write_log(self, record: EpochRecord) -> None:
        if self.log_path is not None and self.is_main:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf8") as fh:
                fh.write(json.dumps(record.__dict__) + "\n")


def _test_fault_hook() -> None:
    """Fault-injection for the resume tests: SPACY_THREEPHASE_TEST_STEP_DELAY (seconds) slows
    every step so that a test can kill the process mid-run. Unset in normal use."""
    delay = os.environ.get("SPACY_THREEPHASE_TEST_STEP_DELAY")
    if delay:
        time.sleep(float(delay))


def batched(items: List[T], batch_size: int) -> List[List[T]]:
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def best_record(history: List[EpochRecord]) -> Optional[EpochRecord]:
    scored = [r for r in history if r.score is not None]
    return max(scored, key=lambda r: r.score) if scored else None


