"""Every query over `models`."""

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.catalog.models import CatalogModel
from app.core.sql import Statement

COLUMNS = sa_inspect(CatalogModel).columns  # attribute name -> camelCase column
ACTIVE = Statement('SELECT * FROM "models" WHERE "active"')


async def upsert_active(session: AsyncSession, values: dict[str, Any], now: datetime) -> None:
    """Insert or update the model with `values["slug"]` (attribute names), active."""
    row = {COLUMNS[k].name: v for k, v in values.items()} | {"active": True, "updatedAt": now}
    statement = insert(CatalogModel.__table__).values(**row)  # type: ignore[attr-defined]
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["slug"], set_={k: statement.excluded[k] for k in row}
        )
    )


async def deactivate_all_but(session: AsyncSession, slugs: list[str], now: datetime) -> list[str]:
    """Deactivate the active models not in `slugs`; their slugs."""
    result = await session.execute(
        update(CatalogModel)
        .where(col(CatalogModel.slug).not_in(slugs), col(CatalogModel.active))
        .values(active=False, updated_at=now)
        .returning(col(CatalogModel.slug))
    )
    return list(result.scalars())


async def list_active(session: AsyncSession) -> list[CatalogModel]:
    query = select(CatalogModel).where(col(CatalogModel.active)).order_by(col(CatalogModel.slug))
    return list((await session.execute(query)).scalars())


async def list_active_on_driver(driver: asyncpg.Connection) -> list[CatalogModel]:
    """The active models over the raw driver (the per-process cache of the create path)."""
    return [_model_of(row) for row in await driver.fetch(ACTIVE.native)]


def _model_of(row: asyncpg.Record) -> CatalogModel:
    values = {name: row[c.name] for name, c in COLUMNS.items()}
    if isinstance(values["spec"], str):  # asyncpg hands jsonb over as text by default
        values["spec"] = json.loads(values["spec"])
    return CatalogModel(**values)


async def list_all(session: AsyncSession) -> list[CatalogModel]:
    query = select(CatalogModel).order_by(col(CatalogModel.slug))
    return list((await session.execute(query)).scalars())


async def get(session: AsyncSession, model_id: uuid.UUID) -> CatalogModel | None:
    return await session.get(CatalogModel, model_id)
