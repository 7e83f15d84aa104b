"""`train_dae`: phase 1 as a Phase of the shared driver (texts -> adapted encoder directory)."""

from pathlib import Path
from typing import Union

from ..batching import bucketed_batches, count_batches
from ..contrastive.corpus import load_train_dev
from ..contrastive.dev import dev_evaluator
from ..contrastive.selection import selection_label
from ..phase import REGISTERED, Phase, run_phase
from ..settings import DAETrainingSection, EncoderSection
from .model import DenoisingAutoEncoder, build_decoder, cpu_has_bf16_matrix_units
from .objective import DAEObjective, HeldOutLoss
from .texts import read_texts, split_heldout


class DAEPhase(Phase):
    name = "dae"
    sections = {"encoder": EncoderSection, "noise": REGISTERED, "training": DAETrainingSection}

    def __init__(self, texts_path: Union[str, Path]):
        self.inputs = [Path(texts_path)]

    def setup(self) -> None:
        t, self.texts = self.settings["training"], read_texts(self.inputs[0], self.say)
        # with labels, selection scores dev accuracy (selection_metric); without, a held-out share's reconstruction
        labelled = load_train_dev(t.dev_corpus, t.dev_fraction, t.seed, self.name) if t.dev_corpus else None
        self.dev_train, self.dev = labelled[1:3] if labelled else (None, None)
        self.inputs += [Path(t.dev_corpus)] if labelled else []
        self.heldout, self.train_items = split_heldout(len(self.texts), t, labelled=self.dev is not None)

    def build(self, enc):
        t, decoder = self.settings["training"], build_decoder(enc.path, enc.model, name=enc.name)
        # mixed precision on a CPU: the frozen vocabulary projection in bfloat16 where AMX runs it
        bf16_head = t.mixed_precision and t.gpu_id < 0 and cpu_has_bf16_matrix_units()
        dae = DenoisingAutoEncoder(
            enc.model, decoder, enc.pooling, train_word_embeddings=t.train_word_embeddings, bf16_head=bf16_head
        )
        self.objective = DAEObjective(dae, enc.tokenizer, enc.max_length, self.texts, self.settings["noise"], t.seed)
        self.checkpointed = [self.objective.noise_stream]
        self.steps_per_epoch = count_batches(len(self.train_items), t.batch_size, t.bucket_batches)
        return self.objective

    def make_batches(self, epoch: int):
        t, items = self.settings["training"], self.train_items
        self.objective.noise_stream.start_epoch(epoch)
        batches = bucketed_batches(self.objective.clean.lengths[items], t.batch_size, t.seed + epoch, t.bucket_batches)
        return [[items[i] for i in b] for b in batches]

    def evaluator(self, enc, device):
        t = self.settings["training"]
        if self.dev is not None:
            return dev_evaluator(enc, device, self.dev_train, self.dev, t)
        return HeldOutLoss(self.objective, self.heldout, t.eval_batch_size, t.seed) if self.heldout else None

    def summary(self):
        metric = self.settings["training"].selection_metric
        score = selection_label(metric) if self.dev is not None else "-heldout_loss" if self.heldout else None
        return {"texts": len(self.texts), "heldout_texts": len(self.heldout), "selection_score": score}


def train_dae(config_path: Union[str, Path], texts_path: Union[str, Path], output_dir: Union[str, Path], **options):
    """Phase 1 on the texts (one per line) -> `output_dir` (options: encoder, overrides, overwrite, resume)."""
    run_phase(DAEPhase(texts_path), config_path, output_dir, **options)
    return Path(output_dir)
