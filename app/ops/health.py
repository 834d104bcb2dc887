"""Health for people and for orchestrators.

- `GET /api/health`: is the database reachable and is its schema exactly the one this code
  expects (the smoke suite and the image's HEALTHCHECK read it).
- `GET /livez`: the process answers; touches nothing, so a database outage never gets a
  healthy replica restarted.
- `GET /readyz`: this replica can serve: the database answers within HEALTH_TIMEOUT_S and
  holds every migration this code ships. A database *ahead* of the code (migrations this code
  does not know) is ready: that is every old replica's state between `vidgen migrate deploy`
  and the end of the rollout, and failing them would take the whole service out mid-rollout.

/livez and /readyz are for the kubelet, not for API clients: they are left out of the OpenAPI
documents (and so of the SDK), like /metrics.
"""

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.deps import SessionmakerDep, SettingsDep
from app.core.sql import driver_of
from app.ops import migrate_repository
from app.ops.migrate import HistoryRow, MigrationStatus, compute_status

router = APIRouter(tags=["health"])


class MigrationCounts(BaseModel):
    applied: int
    pending: int


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    database: Literal["ok", "unreachable"]
    migrations: MigrationCounts | None = None
    maintenance: bool | None = None


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable", "behind"]
    database: Literal["ok", "unreachable"]
    # Migrations this code ships that the database has not applied (pending or failed).
    behind: list[str] = []
    # Applied migrations this code does not know: a newer release's; ready all the same.
    ahead: int = 0


async def _history(
    sessions: async_sessionmaker[AsyncSession], timeout_s: float
) -> list[HistoryRow] | None:
    """The migration history, or None when the database does not answer within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s), sessions() as session:
            driver = await driver_of(await session.connection())
            if not await migrate_repository.history_exists(driver):
                return []
            return [HistoryRow(**dict(r)) for r in await migrate_repository.history_rows(driver)]
    except Exception:  # any failure to reach the database is the answer, not an error
        return None


def _behind(status: MigrationStatus) -> list[str]:
    """Shipped migrations the database lacks: pending ones and those whose run failed.

    A changed checksum (`modified`) is not "behind": the schema has the migration, and
    `migrate deploy` is what refuses an edited file; pulling every replica for it would be
    an outage the edit did not cause.
    """
    failed = {row.migration_name for row in status.failed}
    return [*status.pending, *sorted(failed - set(status.applied) - set(status.modified))]


@router.get(
    "/api/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "Database unreachable or schema behind"}},
)
async def health(
    request: Request, settings: SettingsDep, sessions: SessionmakerDep
) -> JSONResponse:
    rows = await _history(sessions, settings.health_timeout_s)
    if rows is None:
        body = Health(status="unavailable", database="unreachable")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    status = compute_status(request.app.state.migration_files, rows)
    counts = MigrationCounts(
        applied=len(status.applied), pending=len(status.pending) + len(status.modified)
    )
    ok = status.up_to_date
    maintenance = await request.app.state.maintenance.enabled()
    body = Health(
        status="ok" if ok else "degraded",
        database="ok",
        migrations=counts,
        maintenance=maintenance,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if ok else 503)


@router.get("/livez", response_model=Liveness, include_in_schema=False)
async def livez() -> Liveness:
    return Liveness(status="ok")


@router.get("/readyz", response_model=Readiness, include_in_schema=False)
async def readyz(
    request: Request, settings: SettingsDep, sessions: SessionmakerDep
) -> JSONResponse:
    rows = await _history(sessions, settings.health_timeout_s)
    if rows is None:
        body = Readiness(status="unavailable", database="unreachable")
        return JSONResponse(body.model_dump(), status_code=503)
    status = compute_status(request.app.state.migration_files, rows)
    behind = _behind(status)
    body = Readiness(
        status="behind" if behind else "ready",
        database="ok",
        behind=behind,
        ahead=len(status.missing_locally),
    )
    return JSONResponse(body.model_dump(), status_code=503 if behind else 200)
