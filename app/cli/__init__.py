"""`vidgen`: the one entry point for running and operating the service (README, "Commands")."""

import sys
from pathlib import Path

import typer

from app.cli import audit, dev, maintenance, serve, simulator, smoke
from app.cli.backup import backup_app
from app.cli.credits import credits_app
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
app.command()(serve.serve)
app.command()(dev.dev)
app.command("fal-simulator")(simulator.fal_simulator)


def main() -> None:
    app(prog_name=Path(sys.argv[0]).name if sys.argv else "vidgen")
