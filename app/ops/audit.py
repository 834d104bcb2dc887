"""`vidgen audit`: check the ledger invariants of DESIGN §3 against the database."""

from dataclasses import dataclass, field
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Check:
    name: str
    sql: str


# Each query returns the offending rows; an empty result means the invariant holds.
CHECKS = (
    Check(
        "balance equals the sum of the user's ledger",
        """SELECT u."id" AS user_id, u."email", u."creditBalance" AS balance,
                  COALESCE(SUM(t."amount"), 0) AS ledger_sum
           FROM "users" u LEFT JOIN "creditTransactions" t ON t."userId" = u."id"
           GROUP BY u."id" HAVING u."creditBalance" <> COALESCE(SUM(t."amount"), 0)""",
    ),
    Check(
        "no negative balance",
        """SELECT "id" AS user_id, "email", "creditBalance" AS balance FROM "users"
           WHERE "creditBalance" < 0""",
    ),
    Check(
        "every balanceAfter equals the running sum",
        """SELECT * FROM (
               SELECT "id" AS transaction_id, "userId" AS user_id, "amount", "balanceAfter",
                      SUM("amount") OVER (PARTITION BY "userId" ORDER BY "sequence") AS running_sum
               FROM "creditTransactions") t
           WHERE "balanceAfter" <> running_sum""",
    ),
    Check(
        "at most one roll per user and period",
        """SELECT "userId" AS user_id, "period", COUNT(*) AS rolls FROM "creditTransactions"
           WHERE "kind" = 'roll' GROUP BY "userId", "period" HAVING COUNT(*) > 1""",
    ),
    Check(
        "every charged video has exactly one debit of its charge",
        """SELECT v."id" AS video_id, v."creditsCharged", COUNT(t."id") AS debits,
                  COALESCE(SUM(t."amount"), 0) AS debited
           FROM "videos" v
           LEFT JOIN "creditTransactions" t ON t."videoId" = v."id" AND t."kind" = 'debit'
           WHERE v."creditsCharged" > 0
           GROUP BY v."id" HAVING COUNT(t."id") <> 1 OR SUM(t."amount") <> -v."creditsCharged" """,
    ),
    Check(
        "failed and canceled videos are refunded exactly once, others never",
        """SELECT v."id" AS video_id, v."status", v."creditsCharged", COUNT(t."id") AS refunds,
                  COALESCE(SUM(t."amount"), 0) AS refunded
           FROM "videos" v
           LEFT JOIN "creditTransactions" t ON t."videoId" = v."id" AND t."kind" = 'refund'
           GROUP BY v."id"
           HAVING CASE WHEN v."status" IN ('failed', 'canceled') AND v."creditsCharged" > 0
                       THEN COUNT(t."id") <> 1 OR SUM(t."amount") <> v."creditsCharged"
                       ELSE COUNT(t."id") <> 0 END""",
    ),
)


@dataclass
class CheckResult:
    name: str
    offending: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.offending


@dataclass
class AuditReport:
    results: list[CheckResult]
    users: int
    transactions: int

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def render(self) -> str:
        lines = [f"audited {self.users} users and {self.transactions} ledger rows"]
        for result in self.results:
            mark = "ok  " if result.ok else "FAIL"
            lines.append(f"{mark}  {result.name}")
            lines += [f"        {row}" for row in result.offending[:50]]
            if len(result.offending) > 50:
                lines.append(f"        … and {len(result.offending) - 50} more")
        lines.append("audit clean" if self.ok else "AUDIT FAILED")
        return "\n".join(lines)


async def run_audit(dsn: str) -> AuditReport:
    """Run every check in one repeatable-read snapshot, so concurrent writes can't confuse it."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            results = [
                CheckResult(c.name, [dict(r) for r in await conn.fetch(c.sql)]) for c in CHECKS
            ]
            users = await conn.fetchval('SELECT COUNT(*) FROM "users"')
            transactions = await conn.fetchval('SELECT COUNT(*) FROM "creditTransactions"')
        return AuditReport(results, users, transactions)
    finally:
        await conn.close()
