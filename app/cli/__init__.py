"""`vidgen`: the one entry point for running and operating the service (README, "Commands")."""

import sys
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer

from app.cli import audit, dev, maintenance, serve, simulator, smoke
from app.cli.backup import backup_app
from app.cli.credits import credits_app
from app.cli.database import unreachable_database_in_one_line
from app.cli.media import media_app
from app.cli.migrate import migrate_app
from app.cli.models import models_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(migrate_app, name="migrate")
app.add_typer(backup_app, name="backup")
app.add_typer(credits_app, name="credits")
app.add_typer(models_app, name="models")
app.add_typer(media_app, name="media")
# `vidgen --help` lists these in this order.
app.command()(maintenance.maintenance)
app.command()(smoke.smoke)
app.command()(audit.audit)
app.command("recount-active-jobs")(audit.recount_active_jobs_command)
app.command()(serve.serve)
app.command()(dev.dev)
app.command("fal-simulator")(simulator.fal_simulator)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"vidgen {version('vidgen')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


def main() -> None:
    with unreachable_database_in_one_line():
        app(prog_name=Path(sys.argv[0]).name if sys.argv else "vidgen")
