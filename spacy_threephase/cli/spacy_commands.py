"""Entry point (group `spacy_cli`): adds `python -m spacy threephase ...` to spaCy's CLI."""

from spacy.cli._util import app as spacy_app

from . import app as threephase_app

spacy_app.add_typer(threephase_app, name="threephase")
