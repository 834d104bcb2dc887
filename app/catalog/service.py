"""The model catalog: a versioned data file, synced into the `models` table."""

import asyncio
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
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import repository
from app.catalog.models import CatalogModel
from app.catalog.pricing import credits_for
from app.core.columns import utcnow
from app.core.errors import NotFound
from app.fal.model_spec import Catalog, ModelSpec

logger = logging.getLogger(__name__)
CATALOG_FILE = Path(__file__).with_name("catalog.json")


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
        await repository.upsert_active(session, _row_values(spec, credit_usd), now)
    slugs = [spec.slug for spec in catalog.models]
    deactivated = await repository.deactivate_all_but(session, slugs, now)
    return SyncResult(upserted=slugs, deactivated=deactivated)


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
    return offers(await repository.list_active(session))


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
            models = await repository.list_active_on_driver(driver)
            self._by_slug = {offer.model.slug: offer for offer in offers(models)}
            self._read_at = time.monotonic()


async def list_all(session: AsyncSession) -> list[CatalogModel]:
    return await repository.list_all(session)


async def get_by_id(session: AsyncSession, model_id: uuid.UUID) -> CatalogModel:
    """Any model, active or not (a video keeps its model after the catalog drops it)."""
    model = await repository.get(session, model_id)
    if model is None:
        raise ModelNotFound(f"no model {model_id}")
    return model
