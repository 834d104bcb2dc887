"""The ledger (docs/architecture.md, "Where money moves"): purchases, grants, rolls and adjustments.

Every movement is one ledger row plus the balance change, in the caller's transaction,
under the user's row lock, keyed by a unique idempotency key. The balance never goes
below zero: such a movement raises `InsufficientCredits` and writes nothing. A video's
debit and refund follow the same rules inside the statement that changes the job
(app/videos/repository.py, CREATE and FINISH), so job and money can never disagree.
"""

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db_errors import violated_constraint
from app.core.errors import AppError
from app.core.pagination import decode_cursor, encode_cursor
from app.credits import ledger, repository
from app.credits.models import CreditKind, CreditTransaction
from app.credits.schemas import CreditGrant, CreditsPage, CreditTransactionPublic
from app.users.service import UserNotFound


class InsufficientCredits(AppError):
    status, code, title = 402, "insufficient_credits", "Insufficient credits"


class BalanceLimitExceeded(AppError):
    status, code, title = 422, "balance_limit_exceeded", "Balance limit exceeded"


class CreditRollExists(AppError):
    status, code, title = 409, "credit_roll_exists", "Credits already rolled for this period"


class DuplicateMovement(AppError):
    status, code, title = 409, "duplicate_transaction", "Transaction already recorded"


async def move_credits(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    amount: int,
    kind: CreditKind,
    idempotency_key: str,
    reason: str | None = None,
    period: str | None = None,
    video_id: uuid.UUID | None = None,
) -> CreditTransaction:
    """Append one ledger row and move the balance with it; raises instead of going negative."""
    packs = 1 if kind is CreditKind.PURCHASE and (reason or "").startswith("pack") else 0
    try:
        row = await repository.apply_movement(
            session,
            user_id=user_id,
            amount=amount,
            kind=kind,
            idempotency_key=idempotency_key,
            reason=reason,
            period=period,
            video_id=video_id,
            packs=packs,
        )
    except IntegrityError as error:
        constraint = violated_constraint(error)
        if constraint == "creditTransactions_userId_period_roll_key":
            raise CreditRollExists(f"credits were already rolled for period {period!r}") from error
        if constraint in {
            "creditTransactions_idempotencyKey_key",
            "creditTransactions_videoId_kind_key",
        }:
            raise DuplicateMovement(f"a {kind} with key {idempotency_key!r} exists") from error
        raise
    if row is None:
        balance = await repository.get_balance(session, user_id)
        if balance is None:
            raise UserNotFound(f"no user with id {user_id}")
        if amount > 0:
            raise BalanceLimitExceeded(
                f"a balance may not exceed {ledger.MAX_BALANCE} credits; it is {balance}"
            )
        raise InsufficientCredits(f"this needs {-amount} credits; the balance is {balance}")
    return row


async def grant(session: AsyncSession, request: CreditGrant, scoped_key: str) -> CreditTransaction:
    """An operator's purchase / grant / roll / adjustment."""
    return await move_credits(
        session,
        user_id=request.user_id,
        amount=request.amount,
        kind=CreditKind(request.kind),
        idempotency_key=scoped_key,
        reason=request.reason,
        period=request.period,
    )


async def page_for_user(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, cursor: str | None
) -> CreditsPage:
    rows = await repository.list_page_for_user(
        session, user_id, limit=limit, after=decode_cursor(cursor)
    )
    page, more = rows[:limit], len(rows) > limit
    balance = await repository.get_balance(session, user_id)
    return CreditsPage(
        balance=balance or 0,
        data=[CreditTransactionPublic.of(r) for r in page],
        next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    )
