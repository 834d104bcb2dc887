"""Every query the backup code runs, on a plain asyncpg connection."""

import asyncpg

from app.ops.backup.pgtools import PgVersion

USER_TABLES = """
SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END,
       format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1
"""
SERVER_VERSION_NUM = "SHOW server_version_num"
SERVER_VERSION = "SHOW server_version"
DATABASE_SIZE = "SELECT pg_database_size(current_database())"
CURRENT_DATABASE = "SELECT current_database()"
EXPORT_SNAPSHOT = "SELECT pg_export_snapshot()"
ANALYZE = "ANALYZE"
# What a restore wraps the dump in as it pipes it into psql (restore.py says why).
BEGIN_RESTORE = b"BEGIN;\n"
COMMIT_RESTORE = b"\nCOMMIT;\n"


async def table_row_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Exact row counts of every user table, keyed by name (schema-qualified unless public)."""
    counts: dict[str, int] = {}
    for name, quoted in await conn.fetch(USER_TABLES):
        counts[name] = await conn.fetchval(f"SELECT count(*) FROM {quoted}")
    return counts


async def server_version(conn: asyncpg.Connection) -> PgVersion:
    number = int(await conn.fetchval(SERVER_VERSION_NUM))  # e.g. 150010, 90624
    text = await conn.fetchval(SERVER_VERSION)
    return PgVersion(text.split()[0], number // 10000)


async def database_size(conn: asyncpg.Connection) -> int:
    """The current database's size on disk, in bytes."""
    return int(await conn.fetchval(DATABASE_SIZE))


async def current_database(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval(CURRENT_DATABASE))


async def export_snapshot(conn: asyncpg.Connection) -> str:
    """The id of this transaction's snapshot, for `pg_dump --snapshot`; valid while it lasts."""
    return str(await conn.fetchval(EXPORT_SNAPSHOT))


async def analyze(conn: asyncpg.Connection) -> None:
    await conn.execute(ANALYZE)
