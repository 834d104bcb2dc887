"""What a backup test compares: the database's contents, and the files in a backup folder."""

from pathlib import Path

import asyncpg

from tests.support.helpers import libpq

Fingerprints = dict[str, tuple[int, str | None]]


async def fingerprints(url: str) -> Fingerprints:
    """Each table's row count and an md5 over all its rows in a fixed order."""
    conn = await asyncpg.connect(libpq(url))
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        result: Fingerprints = {}
        for (table,) in tables:
            row = await conn.fetchrow(
                f"""SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text))
                    FROM "{table}" t"""
            )
            result[table] = (row[0], row[1])
        return result
    finally:
        await conn.close()


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []
