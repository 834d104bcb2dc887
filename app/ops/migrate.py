"""Forward-only SQL migrations kept in Prisma's layout and history table.

`migrations/<timestamp>_<name>/migration.sql`, applied in name order. History lives in
`_prisma_migrations` with Prisma's own columns, so a database Prisma migrated is taken over
as-is and `prisma migrate deploy` can still read what we wrote.
"""

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg

from app.ops import migrate_repository


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
    if not await migrate_repository.history_exists(conn):
        return []
    return [HistoryRow(**dict(r)) for r in await migrate_repository.history_rows(conn)]


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


async def deploy(dsn: str, migrations_dir: Path) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; return their names.

    Holds Prisma's advisory lock throughout, so a concurrent deploy waits and then
    finds nothing left to do. Refuses on failed or modified history before applying anything.
    """
    files = load_migrations(migrations_dir)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate_repository.wait_for_migration_lock(conn)
        await migrate_repository.create_history_table(conn)
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
    started_at = await migrate_repository.clock_timestamp(conn)
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await migrate_repository.record_applied(
                conn, migration.name, migration.checksum, started_at
            )
    except asyncpg.PostgresError as error:
        # The migration's own transaction rolled back; record the failure as Prisma does
        # (finished_at NULL) so later deploys stop until someone resolves it.
        await migrate_repository.record_failed(
            conn, migration.name, migration.checksum, _explain(migration.name, error), started_at
        )
        raise MigrationError(_explain(migration.name, error)) from error


async def resolve_rolled_back(dsn: str, name: str) -> None:
    """Mark a failed migration as rolled back so the next deploy retries it (Prisma's resolve)."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate_repository.wait_for_migration_lock(conn)
        if not await migrate_repository.mark_rolled_back(conn, name):
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
        for table in await migrate_repository.application_tables(conn):
            if await migrate_repository.has_rows(conn, table):
                return True
        return False
    finally:
        await conn.close()


async def vacuum_analyze(dsn: str, tables: list[str]) -> None:
    """Fresh statistics for new tables, so the planner doesn't guess on their first queries."""
    conn = await asyncpg.connect(dsn)
    try:
        for table in tables:
            await migrate_repository.vacuum_analyze(conn, table)
    finally:
        await conn.close()
