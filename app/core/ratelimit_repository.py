"""The `rateLimits` table: one token bucket per key, shared by every replica."""

from typing import Any

import asyncpg

from app.core.sql import Statement

# The tokens a bucket holds now: what was left, refilled for the time since, at most full.
REFILLED = """LEAST(CAST(:capacity AS float8),
    r."tokens" + EXTRACT(EPOCH FROM now() - r."updatedAt") * CAST(:per_second AS float8))"""


def take_token(source: str = "") -> str:
    """Take one token of the bucket `:key` if it has one; returns its "tokens" when taken.

    The row lock serializes a key's takers across replicas (ON CONFLICT DO UPDATE reads the
    newest version). `source`, a `FROM …` clause, orders it after another CTE: the create
    statement sets its lock bound first (app/videos/repository.py).
    """
    return f"""
        INSERT INTO "rateLimits" AS r ("key", "tokens", "updatedAt")
        SELECT :key, CAST(:capacity AS float8) - 1, now() {source}
        ON CONFLICT ("key") DO UPDATE SET "tokens" = {REFILLED} - 1, "updatedAt" = now()
        WHERE {REFILLED} >= 1
        RETURNING "tokens"
    """


# The tokens the bucket held before this statement (its snapshot), for Retry-After.
TOKENS_BEFORE = f"""(SELECT {REFILLED} FROM "rateLimits" r WHERE r."key" = :key)"""
TAKE = Statement(f"""
    WITH taken AS ({take_token()})
    SELECT EXISTS (SELECT FROM taken) AS allowed, {TOKENS_BEFORE} AS tokens
""")


async def take(driver: asyncpg.Connection, bucket: dict[str, Any]) -> tuple[bool, float | None]:
    """Whether a token was taken, and the tokens the bucket held before (None: a new one)."""
    row = await TAKE.fetchrow(driver, **bucket)
    assert row is not None
    return bool(row["allowed"]), row["tokens"]
