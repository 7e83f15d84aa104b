"""`evaluate`: test-split metrics of a trained pipeline, as JSON and a printed table."""

from pathlib import Path

import typer

from ..errors import UserError
from ..evaluation import evaluate_pipeline, write_metrics
from ..gpu import require_spacy_gpu
from ..metrics import format_table
from ._app import app, friendly_errors


@app.command("evaluate")
@friendly_errors
def evaluate_cli(
    model: Path = typer.Argument(..., help="Trained pipeline directory or installed package name"),
    test_path: Path = typer.Argument(..., help="Labelled test data: .spacy or normalised .jsonl"),
    output_dir: Path = typer.Argument(..., help="Directory for metrics.json and metrics.txt"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for the CPU"),
    batch_size: int = typer.Option(64, "--batch-size", help="Documents per batch"),
) -> None:
    """Evaluate on the test split: accuracy, macro P/R/F1, per-class scores, confusion matrix."""
    import spacy

    if gpu_id >= 0:
        require_spacy_gpu(gpu_id)
    try:
        nlp = spacy.load(model)
    except OSError as err:
        raise UserError(f"{model}: cannot load pipeline ({str(err).splitlines()[0]})") from None
    metrics = evaluate_pipeline(nlp, test_path, batch_size=batch_size)
    metrics["model"] = str(model)
    metrics["test_path"] = str(test_path)
    paths = write_metrics(metrics, output_dir)
    print(format_table(metrics))
    print(f"\nWrote {paths['json']} and {paths['txt']}")
    from ..plots import INSTALL_HINT, confusion_figure, have_matplotlib

    if metrics.get("confusion_matrix") is None:
        return
    if have_matplotlib():
        png = confusion_figure(
            metrics,
            Path(output_dir) / "confusion_matrix.png",
            title=f"{'/'.join(Path(str(model)).parts[-2:])}: confusion matrix (test)\n"
            f"accuracy {100 * metrics['accuracy']:.1f}%, macro F1 {100 * metrics['macro_f1']:.1f}%",
        )
        print(f"Wrote {png}")
    else:
        print(f"(no confusion-matrix plot: matplotlib is not installed; {INSTALL_HINT})")
