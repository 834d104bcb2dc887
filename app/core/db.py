"""Async engine and the one-session-per-unit-of-work helpers."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings

logger = logging.getLogger(__name__)


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.require_database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        # No pool_pre_ping: it costs a BEGIN/ROLLBACK round trip on every checkout. A
        # connection the server closed is caught for free below; one that dies mid-request
        # (or just before asyncpg saw the close) fails that request with a retryable 503 and
        # is discarded (app/core/deps.py `get_db`).
        connect_args={"timeout": settings.health_timeout_s, "server_settings": {"timezone": "UTC"}},
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # asyncpg notices the server closing the socket (restart, idle timeout) as it happens;
    # DisconnectionError makes the pool drop this one and hand out another.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")


async def warm_pool(engine: AsyncEngine, size: int) -> int:
    """Open `size` pooled connections now, so none is opened on a request's path later.

    Opening one (TCP, an SSL attempt, SQLAlchemy's codec setup) costs tens of milliseconds,
    which a request that finds the pool short would wait out: the tail-latency spikes in
    bench/README.md. A database that is down does not stop the start: health says so, and
    the pool fills on demand once it is back. Returns how many opened.
    """
    opened = await asyncio.gather(*(engine.connect() for _ in range(size)), return_exceptions=True)
    connections = [c for c in opened if isinstance(c, AsyncConnection)]
    for connection in connections:
        await connection.close()  # back to the pool, still open
    if len(connections) < size:
        failure = next(e for e in opened if isinstance(e, BaseException))
        logger.warning(
            "pool warm-up opened %d of %d connections: %s", len(connections), size, failure
        )
    return len(connections)


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """A driver connection goes back to the pool as it is: the hot paths leave no session
    state (their settings are local to a transaction, and asyncpg rolls back any transaction
    left open before this runs). asyncpg's default reset would cost a round trip per request."""


async def open_driver_pool(settings: Settings) -> "asyncpg.Pool[asyncpg.Record]":
    """asyncpg's own pool for the hot paths (authentication, creates, quotes, webhooks):
    its checkout costs a fraction of SQLAlchemy's (bench/README.md). Opened at start-up like
    the session pool (`warm_pool`), and as forgiving of a database that is down."""
    url = make_url(settings.require_database_url()).set(drivername="postgresql")
    pool = await asyncpg.create_pool(
        url.render_as_string(hide_password=False),
        min_size=0,  # opened below, tolerating a database that is down
        max_size=settings.db_driver_pool_size,
        max_inactive_connection_lifetime=0,  # never closed for idling: reopening is slow
        reset=_keep_session,
        timeout=settings.health_timeout_s,
        server_settings={"timezone": "UTC"},
    )
    size = settings.db_driver_pool_size
    acquired = await asyncio.gather(*(pool.acquire() for _ in range(size)), return_exceptions=True)
    for connection in acquired:
        if not isinstance(connection, BaseException):
            await pool.release(connection)
    failures = [error for error in acquired if isinstance(error, BaseException)]
    if failures:
        logger.warning(
            "driver pool opened %d of %d connections: %s", size - len(failures), size, failures[0]
        )
    return pool


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commit once at the end, roll back on any exception."""
    async with sessions() as session, session.begin():
        yield session
