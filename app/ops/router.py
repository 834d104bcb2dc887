"""Operator endpoints: Prometheus metrics and the maintenance switch."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import event

from app.core.deps import SessionDep, SessionmakerDep, SettingsDep
from app.core.errors import Forbidden, Unauthorized, problem_responses
from app.core.metrics import Metrics
from app.core.security import same_secret
from app.ops.maintenance import MaintenanceState, set_maintenance
from app.ops.metrics import ScrapedGauges
from app.users.deps import AdminPrincipal

router = APIRouter(tags=["ops"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        **problem_responses(Unauthorized),
    },
)
async def metrics(request: Request, sessions: SessionmakerDep, settings: SettingsDep) -> Response:
    """Prometheus text format, every worker of this replica summed. Open unless METRICS_TOKEN
    is set (then a bearer token; production requires one). Answers even with the database
    down: `vidgen_database_up` says so."""
    if settings.metrics_token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not same_secret(given, settings.metrics_token):
            raise Unauthorized("metrics need Authorization: Bearer <METRICS_TOKEN>")
    registry: Metrics = request.app.state.metrics
    state = request.app.state
    if getattr(state, "scraped_gauges", None) is None:  # per app, made on its first scrape
        state.scraped_gauges = ScrapedGauges(settings)
    await state.scraped_gauges.observe(registry, sessions)
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/api/admin/maintenance",
    response_model=MaintenanceState,
    responses=problem_responses(Unauthorized, Forbidden),
)
async def switch_maintenance(
    body: MaintenanceState, request: Request, session: SessionDep, _: AdminPrincipal
) -> MaintenanceState:
    """Turn maintenance mode on or off for every replica (each notices within seconds)."""
    await set_maintenance(session, body.enabled, body.reason)
    flag = request.app.state.maintenance
    # This replica at once, right after the commit (and before the answer is sent).
    event.listen(session.sync_session, "after_commit", lambda _: flag.forget(), once=True)
    return body
