"""`train_contrastive`: phase 2 as a Phase of the shared driver (corpus -> encoder directory)."""

from pathlib import Path
from typing import Any, Dict, Union

from ..phase import REGISTERED, Phase, run_phase
from ..settings import ContrastiveTrainingSection, EncoderSection
from .dev import dev_evaluator
from .selection import selection_label
from .task import ContrastiveTask, SiameseObjective


class ContrastivePhase(Phase):
    name = "contrastive"
    sections = {
        "encoder": EncoderSection,
        "training": ContrastiveTrainingSection,
        "pairs": REGISTERED,
        "imbalance": REGISTERED,
        "loss": REGISTERED,
    }

    def __init__(self, corpus_dir: Union[str, Path]):
        self.inputs = [Path(corpus_dir)]

    def setup(self) -> None:
        self.task = ContrastiveTask(self.inputs[0], self.settings, self.name)

    def build(self, enc):
        self.task.prepare(enc)
        self.steps_per_epoch = self.task.steps_per_epoch
        self.say(self.task.describe())
        return SiameseObjective(enc.model, enc.pooling, self.task)

    def make_batches(self, epoch: int):
        return self.task.make_batches(epoch)

    def evaluator(self, enc, device):
        return dev_evaluator(
            enc, device, self.task.train, self.task.dev, self.settings["training"], self.task.dev_pairs
        )

    def summary(self) -> Dict[str, Any]:
        return {**self.task.summary(), "selection_score": selection_label(self.settings["training"].selection_metric)}

    def write(self, directory: Path) -> None:
        self.task.write(directory, self.settings["imbalance"])


def train_contrastive(
    config_path: Union[str, Path], corpus_dir: Union[str, Path], output_dir: Union[str, Path], **options
) -> Dict[str, Any]:
    """Phase 2 on the labelled corpus; returns the metrics summary.
    options: encoder, overrides, overwrite, resume (see phase.run_phase)."""
    return run_phase(ContrastivePhase(corpus_dir), config_path, output_dir, **options)
