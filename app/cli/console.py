"""Shared bits of the `vidgen` command line."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import Progress, ProgressColumn


def fail(message: str) -> NoReturn:
    """Print `message` in red on stderr and exit 1."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@contextmanager
def progress_on_terminal(*columns: str | ProgressColumn) -> Iterator[Progress | None]:
    """A rich progress display on stderr while it is a terminal, erased when done; None when
    stderr is a pipe or a file (CI logs, `2>log`), so scripts never see progress noise."""
    if not sys.stderr.isatty():
        yield None
        return
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield progress
