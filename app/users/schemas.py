import uuid

from pydantic import BaseModel, EmailStr, Field


class UserCreate(BaseModel):
    email: EmailStr = Field(max_length=320)
    rotate_existing: bool = Field(
        default=False,
        description="if the email is taken: issue that user a new API key (the old one stops "
        "working) and answer 200 instead of 409; for service accounts such as the smoke user",
    )


class UserCreated(BaseModel):
    """The only response that ever carries the API key."""

    id: uuid.UUID
    email: str
    api_key: str
    credit_balance: int
