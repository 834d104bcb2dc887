"""The shared fixtures, loaded as a plugin by tests/conftest.py.

One throwaway PostgreSQL per run, a fresh migrated database per test: the schema is built by
our own migrations once (a template database); each test gets a copy (`CREATE DATABASE ...
TEMPLATE`), so tests can commit and run concurrently for real. One Fal simulator process
per run, reset for each test that asks for it.
"""

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.fal.simulator.process import SimulatorProcess
from app.main import create_app
from app.ops.localpg import LocalPostgres, free_port
from tests.support.apps import TEST_MEDIA_DIR, AppProcess, make_settings
from tests.support.database import TEMPLATE_DB, PgServer, migrate_and_load_catalog


@pytest.fixture(scope="session", autouse=True)
def _test_media_dir() -> Iterator[Path]:
    """The media every test app writes (tests/support/apps.py), removed after the run."""
    yield TEST_MEDIA_DIR
    shutil.rmtree(TEST_MEDIA_DIR, ignore_errors=True)


# -- PostgreSQL ---------------------------------------------------------------------------


# Loaded in the test cluster for the tests that count a request's statements
# (tests/core/test_round_trips.py).
STATEMENT_STATS = "shared_preload_libraries=pg_stat_statements"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if url := os.environ.get("TEST_PG_URL"):
        yield PgServer(url)
        return
    server = LocalPostgres(
        Path(tempfile.mkdtemp(prefix="vidgen-test-pg-")), free_port(), True, (STATEMENT_STATS,)
    )
    server.start()
    try:
        yield PgServer(server.url)
    finally:
        server.destroy()


@pytest.fixture(scope="session")
async def template_db(pg_server: PgServer) -> str:
    await pg_server.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    await pg_server.execute(f'CREATE DATABASE "{TEMPLATE_DB}" TEMPLATE template0')
    await migrate_and_load_catalog(pg_server.url_for(TEMPLATE_DB))
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


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection to the test's database, for asserting on what was committed."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


# -- the app in this process ----------------------------------------------------------------


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


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


# -- the Fal simulator, and the real service against it ------------------------------------


@pytest.fixture(scope="session")
def simulator_session() -> Iterator[SimulatorProcess]:
    """The one simulator process of the run; tests use it through `simulator`."""
    state = Path(tempfile.mkdtemp(prefix="vidgen-test-sim-"))
    with SimulatorProcess(state) as sim:
        yield sim


@pytest.fixture
def simulator_knobs() -> dict[str, Any]:
    """The knobs `simulator` sets for each test; a suite's conftest overrides this fixture
    (tests/reliability wants shorter jobs)."""
    return {"delay_s": 0.6, "seed": 7}


@pytest.fixture
def simulator(
    simulator_session: SimulatorProcess, simulator_knobs: dict[str, Any]
) -> SimulatorProcess:
    """The shared simulator, with its records reset and the suite's knobs set for this test.

    A reset restores the knobs the process started with, so the suite's are set after it
    (the seed too: setting it reseeds the fault RNG). A test may `configure` more on top.
    """
    simulator_session.reset()
    simulator_session.configure(**simulator_knobs)
    return simulator_session


@pytest.fixture
async def fal_app(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> AsyncIterator[tuple[AppProcess, httpx.AsyncClient]]:
    app = AppProcess(database_url, simulator, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            yield app, client
    finally:
        app.stop()
