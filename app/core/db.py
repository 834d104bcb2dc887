"""Async engine and the one-session-per-unit-of-work helpers."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
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


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commit once at the end, roll back on any exception."""
    async with sessions() as session, session.begin():
        yield session
