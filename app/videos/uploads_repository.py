"""Every query over `uploads`: the images users stored for image-to-video."""

import uuid
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.sql import Statement

INSERT = Statement("""
    INSERT INTO "uploads" ("id", "userId", "key", "contentType", "sizeBytes", "width", "height",
        "sha256", "createdAt")
    VALUES (:id, :user_id, :key, :content_type, :size_bytes, :width, :height, :sha256, :now)
""")
DELETE = Statement('DELETE FROM "uploads" WHERE "id" = :id')
KEY_OF_OWNED = Statement('SELECT "key" FROM "uploads" WHERE "id" = :id AND "userId" = :user_id')
KEY_OF = Statement('SELECT "key" FROM "uploads" WHERE "id" = :id')
ALL_KEYS = Statement('SELECT "key" FROM "uploads"')


async def insert(driver: asyncpg.Connection, **values: Any) -> None:
    """One statement on the driver: its own transaction."""
    await INSERT.execute(driver, **values)


async def delete(driver: asyncpg.Connection, upload_id: uuid.UUID) -> None:
    await DELETE.execute(driver, id=upload_id)


async def key_of_owned(
    driver: asyncpg.Connection, upload_id: uuid.UUID, user_id: uuid.UUID
) -> str | None:
    """The upload's media key when `user_id` owns it (the create's check), else None."""
    key: str | None = await KEY_OF_OWNED.fetchval(driver, id=upload_id, user_id=user_id)
    return key


async def key_of(session: AsyncSession, upload_id: uuid.UUID) -> str | None:
    return (await session.execute(KEY_OF.text, {"id": upload_id})).scalar_one_or_none()


async def all_keys(session: AsyncSession) -> set[str]:
    return {row[0] for row in await session.execute(ALL_KEYS.text)}
