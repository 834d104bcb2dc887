"""Shared bits of the `vidgen` command line."""

from typing import NoReturn

import typer


def fail(message: str) -> NoReturn:
    """Print `message` in red on stderr and exit 1."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)
