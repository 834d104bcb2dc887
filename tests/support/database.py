"""The PostgreSQL the tests use, and building a database the way a deploy does."""

import uuid

import asyncpg

from app.catalog import service as catalog
from app.core.db import create_engine, create_sessionmaker, unit_of_work
from app.ops import migrate
from tests.support.apps import make_settings

TEMPLATE_DB = "vidgen_template"


class PgServer:
    """The server the tests use: started here, or an existing one via TEST_PG_URL."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.base = self.url.rsplit("/", 1)[0]

    def url_for(self, database: str) -> str:
        return f"{self.base}/{database}"

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create_database(self, template: str = "template0") -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        await self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    async def drop_database(self, name: str) -> None:
        await self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def migrate_and_load_catalog(database_url: str) -> None:
    """Build the schema by running our own migrations, then sync the model catalog into it."""
    settings = make_settings(database_url)
    await migrate.deploy(database_url, settings.migrations_dir)
    engine = create_engine(settings)
    async with unit_of_work(create_sessionmaker(engine)) as session:
        await catalog.sync(session, catalog.load_catalog())
    await engine.dispose()
