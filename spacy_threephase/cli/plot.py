"""`spacy-threephase plot OUTPUT_DIR`: projections of dev vectors after each phase + confusion matrix."""

from pathlib import Path
from typing import Optional

import typer

from ._app import app, friendly_errors


@app.command("plot")
@friendly_errors
def plot_cli(
    output_dir: Path = typer.Argument(..., help="Directory for projection_<method>.png and confusion_matrix.png"),
    corpus: Path = typer.Option(Path("corpus"), "--corpus", help="Corpus directory (its dev.jsonl is projected)"),
    base: str = typer.Option("default", "--base", help="The base encoder (before phase 1); '' to leave out"),
    dae: str = typer.Option("training/dae", "--dae", help="Phase-1 encoder directory; '' to leave out"),
    contrastive: str = typer.Option(
        "training/contrastive", "--contrastive", help="Phase-2 encoder directory; '' to leave out"
    ),
    pipeline: str = typer.Option(
        "training/textcat/model-best", "--pipeline", help="Trained pipeline (FT); '' to leave out"
    ),
    metrics: Optional[Path] = typer.Option(
        Path("metrics/threephase/metrics.json"), "--metrics", help="metrics.json for the confusion matrix"
    ),
    method: str = typer.Option("pca", "--method", help="pca or tsne (t-SNE needs scikit-learn)"),
    limit: int = typer.Option(1000, "--limit", help="Project at most this many dev texts (seeded sample); 0 = all"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Plot a trained run: dev-set sentence vectors after each phase (base, DAE, CL, FT),
    coloured by class, and the test confusion matrix. Needs the `plots` extra (matplotlib)."""
    from ..plots import plot_run, require_matplotlib

    require_matplotlib()
    stages = [
        (n, k, p)
        for n, k, p in (
            ("base encoder", "encoder", base),
            ("after DAE", "encoder", dae),
            ("after CL", "encoder", contrastive),
            ("after FT (pipeline)", "pipeline", pipeline),
        )
        if p
    ]
    written = plot_run(output_dir, corpus, stages, metrics_path=metrics, method=method, limit=limit, seed=seed)
    for note in written.pop("skipped"):
        typer.echo(f"ℹ skipped (not found): {note}")
    for kind, path in written.items():
        typer.echo(f"✔ Wrote {path}")
