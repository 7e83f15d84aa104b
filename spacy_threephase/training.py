"""Training machinery shared by phase 1 (DAE) and phase 2 (contrastive).

One loop: AdamW, linear warm-up then linear decay, gradient clipping, a tqdm progress bar
with the running loss, a per-epoch log, CPU or CUDA (mixed precision on CUDA), and
optional model selection (keep the weights of the best epoch by a dev score).
"""

import json
import math
import random
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Type, TypeVar

from .errors import UserError

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


def pick_device(gpu_id: int):
    import torch

    if gpu_id is None or gpu_id < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"gpu_id={gpu_id}: CUDA is not available on this machine; use gpu_id = -1 for the CPU")
    return torch.device(f"cuda:{gpu_id}")


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


class Trainer:
    """Runs `compute_loss` over batches for a number of epochs.

    make_batches(epoch) -> iterable of batches (each a list of examples); compute_loss(batch)
    -> scalar tensor. evaluate(epoch) -> (score, extra metrics) or None, called after each
    epoch with the model in eval mode; the best-scoring epoch's weights are restored at the end.
    """

    def __init__(self, model, settings: TrainingSettings, *, steps_per_epoch: int, desc: str = "train", log_path: Optional[Path] = None):
        import torch

        self.model = model
        self.settings = settings
        self.device = pick_device(settings.gpu_id)
        self.model.to(self.device)
        total = max(1, settings.epochs * max(1, steps_per_epoch))
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

    def autocast(self):
        import contextlib

        import torch

        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

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
        done = False
        for epoch in range(s.epochs):
            self.model.train()
            start, total_loss, n_steps, n_examples = time.time(), 0.0, 0, 0
            batches = make_batches(epoch)
            bar = tqdm(batches, desc=f"{self.desc} epoch {epoch + 1}/{s.epochs}", disable=not s.progress, leave=False, file=sys.stderr, dynamic_ncols=True)
            for batch in bar:
                with self.autocast():
                    loss = compute_loss(batch)
                if not torch.isfinite(loss):
                    raise UserError(f"{self.desc}: loss became {loss.item()} at step {self.step}; lower learning_rate or disable mixed_precision")
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
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
            if done:
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return self.history

    def _log(self, record: EpochRecord) -> None:
        msg = f"[{self.desc}] epoch {record.epoch}: loss {record.loss:.4f}, {record.steps} steps, {record.examples / max(record.seconds, 1e-9):.1f} examples/s"
        if record.score is not None:
            msg += f", dev score {record.score:.4f}"
            msg += "".join(f", {k} {v:.4f}" for k, v in record.extra.items())
        print(msg, file=sys.stderr, flush=True)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf8") as fh:
                fh.write(json.dumps(record.__dict__) + "\n")


def batched(items: List[T], batch_size: int) -> List[List[T]]:
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def best_record(history: List[EpochRecord]) -> Optional[EpochRecord]:
    scored = [r for r in history if r.score is not None]
    return max(scored, key=lambda r: r.score) if scored else None


