"""Request-scoped dependencies, declared once as `Annotated` aliases.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, and that
hand-off costs more than these functions themselves.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.sql import driver_of


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


async def get_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """The request's one pooled connection: authentication and the work share it."""
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as connection:
        try:
            yield connection
        finally:
            # The hot paths drive transactions on asyncpg directly; if one was left open
            # (an interrupted rollback), the connection must not go back to the pool.
            leaked = (
                not connection.invalidated
                and not connection.in_transaction()
                and (await driver_of(connection)).is_in_transaction()
            )
            if leaked:
                await connection.invalidate()


# scope="function": released when the endpoint returns, before a streamed body is sent.
ConnectionDep = Annotated[AsyncConnection, Depends(get_connection, scope="function")]


async def get_session(connection: ConnectionDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed before the response is sent, rolled back on error."""
    async with AsyncSession(connection, expire_on_commit=False) as session, session.begin():
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
# scope="function": the commit happens before the response leaves, so a 2xx means "committed".
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
