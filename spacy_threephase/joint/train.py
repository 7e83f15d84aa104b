"""`train_joint`: the Joint ablation (eq. 11) as a Phase of the shared driver."""

from pathlib import Path
from typing import Any, Dict, Union

from ..contrastive.dev import knn_evaluator
from ..contrastive.task import ContrastiveTask
from ..dae.model import DenoisingAutoEncoder, build_decoder
from ..dae.objective import DAEObjective
from ..dae.texts import read_texts
from ..phase import REGISTERED, Phase, run_phase
from ..settings import ContrastiveTrainingSection, EncoderSection, JointSection
from .objective import JointObjective, joint_batches


class JointPhase(Phase):
    name = "joint"
    sections = {
        "encoder": EncoderSection,
        "training": ContrastiveTrainingSection,
        "noise": REGISTERED,
        "pairs": REGISTERED,
        "imbalance": REGISTERED,
        "loss": REGISTERED,
        "joint": JointSection,
    }

    def __init__(self, corpus_dir: Union[str, Path]):
        self.inputs = [Path(corpus_dir)]

    def setup(self) -> None:
        self.task, j = ContrastiveTask(self.inputs[0], self.settings, self.name), self.settings["joint"]
        texts_file = self.inputs[0] / "texts.txt" if j.dae_texts == "auto" else Path(j.dae_texts)
        if j.dae_texts == "train" or not texts_file.is_file() and j.dae_texts == "auto":
            self.dae_texts, self.dae_source = list(self.task.train.texts), "train texts"
        else:
            self.dae_texts, self.dae_source = read_texts(texts_file), str(texts_file)
            self.inputs.append(texts_file)

    def build(self, enc):
        t, j = self.settings["training"], self.settings["joint"]
        self.task.prepare(enc)
        self.steps_per_epoch, self.dae_batch_size = self.task.steps_per_epoch, j.dae_batch_size or t.batch_size
        dae = DenoisingAutoEncoder(
            enc.model, build_decoder(enc.path, enc.model, name=self.settings["encoder"].name), enc.pooling
        )
        noise = DAEObjective(dae, enc.tokenizer, enc.max_length, self.dae_texts, self.settings["noise"], t.seed + 1)
        self.objective = JointObjective(noise, self.task, enc.pooling, dae_weight=j.dae_weight, cl_weight=j.cl_weight)
        self.checkpointed = [noise.noise_stream, self.objective.parts]
        self.say(
            f"loss = {j.dae_weight:g} * L_DAE + {j.cl_weight:g} * L_CL; "
            f"each step one DAE batch of {self.dae_batch_size} "
            f"({len(self.dae_texts)} texts from {self.dae_source}) and one contrastive batch\n{self.task.describe()}"
        )
        return self.objective

    def make_batches(self, epoch: int):
        self.objective.dae.noise_stream.start_epoch(epoch)
        cl = self.task.make_batches(epoch)
        return joint_batches(
            cl, len(self.dae_texts), self.dae_batch_size, epoch * self.steps_per_epoch, self.settings["training"].seed
        )

    def evaluator(self, enc, device):
        dev = knn_evaluator(enc, device, self.task.train, self.task.dev, self.settings["training"], self.task.dev_pairs)

        def evaluate():
            score, metrics = dev()
            return score, {**metrics, **self.objective.loss_parts()}

        return evaluate

    def summary(self) -> Dict[str, Any]:
        j = self.settings["joint"]
        return {
            **self.task.summary(),
            "dae_weight": j.dae_weight,
            "cl_weight": j.cl_weight,
            "dae_texts": len(self.dae_texts),
            "dae_texts_source": self.dae_source,
        }

    def write(self, directory: Path) -> None:
        self.task.write(directory, self.settings["imbalance"])


def train_joint(
    config_path: Union[str, Path], corpus_dir: Union[str, Path], output_dir: Union[str, Path], **options
) -> Dict[str, Any]:
    """Train the encoder on dae_weight * L_DAE + cl_weight * L_CL; returns the metrics summary.
    options: encoder, overrides, overwrite, resume (see phase.run_phase)."""
    return run_phase(JointPhase(corpus_dir), config_path, output_dir, **options)
