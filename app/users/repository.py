"""Every query over `users` (the table the frontend's app shares)."""

import uuid

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.core.sql import Statement
from app.users.models import User

BY_KEY_HASH = Statement(
    'SELECT "id", "isAdmin", "apiKeyHash" FROM "users" WHERE "apiKeyHash" = :digest'
)


BY_ID = Statement('SELECT "id", "isAdmin" FROM "users" WHERE "id" = :user_id')


async def caller_row_by_id(driver: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record | None:
    """The id and admin flag of the user `user_id` (a signed-in token's `sub`)."""
    return await BY_ID.fetchrow(driver, user_id=user_id)


async def caller_row_by_key_hash(driver: asyncpg.Connection, digest: str) -> asyncpg.Record | None:
    """The id, admin flag and key hash of the user whose API key hashes to `digest`."""
    return await BY_KEY_HASH.fetchrow(driver, digest=digest)


async def add(session: AsyncSession, user: User) -> None:
    """Insert `user` (flushed: a taken email raises IntegrityError here)."""
    session.add(user)
    await session.flush()


async def get_by_email_for_update(session: AsyncSession, email: str) -> User | None:
    query = select(User).where(col(User.email) == email).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_id_or_email(
    session: AsyncSession, user_id: uuid.UUID | None, email: str
) -> User | None:
    condition = col(User.id) == user_id if user_id is not None else col(User.email) == email
    return (await session.execute(select(User).where(condition))).scalar_one_or_none()


async def flush(session: AsyncSession) -> None:
    """Write pending changes to loaded users (e.g. a new key hash) within the transaction."""
    await session.flush()
