"""Test harness: one throwaway PostgreSQL per run, a fresh migrated database per test.

The schema is built by our own migrations once (a template database); each test gets a
copy (`CREATE DATABASE ... TEMPLATE`), so tests can commit and run concurrently for real.
"""

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from app.catalog import service as catalog
from app.core.config import AppEnv, Settings
from app.core.db import create_engine, create_sessionmaker, unit_of_work
from app.main import create_app
from app.ops import migrate
from app.ops.localpg import LocalPostgres, free_port

TEMPLATE_DB = "vidgen_template"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if url := os.environ.get("TEST_PG_URL"):
        yield PgServer(url)
        return
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="vidgen-test-pg-")), free_port(), True)
    server.start()
    try:
        yield PgServer(server.url)
    finally:
        server.destroy()


@pytest.fixture(scope="session")
async def template_db(pg_server: PgServer) -> str:
    await pg_server.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    await pg_server.execute(f'CREATE DATABASE "{TEMPLATE_DB}" TEMPLATE template0')
    await migrate.deploy(pg_server.url_for(TEMPLATE_DB), Settings().migrations_dir)
    engine = create_engine(make_settings(pg_server.url_for(TEMPLATE_DB)))
    async with unit_of_work(create_sessionmaker(engine)) as session:
        await catalog.sync(session, catalog.load_catalog())
    await engine.dispose()
    return TEMPLATE_DB


@pytest.fixture
async def empty_database_url(pg_server: PgServer) -> AsyncIterator[str]:
    name = await pg_server.create_database()
    yield pg_server.url_for(name)
    await pg_server.drop_database(name)


@pytest.fixture
async def database_url(pg_server: PgServer, template_db: str) -> AsyncIterator[str]:
    """A fresh, fully migrated database for one test."""
    name = await pg_server.create_database(template_db)
    yield pg_server.url_for(name)
    await pg_server.drop_database(name)


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "app_env": AppEnv.TEST,
        "admin_token": ADMIN_TOKEN,
        "_env_file": None,
        # In-process API tests talk to no Fal; the Fal tests run the app against the simulator.
        "dispatch_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@asynccontextmanager
async def serve_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, behind an in-process httpx client."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[str]:
    """The app under a real uvicorn on 127.0.0.1 (in this process); yields its base URL.

    For what the in-process ASGI transport cannot do, such as streaming responses.
    """
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)  # waiting for startup, not synchronising the test
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection to the test's database, for asserting on what was committed."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()
