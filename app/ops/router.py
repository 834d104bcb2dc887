"""Operator endpoints: Prometheus metrics and the maintenance switch."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import event

from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Forbidden, Unauthorized, problem_responses
from app.core.metrics import Metrics
from app.core.security import same_secret
from app.ops.maintenance import MaintenanceState, set_maintenance
from app.ops.metrics import refresh_from_database
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
async def metrics(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Prometheus text format. Open unless METRICS_TOKEN is set (then a bearer token)."""
    if settings.metrics_token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not same_secret(given, settings.metrics_token):
            raise Unauthorized("metrics need Authorization: Bearer <METRICS_TOKEN>")
    registry: Metrics = request.app.state.metrics
    await refresh_from_database(registry, session)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)


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
