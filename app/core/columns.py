"""Field helpers for the Prisma-era schema: quoted camelCase columns, aware UTC times."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlmodel import Field


def utcnow() -> datetime:
    """Now, truncated to the milliseconds our TIMESTAMPTZ(3) columns keep.

    Truncating here (instead of letting PostgreSQL round) means the value we hand out is
    exactly the one stored, which keyset cursors built from it rely on.
    """
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def column(name: str, **field_kwargs: Any) -> Any:
    """A model field stored in the (quoted, camelCase) column `name`."""
    return Field(sa_column_kwargs={"name": name}, **field_kwargs)


def timestamp_column(name: str, **field_kwargs: Any) -> Any:
    return column(name, sa_type=DateTime(timezone=True), **field_kwargs)
