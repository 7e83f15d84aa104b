"""`spacy-threephase joint CONFIG CORPUS OUTPUT_DIR` (the Joint ablation: L_DAE + L_CL in one run)."""
from pathlib import Path
from typing import Optional

import typer

from ._app import app, config_overrides, friendly_errors


@app.command("joint", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly_errors
def joint_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Joint config (e.g. configs/joint.cfg)"),
    corpus_dir: Path = typer.Argument(..., help="Corpus directory: train.jsonl, dev.jsonl (optional), texts.txt (optional, DAE texts)"),
    output_dir: Path = typer.Argument(..., help="Where to write the trained encoder (a Hugging Face model directory)"),
    encoder: Optional[str] = typer.Option(None, "--encoder", "-e", help="Encoder to start from; overrides \\[encoder] name"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT_DIR if it exists"),
    gpu_id: Optional[int] = typer.Option(None, "--gpu-id", "-g", help="CUDA device (-1 = CPU); overrides \\[training] gpu_id"),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume", help="Continue from OUTPUT_DIR.checkpoint/ (default: automatically when it belongs to the same config and inputs); --no-resume starts again"),
):
    """Joint ablation: one run over dae_weight * L_DAE + cl_weight * L_CL on a shared encoder.

    Extra `--section.key value` options override the config, e.g. --joint.dae_weight 0.5.
    """
    from ..joint.train import train_joint

    overrides = config_overrides(ctx.args)
    if gpu_id is not None:
        overrides["training.gpu_id"] = gpu_id
    train_joint(config_path, corpus_dir, output_dir, encoder=encoder, overrides=overrides, overwrite=overwrite, resume=resume)
    typer.echo(f"✔ Saved the joint encoder to {output_dir}")
