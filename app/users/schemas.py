import uuid

from pydantic import BaseModel, EmailStr, Field


class UserCreate(BaseModel):
    email: EmailStr = Field(max_length=320)


class UserCreated(BaseModel):
    """The only response that ever carries the API key."""

    id: uuid.UUID
    email: str
    api_key: str
    credit_balance: int
