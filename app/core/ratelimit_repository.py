"""The `rateLimits` table: one token bucket per key, shared by every replica."""

import asyncpg

from app.core.sql import Statement

# The tokens a bucket holds now: what was left, refilled for the time since, at most full.
REFILLED = """LEAST(CAST(:capacity AS float8),
    r."tokens" + EXTRACT(EPOCH FROM now() - r."updatedAt") * CAST(:per_second AS float8))"""
# Take one token if there is one, in one statement: the row lock serializes a key's takers
# across replicas. The SELECT reads the bucket as it was before (the statement's snapshot).
TAKE = Statement(f"""
    WITH taken AS (
        INSERT INTO "rateLimits" AS r ("key", "tokens", "updatedAt")
        VALUES (:key, CAST(:capacity AS float8) - 1, now())
        ON CONFLICT ("key") DO UPDATE SET "tokens" = {REFILLED} - 1, "updatedAt" = now()
        WHERE {REFILLED} >= 1
        RETURNING "tokens"
    )
    SELECT EXISTS (SELECT FROM taken) AS allowed,
           (SELECT {REFILLED} FROM "rateLimits" r WHERE r."key" = :key) AS tokens
""")


async def take(
    driver: asyncpg.Connection, key: str, capacity: int, per_second: float
) -> tuple[bool, float]:
    """Whether a token was taken, and the tokens the bucket held before (None: a new one)."""
    row = await TAKE.fetchrow(driver, key=key, capacity=capacity, per_second=per_second)
    assert row is not None
    return bool(row["allowed"]), float(row["tokens"] if row["tokens"] is not None else capacity)
