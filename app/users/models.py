import uuid
from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from app.core.columns import column, timestamp_column, utcnow


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str
    api_key_hash: str | None = column("apiKeyHash", default=None)
    is_admin: bool = column("isAdmin", default=False)
    credit_balance: int = column("creditBalance", default=0, sa_type=BigInteger)
    purchased_credit_packs: int = column("purchasedCreditPacks", default=0)
    # Unfinished jobs, kept by the statements that create and finish them (videos/repository.py).
    active_jobs: int = column("activeJobs", default=0)
    created_at: datetime = timestamp_column("createdAt", default_factory=utcnow)
    updated_at: datetime = timestamp_column("updatedAt", default_factory=utcnow)
