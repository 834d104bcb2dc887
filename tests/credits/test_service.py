import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker, unit_of_work
from app.credits.models import CreditKind
from app.credits.service import DuplicateMovement, InsufficientCredits, move_credits
from app.ops.audit import run_audit
from app.users.service import create_user
from tests.support.helpers import libpq


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def new_user(sessions: async_sessionmaker[AsyncSession], credits: int = 0) -> uuid.UUID:
    async with unit_of_work(sessions) as session:
        user, _ = await create_user(session, f"{uuid.uuid4().hex}@example.com")
        if credits:
            await move_credits(
                session,
                user_id=user.id,
                amount=credits,
                kind=CreditKind.GRANT,
                idempotency_key=f"seed:{user.id}",
            )
        return user.id


async def debit_one(sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> bool:
    try:
        async with unit_of_work(sessions) as session:
            await move_credits(
                session,
                user_id=user_id,
                amount=-1,
                kind=CreditKind.DEBIT,
                idempotency_key=f"debit:{uuid.uuid4()}",
            )
    except InsufficientCredits:
        return False
    return True


async def test_50_concurrent_debits_against_10_credits(
    sessions: async_sessionmaker[AsyncSession], db: asyncpg.Connection, database_url: str
) -> None:
    user_id = await new_user(sessions, credits=10)
    started = time.monotonic()
    outcomes = await asyncio.gather(*(debit_one(sessions, user_id) for _ in range(50)))
    elapsed = time.monotonic() - started

    assert outcomes.count(True) == 10 and outcomes.count(False) == 40
    assert await db.fetchval('SELECT "creditBalance" FROM users WHERE id = $1', user_id) == 0
    debits = await db.fetchval(
        """SELECT count(*) FROM "creditTransactions" WHERE "userId" = $1 AND kind = 'debit'""",
        user_id,
    )
    assert debits == 10
    report = await run_audit(libpq(database_url))
    assert report.ok, report.render()
    print(f"\n[figures] 50 concurrent debits vs 10 credits: 10 ok, 40 refused, {elapsed:.2f}s")


class LedgerModel:
    """What the ledger should say, kept in memory."""

    def __init__(self) -> None:
        self.balance = 0
        self.rows: dict[str, int] = {}


operation = st.tuples(
    st.sampled_from(["grant", "debit", "refund", "retry"]),
    st.integers(min_value=1, max_value=50),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(operation, min_size=1, max_size=25))
async def test_random_movement_sequences_keep_every_invariant(
    sessions: async_sessionmaker[AsyncSession], database_url: str, steps: list[tuple[str, int]]
) -> None:
    user_id = await new_user(sessions)
    model = LedgerModel()
    last_key: str | None = None
    for action, amount in steps:
        kind, signed = {
            "grant": (CreditKind.GRANT, amount),
            "debit": (CreditKind.DEBIT, -amount),
            "refund": (CreditKind.REFUND, amount),
            "retry": (CreditKind.GRANT, amount),
        }[action]
        key = last_key if action == "retry" and last_key else f"{action}:{uuid.uuid4()}"
        expected_refusal = (
            DuplicateMovement
            if key in model.rows
            else InsufficientCredits
            if model.balance + signed < 0
            else None
        )
        try:
            async with unit_of_work(sessions) as session:
                row = await move_credits(
                    session, user_id=user_id, amount=signed, kind=kind, idempotency_key=key
                )
        except (DuplicateMovement, InsufficientCredits) as refusal:
            assert type(refusal) is expected_refusal
        else:
            assert expected_refusal is None
            model.balance += signed
            model.rows[key] = signed
            assert row.balance_after == model.balance
        last_key = key

        conn = await asyncpg.connect(libpq(database_url))
        try:
            balance = await conn.fetchval(
                'SELECT "creditBalance" FROM users WHERE id = $1', user_id
            )
            ledger = await conn.fetchval(
                'SELECT COALESCE(SUM(amount), 0) FROM "creditTransactions" WHERE "userId" = $1',
                user_id,
            )
        finally:
            await conn.close()
        assert balance == ledger == model.balance
        report = await run_audit(libpq(database_url))
        assert report.ok, report.render()
