"""Forward-only SQL migrations kept in Prisma's layout and history table.

`migrations/<timestamp>_<name>/migration.sql`, applied in name order. History lives in
`_prisma_migrations` with Prisma's own columns, so a database Prisma migrated is taken over
as-is and `prisma migrate deploy` can still read what we wrote.
"""

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

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


class MigrationError(Exception):
    """A deploy or resolve that must stop; the message says what to do."""


@dataclass(frozen=True)
class MigrationFile:
    name: str
    sql: str
    checksum: str

    @classmethod
    def read(cls, directory: Path) -> "MigrationFile":
        raw = (directory / "migration.sql").read_bytes()
        return cls(directory.name, raw.decode("utf-8"), hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True)
class HistoryRow:
    migration_name: str
    checksum: str
    finished_at: datetime | None
    rolled_back_at: datetime | None
    logs: str | None

    @property
    def is_applied(self) -> bool:
        return self.finished_at is not None and self.rolled_back_at is None

    @property
    def is_failed(self) -> bool:
        return self.finished_at is None and self.rolled_back_at is None


@dataclass
class MigrationStatus:
    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    failed: list[HistoryRow] = field(default_factory=list)
    missing_locally: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not (self.pending or self.modified or self.failed or self.missing_locally)


def load_migrations(migrations_dir: Path) -> list[MigrationFile]:
    if not migrations_dir.is_dir():
        raise MigrationError(f"migrations directory not found: {migrations_dir}")
    return [
        MigrationFile.read(d)
        for d in sorted(migrations_dir.iterdir())
        if d.is_dir() and (d / "migration.sql").is_file()
    ]


def compute_status(files: list[MigrationFile], rows: list[HistoryRow]) -> MigrationStatus:
    status = MigrationStatus()
    applied = {r.migration_name: r for r in rows if r.is_applied}
    failed = {r.migration_name: r for r in rows if r.is_failed}
    on_disk = {f.name for f in files}
    for f in files:
        row = applied.get(f.name)
        if row is None:
            if f.name not in failed:
                status.pending.append(f.name)
        elif row.checksum != f.checksum:
            status.modified.append(f.name)
        else:
            status.applied.append(f.name)
    status.failed = list(failed.values())
    status.missing_locally = sorted(name for name in applied if name not in on_disk)
    return status


async def read_history(conn: asyncpg.Connection) -> list[HistoryRow]:
    if not await conn.fetchval(HISTORY_EXISTS):
        return []
    return [HistoryRow(**dict(r)) for r in await conn.fetch(HISTORY_ROWS)]


async def read_status(dsn: str, migrations_dir: Path) -> MigrationStatus:
    files = load_migrations(migrations_dir)
    conn = await asyncpg.connect(dsn)
    try:
        return compute_status(files, await read_history(conn))
    finally:
        await conn.close()


def _refusal(status: MigrationStatus) -> str | None:
    if status.failed:
        row = status.failed[0]
        return (
            f"migration `{row.migration_name}` failed and blocks further deploys (Prisma P3009).\n"
            f"Its error was: {row.logs}\n"
            f"Fix the database by hand, then run: vidgen migrate resolve --rolled-back "
            f"{row.migration_name}"
        )
    if status.modified:
        names = ", ".join(status.modified)
        return (
            f"applied migration(s) changed on disk since they were applied: {names}. "
            "Applied migrations are never edited: restore the file and add a new migration."
        )
    return None


def _explain(name: str, error: Exception) -> str:
    message = f"migration `{name}` failed: {error}"
    if "gen_random_uuid" in str(error):
        message += "\nThis PostgreSQL lacks gen_random_uuid(); run: CREATE EXTENSION pgcrypto;"
    return message


async def _lock(conn: asyncpg.Connection) -> None:
    await conn.execute(f"SET lock_timeout = '{LOCK_WAIT}'")
    await conn.execute("SELECT pg_advisory_lock($1)", PRISMA_ADVISORY_LOCK_KEY)
    await conn.execute("RESET lock_timeout")


async def deploy(dsn: str, migrations_dir: Path) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; return their names.

    Holds Prisma's advisory lock throughout, so a concurrent deploy waits and then
    finds nothing left to do. Refuses on failed or modified history before applying anything.
    """
    files = load_migrations(migrations_dir)
    conn = await asyncpg.connect(dsn)
    try:
        await _lock(conn)
        await conn.execute(CREATE_HISTORY_TABLE)
        status = compute_status(files, await read_history(conn))
        if (refusal := _refusal(status)) is not None:
            raise MigrationError(refusal)
        applied: list[str] = []
        for migration in (f for f in files if f.name in status.pending):
            await _apply_one(conn, migration)
            applied.append(migration.name)
        return applied
    finally:
        await conn.close()  # also releases the session-level advisory lock


async def _apply_one(conn: asyncpg.Connection, migration: MigrationFile) -> None:
    started_at = await conn.fetchval("SELECT clock_timestamp()")
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                """INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at",
                   "migration_name", "logs", "rolled_back_at", "started_at", "applied_steps_count")
                   VALUES ($1, $2, clock_timestamp(), $3, NULL, NULL, $4, 1)""",
                str(uuid.uuid4()),
                migration.checksum,
                migration.name,
                started_at,
            )
    except asyncpg.PostgresError as error:
        # The migration's own transaction rolled back; record the failure as Prisma does
        # (finished_at NULL) so later deploys stop until someone resolves it.
        await conn.execute(
            """INSERT INTO "_prisma_migrations" ("id", "checksum", "migration_name", "logs",
               "started_at", "applied_steps_count") VALUES ($1, $2, $3, $4, $5, 0)""",
            str(uuid.uuid4()),
            migration.checksum,
            migration.name,
            _explain(migration.name, error),
            started_at,
        )
        raise MigrationError(_explain(migration.name, error)) from error


async def resolve_rolled_back(dsn: str, name: str) -> None:
    """Mark a failed migration as rolled back so the next deploy retries it (Prisma's resolve)."""
    conn = await asyncpg.connect(dsn)
    try:
        await _lock(conn)
        result = await conn.execute(
            """UPDATE "_prisma_migrations" SET "rolled_back_at" = now()
               WHERE "migration_name" = $1
                 AND "finished_at" IS NULL AND "rolled_back_at" IS NULL""",
            name,
        )
        if result == "UPDATE 0":
            raise MigrationError(f"no failed migration named `{name}` to mark as rolled back")
    finally:
        await conn.close()


CREATED_TABLE = re.compile(r'CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"([^"]+)"', re.IGNORECASE)


def tables_created(migrations_dir: Path, names: list[str]) -> list[str]:
    """The tables the named migrations create, in order."""
    files = {f.name: f for f in load_migrations(migrations_dir)}
    return [table for name in names for table in CREATED_TABLE.findall(files[name].sql)]


async def holds_data(dsn: str) -> bool:
    """Whether any application table has a row (a fresh or empty database needs no backup)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            """SELECT quote_ident(tablename) AS name FROM pg_tables
               WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'"""
        )
        for table in tables:
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table['name']})"):
                return True
        return False
    finally:
        await conn.close()


async def vacuum_analyze(dsn: str, tables: list[str]) -> None:
    """Fresh statistics for new tables, so the planner doesn't guess on their first queries."""
    conn = await asyncpg.connect(dsn)
    try:
        for table in tables:
            await conn.execute(f'VACUUM ANALYZE "{table}"')
    finally:
        await conn.close()
