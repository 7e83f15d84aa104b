"""`threephase data SOURCE OUTPUT_DIR`: convert a labelled data set for the three phases."""

from pathlib import Path
from typing import Optional

import typer

from ..data.convert import SPLITS, convert_dataset
from ._app import app, friendly_errors


@app.command("data")
@friendly_errors
def data_command(
    ctx: typer.Context,
    source: str = typer.Argument(
        ..., help="Directory with train.(jsonl|csv|tsv) [+ dev, test], one file, or a Hugging Face dataset id (hf:NAME)"
    ),
    output_dir: Path = typer.Argument(..., help="Directory to write (.spacy, .jsonl, texts.txt, labels.json)"),
    text_field: str = typer.Option("text", "--text-field", help="Name of the text column/field"),
    label_field: str = typer.Option("label", "--label-field", help="Name of the label column/field"),
    label_sep: Optional[str] = typer.Option(
        None, "--label-sep", help="Separator of several labels in one cell (multi-label), e.g. '|'"
    ),
    hf_config: Optional[str] = typer.Option(None, "--hf-config", help="Hugging Face dataset configuration"),
    dev_ratio: float = typer.Option(0.1, "--dev-ratio", help="Share of train carved as dev when there is no dev split"),
    test_ratio: float = typer.Option(
        0.1, "--test-ratio", help="Share of train carved as test when there is no test split"
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for carving dev/test"),
    lang: str = typer.Option("en", "--lang", help="spaCy language code for tokenisation"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory"),
    hierarchical: Optional[bool] = typer.Option(
        None,
        "--hierarchical/--flat",
        help="Labels with '/' are levels of a hierarchy (Sports/Football: pairs that share only the top level "
        "count as half similar in phase 2) or flat classes (Sci/Tech); default: hierarchical when any label has '/'",
    ),
    ordered: Optional[str] = typer.Option(
        None,
        "--ordered",
        help="The labels are an ordered scale: all of them, comma-separated from one end to the other "
        "('very negative,negative,neutral,positive,very positive'). Phase 2 then scores a pair by its distance "
        "on the scale (neighbours more alike than the two ends) instead of same class or not",
    ),
) -> None:
    """Read a data set and write train/dev/test .spacy files plus texts.txt for phase 1."""
    stats = convert_dataset(**ctx.params)  # the command's options are its keyword arguments
    typer.echo(format_summary(stats))


def format_summary(stats: dict) -> str:
    """A plain-text table: examples per class and split, totals and skipped empty texts."""
    width = max([len("label"), len("skipped empty")] + [len(label) for label in stats["labels"]])
    head = f"{'label':<{width}}" + "".join(f"{name:>8}" for name in SPLITS)
    lines = [head, "-" * len(head)]
    for label in stats["labels"]:
        lines.append(f"{label:<{width}}" + "".join(f"{stats['counts'][s].get(label, 0):>8}" for s in SPLITS))
    lines.append("-" * len(head))
    lines.append(f"{'examples':<{width}}" + "".join(f"{stats['sizes'][s]:>8}" for s in SPLITS))
    lines.append(f"{'skipped empty':<{width}}" + "".join(f"{stats['skipped_empty'][s]:>8}" for s in SPLITS))
    kind = "multi-label" if stats["multi_label"] else "single-label"
    if stats["hierarchical"]:
        kind += ", hierarchical"
    if stats.get("label_order"):
        kind += ", ordered: " + " < ".join(stats["label_order"])
    notes = [f"{len(stats['labels'])} labels ({kind}) from {stats['source']}"]
    if stats["carved"]:
        notes.append(f"carved from train (stratified, seed {stats['seed']}): {', '.join(stats['carved'])}")
    notes.append(f"wrote {stats['output_dir']}")
    return "\n".join(lines + [""] + ["✔ " + n for n in notes])
