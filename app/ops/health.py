"""`GET /api/health`: is the database reachable and is its schema the one this code expects."""

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.core.deps import SessionmakerDep, SettingsDep
from app.core.sql import driver_of
from app.ops import migrate_repository
from app.ops.migrate import HistoryRow, compute_status

router = APIRouter(tags=["health"])


class MigrationCounts(BaseModel):
    applied: int
    pending: int


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    database: Literal["ok", "unreachable"]
    migrations: MigrationCounts | None = None
    maintenance: bool | None = None


@router.get(
    "/api/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "Database unreachable or schema behind"}},
)
async def health(
    request: Request, settings: SettingsDep, sessions: SessionmakerDep
) -> JSONResponse:
    try:
        async with asyncio.timeout(settings.health_timeout_s), sessions() as session:
            driver = await driver_of(await session.connection())
            rows: list[HistoryRow] = []
            if await migrate_repository.history_exists(driver):
                records = await migrate_repository.history_rows(driver)
                rows = [HistoryRow(**dict(r)) for r in records]
    except Exception:  # any failure to reach the database is the answer, not an error
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
