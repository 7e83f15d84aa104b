"""`train`: phase 3, `spacy train` with checkpoints and resume."""

from pathlib import Path
from typing import Optional

import typer

from ._app import app, config_overrides, friendly_errors


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly_errors
def train_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="spaCy training config (e.g. configs/textcat.cfg)", dir_okay=False),
    output_dir: Path = typer.Option(
        ..., "--output", "--output-path", "-o", help="Where to write model-best/ and model-last/"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="CUDA device; -1 = CPU"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace OUTPUT if it exists (only once the new one is complete)"
    ),
    resume: Optional[bool] = typer.Option(
        None,
        "--resume/--no-resume",
        help="Continue from OUTPUT.checkpoint/ (default: automatically when it belongs to the same config "
        "and inputs); --no-resume starts again",
    ),
    checkpoint_every: int = typer.Option(
        200, "--checkpoint-every", help="Steps between resumable checkpoints in OUTPUT.checkpoint/ (0 = none)"
    ),
    code_path: Optional[Path] = typer.Option(
        None, "--code", "-c", help="Python file with extra registered functions to import first (as in spacy train)"
    ),
):
    """Phase 3: train the pipeline like `spacy train`, with checkpoints and resume.

    Takes the same config and `--section.key value` overrides as `spacy train` and writes
    the same model-best/ and model-last/. Killed and started again with the same command, it
    continues from its last checkpoint and ends as an uninterrupted run would.
    """
    from spacy.cli._util import import_code

    from ..errors import UserError
    from ..finetune import train_pipeline

    if code_path is not None and not code_path.is_file():
        raise UserError(f"{code_path}: --code file does not exist")
    import_code(code_path)
    overrides = config_overrides(ctx.args)
    out = train_pipeline(
        config_path,
        output_dir,
        overrides=overrides,
        use_gpu=gpu_id,
        overwrite=overwrite,
        resume=resume,
        checkpoint_every=checkpoint_every,
    )
    typer.echo(f"✔ Saved the pipeline to {out / 'model-best'} (best on dev) and {out / 'model-last'}")
