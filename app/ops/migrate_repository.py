"""Every query the migration runner runs: Prisma's history table and its advisory lock."""

import uuid
from datetime import datetime

import asyncpg

# Prisma's own advisory-lock key: our deploys and Prisma's exclude each other too.
PRISMA_ADVISORY_LOCK_KEY = 72707369
LOCK_WAIT = "5min"

CREATE_HISTORY_TABLE = """
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)
"""

HISTORY_EXISTS = """SELECT to_regclass('"_prisma_migrations"') IS NOT NULL"""

HISTORY_ROWS = """
SELECT "migration_name", "checksum", "finished_at", "rolled_back_at", "logs"
FROM "_prisma_migrations"
ORDER BY "started_at", "migration_name"
"""

SET_LOCK_WAIT = f"SET lock_timeout = '{LOCK_WAIT}'"
TAKE_LOCK = "SELECT pg_advisory_lock($1)"
RESET_LOCK_WAIT = "RESET lock_timeout"

CLOCK = "SELECT clock_timestamp()"

RECORD_APPLIED = """INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at",
   "migration_name", "logs", "rolled_back_at", "started_at", "applied_steps_count")
   VALUES ($1, $2, clock_timestamp(), $3, NULL, NULL, $4, 1)"""

RECORD_FAILED = """INSERT INTO "_prisma_migrations" ("id", "checksum", "migration_name", "logs",
   "started_at", "applied_steps_count") VALUES ($1, $2, $3, $4, $5, 0)"""

MARK_ROLLED_BACK = """UPDATE "_prisma_migrations" SET "rolled_back_at" = now()
   WHERE "migration_name" = $1
     AND "finished_at" IS NULL AND "rolled_back_at" IS NULL"""

APPLICATION_TABLES = """SELECT quote_ident(tablename) AS name FROM pg_tables
   WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'"""


async def create_history_table(conn: asyncpg.Connection) -> None:
    await conn.execute(CREATE_HISTORY_TABLE)


async def history_exists(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(HISTORY_EXISTS))


async def history_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every row of `_prisma_migrations`, oldest first; the table must exist."""
    return await conn.fetch(HISTORY_ROWS)


async def wait_for_migration_lock(conn: asyncpg.Connection) -> None:
    """Take Prisma's session-level advisory lock, waiting at most LOCK_WAIT for it."""
    await conn.execute(SET_LOCK_WAIT)
    await conn.execute(TAKE_LOCK, PRISMA_ADVISORY_LOCK_KEY)
    await conn.execute(RESET_LOCK_WAIT)


async def clock_timestamp(conn: asyncpg.Connection) -> datetime:
    now: datetime = await conn.fetchval(CLOCK)
    return now


async def record_applied(
    conn: asyncpg.Connection, name: str, checksum: str, started_at: datetime
) -> None:
    await conn.execute(RECORD_APPLIED, str(uuid.uuid4()), checksum, name, started_at)


async def record_failed(
    conn: asyncpg.Connection, name: str, checksum: str, logs: str, started_at: datetime
) -> None:
    """A failure as Prisma records one (finished_at NULL), which blocks later deploys."""
    await conn.execute(RECORD_FAILED, str(uuid.uuid4()), checksum, name, logs, started_at)


async def mark_rolled_back(conn: asyncpg.Connection, name: str) -> bool:
    """Whether a failed migration called `name` was there to be marked as rolled back."""
    return await conn.execute(MARK_ROLLED_BACK, name) != "UPDATE 0"


async def application_tables(conn: asyncpg.Connection) -> list[str]:
    """The quoted names of the tables in `public`, but for the migration history."""
    return [row["name"] for row in await conn.fetch(APPLICATION_TABLES)]


async def has_rows(conn: asyncpg.Connection, quoted_table: str) -> bool:
    return bool(await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {quoted_table})"))


async def vacuum_analyze(conn: asyncpg.Connection, table: str) -> None:
    await conn.execute(f'VACUUM ANALYZE "{table}"')
