"""Command-line interface. Each module adds its commands to the shared typer app."""
from ._app import app
from . import data, phases, train, evaluate, ablate, plot  # noqa: F401  (register commands)


def main() -> None:
    app()
