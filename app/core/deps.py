"""Request-scoped dependencies, declared once as `Annotated` aliases.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, and that
hand-off costs more than these functions themselves.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

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
    """The request's one pooled connection, as SQLAlchemy sees it and as asyncpg is under it.

    Authentication and the work share it. The hot paths (creating a video, webhooks) run
    their statements on `driver`; everything else goes through a session on `connection`.
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


async def get_session(db: DbDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed before the response is sent, rolled back on error."""
    async with AsyncSession(db.connection, expire_on_commit=False) as session, session.begin():
        yield session


async def get_driver_transaction(db: DbDep) -> AsyncIterator[asyncpg.Connection]:
    """The request's unit of work on the hot paths' driver: BEGIN, then COMMIT before the
    response is sent, or ROLLBACK on any error. Declared after the caller's authentication,
    so the key lookup stays outside the transaction."""
    async with db.driver.transaction():
        yield db.driver


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": committed before the response leaves, so a 2xx means "committed".
DriverTransactionDep = Annotated[
    asyncpg.Connection, Depends(get_driver_transaction, scope="function")
]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
# scope="function": the commit happens before the response leaves, so a 2xx means "committed".
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
