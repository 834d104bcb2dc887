"""Every query the backup code runs, on a plain asyncpg connection."""

import asyncpg

from app.core.sql import Statement
from app.ops.backup.pgtools import PgVersion

USER_TABLES = Statement("""
SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END,
       format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1
""")
SERVER_VERSION_NUM = Statement("SHOW server_version_num")
SERVER_VERSION = Statement("SHOW server_version")
DATABASE_SIZE = Statement("SELECT pg_database_size(current_database())")
CURRENT_DATABASE = Statement("SELECT current_database()")
EXPORT_SNAPSHOT = Statement("SELECT pg_export_snapshot()")
ANALYZE = Statement("ANALYZE")
# What a restore wraps the dump in as it pipes it into psql (restore.py says why).
BEGIN_RESTORE = b"BEGIN;\n"
COMMIT_RESTORE = b"\nCOMMIT;\n"


async def table_row_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Exact row counts of every user table, keyed by name (schema-qualified unless public)."""
    counts: dict[str, int] = {}
    for name, quoted in await USER_TABLES.fetch(conn):
        counts[name] = await Statement(f"SELECT count(*) FROM {quoted}").fetchval(conn)
    return counts


async def server_version(conn: asyncpg.Connection) -> PgVersion:
    number = int(await SERVER_VERSION_NUM.fetchval(conn))  # e.g. 150010, 90624
    text = await SERVER_VERSION.fetchval(conn)
    return PgVersion(text.split()[0], number // 10000)


async def database_size(conn: asyncpg.Connection) -> int:
    """The current database's size on disk, in bytes."""
    return int(await DATABASE_SIZE.fetchval(conn))


async def current_database(conn: asyncpg.Connection) -> str:
    return str(await CURRENT_DATABASE.fetchval(conn))


async def export_snapshot(conn: asyncpg.Connection) -> str:
    """The id of this transaction's snapshot, for `pg_dump --snapshot`; valid while it lasts."""
    return str(await EXPORT_SNAPSHOT.fetchval(conn))


async def analyze(conn: asyncpg.Connection) -> None:
    await ANALYZE.execute(conn)
