"""Command-line interface. Each module adds its commands to the shared typer app."""

from . import ablate, data, evaluate, phases, plot, train  # noqa: F401  (register commands)
from ._app import app


def main() -> None:
    app()
