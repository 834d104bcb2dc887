"""Users and their API keys."""

import uuid
from dataclasses import dataclass

import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError, NotFound
from app.core.security import hash_api_key, new_api_key, same_secret
from app.users import repository
from app.users.models import User


class EmailTaken(AppError):
    status, code, title = 409, "email_taken", "Email already registered"


class UserNotFound(NotFound):
    code, title = "user_not_found", "User not found"


async def create_user(session: AsyncSession, email: str) -> tuple[User, str]:
    """Create a user with a fresh API key; return the user and the key (never stored)."""
    api_key = new_api_key()
    user = User(email=email.strip().lower(), api_key_hash=hash_api_key(api_key))
    try:
        await repository.add(session, user)
    except IntegrityError as error:
        raise EmailTaken(f"a user with email {user.email} already exists") from error
    return user, api_key


@dataclass(frozen=True)
class Caller:
    """Who an API key belongs to: all a request needs to know about its user."""

    id: uuid.UUID
    is_admin: bool


async def caller_by_api_key(driver: asyncpg.Connection, api_key: str) -> Caller | None:
    # Looked up by hash: the database never sees the key itself. Timing of the index lookup
    # reveals nothing useful (it is over sha256 outputs), and the final check is constant-time.
    digest = hash_api_key(api_key)
    row = await repository.caller_row_by_key_hash(driver, digest)
    if row is None or not same_secret(row["apiKeyHash"] or "", digest):
        return None
    return Caller(id=row["id"], is_admin=row["isAdmin"])


async def caller_by_id(driver: asyncpg.Connection, user_id: uuid.UUID) -> Caller | None:
    """The caller a verified sign-in token names (its `sub`), or None for no such user."""
    row = await repository.caller_row_by_id(driver, user_id)
    return None if row is None else Caller(id=row["id"], is_admin=row["isAdmin"])


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    return await repository.get_by_email_for_update(session, email.strip().lower())


async def rotate_api_key(session: AsyncSession, user: User) -> str:
    """A new key for `user`; the old one stops working when this commits."""
    api_key = new_api_key()
    user.api_key_hash = hash_api_key(api_key)
    await repository.flush(session)
    return api_key


async def find_user(session: AsyncSession, email_or_id: str) -> User:
    """A user by id or (case-insensitive) email, for operators."""
    try:
        user_id: uuid.UUID | None = uuid.UUID(email_or_id)
    except ValueError:
        user_id = None
    user = await repository.get_by_id_or_email(session, user_id, email_or_id.strip().lower())
    if user is None:
        raise UserNotFound(f"no user with id or email {email_or_id!r}")
    return user
