"""Phase 2 driver: labelled corpus + encoder -> contrastively trained encoder directory.

Steps: read config and corpus (carve a stratified dev set off train when there is none),
imbalance correction (table on stderr and in imbalance.json), load the encoder, evaluate the
untouched encoder on dev (epoch 0 baseline), train with the shared Trainer (AdamW, warm-up,
progress bar, CPU/CUDA, best epoch by dev k-NN accuracy), write the encoder atomically.

Pairs are re-drawn every epoch with seed `training.seed + epoch` (more distinct pairs seen
over the run; still deterministic). Dev pairs are drawn once with `dev_pairs_seed`.
"""
import json
import math
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy

from ..config import load_config, resolve_section
from ..encoder import load_encoder, save_encoder
from ..errors import UserError
from ..outputs import check_output_dir, output_dir_for_rank
from ..training import (
    Trainer,
    TrainingSettings,
    best_record,
    checkpoint_dir_for,
    config_fingerprint_text,
    distributed_barrier,
    fingerprint,
    is_main_process,
    set_seed,
    settings_from_section,
)
from .corpus import load_train_dev
from .labels import LabelIndex
from .losses import INPUT_KINDS
from .selection import DevEvaluator

SECTIONS = ("encoder", "training", "pairs", "imbalance", "loss")


@dataclass
class EncoderSection:
    name: str = "default"
    pooling: Optional[str] = None  # None = what the model directory says (mean for all-MiniLM-*)
    max_length: Optional[int] = None  # None = the model's limit


@dataclass
class ContrastiveSettings(TrainingSettings):
    knn_k: int = 5  # k of the dev k-NN accuracy (model selection score)
    dev_fraction: float = 0.1  # share of train carved off as dev when the corpus has no dev.jsonl
    dev_pairs_seed: int = 1234
    eval_batch_size: int = 64
    torch_threads: int = 0  # CPU threads for torch; 0 = torch's default (one per core)


def _say(msg: str) -> None:
    if is_main_process():
        print(msg, file=sys.stderr, flush=True)


def _text_keys(texts):
    ids: Dict[str, int] = {}
    return numpy.array([ids.setdefault(t, len(ids)) for t in texts], dtype=numpy.int64)


def _clean(obj):
    """NaN -> None so metrics.json is strict JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def correct_imbalance(correction, train, hierarchical: bool, seed: int, tag: str):
    """Apply the imbalance correction (logging the class sizes); returns the corrected split,
    its label index and the text keys the pair sampler uses to skip self-pairs."""
    corrected = correction(train.texts, train.labels, seed=seed)
    _say(f"[{tag}] imbalance correction (class sizes before -> after):\n" + corrected.format_table())
    return corrected, LabelIndex(corrected.labels, hierarchical=hierarchical), _text_keys(corrected.texts)


def _fmt(metrics: Dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def contrastive_batches(kind: str, batch_size: int, seed: int, n_texts: int, first_pairs, sampler, index, keys, n_classes: int, steps_per_epoch: int):
    """make_batches(epoch) for phase 2 and Joint: the epoch's pairs in batches ("pairs"
    losses; epoch 0 uses `first_pairs`), or shuffled text indices in batches (in-batch
    losses). A function of (seed, epoch) only, so that a resumed run sees the same batches."""

    def make_batches(epoch: int):
        if kind == "pairs":
            pairs = first_pairs if epoch == 0 else sampler(index, seed=seed + epoch, keys=keys, n_classes=n_classes)
            return pairs.batches(batch_size)[:steps_per_epoch]
        order = numpy.random.default_rng(seed + epoch).permutation(n_texts).tolist()
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    return make_batches


def train_contrastive(
    config_path: Union[str, Path],
    corpus_dir: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    encoder: Optional[str] = None,
    overrides: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
    resume: Optional[bool] = None,
) -> Dict[str, Any]:
    """Run phase 2 and write the encoder to `output_dir`. Returns the metrics summary.

    resume: None = continue from `<output_dir>.checkpoint/` when it belongs to the same config
    and corpus; True = require such a checkpoint; False = start from scratch.
    """
    import torch

    config_path, output_dir = Path(config_path), Path(output_dir)
    config = load_config(config_path, overrides)
    for section in config:
        if section not in SECTIONS:
            raise UserError(f"{config_path}: unknown section [{section}]; known sections: {', '.join(SECTIONS)}")
    enc_cfg = settings_from_section(EncoderSection, config.get("encoder"), f"{config_path} [encoder]")
    settings = settings_from_section(ContrastiveSettings, config.get("training"), f"{config_path} [training]")
    if encoder:
        enc_cfg.name = config.setdefault("encoder", {})["name"] = str(encoder)  # the saved config.cfg says what ran
    if settings.torch_threads < 0:
        raise UserError(f"{config_path} [training]: torch_threads must be 0 (torch's default) or more, got {settings.torch_threads}")
    sampler = resolve_section(config, "pairs", config_path)
    correction = resolve_section(config, "imbalance", config_path)
    loss_fn = resolve_section(config, "loss", config_path)
    kind = getattr(loss_fn, "input_kind", None)
    if kind not in INPUT_KINDS:
        raise UserError(f"{config_path}: [loss] must give a loss with input_kind in {INPUT_KINDS}, got {kind!r}")
    if settings.epochs < 1 or settings.batch_size < 1:
        raise UserError(f"{config_path} [training]: epochs and batch_size must be >= 1")
    check_output_dir(output_dir, overwrite)

    corpus, train, dev, n_classes = load_train_dev(corpus_dir, settings.dev_fraction, settings.seed, "contrastive")

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    set_seed(settings.seed)
    corrected, index, keys = correct_imbalance(correction, train, corpus.hierarchical, settings.seed, "contrastive")
    texts = corrected.texts

    enc = load_encoder(enc_cfg.name, pooling=enc_cfg.pooling, max_length=enc_cfg.max_length)
    model = enc.model
    bs = settings.batch_size
    if kind == "pairs":
        first_pairs = sampler(index, seed=settings.seed, keys=keys, n_classes=n_classes)
        if len(first_pairs) == 0:
            raise UserError(f"{corpus_dir}: could not draw any training pairs (too few examples?)")
        steps_per_epoch = math.ceil(len(first_pairs) / bs)
        _say(f"[contrastive] {len(texts)} training texts, {len(first_pairs)} pairs per epoch ({first_pairs.n_positive} positive), multiplier {getattr(sampler, 'resolve_multiplier', lambda k: '?')(n_classes)}")
    else:
        first_pairs = None
        steps_per_epoch = math.ceil(len(texts) / bs)
        _say(f"[contrastive] {len(texts)} training texts in batches of {bs} (in-batch {type(loss_fn).__name__})")

    dev_index = LabelIndex(dev.labels, hierarchical=corpus.hierarchical)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny dev set may give one-sided pairs; Spearman is then nan
        dev_pairs = sampler(dev_index, seed=settings.dev_pairs_seed, keys=_text_keys(dev.texts), n_classes=n_classes)

    from .embedding import embed

    make_batches = contrastive_batches(kind, bs, settings.seed, len(texts), first_pairs, sampler, index, keys, n_classes, steps_per_epoch)

    fp = fingerprint(config_fingerprint_text(config), [corpus_dir], {"encoder": enc.path})
    with output_dir_for_rank(output_dir, overwrite) as tmp:
        trainer = Trainer(
            model,
            settings,
            steps_per_epoch=steps_per_epoch,
            desc="contrastive",
            log_path=tmp / "training_log.jsonl",
            checkpoint_dir=checkpoint_dir_for(output_dir) if settings.checkpoint_every else None,
            fingerprint=fp,
            resume=resume,
        )
        device = trainer.device

        def compute_loss(batch):
            if kind == "pairs":
                a, b, s = zip(*batch)
                vecs = embed(enc, [texts[i] for i in a] + [texts[i] for i in b], device)
                u, v = vecs[: len(a)], vecs[len(a) :]
                return loss_fn(u, v, torch.tensor(s, dtype=torch.float32, device=device))
            vecs = embed(enc, [texts[i] for i in batch], device)
            return loss_fn(vecs, torch.from_numpy(index.score_matrix(numpy.asarray(batch))).to(device))

        evaluator = DevEvaluator(enc, device, train.texts, train.keys, dev.texts, dev.keys, dev_pairs, k=settings.knn_k, batch_size=settings.eval_batch_size)
        baseline = evaluator.metrics()
        _say(f"[contrastive] before training (epoch 0): {_fmt(baseline)}")
        history = trainer.fit(make_batches, compute_loss, evaluate=evaluator)
        best = best_record(history)
        if best is not None and best.extra["knn_acc"] < baseline["knn_acc"]:
            _say(f"[contrastive] warning: the best epoch's dev k-NN accuracy ({best.extra['knn_acc']:.4f}) is below the untrained encoder's ({baseline['knn_acc']:.4f})")
        summary = {
            "encoder": enc_cfg.name,
            "pooling": enc.pooling,
            "max_length": enc.max_length,
            "loss": type(loss_fn).__name__,
            "input_kind": kind,
            "train_texts": len(train),
            "train_texts_after_correction": len(texts),
            "dev_texts": len(dev),
            "dev_carved_from_train": corpus.dev_carved,
            "pairs_per_epoch": len(first_pairs) if first_pairs is not None else None,
            "baseline": baseline,
            "epochs": [asdict(r) for r in history],
            "best_epoch": best.epoch if best else None,
            "best": (best.extra if best else None),
        }
        save_encoder(model, enc.tokenizer, tmp, pooling=enc.pooling, max_length=enc.max_length, extra={"phase": "contrastive", "source_encoder": enc_cfg.name, "best_epoch": summary["best_epoch"]})
        corrected.write(tmp / "imbalance.json", correction.settings if hasattr(correction, "settings") else {})
        (tmp / "metrics.json").write_text(json.dumps(_clean(summary), indent=2, default=float), encoding="utf8")
        config.to_disk(tmp / "config.cfg")
    trainer.remove_checkpoint()
    distributed_barrier()
    if not is_main_process():
        return summary
    if best is not None:
        _say(f"[contrastive] best epoch {best.epoch}: {_fmt(best.extra)} (before training: knn_acc {baseline['knn_acc']:.4f})")
    _say(f"[contrastive] saved the encoder to {output_dir}")
    return summary
