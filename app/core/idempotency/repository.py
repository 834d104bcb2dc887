"""The `idempotencyRequests` table: claims on keys and the responses stored under them."""

import uuid
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.sql import Statement

# The claim bounds its own wait for a concurrent holder of the key (`lock_timeout`, local
# to the transaction) in the same round trip; the caller's next statement lifts the bound.
CLAIM = Statement("""
    WITH bounded AS (SELECT set_config('lock_timeout', :wait_ms, true))
    INSERT INTO "idempotencyRequests" ("scope", "key", "method", "path", "fingerprint")
    SELECT :scope, :key, :method, :path, :fingerprint FROM bounded
    ON CONFLICT ("scope", "key") DO NOTHING
    RETURNING "id"
""")
UNBOUND_LOCKS = Statement("SET LOCAL lock_timeout = 0")
STORED = Statement("""
    SELECT "method", "path", "fingerprint", "responseStatus", "responseBody"
    FROM "idempotencyRequests" WHERE "scope" = :scope AND "key" = :key
""")
RECORD = Statement("""
    UPDATE "idempotencyRequests"
    SET "responseStatus" = :status, "responseBody" = :body WHERE "id" = :id
""")


async def stored_on_driver(
    driver: asyncpg.Connection, scope: str, key: str
) -> asyncpg.Record | None:
    return await STORED.fetchrow(driver, scope=scope, key=key)


async def claim(session: AsyncSession, params: dict[str, Any]) -> uuid.UUID | None:
    """CLAIM in the session's transaction, then lift the lock bound it set."""
    claimed: uuid.UUID | None = (await session.execute(CLAIM.text, params)).scalar_one_or_none()
    await session.execute(UNBOUND_LOCKS.text)
    return claimed


async def stored(session: AsyncSession, scope: str, key: str) -> dict[str, Any]:
    result = await session.execute(STORED.text, {"scope": scope, "key": key})
    return dict(result.mappings().one())


async def record(session: AsyncSession, claim_id: uuid.UUID, status: int, body: str) -> None:
    """Store the response under the claim (in the same transaction as the work)."""
    await session.execute(RECORD.text, {"id": claim_id, "status": status, "body": body})
