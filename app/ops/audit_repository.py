"""Every query `vidgen audit` runs: one per ledger invariant, and the totals it reports."""

from typing import Any

import asyncpg

from app.core.sql import Statement
from app.ops.metrics_repository import ACTIVE_LIST

# Each invariant's query returns the rows that break it; none means the invariant holds.
USERS_WHOSE_BALANCE_IS_NOT_THEIR_LEDGER_SUM = Statement("""
    SELECT u."id" AS user_id, u."email", u."creditBalance" AS balance,
           COALESCE(SUM(t."amount"), 0) AS ledger_sum
    FROM "users" u LEFT JOIN "creditTransactions" t ON t."userId" = u."id"
    GROUP BY u."id" HAVING u."creditBalance" <> COALESCE(SUM(t."amount"), 0)""")
USERS_WITH_A_NEGATIVE_BALANCE = Statement("""
    SELECT "id" AS user_id, "email", "creditBalance" AS balance FROM "users"
    WHERE "creditBalance" < 0""")
LEDGER_ROWS_WHOSE_BALANCE_AFTER_IS_NOT_THE_RUNNING_SUM = Statement("""
    SELECT * FROM (
        SELECT "id" AS transaction_id, "userId" AS user_id, "amount", "balanceAfter",
               SUM("amount") OVER (PARTITION BY "userId" ORDER BY "sequence") AS running_sum
        FROM "creditTransactions") t
    WHERE "balanceAfter" <> running_sum""")
REPEATED_ROLLS = Statement("""
    SELECT "userId" AS user_id, "period", COUNT(*) AS rolls FROM "creditTransactions"
    WHERE "kind" = 'roll' GROUP BY "userId", "period" HAVING COUNT(*) > 1""")
CHARGED_VIDEOS_WITHOUT_ONE_MATCHING_DEBIT = Statement("""
    SELECT v."id" AS video_id, v."creditsCharged", COUNT(t."id") AS debits,
           COALESCE(SUM(t."amount"), 0) AS debited
    FROM "videos" v
    LEFT JOIN "creditTransactions" t ON t."videoId" = v."id" AND t."kind" = 'debit'
    WHERE v."creditsCharged" > 0
    GROUP BY v."id" HAVING COUNT(t."id") <> 1 OR SUM(t."amount") <> -v."creditsCharged" """)
VIDEOS_WITH_WRONG_REFUNDS = Statement("""
    SELECT v."id" AS video_id, v."status", v."creditsCharged", COUNT(t."id") AS refunds,
           COALESCE(SUM(t."amount"), 0) AS refunded
    FROM "videos" v
    LEFT JOIN "creditTransactions" t ON t."videoId" = v."id" AND t."kind" = 'refund'
    GROUP BY v."id"
    HAVING CASE WHEN v."status" IN ('failed', 'canceled') AND v."creditsCharged" > 0
                THEN COUNT(t."id") <> 1 OR SUM(t."amount") <> v."creditsCharged"
                ELSE COUNT(t."id") <> 0 END""")
# The create's active-job cap reads the counter on the user's row (app/videos/repository.py).
USERS_WHOSE_ACTIVE_JOBS_ARE_NOT_THEIR_UNFINISHED_VIDEOS = Statement(f"""
    SELECT u."id" AS user_id, u."email", u."activeJobs" AS active_jobs,
           COUNT(v."id") AS unfinished_videos
    FROM "users" u
    LEFT JOIN "videos" v ON v."userId" = u."id"
        AND v."status" IN ({ACTIVE_LIST})
    GROUP BY u."id" HAVING u."activeJobs" <> COUNT(v."id")""")

# Recounting one user's active jobs (`vidgen recount-active-jobs`): the row lock first, so no
# create or finish of theirs is between its two statements; then the count, read with the
# snapshot of a statement that starts after the lock (READ COMMITTED).
LOCK_USER = Statement('SELECT "activeJobs" FROM "users" WHERE "id" = :user_id FOR UPDATE')
RECOUNT_ACTIVE_JOBS = Statement(f"""
    UPDATE "users" SET "activeJobs" = (
        SELECT count(*) FROM "videos" WHERE "userId" = :user_id AND "status" IN ({ACTIVE_LIST})
    )
    WHERE "id" = :user_id
    RETURNING "activeJobs"
""")

USER_COUNT = Statement('SELECT COUNT(*) FROM "users"')
LEDGER_ROW_COUNT = Statement('SELECT COUNT(*) FROM "creditTransactions"')


async def offending_rows(
    conn: asyncpg.Connection, invariant_query: Statement
) -> list[dict[str, Any]]:
    """The rows one of the invariant queries above returns, as dicts for the report."""
    return [dict(row) for row in await invariant_query.fetch(conn)]


async def recount_active_jobs(conn: asyncpg.Connection, user_id: Any) -> tuple[int, int]:
    """The user's counter before and after the recount, in one transaction."""
    async with conn.transaction():
        before = int(await LOCK_USER.fetchval(conn, user_id=user_id))
        after = int(await RECOUNT_ACTIVE_JOBS.fetchval(conn, user_id=user_id))
    return before, after


async def user_count(conn: asyncpg.Connection) -> int:
    return int(await USER_COUNT.fetchval(conn))


async def ledger_row_count(conn: asyncpg.Connection) -> int:
    return int(await LEDGER_ROW_COUNT.fetchval(conn))
