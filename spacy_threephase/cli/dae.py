"""`dae`: phase 1, the denoising auto-encoder."""
import os
from pathlib import Path
from typing import Optional

import typer

from ._app import app, config_overrides, friendly_errors


@app.command("dae", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly_errors
def dae_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Phase-1 config (e.g. configs/dae.cfg)", dir_okay=False),
    texts_path: Path = typer.Argument(..., help="Texts, one per line (e.g. corpus/texts.txt); blank lines are skipped", dir_okay=False),
    output_dir: Path = typer.Argument(..., help="Where to write the adapted encoder (a Hugging Face model directory)"),
    encoder: Optional[str] = typer.Option(None, "--encoder", "-e", help="Encoder name or directory; overrides \\[encoder] name"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT_DIR if it exists"),
    gpu_id: Optional[int] = typer.Option(None, "--gpu-id", "-g", help="CUDA device; -1 = CPU; overrides \\[training] gpu_id"),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume", help="Continue from OUTPUT_DIR.checkpoint/ (default: automatically when it belongs to the same config and inputs); --no-resume starts again"),
):
    """Phase 1: adapt the encoder to the texts with a TSDAE-style denoising auto-encoder.

    Extra `--section.key value` options override config settings, as in `spacy train`.
    """
    from ..dae import train_dae

    overrides = config_overrides(ctx.args)
    out = train_dae(config_path, texts_path, output_dir, encoder=encoder, overrides=overrides, overwrite=overwrite, gpu_id=gpu_id, resume=resume)
    if int(os.environ.get("RANK", "0") or 0) == 0:
        typer.echo(f"✔ Saved the phase-1 encoder to {out}")
