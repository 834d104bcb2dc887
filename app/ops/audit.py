"""`vidgen audit`: check the ledger invariants against the database.

The invariants: docs/architecture.md, "Where money moves"."""

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.core.sql import Statement
from app.ops import audit_repository


@dataclass(frozen=True)
class Check:
    name: str  # the invariant, as the report states it
    query: Statement  # from audit_repository: the rows that break it
    repair: str | None = None  # the command that restores it, where one can


CHECKS = (
    Check(
        "balance equals the sum of the user's ledger",
        audit_repository.USERS_WHOSE_BALANCE_IS_NOT_THEIR_LEDGER_SUM,
    ),
    Check("no negative balance", audit_repository.USERS_WITH_A_NEGATIVE_BALANCE),
    Check(
        "every balanceAfter equals the running sum",
        audit_repository.LEDGER_ROWS_WHOSE_BALANCE_AFTER_IS_NOT_THE_RUNNING_SUM,
    ),
    Check("at most one roll per user and period", audit_repository.REPEATED_ROLLS),
    Check(
        "every charged video has exactly one debit of its charge",
        audit_repository.CHARGED_VIDEOS_WITHOUT_ONE_MATCHING_DEBIT,
    ),
    Check(
        "failed and canceled videos are refunded exactly once, others never",
        audit_repository.VIDEOS_WITH_WRONG_REFUNDS,
    ),
    Check(
        "every user's active-job count equals their unfinished videos",
        audit_repository.USERS_WHOSE_ACTIVE_JOBS_ARE_NOT_THEIR_UNFINISHED_VIDEOS,
        repair="vidgen recount-active-jobs",
    ),
)


@dataclass
class CheckResult:
    name: str
    offending: list[dict[str, Any]] = field(default_factory=list)
    repair: str | None = None

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
            if not result.ok and result.repair:
                lines.append(f"        repair: {result.repair}")
        lines.append("audit clean" if self.ok else "AUDIT FAILED")
        return "\n".join(lines)


async def run_audit(dsn: str) -> AuditReport:
    """Run every check in one repeatable-read snapshot, so concurrent writes can't confuse it."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            results = [
                CheckResult(c.name, await audit_repository.offending_rows(conn, c.query), c.repair)
                for c in CHECKS
            ]
            users = await audit_repository.user_count(conn)
            transactions = await audit_repository.ledger_row_count(conn)
        return AuditReport(results, users, transactions)
    finally:
        await conn.close()


@dataclass(frozen=True)
class Recount:
    user_id: Any
    email: str
    before: int
    after: int


async def recount_active_jobs(dsn: str) -> list[Recount]:
    """Set each drifted user's "activeJobs" to their unfinished videos; the users changed.

    For when a writer that does not keep the counter (another app, hand-written SQL) made it
    drift, as `vidgen audit` reports. Safe while the app runs: each user's recount holds
    their row lock, which every create and finish of theirs takes too.
    """
    conn = await asyncpg.connect(dsn)
    try:
        check = audit_repository.USERS_WHOSE_ACTIVE_JOBS_ARE_NOT_THEIR_UNFINISHED_VIDEOS
        drifted = await audit_repository.offending_rows(conn, check)
        recounts = []
        for row in drifted:
            before, after = await audit_repository.recount_active_jobs(conn, row["user_id"])
            if before != after:
                recounts.append(Recount(row["user_id"], row["email"], before, after))
        return recounts
    finally:
        await conn.close()
