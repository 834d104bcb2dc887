import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from app.core.text import Text
from app.credits.models import CreditKind, CreditTransaction

MAX_MOVEMENT = 10_000_000  # far above any real pack; stops typo'd amounts


class CreditGrant(BaseModel):
    """An operator's credit movement. Debits and refunds belong to video jobs only."""

    user_id: uuid.UUID
    amount: int = Field(ge=-MAX_MOVEMENT, le=MAX_MOVEMENT)
    kind: Literal["purchase", "grant", "roll", "adjustment"]
    period: Text | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        pattern=r"^[!-~]+$",
        description="Required for (and only for) `roll`: the period credited, e.g. 2026-11",
    )
    reason: Text | None = Field(
        default=None,
        max_length=500,
        description="Free text; a `purchase` whose reason starts with `pack` counts as a pack",
    )

    @model_validator(mode="after")
    def _check_kind_rules(self) -> Self:
        if self.amount == 0:
            raise ValueError("amount must not be zero")
        if self.kind != "adjustment" and self.amount < 0:
            raise ValueError(f"amount must be positive for kind {self.kind!r}")
        if (self.kind == "roll") != (self.period is not None):
            raise ValueError("period is required for kind 'roll' and only allowed there")
        return self


class CreditTransactionPublic(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    kind: CreditKind
    balance_after: int
    idempotency_key: str
    reason: str | None
    period: str | None
    video_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def of(cls, row: CreditTransaction) -> "CreditTransactionPublic":
        return cls.model_validate(row, from_attributes=True)


class CreditsPage(BaseModel):
    """The list envelope every list shares (`data`, `next_cursor`), with the balance beside it."""

    balance: int
    data: list[CreditTransactionPublic] = Field(description="ledger entries, newest first")
    next_cursor: str | None
