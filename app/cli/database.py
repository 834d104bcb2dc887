"""What every command that touches the database needs: its URL, or one unit of work."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.console import fail
from app.core.config import get_settings, to_libpq_url
from app.core.db import create_engine, create_sessionmaker, unit_of_work


@asynccontextmanager
async def one_transaction() -> AsyncIterator[AsyncSession]:
    """A command's unit of work, on an engine of its own that is closed afterwards."""
    engine = create_engine(get_settings())
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            yield session
    finally:
        await engine.dispose()


def database_url() -> str:
    url = get_settings().database_url
    if not url:
        fail("DATABASE_URL is not set. Set it, or use `vidgen dev` for a local database.")
    return to_libpq_url(url)
