"""The typer app behind `python -m spacy_threephase` and `python -m spacy threephase`."""

import functools
import sys

import typer

from ..errors import UserError

app = typer.Typer(
    name="threephase",
    help="spacy-threephase: data preparation, phase 1 (DAE), phase 2 (contrastive), phase 3 (train: spaCy's "
    "training loop with checkpoints), evaluation, the Joint variant, ablations and plots for spaCy text classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def config_overrides(args) -> dict:
    """`--section.key value` pairs from the command line, as `spacy train` reads them; a
    malformed one is a one-line UserError instead of spaCy's exit."""
    from spacy.cli._util import parse_config_overrides

    try:
        return parse_config_overrides(list(args))
    except SystemExit:
        raise UserError(f"cannot parse config overrides {' '.join(args)!r}; use --section.key value") from None


def friendly_errors(func):
    """Print a UserError as one line on stderr and exit with status 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print(f"✘ {err}", file=sys.stderr, flush=True)
            raise typer.Exit(1)
        except KeyboardInterrupt:
            print("✘ interrupted; outputs were not replaced", file=sys.stderr, flush=True)
            raise typer.Exit(130)

    return wrapper


@app.callback()
def _group() -> None:
    """spacy-threephase: data, phases 1 (DAE), 2 (contrastive) and 3 (train), evaluation, Joint, ablations, plots.

    Phase 3 (`train`) takes an ordinary spaCy training config (configs/textcat.cfg); plain
    `python -m spacy train` works with it too, without checkpoints.
    """
