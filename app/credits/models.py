import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from app.core.columns import column, timestamp_column, utcnow


class CreditKind(StrEnum):
    PURCHASE = "purchase"
    GRANT = "grant"
    ROLL = "roll"
    DEBIT = "debit"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class CreditTransaction(SQLModel, table=True):
    """One append-only ledger row; `balance_after` is the user's balance once it applied."""

    __tablename__ = "creditTransactions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = column("userId", foreign_key="users.id")
    amount: int = Field(sa_type=BigInteger)
    balance_after: int = column("balanceAfter", sa_type=BigInteger)
    kind: str
    idempotency_key: str = column("idempotencyKey")
    reason: str | None = None
    period: str | None = None
    video_id: uuid.UUID | None = column("videoId", default=None, foreign_key="videos.id")
    created_at: datetime = timestamp_column("createdAt", default_factory=utcnow)
