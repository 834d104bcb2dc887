"""Field helpers for the Prisma-era schema: quoted camelCase columns, aware UTC times."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def column(name: str, **field_kwargs: Any) -> Any:
    """A model field stored in the (quoted, camelCase) column `name`."""
    return Field(sa_column_kwargs={"name": name}, **field_kwargs)


def timestamp_column(name: str, **field_kwargs: Any) -> Any:
    return column(name, sa_type=DateTime(timezone=True), **field_kwargs)
