"""The model catalog: a versioned data file, synced into the `models` table."""

import asyncio
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import asyncpg
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.catalog.models import CatalogModel
from app.catalog.schemas import Catalog
from app.core.columns import utcnow
from app.core.errors import NotFound
from app.core.sql import Statement

CATALOG_FILE = Path(__file__).with_name("catalog.json")
_COLUMNS = sa_inspect(CatalogModel).columns  # attribute name -> camelCase column


class ModelNotFound(NotFound):
    code, title = "model_not_found", "Unknown model"


@lru_cache
def load_catalog(path: Path = CATALOG_FILE) -> Catalog:
    return Catalog.model_validate_json(path.read_bytes())


@dataclass(frozen=True)
class SyncResult:
    upserted: list[str]
    deactivated: list[str]


async def sync(session: AsyncSession, catalog: Catalog) -> SyncResult:
    """Upsert every catalog model (active) and deactivate models the file no longer lists.

    Models are deactivated, never deleted: old videos keep pointing at them.
    """
    now = utcnow()
    for entry in catalog.models:
        values = {_COLUMNS[k].name: v for k, v in entry.model_dump().items()}
        values |= {"active": True, "updatedAt": now}
        statement = insert(CatalogModel.__table__).values(**values)  # type: ignore[attr-defined]
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["slug"], set_={k: statement.excluded[k] for k in values}
            )
        )
    slugs = [entry.slug for entry in catalog.models]
    result = await session.execute(
        update(CatalogModel)
        .where(col(CatalogModel.slug).not_in(slugs), col(CatalogModel.active))
        .values(active=False, updated_at=now)
        .returning(col(CatalogModel.slug))
    )
    return SyncResult(upserted=slugs, deactivated=list(result.scalars()))


async def list_active(session: AsyncSession) -> list[CatalogModel]:
    query = select(CatalogModel).where(col(CatalogModel.active)).order_by(col(CatalogModel.slug))
    return list((await session.execute(query)).scalars())


ACTIVE_MODELS = Statement('SELECT * FROM "models" WHERE "active"')


class ActiveModels:
    """This process's copy of the active models, re-read at most every `ttl_s`.

    Creating a video needs its model on every request; the table changes only when an
    operator runs `vidgen models sync`, which every replica then sees within `ttl_s`.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._by_slug: dict[str, CatalogModel] = {}
        self._read_at = float("-inf")
        self._refreshing = asyncio.Lock()

    async def get(self, driver: asyncpg.Connection, slug: str) -> CatalogModel:
        if time.monotonic() - self._read_at > self.ttl_s:
            await self._refresh(driver)
        model = self._by_slug.get(slug)
        if model is None:
            raise ModelNotFound(f"no active model {slug!r}; GET /api/models lists them")
        return model

    async def _refresh(self, driver: asyncpg.Connection) -> None:
        async with self._refreshing:  # one reader; the others wait for its result
            if time.monotonic() - self._read_at <= self.ttl_s:
                return
            rows = await driver.fetch(ACTIVE_MODELS.native)
            self._by_slug = {
                row["slug"]: CatalogModel(**{name: row[c.name] for name, c in _COLUMNS.items()})
                for row in rows
            }
            self._read_at = time.monotonic()


async def list_all(session: AsyncSession) -> list[CatalogModel]:
    query = select(CatalogModel).order_by(col(CatalogModel.slug))
    return list((await session.execute(query)).scalars())


async def get_by_id(session: AsyncSession, model_id: uuid.UUID) -> CatalogModel:
    """Any model, active or not (a video keeps its model after the catalog drops it)."""
    model = await session.get(CatalogModel, model_id)
    if model is None:
        raise ModelNotFound(f"no model {model_id}")
    return model
