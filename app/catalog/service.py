"""The model catalog: a versioned data file, synced into the `models` table."""

import asyncio
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.catalog.models import CatalogModel
from app.catalog.pricing import credits_for
from app.core.columns import utcnow
from app.core.errors import NotFound
from app.core.sql import Statement
from app.fal.model_spec import Catalog, ModelSpec

logger = logging.getLogger(__name__)
CATALOG_FILE = Path(__file__).with_name("catalog.json")
_COLUMNS = sa_inspect(CatalogModel).columns  # attribute name -> camelCase column


class ModelNotFound(NotFound):
    code, title = "model_not_found", "Unknown model"


@lru_cache
def load_catalog(path: Path = CATALOG_FILE) -> Catalog:
    return Catalog.model_validate_json(path.read_bytes())


def credit_usd() -> Fraction:
    """US dollars per credit, exact."""
    return Fraction(load_catalog().credit_usd)


@dataclass(frozen=True)
class SyncResult:
    upserted: list[str]
    deactivated: list[str]


def _row_values(spec: ModelSpec, credit_usd: Fraction) -> dict[str, Any]:
    """The row for `spec`: the spec itself, and the columns other readers of the table know."""
    durations = [int(d) for d in spec.parameters["duration"].enum or []]
    default_duration = int(spec.parameters["duration"].default or durations[0])
    at_defaults = credits_for(spec, spec.defaults(), margin_percent=0, credit_usd=credit_usd)

    def enum(name: str) -> list[str]:
        parameter = spec.parameters.get(name)
        return [str(v) for v in parameter.enum or []] if parameter else []

    return {
        "slug": spec.slug,
        "name": spec.name,
        "fal_endpoint": spec.fal_endpoint,
        "kind": spec.kind,
        # Fal's cost per second at the defaults, in whole credits: informational only.
        "credits_per_second": max(1, math.ceil(at_defaults / default_duration)),
        "durations": durations,
        "duration_format": spec.parameters["duration"].fal_format.replace("{}", "{n}"),
        "aspect_ratios": enum("aspect_ratio"),
        "resolutions": enum("resolution"),
        "max_prompt_length": spec.prompt.max_length,
        "spec": spec.model_dump(mode="json"),
    }


async def sync(session: AsyncSession, catalog: Catalog) -> SyncResult:
    """Upsert every catalog model (active) and deactivate models the file no longer lists.

    Models are deactivated, never deleted: old videos keep pointing at them.
    """
    now = utcnow()
    credit_usd = Fraction(catalog.credit_usd)
    for spec in catalog.models:
        values = {_COLUMNS[k].name: v for k, v in _row_values(spec, credit_usd).items()}
        values |= {"active": True, "updatedAt": now}
        statement = insert(CatalogModel.__table__).values(**values)  # type: ignore[attr-defined]
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["slug"], set_={k: statement.excluded[k] for k in values}
            )
        )
    slugs = [spec.slug for spec in catalog.models]
    result = await session.execute(
        update(CatalogModel)
        .where(col(CatalogModel.slug).not_in(slugs), col(CatalogModel.active))
        .values(active=False, updated_at=now)
        .returning(col(CatalogModel.slug))
    )
    return SyncResult(upserted=slugs, deactivated=list(result.scalars()))


@dataclass(frozen=True)
class Offer:
    """A model on sale: its row (id, slug) and its parsed spec."""

    model: CatalogModel
    spec: ModelSpec


def spec_of(model: CatalogModel) -> ModelSpec | None:
    """The row's spec; None for a row synced by a release that had none (not sold)."""
    return ModelSpec.model_validate(model.spec) if model.spec is not None else None


def offers(models: list[CatalogModel]) -> list[Offer]:
    found = []
    for model in models:
        spec = spec_of(model)
        if spec is None:
            logger.warning("model %s has no spec; run `vidgen models sync`", model.slug)
            continue
        found.append(Offer(model, spec))
    return found


async def list_active(session: AsyncSession) -> list[Offer]:
    query = select(CatalogModel).where(col(CatalogModel.active)).order_by(col(CatalogModel.slug))
    return offers(list((await session.execute(query)).scalars()))


ACTIVE_MODELS = Statement('SELECT * FROM "models" WHERE "active"')


class ActiveModels:
    """This process's copy of the models on sale, re-read at most every `ttl_s`.

    Creating a video needs its model on every request; the table changes only when an
    operator runs `vidgen models sync`, which every replica then sees within `ttl_s`.
    Specs are parsed once per refresh, not per request.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._by_slug: dict[str, Offer] = {}
        self._read_at = float("-inf")
        self._refreshing = asyncio.Lock()

    async def get(self, driver: asyncpg.Connection, slug: str) -> Offer:
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
            models = [_model_of(row) for row in rows]
            self._by_slug = {offer.model.slug: offer for offer in offers(models)}
            self._read_at = time.monotonic()


def _model_of(row: asyncpg.Record) -> CatalogModel:
    values = {name: row[c.name] for name, c in _COLUMNS.items()}
    if isinstance(values["spec"], str):  # asyncpg hands jsonb over as text by default
        values["spec"] = json.loads(values["spec"])
    return CatalogModel(**values)


async def list_all(session: AsyncSession) -> list[CatalogModel]:
    query = select(CatalogModel).order_by(col(CatalogModel.slug))
    return list((await session.execute(query)).scalars())


async def get_by_id(session: AsyncSession, model_id: uuid.UUID) -> CatalogModel:
    """Any model, active or not (a video keeps its model after the catalog drops it)."""
    model = await session.get(CatalogModel, model_id)
    if model is None:
        raise ModelNotFound(f"no model {model_id}")
    return model
