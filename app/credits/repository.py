"""Every query over the ledger."""

import uuid

from sqlalchemy import tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.core.pagination import Position
from app.core.sql import Statement
from app.credits import ledger
from app.credits.models import CreditTransaction

# One statement (app/credits/ledger.py): move the balance under the user's row lock, then
# append the ledger row carrying the new balance. If the balance would go negative nothing
# matches and nothing is inserted; the key's unique constraint makes a repeated movement
# fail as a whole.
ENTRY_COLUMNS = ", ".join(f'"{c.name}"' for c in CreditTransaction.__table__.columns)  # type: ignore[attr-defined]
# No grant lifts a balance past MAX_BALANCE (a debit's amount is negative: never refused by it).
GRANT_CAP = f'(:amount <= 0 OR "users"."creditBalance" + :amount <= {ledger.MAX_BALANCE})'
PACKS = ', "purchasedCreditPacks" = "users"."purchasedCreditPacks" + :packs'
APPLY_MOVEMENT = Statement(f"""
    WITH moved AS ({
    ledger.move_balance(user=":user_id", amount=":amount", guard=GRANT_CAP, also_set=PACKS)
})
    {
    ledger.append_entry(
        moved="moved",
        amount=":amount",
        kind=":kind",
        key=":idempotency_key",
        reason=":reason",
        period=":period",
        video_id=":video_id",
        returning=f"RETURNING {ENTRY_COLUMNS}",
    )
}
""")
BALANCE = Statement('SELECT "creditBalance" FROM "users" WHERE "id" = :user_id')


async def apply_movement(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    amount: int,
    kind: str,
    idempotency_key: str,
    reason: str | None = None,
    period: str | None = None,
    video_id: uuid.UUID | None = None,
    packs: int = 0,
) -> CreditTransaction | None:
    """The ledger row, or None when the user is missing or the balance would go negative."""
    statement = select(CreditTransaction).from_statement(
        APPLY_MOVEMENT.text.columns(*CreditTransaction.__table__.columns)  # type: ignore[attr-defined]
    )
    result = await session.execute(
        statement,
        {
            "user_id": user_id,
            "amount": amount,
            "kind": kind,
            "idempotency_key": idempotency_key,
            "reason": reason,
            "period": period,
            "video_id": video_id,
            "packs": packs,
        },
    )
    return result.scalar_one_or_none()


async def get_balance(session: AsyncSession, user_id: uuid.UUID) -> int | None:
    return (await session.execute(BALANCE.text, {"user_id": user_id})).scalar_one_or_none()


async def list_page_for_user(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, after: Position | None
) -> list[CreditTransaction]:
    """Newest first; `limit + 1` rows so the caller can tell whether a next page exists."""
    query = select(CreditTransaction).where(CreditTransaction.user_id == user_id)
    if after is not None:
        query = query.where(
            tuple_(col(CreditTransaction.created_at), col(CreditTransaction.id)) < tuple_(*after)
        )
    query = query.order_by(
        col(CreditTransaction.created_at).desc(), col(CreditTransaction.id).desc()
    ).limit(limit + 1)
    return list((await session.execute(query)).scalars())
