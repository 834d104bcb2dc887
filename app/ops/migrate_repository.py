"""Every query the migration runner runs: Prisma's history table and its advisory lock."""

import uuid
from datetime import datetime

import asyncpg

from app.core.sql import Statement

# Prisma's own advisory-lock key: our deploys and Prisma's exclude each other too.
PRISMA_ADVISORY_LOCK_KEY = 72707369
LOCK_WAIT = "5min"

CREATE_HISTORY_TABLE = Statement("""
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
""")

HISTORY_EXISTS = Statement("""SELECT to_regclass('"_prisma_migrations"') IS NOT NULL""")

HISTORY_ROWS = Statement("""
SELECT "migration_name", "checksum", "finished_at", "rolled_back_at", "logs"
FROM "_prisma_migrations"
ORDER BY "started_at", "migration_name"
""")

SET_LOCK_WAIT = Statement(f"SET lock_timeout = '{LOCK_WAIT}'")
TAKE_LOCK = Statement("SELECT pg_advisory_lock(:key)")
RESET_LOCK_WAIT = Statement("RESET lock_timeout")

CLOCK = Statement("SELECT clock_timestamp()")

RECORD_APPLIED = Statement("""INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at",
   "migration_name", "logs", "rolled_back_at", "started_at", "applied_steps_count")
   VALUES (:id, :checksum, clock_timestamp(), :name, NULL, NULL, :started_at, 1)""")

RECORD_FAILED = Statement("""INSERT INTO "_prisma_migrations" ("id", "checksum", "migration_name",
   "logs", "started_at", "applied_steps_count") VALUES (:id, :checksum, :name, :logs,
   :started_at, 0)""")

MARK_ROLLED_BACK = Statement("""UPDATE "_prisma_migrations" SET "rolled_back_at" = now()
   WHERE "migration_name" = :name
     AND "finished_at" IS NULL AND "rolled_back_at" IS NULL""")

# Tables that hold the application's data: not the migration history, nor the metrics
# snapshot the first /metrics scrape writes (app/ops/metrics.py), which no backup protects.
APPLICATION_TABLES = Statement("""SELECT quote_ident(tablename) AS name FROM pg_tables
   WHERE schemaname = 'public' AND tablename NOT IN ('_prisma_migrations', 'metricsSnapshot')""")


async def create_history_table(conn: asyncpg.Connection) -> None:
    await CREATE_HISTORY_TABLE.execute(conn)


async def history_exists(conn: asyncpg.Connection) -> bool:
    return bool(await HISTORY_EXISTS.fetchval(conn))


async def history_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every row of `_prisma_migrations`, oldest first; the table must exist."""
    return await HISTORY_ROWS.fetch(conn)


async def wait_for_migration_lock(conn: asyncpg.Connection) -> None:
    """Take Prisma's session-level advisory lock, waiting at most LOCK_WAIT for it."""
    await SET_LOCK_WAIT.execute(conn)
    await TAKE_LOCK.execute(conn, key=PRISMA_ADVISORY_LOCK_KEY)
    await RESET_LOCK_WAIT.execute(conn)


async def clock_timestamp(conn: asyncpg.Connection) -> datetime:
    now: datetime = await CLOCK.fetchval(conn)
    return now


async def record_applied(
    conn: asyncpg.Connection, name: str, checksum: str, started_at: datetime
) -> None:
    await RECORD_APPLIED.execute(
        conn, id=str(uuid.uuid4()), checksum=checksum, name=name, started_at=started_at
    )


async def record_failed(
    conn: asyncpg.Connection, name: str, checksum: str, logs: str, started_at: datetime
) -> None:
    """A failure as Prisma records one (finished_at NULL), which blocks later deploys."""
    await RECORD_FAILED.execute(
        conn, id=str(uuid.uuid4()), checksum=checksum, name=name, logs=logs, started_at=started_at
    )


async def mark_rolled_back(conn: asyncpg.Connection, name: str) -> bool:
    """Whether a failed migration called `name` was there to be marked as rolled back."""
    return await MARK_ROLLED_BACK.execute(conn, name=name) != "UPDATE 0"


async def application_tables(conn: asyncpg.Connection) -> list[str]:
    """The quoted names of the tables in `public`, but for the migration history."""
    return [row["name"] for row in await APPLICATION_TABLES.fetch(conn)]


async def has_rows(conn: asyncpg.Connection, quoted_table: str) -> bool:
    return bool(await Statement(f"SELECT EXISTS (SELECT 1 FROM {quoted_table})").fetchval(conn))


async def vacuum_analyze(conn: asyncpg.Connection, table: str) -> None:
    await Statement(f'VACUUM ANALYZE "{table}"').execute(conn)
