"""`train_dae`: read the config and the texts, train the denoising auto-encoder, write the encoder."""
import json
import math
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..config import load_config, resolve_section
from ..encoder import load_encoder, save_encoder, tokenize
from ..errors import DataError, UserError
from ..outputs import check_output_dir, output_dir_for_rank
from ..training import (
    Trainer,
    TrainingSettings,
    batched,
    checkpoint_dir_for,
    config_fingerprint_text,
    distributed_barrier,
    fingerprint,
    is_main_process,
    set_seed,
    settings_from_section,
)
from .model import DenoisingAutoEncoder, build_decoder

SECTIONS = ("paths", "system", "encoder", "noise", "training")
LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "dae.cfg"


@dataclass
class EncoderSettings:
    """The `[encoder]` section."""

    name: str = "default"
    pooling: Optional[str] = None  # null = what the model directory says ("mean" if nothing)
    max_length: int = 128  # wordpieces kept per text; 0 = the model's own limit


@dataclass
class DAETrainingSettings(TrainingSettings):
    """The `[training]` section: the shared settings plus phase-1 keys."""

    # CPU threads for torch; 0 = torch's default (one per core). On a small machine where
    # other processes compete for the cores, 1 can be several times faster than 2.
    torch_threads: int = 0


def read_texts(path: Union[str, Path], counts: Optional[Dict[str, int]] = None) -> List[str]:
    """One text per line; blank and whitespace-only lines are skipped (counted in
    `counts["blank"]` when a dict is given)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: texts file does not exist")
    texts = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf8").strip()
            except UnicodeDecodeError:
                raise DataError(path, number, "not valid UTF-8") from None
            if line:
                texts.append(line)
            elif counts is not None:
                counts["blank"] = counts.get("blank", 0) + 1
    if not texts:
        raise UserError(f"{path}: no texts (the file is empty or has only blank lines)")
    return texts


def load_dae_config(config_path: Union[str, Path], overrides: Optional[Dict[str, Any]] = None):
    """The config, the `[encoder]` and `[training]` settings and the resolved noise function."""
    config = load_config(config_path, overrides)
    for section in config:
        if section not in SECTIONS:
            raise UserError(f"{config_path}: unknown section [{section}]; known sections: {', '.join(SECTIONS[2:])}")
    enc = settings_from_section(EncoderSettings, config.get("encoder"), f"{config_path} [encoder]")
    if enc.pooling is not None and not isinstance(enc.pooling, str):
        raise UserError(f"{config_path} [encoder]: pooling must be a string or null, got {enc.pooling!r}")
    if enc.max_length < 0 or enc.max_length == 1:
        raise UserError(f"{config_path} [encoder]: max_length must be 0 (the model's limit) or at least 2, got {enc.max_length}")
    training = settings_from_section(DAETrainingSettings, config.get("training"), f"{config_path} [training]")
    if training.epochs < 1 or training.batch_size < 1:
        raise UserError(f"{config_path} [training]: epochs and batch_size must be at least 1")
    if training.torch_threads < 0:
        raise UserError(f"{config_path} [training]: torch_threads must be 0 (torch's default) or more, got {training.torch_threads}")
    noise = resolve_section(config, "noise", config_path)
    if not callable(noise):
        raise UserError(f"{config_path}: [noise] must be a registered function returning a callable (text, rng) -> str")
    return config, enc, training, noise


def train_dae(
    config_path: Union[str, Path],
    texts_path: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    encoder: Optional[str] = None,
    overrides: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
    gpu_id: Optional[int] = None,
    resume: Optional[bool] = None,
) -> Path:
    """Phase 1. Writes the adapted encoder (HF directory + pooling) to `output_dir`.

    encoder: overrides `[encoder] name`; gpu_id: overrides `[training] gpu_id`.
    resume: None = continue from `<output_dir>.checkpoint/` when it belongs to the same config
    and texts; True = require such a checkpoint; False = start from scratch.
    """
    config, enc, settings, noise = load_dae_config(config_path, overrides)
    if encoder:
        enc.name = config.setdefault("encoder", {})["name"] = str(encoder)
    if gpu_id is not None:
        settings.gpu_id = config.setdefault("training", {})["gpu_id"] = gpu_id
    counts: Dict[str, int] = {}
    texts = read_texts(texts_path, counts)
    if counts.get("blank") and is_main_process():
        print(f"[dae] {texts_path}: skipped {counts['blank']} blank or whitespace-only lines; training on {len(texts)} texts", file=sys.stderr, flush=True)
    check_output_dir(output_dir, overwrite)  # fail before training, not after
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    set_seed(settings.seed)
    loaded = load_encoder(enc.name, pooling=enc.pooling, max_length=enc.max_length or None)
    if loaded.max_length < 2:
        raise UserError(f"{enc.name}: max_length {loaded.max_length} leaves nothing to reconstruct")
    decoder = build_decoder(loaded.path, loaded.model, name=enc.name)
    model = DenoisingAutoEncoder(loaded.model, decoder, loaded.pooling)
    step = DAEStep(model, loaded.tokenizer, loaded.max_length, noise, settings.seed)
    fp = fingerprint(config_fingerprint_text(config), [texts_path], {"encoder": loaded.path})
    with output_dir_for_rank(output_dir, overwrite) as tmp:
        trainer = Trainer(
            model,
            settings,
            steps_per_epoch=math.ceil(len(texts) / settings.batch_size),
            desc="dae",
            log_path=tmp / LOG_FILE,
            checkpoint_dir=checkpoint_dir_for(output_dir) if settings.checkpoint_every else None,
            fingerprint=fp,
            resume=resume,
            rng_objects={"noise": step.noise_rng},
        )
        step.device = trainer.device
        history = trainer.fit(lambda epoch: step.batches(texts, settings.batch_size, epoch), step.loss)
        save_encoder(
            loaded.model,
            loaded.tokenizer,
            tmp,
            pooling=loaded.pooling,
            max_length=loaded.max_length,
            extra={
                "phase": "dae",
                "dae": {
                    "source_encoder": loaded.path,
                    "texts": len(texts),
                    "noise": dict(config["noise"]),
                    "training": asdict(settings),
                    "final_loss": history[-1].loss if history else None,
                },
            },
        )
        config.to_disk(tmp / CONFIG_FILE)
    trainer.remove_checkpoint()
    distributed_barrier()
    return Path(output_dir)


class DAEStep:
    """Batches and loss for the shared Trainer: noise on the fly, tokenize once per batch."""

    def __init__(self, model: DenoisingAutoEncoder, tokenizer, max_length: int, noise, seed: int, device=None):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.noise = noise
        self.device = device
        self.seed = seed
        # Separate streams, so that a noise function's number of draws never changes the order.
        # Both are a function of (seed, epoch): a resumed run sees the same batches; the noise
        # stream's position within the epoch is saved in checkpoints (Trainer rng_objects).
        self.noise_rng = random.Random(f"noise-{seed}-0")

    def batches(self, texts: List[str], batch_size: int, epoch: int = 0) -> List[List[str]]:
        order = list(texts)
        random.Random(f"order-{self.seed}-{epoch}").shuffle(order)
        self.noise_rng.seed(f"noise-{self.seed}-{epoch}")
        return batched(order, batch_size)

    def features(self, texts: List[str]):
        feats = tokenize(self.tokenizer, texts, self.max_length)
        if self.device is not None and self.device.type != "cpu":
            feats = {k: v.to(self.device, non_blocking=True) for k, v in feats.items()}
        return feats

    def loss(self, batch: List[str]):
        noisy = [self.noise(text, self.noise_rng) for text in batch]
        return self.model(self.features(noisy), self.features(batch))


def read_log(output_dir: Union[str, Path]) -> List[dict]:
    path = Path(output_dir) / LOG_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
