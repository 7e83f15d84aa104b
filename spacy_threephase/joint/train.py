"""`train_joint`: the Joint ablation (eq. 11), phase 2's Phase with a DAE loss added on every step."""

from pathlib import Path
from typing import Any, Dict, Union

from ..contrastive.train import ContrastivePhase
from ..dae.texts import joint_dae_texts
from ..phase import REGISTERED, run_phase
from ..settings import JointSection
from .objective import build_joint_objective, joint_batches


class JointPhase(ContrastivePhase):
    name = "joint"
    sections = {**ContrastivePhase.sections, "noise": REGISTERED, "joint": JointSection}

    def setup(self) -> None:
        super().setup()
        self.dae_texts, self.dae_source, path = joint_dae_texts(
            self.settings["joint"].dae_texts, self.inputs[0], self.task.train.texts
        )
        self.inputs += [path] if path is not None else []

    def build(self, enc):
        t, j = self.settings["training"], self.settings["joint"]
        super().build(enc)
        self.dae_batch_size = j.dae_batch_size or t.batch_size
        self.objective = build_joint_objective(enc, self.task, self.dae_texts, self.settings)
        self.checkpointed = [self.objective.dae.noise_stream, self.objective.parts]
        n, source = len(self.dae_texts), self.dae_source
        self.say(f"loss = {j.dae_weight:g} * L_DAE + {j.cl_weight:g} * L_CL; each step one contrastive batch "
                 f"and a DAE batch of {self.dae_batch_size} ({n} texts: {source})")  # fmt: skip
        return self.objective

    def make_batches(self, epoch: int):
        self.objective.dae.noise_stream.start_epoch(epoch)
        first, seed = epoch * self.steps_per_epoch, self.settings["training"].seed
        return joint_batches(super().make_batches(epoch), len(self.dae_texts), self.dae_batch_size, first, seed)

    def evaluator(self, enc, device):
        dev = super().evaluator(enc, device)

        def evaluate():
            score, metrics, *per_text = dev()  # per_text: each dev text's 0/1 (min_gain_z)
            return (score, {**metrics, **self.objective.loss_parts()}, *per_text)

        return evaluate

    def summary(self) -> Dict[str, Any]:
        j = self.settings["joint"]
        return {**super().summary(), "dae_weight": j.dae_weight, "cl_weight": j.cl_weight,
                "dae_texts": len(self.dae_texts), "dae_texts_source": self.dae_source}  # fmt: skip


def train_joint(config_path: Union[str, Path], corpus_dir: Union[str, Path], output_dir: Union[str, Path], **options):
    """Train the encoder on dae_weight * L_DAE + cl_weight * L_CL; returns the metrics summary.
    options: encoder, overrides, overwrite, resume (see phase.run_phase)."""
    return run_phase(JointPhase(corpus_dir), config_path, output_dir, **options)
