"""`spacy-threephase contrastive CONFIG CORPUS OUTPUT_DIR` (phase 2)."""
import os
from pathlib import Path
from typing import Optional

import typer

from ._app import app, config_overrides, friendly_errors


@app.command(
    "contrastive",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@friendly_errors
def contrastive_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Phase-2 config (e.g. configs/contrastive.cfg)", exists=False),
    corpus_dir: Path = typer.Argument(..., help="Labelled corpus directory: train.jsonl, dev.jsonl (optional), labels.json (optional)"),
    output_dir: Path = typer.Argument(..., help="Where to write the trained encoder (a Hugging Face model directory)"),
    encoder: Optional[str] = typer.Option(None, "--encoder", "-e", help="Encoder to start from (phase 1's output directory or a Hugging Face name/path); overrides \\[encoder] name"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT_DIR if it exists"),
    gpu_id: Optional[int] = typer.Option(None, "--gpu-id", "-g", help="CUDA device (-1 = CPU); overrides \\[training] gpu_id"),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume", help="Continue from OUTPUT_DIR.checkpoint/ (default: automatically when it belongs to the same config and inputs); --no-resume starts again"),
):
    """Phase 2: supervised contrastive training (Siamese encoder) on labelled texts.

    Extra `--section.key value` options override the config, as in `spacy train`.
    """
    from ..contrastive.train import train_contrastive

    overrides = config_overrides(ctx.args)
    if gpu_id is not None:
        overrides["training.gpu_id"] = gpu_id
    train_contrastive(config_path, corpus_dir, output_dir, encoder=encoder, overrides=overrides, overwrite=overwrite, resume=resume)
    if int(os.environ.get("RANK", "0") or 0) == 0:
        typer.echo(f"✔ Saved the phase-2 encoder to {output_dir}")
