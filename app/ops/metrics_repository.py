"""The queries behind /metrics' database gauges (the design: app/ops/metrics.py)."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.core.sql import Statement
from app.videos.state import ACTIVE

# The predicate of the partial indexes of active jobs ("videos_active_nextAttemptAt_idx",
# "videos_userId_active_idx"), so the overdue count reads the few unfinished jobs only.
ACTIVE_LIST = ", ".join(f"'{status}'" for status in sorted(ACTIVE))

DATABASE_ANSWERS = Statement("SELECT 1")

READ_SNAPSHOT = Statement(
    """
    SELECT "gauges", "refreshedAt",
           "refreshedAt" <= now() - make_interval(secs => CAST(:refresh_s AS float8)) AS "stale"
    FROM "metricsSnapshot" WHERE "key" = 'database'
    """
)

# Stale from the start: the first scrape that finds it computes it.
CREATE_SNAPSHOT_ROW = Statement(
    """
    INSERT INTO "metricsSnapshot" ("key", "gauges", "refreshedAt")
    VALUES ('database', '{}', '1970-01-01T00:00:00Z') ON CONFLICT ("key") DO NOTHING
    """
)

# One statement, so its own short transaction. `claimed` is the row when it is stale and no
# other replica holds it (SKIP LOCKED: they read the row as it is rather than wait); the
# subqueries of SET run only when there is a row to update, so a replica that loses the race
# costs nothing (0.5 ms). At 1M videos and 1M ledger rows the refresh takes about 0.3 s of one
# core (serial: an UPDATE gets no parallel workers), nearly all of it the two full aggregates:
# an index-only scan of "videos_status_idx" (~0.1 s) and a scan of the ledger (~0.2 s).
REFRESH_SNAPSHOT = Statement(
    f"""
    WITH claimed AS (
        SELECT "key" FROM "metricsSnapshot"
        WHERE "key" = 'database'
          AND "refreshedAt" <= now() - make_interval(secs => CAST(:refresh_s AS float8))
        FOR UPDATE SKIP LOCKED
    )
    UPDATE "metricsSnapshot" AS snapshot SET "refreshedAt" = now(), "gauges" = jsonb_build_object(
        'jobs', (
            SELECT COALESCE(jsonb_object_agg(by_status."status", by_status."jobs"), '{{}}')
            FROM (SELECT "status", count(*) AS "jobs" FROM "videos" GROUP BY "status") AS by_status
        ),
        'jobs_overdue', (
            SELECT count(*) FROM "videos"
            WHERE "status" IN ({ACTIVE_LIST})
              AND "createdAt" < now() - make_interval(secs => CAST(:deadline_s AS float8))
        ),
        'videos_bytes', pg_total_relation_size('"videos"'),
        'ledger', (
            SELECT COALESCE(jsonb_object_agg(totals."kind", jsonb_build_array(totals."rows",
                                                                              totals."credits")),
                            '{{}}')
            FROM (SELECT "kind", count(*) AS "rows", COALESCE(sum("amount"), 0) AS "credits"
                  FROM "creditTransactions" GROUP BY "kind") AS totals
        )
    )
    FROM claimed WHERE snapshot."key" = claimed."key"
    RETURNING snapshot."gauges", snapshot."refreshedAt"
    """
)


async def database_answers(driver: asyncpg.Connection) -> bool:
    return bool(await DATABASE_ANSWERS.fetchval(driver))


@dataclass(frozen=True)
class StoredGauges:
    gauges: dict[str, Any]
    refreshed_at: datetime
    stale: bool  # older than the refresh interval, by the database's clock


async def read_snapshot(driver: asyncpg.Connection, *, refresh_s: float) -> StoredGauges | None:
    """The stored gauges and when they were computed (None: the row is missing)."""
    row = await READ_SNAPSHOT.fetchrow(driver, refresh_s=refresh_s)
    if row is None:
        return None
    return StoredGauges(_object(row["gauges"]), row["refreshedAt"], row["stale"])


async def create_snapshot_row(driver: asyncpg.Connection) -> None:
    await CREATE_SNAPSHOT_ROW.execute(driver)


async def refresh_snapshot_if_stale(
    driver: asyncpg.Connection, *, refresh_s: float, deadline_s: float
) -> StoredGauges | None:
    """Recompute the gauges when they are older than `refresh_s` and no other replica is
    recomputing them; None when there was nothing to do."""
    row = await REFRESH_SNAPSHOT.fetchrow(driver, refresh_s=refresh_s, deadline_s=deadline_s)
    return None if row is None else StoredGauges(_object(row["gauges"]), row["refreshedAt"], False)


def _object(value: str | dict[str, Any]) -> dict[str, Any]:
    """jsonb as asyncpg hands it over: text, or already decoded when a codec is set."""
    return json.loads(value) if isinstance(value, str) else value
