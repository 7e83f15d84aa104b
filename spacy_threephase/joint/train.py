"""Joint ablation (METHOD.md, eq. 11): L = dae_weight * L_DAE + cl_weight * L_CL, one run.

Every step takes one DAE batch (noisy -> clean texts: corpus/texts.txt, or the train texts
when there is none) and one contrastive batch (pairs from the imbalance-corrected train set,
or labelled texts for an in-batch loss) and back-propagates the weighted sum through ONE
encoder: the DAE's decoder is tied to it and the Siamese branch is the same module. An epoch
is one pass over the contrastive pairs; the DAE texts are cycled (reshuffled on every pass).
The best epoch by dev k-NN accuracy (phase 2's DevEvaluator) is kept.

Everything is reused from phases 1 and 2: the DAE model, decoder and noise, the pair
sampler, imbalance correction, losses, dev selection and the shared Trainer.
"""
import json
import math
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy

from ..config import load_config, resolve_section
from ..contrastive.corpus import load_train_dev
from ..contrastive.embedding import embed
from ..contrastive.labels import LabelIndex
from ..contrastive.losses import INPUT_KINDS
from ..contrastive.selection import DevEvaluator
from ..contrastive.train import ContrastiveSettings, EncoderSection, _clean, _fmt, _text_keys, contrastive_batches, correct_imbalance
from ..dae.model import DenoisingAutoEncoder, build_decoder
from ..dae.train import read_texts
from ..encoder import load_encoder, save_encoder, tokenize
from ..errors import UserError
from ..outputs import check_output_dir, output_dir_for_rank
from ..training import (
    Trainer,
    best_record,
    checkpoint_dir_for,
    config_fingerprint_text,
    distributed_barrier,
    fingerprint,
    is_main_process,
    set_seed,
    settings_from_section,
)

SECTIONS = ("encoder", "training", "noise", "pairs", "imbalance", "loss", "joint")
CONFIG_FILE = "config.cfg"


@dataclass
class JointSection:
    """The `[joint]` section."""

    dae_weight: float = 1.0
    cl_weight: float = 1.0
    # Texts for the DAE loss: "auto" = corpus/texts.txt when present, else the train texts;
    # "train" = the train texts; or a path to a texts file (one per line).
    dae_texts: str = "auto"
    # DAE batch size; 0 = [training] batch_size
    dae_batch_size: int = 0


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class JointStep:
    """Batches and loss for the shared Trainer. A batch is (dae_texts, cl_batch)."""

    def __init__(self, enc, dae_model: DenoisingAutoEncoder, noise, loss_fn, kind: str, cl_texts: List[str], index: Optional[LabelIndex], *, dae_weight: float, cl_weight: float, seed: int, device=None):
        import random

        self.enc, self.dae, self.noise, self.loss_fn, self.kind = enc, dae_model, noise, loss_fn, kind
        self.cl_texts, self.index = cl_texts, index
        self.dae_weight, self.cl_weight = float(dae_weight), float(cl_weight)
        self.device = device
        self.seed = seed
        self.noise_rng = random.Random(seed + 1)
        self._order_cache: Dict[int, List[int]] = {}
        self.components: List[tuple] = []  # (L_DAE, L_CL) per step, floats

    # checkpoints (the Trainer's rng_objects): the noise RNG and this epoch's loss parts
    def getstate(self):
        return {"noise": self.noise_rng.getstate(), "components": list(self.components)}

    def setstate(self, state) -> None:
        self.noise_rng.setstate(state["noise"])
        self.components = [tuple(c) for c in state["components"]]

    def _features(self, texts: List[str]):
        feats = tokenize(self.enc.tokenizer, texts, self.enc.max_length)
        if self.device is not None and getattr(self.device, "type", str(self.device)) != "cpu":
            feats = {k: v.to(self.device, non_blocking=True) for k, v in feats.items()}
        return feats

    def dae_batch(self, dae_texts: List[str], size: int, index: int) -> List[str]:
        """The `index`-th DAE batch of a stream that goes through the texts in a new random
        order each round: a function of (seed, index) only, so a resumed run gets the same."""
        import random

        n = len(dae_texts)
        out: List[str] = []
        for pos in range(index * size, (index + 1) * size):
            rnd, i = divmod(pos, n)
            if rnd not in self._order_cache:
                order = list(range(n))
                random.Random(self.seed * 100003 + rnd).shuffle(order)
                self._order_cache = {rnd: order}  # only the current round is kept
            out.append(dae_texts[self._order_cache[rnd][i]])
        return out

    def dae_loss(self, texts: List[str]):
        noisy = [self.noise(t, self.noise_rng) for t in texts]
        return self.dae(self._features(noisy), self._features(texts))

    def cl_loss(self, batch):
        import torch

        device = self.device or "cpu"
        if self.kind == "pairs":
            a, b, s = zip(*batch)
            vecs = embed(self.enc, [self.cl_texts[i] for i in a] + [self.cl_texts[i] for i in b], device)
            u, v = vecs[: len(a)], vecs[len(a) :]
            return self.loss_fn(u, v, torch.tensor(s, dtype=torch.float32, device=device))
        vecs = embed(self.enc, [self.cl_texts[i] for i in batch], device)
        return self.loss_fn(vecs, torch.from_numpy(self.index.score_matrix(numpy.asarray(batch))).to(device))

    def loss(self, batch):
        dae_batch, cl_batch = batch
        total, parts = 0.0, [float("nan"), float("nan")]
        if self.dae_weight:
            l_dae = self.dae_loss(dae_batch)
            parts[0] = float(l_dae.detach())
            total = total + self.dae_weight * l_dae
        if self.cl_weight:
            l_cl = self.cl_loss(cl_batch)
            parts[1] = float(l_cl.detach())
            total = total + self.cl_weight * l_cl
        self.components.append(tuple(parts))
        return total


class _JointBatch(tuple):
    """(dae_texts, cl_batch); len() = number of contrastive examples (the Trainer's count)."""

    def __len__(self) -> int:  # noqa: D105
        return len(self[1]) if tuple.__len__(self) == 2 else 0


def load_joint_config(config_path: Union[str, Path], overrides: Optional[Dict[str, Any]] = None):
    config = load_config(config_path, overrides)
    for section in config:
        if section not in SECTIONS:
            raise UserError(f"{config_path}: unknown section [{section}]; known sections: {', '.join(SECTIONS)}")
    enc_cfg = settings_from_section(EncoderSection, config.get("encoder"), f"{config_path} [encoder]")
    settings = settings_from_section(ContrastiveSettings, config.get("training"), f"{config_path} [training]")
    joint = settings_from_section(JointSection, config.get("joint"), f"{config_path} [joint]")
    if settings.epochs < 1 or settings.batch_size < 1:
        raise UserError(f"{config_path} [training]: epochs and batch_size must be >= 1")
    if settings.torch_threads < 0:
        raise UserError(f"{config_path} [training]: torch_threads must be 0 (torch's default) or more, got {settings.torch_threads}")
    if joint.dae_weight < 0 or joint.cl_weight < 0 or joint.dae_weight + joint.cl_weight <= 0:
        raise UserError(f"{config_path} [joint]: dae_weight and cl_weight must be >= 0 and not both 0, got {joint.dae_weight} and {joint.cl_weight}")
    if joint.dae_batch_size < 0:
        raise UserError(f"{config_path} [joint]: dae_batch_size must be 0 ([training] batch_size) or more")
    noise = resolve_section(config, "noise", config_path)
    if not callable(noise):
        raise UserError(f"{config_path}: [noise] must be a registered function returning a callable (text, rng) -> str")
    sampler = resolve_section(config, "pairs", config_path)
    correction = resolve_section(config, "imbalance", config_path)
    loss_fn = resolve_section(config, "loss", config_path)
    kind = getattr(loss_fn, "input_kind", None)
    if kind not in INPUT_KINDS:
        raise UserError(f"{config_path}: [loss] must give a loss with input_kind in {INPUT_KINDS}, got {kind!r}")
    return config, enc_cfg, settings, joint, noise, sampler, correction, loss_fn, kind


def _dae_texts(joint: JointSection, corpus_dir: Path, train_texts: List[str]) -> (List[str], str):
    if joint.dae_texts == "train":
        return list(train_texts), "train texts"
    if joint.dae_texts == "auto":
        path = corpus_dir / "texts.txt"
        if path.is_file():
            return read_texts(path), str(path)
        return list(train_texts), "train texts (no texts.txt)"
    return read_texts(joint.dae_texts), joint.dae_texts


def train_joint(
    config_path: Union[str, Path],
    corpus_dir: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    encoder: Optional[str] = None,
    overrides: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
    resume: Optional[bool] = None,
) -> Dict[str, Any]:
    """Train the encoder on dae_weight * L_DAE + cl_weight * L_CL; write it to `output_dir`.

    resume: None = continue from `<output_dir>.checkpoint/` when it belongs to the same config
    and inputs; True = require such a checkpoint; False = start from scratch.

    Returns the metrics summary (also written to OUTPUT_DIR/metrics.json).
    """
    import torch

    config_path, corpus_dir, output_dir = Path(config_path), Path(corpus_dir), Path(output_dir)
    config, enc_cfg, settings, joint, noise, sampler, correction, loss_fn, kind = load_joint_config(config_path, overrides)
    if encoder:
        enc_cfg.name = config.setdefault("encoder", {})["name"] = str(encoder)
    check_output_dir(output_dir, overwrite)

    corpus, train, dev, n_classes = load_train_dev(corpus_dir, settings.dev_fraction, settings.seed, "joint")
    dae_texts, dae_source = _dae_texts(joint, corpus_dir, train.texts)

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    set_seed(settings.seed)
    corrected, index, keys = correct_imbalance(correction, train, corpus.hierarchical, settings.seed, "joint")
    texts = corrected.texts

    enc = load_encoder(enc_cfg.name, pooling=enc_cfg.pooling, max_length=enc_cfg.max_length)
    if enc.max_length < 2:
        raise UserError(f"{enc_cfg.name}: max_length {enc.max_length} leaves nothing to reconstruct")
    decoder = build_decoder(enc.path, enc.model, name=enc_cfg.name)
    model = DenoisingAutoEncoder(enc.model, decoder, enc.pooling)  # enc.model IS model.encoder
    bs = settings.batch_size
    dae_bs = joint.dae_batch_size or bs
    if kind == "pairs":
        first_pairs = sampler(index, seed=settings.seed, keys=keys, n_classes=n_classes)
        if len(first_pairs) == 0:
            raise UserError(f"{corpus_dir}: could not draw any training pairs (too few examples?)")
        steps_per_epoch = math.ceil(len(first_pairs) / bs)
    else:
        first_pairs = None
        steps_per_epoch = math.ceil(len(texts) / bs)
    _say(
        f"[joint] loss = {joint.dae_weight:g} * L_DAE + {joint.cl_weight:g} * L_CL; {steps_per_epoch} steps per epoch, "
        f"each one DAE batch of {dae_bs} ({len(dae_texts)} texts from {dae_source}) and one contrastive batch of {bs}"
    )
    dev_index = LabelIndex(dev.labels, hierarchical=corpus.hierarchical)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dev_pairs = sampler(dev_index, seed=settings.dev_pairs_seed, keys=_text_keys(dev.texts), n_classes=n_classes)

    step = JointStep(enc, model, noise, loss_fn, kind, texts, index, dae_weight=joint.dae_weight, cl_weight=joint.cl_weight, seed=settings.seed)

    cl_batches = contrastive_batches(kind, bs, settings.seed, len(texts), first_pairs, sampler, index, keys, n_classes, steps_per_epoch)

    def make_batches(epoch: int):
        first = epoch * steps_per_epoch
        return [_JointBatch((step.dae_batch(dae_texts, dae_bs, first + i), b)) for i, b in enumerate(cl_batches(epoch))]

    fp = fingerprint(config_fingerprint_text(config), [corpus_dir] + ([Path(joint.dae_texts)] if joint.dae_texts not in (None, "", "auto", "train") else []), {"encoder": enc.path})
    with output_dir_for_rank(output_dir, overwrite) as tmp:
        trainer = Trainer(
            model,
            settings,
            steps_per_epoch=steps_per_epoch,
            desc="joint",
            log_path=tmp / "training_log.jsonl",
            checkpoint_dir=checkpoint_dir_for(output_dir) if settings.checkpoint_every else None,
            fingerprint=fp,
            resume=resume,
            rng_objects={"joint_step": step},
        )
        step.device = trainer.device
        evaluator = DevEvaluator(enc, trainer.device, train.texts, train.keys, dev.texts, dev.keys, dev_pairs, k=settings.knn_k, batch_size=settings.eval_batch_size)
        baseline = evaluator.metrics()
        _say(f"[joint] before training (epoch 0): {_fmt(baseline)}")

        per_epoch: List[Dict[str, float]] = []

        def evaluate(epoch: int):
            done = step.components
            step.components = []
            arr = numpy.array(done, dtype=float) if done else numpy.full((1, 2), numpy.nan)
            per_epoch.append({"dae_loss": float(numpy.nanmean(arr[:, 0])) if joint.dae_weight else None, "cl_loss": float(numpy.nanmean(arr[:, 1])) if joint.cl_weight else None})
            score, extra = evaluator(epoch)
            extra = dict(extra)
            for k, v in per_epoch[-1].items():
                if v is not None:
                    extra[k] = v
            return score, extra

        history = trainer.fit(make_batches, step.loss, evaluate=evaluate)
        best = best_record(history)
        summary = {
            "phase": "joint",
            "encoder": enc_cfg.name,
            "pooling": enc.pooling,
            "max_length": enc.max_length,
            "dae_weight": joint.dae_weight,
            "cl_weight": joint.cl_weight,
            "dae_texts": len(dae_texts),
            "dae_texts_source": dae_source,
            "loss": type(loss_fn).__name__,
            "input_kind": kind,
            "train_texts": len(train),
            "train_texts_after_correction": len(texts),
            "dev_texts": len(dev),
            "dev_carved_from_train": corpus.dev_carved,
            "pairs_per_epoch": len(first_pairs) if first_pairs is not None else None,
            "steps_per_epoch": steps_per_epoch,
            "baseline": baseline,
            "epochs": [asdict(r) for r in history],
            "best_epoch": best.epoch if best else None,
            "best": (best.extra if best else None),
        }
        save_encoder(
            enc.model, enc.tokenizer, tmp, pooling=enc.pooling, max_length=enc.max_length,
            extra={"phase": "joint", "source_encoder": enc_cfg.name, "best_epoch": summary["best_epoch"], "dae_weight": joint.dae_weight, "cl_weight": joint.cl_weight},
        )
        corrected.write(tmp / "imbalance.json", correction.settings if hasattr(correction, "settings") else {})
        (tmp / "metrics.json").write_text(json.dumps(_clean(summary), indent=2, default=float), encoding="utf8")
        config.to_disk(tmp / CONFIG_FILE)
    trainer.remove_checkpoint()
    distributed_barrier()
    if not is_main_process():
        return summary
    if best is not None:
        _say(f"[joint] best epoch {best.epoch}: {_fmt(best.extra)} (before training: knn_acc {baseline['knn_acc']:.4f})")
    _say(f"[joint] saved the encoder to {output_dir}")
    return summary
