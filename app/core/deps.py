"""Request-scoped dependencies, declared once as `Annotated` aliases.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, and that
hand-off costs more than these functions themselves.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, cast

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import is_connection_failure
from app.core.sql import driver_of


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


@dataclass(frozen=True)
class Db:
    """The request's one connection from the session pool, as SQLAlchemy sees it and as
    asyncpg is under it: for the routes that are not hot paths (those take `DriverDep`).

    Authentication and the work share it: the key lookup runs on `driver`, the work in a
    session on `connection`.
    """

    connection: AsyncConnection
    driver: asyncpg.Connection


async def get_db(request: Request) -> AsyncIterator[Db]:
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as connection:
        db = Db(connection, await driver_of(connection))
        try:
            yield db
        except BaseException as error:
            if is_connection_failure(error) and not connection.invalidated:
                await connection.invalidate()  # never back into the pool
            raise
        finally:
            # A transaction asyncpg still has open (an interrupted rollback on a hot path)
            # must not go back to the pool with the connection.
            leaked = (
                not connection.invalidated
                and not connection.in_transaction()
                and db.driver.is_in_transaction()
            )
            if leaked:
                await connection.invalidate()


# scope="function": released when the endpoint returns, before a streamed body is sent.
DbDep = Annotated[Db, Depends(get_db, scope="function")]


@asynccontextmanager
async def driver_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A connection from the driver pool (app/core/db.py `open_driver_pool`), for the hot
    paths, outside any transaction block: each of their statements is its own transaction.
    A connection that failed is closed by asyncpg on release, never reused."""
    pool: asyncpg.Pool[asyncpg.Record] = request.app.state.driver_pool
    timeout_s: float = request.app.state.settings.db_pool_timeout_s
    # asyncio.timeout, not acquire(timeout=): asyncpg's runs the wait in a task of its own,
    # an event-loop turn per request even when a connection is free. TimeoutError: a 503.
    async with asyncio.timeout(timeout_s):
        proxy = await pool.acquire()
    try:
        yield cast(asyncpg.Connection, proxy)
    finally:
        await pool.release(proxy)


async def get_driver(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with driver_connection(request) as driver:
        yield driver


# scope="function": released when the endpoint returns, before the response is sent.
DriverDep = Annotated[asyncpg.Connection, Depends(get_driver, scope="function")]


async def get_session(db: DbDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed before the response is sent, rolled back on error."""
    async with AsyncSession(db.connection, expire_on_commit=False) as session, session.begin():
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
# scope="function": the commit happens before the response leaves, so a 2xx means "committed".
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
