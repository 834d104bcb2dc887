"""The queries behind /metrics' database gauges."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.sql import Statement

JOBS_BY_STATUS = Statement('SELECT "status", count(*) FROM "videos" GROUP BY "status"')
VIDEOS_BYTES = Statement("SELECT pg_total_relation_size('\"videos\"')")
LEDGER_TOTALS = Statement(
    'SELECT "kind", count(*), COALESCE(sum("amount"), 0) FROM "creditTransactions" GROUP BY "kind"'
)


async def jobs_by_status(session: AsyncSession) -> dict[str, int]:
    return {row[0]: row[1] for row in await session.execute(JOBS_BY_STATUS.text)}


async def videos_table_bytes(session: AsyncSession) -> int:
    return int((await session.execute(VIDEOS_BYTES.text)).scalar_one())


async def ledger_totals(session: AsyncSession) -> list[tuple[str, int, int]]:
    """(kind, rows, sum of amounts) per ledger kind."""
    return [(r[0], r[1], r[2]) for r in await session.execute(LEDGER_TOTALS.text)]
