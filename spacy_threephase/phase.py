"""The one driver of phases 1, 2 and Joint: config -> inputs -> encoder -> training -> output.

A phase (dae/, contrastive/, joint/) says which config sections it reads and adds only its
model, batches, loss and dev score (the `Phase` methods below). The driver does the rest, the
same way for all of them: validate the config (pydantic models for plain sections, the
registry for `@misc` sections), refuse to replace an output without --overwrite before any
work, seed, load the encoder, train with the shared Trainer (selection, resume, several
processes), and write into a temporary directory that replaces the output at the end:

    the encoder (Hugging Face directory + pooling, `threephase.json`), `config.cfg` (the
    config as run), `metrics.json` (summary, evaluations, per-epoch records),
    `training_log.jsonl` (one line per epoch), and what the phase adds (`imbalance.json`).
"""

import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Type, Union

from .checkpoints import checkpoint_dir_for, config_fingerprint_text, fingerprint, is_main_process
from .config import load_config, resolve_section
from .encoder import LoadedEncoder, adapted_by, load_encoder, save_encoder
from .errors import UserError
from .outputs import check_output_dir, output_dir_for_rank
from .settings import EncoderSection, Section, TrainingSection, parse_section
from .training import Trainer

CONFIG_FILE = "config.cfg"
METRICS_FILE = "metrics.json"
LOG_FILE = "training_log.jsonl"
REGISTERED = None  # a section resolved through spaCy's registry (`@misc = ...`)


class Phase:
    """What a phase adds to the driver. `sections`: name -> pydantic model, or REGISTERED."""

    name: str = "phase"
    sections: Dict[str, Optional[Type[Section]]] = {}
    settings: Dict[str, Any]
    inputs: List[Path] = []

    def setup(self) -> None:
        """Read the inputs (after the config is validated, before the encoder is loaded)."""

    def build(self, enc: LoadedEncoder):
        """The torch module whose forward(batch) is the loss; the encoder is enc.model."""
        raise NotImplementedError

    def make_batches(self, epoch: int) -> list:
        raise NotImplementedError

    steps_per_epoch: int = 0
    checkpointed: List[Any] = []  # objects with state_dict / load_state_dict saved with the state

    def evaluator(self, enc: LoadedEncoder, device):
        """() -> (score, metrics): the dev score for selection (higher is better), or None."""
        return None

    def summary(self) -> Dict[str, Any]:
        return {}

    def write(self, directory: Path) -> None:
        """Extra files of the phase, next to the encoder."""

    def say(self, msg: str) -> None:
        if is_main_process():
            print(f"[{self.name}] {msg}", file=sys.stderr, flush=True)


def run_phase(
    phase: Phase,
    config_path: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    encoder: Optional[str] = None,
    overrides: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
    resume: Optional[bool] = None,
) -> Dict[str, Any]:
    """Run `phase` as configured and write its encoder to `output_dir`; returns the summary.

    resume: None = continue from `<output_dir>.checkpoint/` when it belongs to the same config
    and inputs; True = require such a checkpoint; False = start from scratch.
    """
    config_path, output_dir = Path(config_path), Path(output_dir)
    config = configure(phase, config_path, overrides, encoder)
    enc_cfg: EncoderSection = phase.settings["encoder"]
    training: TrainingSection = phase.settings["training"]
    check_output_dir(output_dir, overwrite)  # fail before training, not after
    import torch
    from accelerate.utils import set_seed

    if training.torch_threads:
        torch.set_num_threads(training.torch_threads)
    set_seed(training.seed)
    phase.setup()
    enc = load_encoder(enc_cfg.name, pooling=enc_cfg.pooling, max_length=enc_cfg.max_length or None)
    model = phase.build(enc)
    fp = fingerprint(config_fingerprint_text(config), phase.inputs, {"encoder": enc.path})
    with output_dir_for_rank(output_dir, overwrite) as tmp:
        trainer = Trainer(
            model,
            training,
            desc=phase.name,
            selected=enc.model,
            log_path=tmp / LOG_FILE,
            checkpoint_dir=checkpoint_dir_for(output_dir) if training.checkpoint_every else None,
            fingerprint=fp,
            resume=resume,
            checkpointed=phase.checkpointed,
        )
        history = trainer.fit(phase.make_batches, phase.steps_per_epoch, phase.evaluator(enc, trainer.device))
        summary = _summary(phase, enc, enc_cfg, trainer, history)
        save_encoder(
            enc.model,
            enc.tokenizer,
            tmp,
            pooling=enc.pooling,
            max_length=enc.max_length,
            extra={
                "phase": phase.name,
                "source_encoder": enc.path,
                "selection": summary["selection"],
                "adapted_by": adapted_by(enc.path) + ([] if trainer.kept_input else [phase.name]),
                phase.name: phase.summary(),
            },
        )
        phase.write(tmp)
        (tmp / METRICS_FILE).write_text(json.dumps(_strict(summary), indent=2, default=float), encoding="utf8")
        config.to_disk(tmp / CONFIG_FILE)
    trainer.remove_checkpoint()
    best = trainer.best
    if best is not None and training.select_best:
        phase.say(
            "selected: "
            + ("the input encoder, unchanged" if trainer.kept_input else f"step {best.step} (epoch {best.epoch:g})")
            + f" with dev score {best.score:.4f}"
        )
    phase.say(f"saved the encoder to {output_dir}")
    return summary


def read_log(output_dir: Union[str, Path]) -> List[dict]:
    """The per-epoch records a phase wrote to OUTPUT_DIR/training_log.jsonl."""
    path = Path(output_dir) / LOG_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def configure(
    phase: Phase,
    config_path: Union[str, Path],
    overrides: Optional[Dict[str, Any]] = None,
    encoder: Optional[str] = None,
):
    """Read and validate the config into `phase.settings`; returns the config as run."""
    config = load_config(config_path, overrides)
    for section in config:
        if section not in phase.sections:
            raise UserError(f"{config_path}: unknown section [{section}]; known sections: {', '.join(phase.sections)}")
    if encoder:
        config.setdefault("encoder", {})["name"] = str(encoder)  # the saved config.cfg says what ran
    phase.settings = {
        name: resolve_section(config, name, config_path)
        if model is REGISTERED
        else parse_section(model, config.get(name), f"{config_path} [{name}]")
        for name, model in phase.sections.items()
    }
    return config


def _summary(phase: Phase, enc: LoadedEncoder, enc_cfg: EncoderSection, trainer: Trainer, history) -> Dict[str, Any]:
    evaluations = [asdict(e) for e in trainer.evaluations]
    best = trainer.best
    selection = {
        "select_best": trainer.settings.select_best,
        "baseline": evaluations[0]["metrics"] if evaluations and evaluations[0]["step"] == 0 else None,
        "best_step": best.step if best else None,
        "best_score": best.score if best else None,
        "kept_input": trainer.kept_input,
        # with min_gain_z: the best checkpoint's paired z against the input, and whether it was kept
        "significance": trainer.significance,
        # with prefer_final_z: the best step, the final step, and the best's paired z over the final
        "preferred_final": trainer.preferred_final,
    }
    return {
        "phase": phase.name,
        "encoder": enc_cfg.name,
        "pooling": enc.pooling,
        "max_length": enc.max_length,
        **phase.summary(),
        "steps": trainer.step,
        "eval_seconds": round(trainer.eval_seconds, 1),
        "selection": selection,
        "baseline": selection["baseline"],
        "best": best.metrics if best else None,
        "best_epoch": math.ceil(best.epoch) if best else None,
        "evaluations": evaluations,
        "epochs": [asdict(r) for r in history],
    }


def _strict(obj):
    """NaN -> None so metrics.json is strict JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strict(v) for v in obj]
    return obj
