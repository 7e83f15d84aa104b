"""`train_dae`: phase 1 as a Phase of the shared driver (texts -> adapted encoder directory)."""

import json
from pathlib import Path
from typing import Any, Dict, List, Union

from ..batching import bucketed_batches, count_batches
from ..phase import LOG_FILE, REGISTERED, Phase, run_phase
from ..settings import DAETrainingSection, EncoderSection
from .model import DenoisingAutoEncoder, build_decoder
from .objective import DAEObjective, HeldOutLoss, split_heldout
from .texts import read_texts


class DAEPhase(Phase):
    name = "dae"
    sections = {"encoder": EncoderSection, "noise": REGISTERED, "training": DAETrainingSection}

    def __init__(self, texts_path: Union[str, Path]):
        self.inputs = [Path(texts_path)]

    def setup(self) -> None:
        t = self.settings["training"]
        counts: Dict[str, int] = {}
        self.texts = read_texts(self.inputs[0], counts)
        if counts.get("blank"):
            self.say(
                f"{self.inputs[0]}: skipped {counts['blank']} blank or whitespace-only lines; "
                f"training on {len(self.texts)} texts"
            )
        self.dev = None
        if t.dev_corpus:
            from ..contrastive.corpus import load_train_dev

            self.inputs.append(Path(t.dev_corpus))
            _, self.dev_train, self.dev, _ = load_train_dev(t.dev_corpus, t.dev_fraction, t.seed, self.name)
        held = min(t.heldout_max, int(t.heldout_fraction * len(self.texts))) if t.select_best and not self.dev else 0
        self.heldout, self.train_items = split_heldout(len(self.texts), held, t.seed)

    def build(self, enc):
        t = self.settings["training"]
        decoder = build_decoder(enc.path, enc.model, name=self.settings["encoder"].name)
        dae = DenoisingAutoEncoder(enc.model, decoder, enc.pooling)
        self.objective = DAEObjective(dae, enc.tokenizer, enc.max_length, self.texts, self.settings["noise"], t.seed)
        self.checkpointed = [self.objective.noise_stream]
        self.steps_per_epoch = count_batches(len(self.train_items), t.batch_size, t.bucket_batches)
        return self.objective

    def make_batches(self, epoch: int) -> List[List[int]]:
        t = self.settings["training"]
        self.objective.noise_stream.start_epoch(epoch)
        lengths = self.objective.clean.lengths[self.train_items]
        return [
            [self.train_items[i] for i in b]
            for b in bucketed_batches(lengths, t.batch_size, t.seed + epoch, t.bucket_batches)
        ]

    def evaluator(self, enc, device):
        t = self.settings["training"]
        if self.dev is not None:
            from ..contrastive.dev import knn_evaluator

            return knn_evaluator(enc, device, self.dev_train, self.dev, t)
        return HeldOutLoss(self.objective, self.heldout, t.eval_batch_size, t.seed) if self.heldout else None

    def summary(self) -> Dict[str, Any]:
        return {
            "texts": len(self.texts),
            "train_texts": len(self.train_items),
            "heldout_texts": len(self.heldout),
            "selection_score": "dev knn_acc" if self.dev is not None else "-heldout_loss",
        }


def train_dae(
    config_path: Union[str, Path], texts_path: Union[str, Path], output_dir: Union[str, Path], **options
) -> Path:
    """Phase 1: adapt the encoder to the texts (one per line); write it to `output_dir`.
    options: encoder, overrides, overwrite, resume (see phase.run_phase)."""
    run_phase(DAEPhase(texts_path), config_path, output_dir, **options)
    return Path(output_dir)


def read_log(output_dir: Union[str, Path]) -> List[dict]:
    path = Path(output_dir) / LOG_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
