"""`vidgen models sync | status`: the video-model catalog in the database."""

import asyncio

import typer

from app.catalog import service as catalog
from app.catalog.models import CatalogModel
from app.cli.database import database_url, one_transaction
from app.videos import service as videos
from app.videos.models import VideoStatus

models_app = typer.Typer(no_args_is_help=True, help="The video-model catalog.")


async def _sync_models() -> catalog.SyncResult:
    async with one_transaction() as session:
        return await catalog.sync(session, catalog.load_catalog())


@models_app.command("sync")
def models_sync() -> None:
    """Upsert app/catalog/catalog.json into `models`; deactivate models it no longer lists."""
    database_url()
    result = asyncio.run(_sync_models())
    typer.echo(f"catalog v{catalog.load_catalog().version}: {len(result.upserted)} models active")
    for slug in result.deactivated:
        typer.echo(f"deactivated {slug}")


async def _models_status() -> tuple[list[CatalogModel], dict[str, dict[str, int]]]:
    async with one_transaction() as session:
        models = await catalog.list_all(session)
        return models, await videos.jobs_by_model_and_status(session)


@models_app.command("status")
def models_status() -> None:
    """Each model's state, price and jobs per status."""
    database_url()
    models, counts = asyncio.run(_models_status())
    statuses = [s.value for s in VideoStatus]
    typer.echo(
        f"{'model':<28} {'state':<9} {'credits/s':>9} " + " ".join(f"{s:>10}" for s in statuses)
    )
    for model in models:
        jobs = counts.get(model.slug, {})
        state = "active" if model.active else "inactive"
        typer.echo(
            f"{model.slug:<28} {state:<9} {model.credits_per_second:>9} "
            + " ".join(f"{jobs.get(s, 0):>10}" for s in statuses)
        )
