"""The `appFlags` table: switches every replica reads (maintenance mode)."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.sql import Statement

READ = Statement('SELECT "enabled" FROM "appFlags" WHERE "key" = :key')
WRITE = Statement("""
    INSERT INTO "appFlags" ("key", "enabled", "reason", "updatedAt")
    VALUES (:key, :enabled, :reason, now())
    ON CONFLICT ("key") DO UPDATE
    SET "enabled" = EXCLUDED."enabled", "reason" = EXCLUDED."reason", "updatedAt" = now()
""")


async def flag_enabled(session: AsyncSession, key: str) -> bool:
    """Whether the flag is on; a flag never set is off."""
    return bool((await session.execute(READ.text, {"key": key})).scalar_one_or_none())


async def set_flag(session: AsyncSession, key: str, enabled: bool, reason: str | None) -> None:
    await session.execute(WRITE.text, {"key": key, "enabled": enabled, "reason": reason})
