"""`dae`, `contrastive` and `joint`: the PyTorch phases, one command each, built alike.

    spacy-threephase dae CONFIG TEXTS OUTPUT_DIR [--encoder E] [--overwrite] [--gpu-id N] [--resume/--no-resume]
    spacy-threephase contrastive CONFIG CORPUS OUTPUT_DIR [...]
    spacy-threephase joint CONFIG CORPUS OUTPUT_DIR [...]

Extra `--section.key value` options override the config, as in `spacy train`. The same
command runs under `accelerate launch` or `torchrun` for several processes or machines.
"""

import importlib
from pathlib import Path
from typing import Optional

import typer

from ..checkpoints import is_main_process
from ._app import app, config_overrides, friendly_errors

PHASES = {
    # command: (function, what INPUT is, what is saved, help)
    "dae": (
        "spacy_threephase.dae.train:train_dae",
        "TEXTS",
        "Texts, one per line (e.g. corpus/texts.txt); blank lines are skipped",
        "phase-1",
        "Phase 1: adapt the encoder to the texts with a TSDAE-style denoising auto-encoder.",
    ),
    "contrastive": (
        "spacy_threephase.contrastive.train:train_contrastive",
        "CORPUS",
        "Labelled corpus directory: train.jsonl, dev.jsonl (optional), labels.json (optional)",
        "phase-2",
        "Phase 2: supervised contrastive learning on labelled texts (the paper's cosine MSE over every "
        "pair of class-aware batches, with the imbalance correction).",
    ),
    "joint": (
        "spacy_threephase.joint.train:train_joint",
        "CORPUS",
        "Corpus directory: train.jsonl, dev.jsonl (optional), texts.txt (optional, DAE texts)",
        "joint",
        "Joint ablation: one run over dae_weight * L_DAE + cl_weight * L_CL on a shared encoder.",
    ),
}


def add_phase_command(name: str) -> None:
    target, metavar, input_help, label, doc = PHASES[name]

    def command(
        ctx: typer.Context,
        config_path: Path = typer.Argument(
            ..., metavar="CONFIG", help=f"Config (e.g. configs/{name}.cfg)", dir_okay=False
        ),
        input_path: Path = typer.Argument(..., metavar=metavar, help=input_help),
        output_dir: Path = typer.Argument(
            ..., metavar="OUTPUT_DIR", help="Where to write the encoder (a Hugging Face model directory)"
        ),
        encoder: Optional[str] = typer.Option(
            None,
            "--encoder",
            "-e",
            help="Encoder to start from (a previous phase's "
            "output directory or a Hugging Face name/path); overrides \\[encoder] name",
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT_DIR if it exists"),
        gpu_id: Optional[int] = typer.Option(
            None, "--gpu-id", "-g", help="CUDA device (-1 = CPU); overrides \\[training] gpu_id"
        ),
        resume: Optional[bool] = typer.Option(
            None,
            "--resume/--no-resume",
            help="Continue from OUTPUT_DIR.checkpoint/ "
            "(default: when it belongs to the same config and inputs); --no-resume starts again",
        ),
    ):
        module, function = target.split(":")
        train = getattr(importlib.import_module(module), function)
        overrides = config_overrides(ctx.args)
        if gpu_id is not None:
            overrides["training.gpu_id"] = gpu_id
        train(
            config_path,
            input_path,
            output_dir,
            encoder=encoder,
            overrides=overrides,
            overwrite=overwrite,
            resume=resume,
        )
        if is_main_process():
            typer.echo(f"✔ Saved the {label} encoder to {output_dir}")

    command.__name__ = f"{name}_cli"
    command.__doc__ = doc + "\n\nExtra `--section.key value` options override the config, as in `spacy train`."
    app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        friendly_errors(command)
    )


for _name in PHASES:
    add_phase_command(_name)
