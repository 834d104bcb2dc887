"""`vidgen media gc`: files in the media store that no row points at."""

import asyncio
from datetime import timedelta

import typer

from app.cli.database import database_url
from app.core.config import get_settings
from app.core.db import create_engine, create_sessionmaker
from app.media.store import open_store
from app.videos.media_gc import Collected, collect

media_app = typer.Typer(no_args_is_help=True, help="Our copies of outputs and uploads.")


async def _collect(min_age: timedelta) -> Collected:
    settings = get_settings()
    engine = create_engine(settings)
    try:
        return await collect(create_sessionmaker(engine), open_store(settings), min_age)
    finally:
        await engine.dispose()


@media_app.command("gc")
def media_gc(
    min_age_hours: float = typer.Option(
        24.0, min=0.0, help="keep anything younger (a copy or upload may be mid-publish)"
    ),
) -> None:
    """Remove stored files no video or upload points at, and abandoned staging files."""
    database_url()
    result = asyncio.run(_collect(timedelta(hours=min_age_hours)))
    typer.echo(
        f"removed {result.files} file(s), {result.bytes_freed} bytes freed; {result.kept} kept"
    )
