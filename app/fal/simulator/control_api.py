"""Introspection and control for tests, under `/_simulator/` (outside Fal's namespace).

Tests assert on what Fal *received* ("each pending job submitted exactly once", "no
webhook was sent") rather than on timing, so every submit call, cancel call and delivery
attempt is recorded here. No authentication: the simulator only listens on loopback.
"""

from collections import Counter
from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from app.fal.simulator.runtime import RuntimeDep

router = APIRouter(prefix="/_simulator", tags=["simulator control"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/stats")
async def stats(runtime: RuntimeDep) -> dict[str, Any]:
    queue = runtime.queue
    jobs = list(queue.jobs.values())
    attempts = [d for job in jobs for d in job.deliveries]
    return {
        "submissions": len(queue.submissions),
        "accepted": sum(1 for s in queue.submissions if s.request_id is not None),
        "rejected": sum(1 for s in queue.submissions if s.request_id is None),
        "cancel_calls": queue.cancel_calls,
        "jobs_by_status": dict(Counter(job.phase.value for job in jobs)),
        "webhook_attempts": len(attempts),
        "webhooks_delivered": sum(1 for d in attempts if d.ok),
    }


@router.get("/submissions")
async def submissions(runtime: RuntimeDep) -> dict[str, Any]:
    records = runtime.queue.submissions
    accepted = [s for s in records if s.request_id is not None]
    return {
        "total": len(records),
        "by_prompt": dict(Counter(s.prompt for s in accepted)),
        "rejected_by_prompt": dict(Counter(s.prompt for s in records if s.request_id is None)),
        "submissions": [s.as_json() for s in records],
    }


@router.get("/jobs")
async def jobs(runtime: RuntimeDep) -> dict[str, Any]:
    return {"jobs": [job.as_json() for job in runtime.queue.jobs.values()]}


@router.get("/jobs/{request_id}", response_model=None)
async def job(request_id: str, runtime: RuntimeDep) -> dict[str, Any] | JSONResponse:
    found = runtime.queue.jobs.get(request_id)
    if found is None:
        return JSONResponse({"detail": "Request not found"}, status_code=404)
    return found.as_json()


@router.get("/webhooks")
async def webhooks(runtime: RuntimeDep) -> dict[str, Any]:
    jobs = list(runtime.queue.jobs.values())
    return {
        "delivered_by_request_id": {
            job.request_id: sum(1 for d in job.deliveries if d.ok) for job in jobs if job.deliveries
        },
        "states": {job.request_id: job.webhook_state.value for job in jobs},
        "deliveries": [
            {"request_id": job.request_id, **d.as_json()} for job in jobs for d in job.deliveries
        ],
    }


@router.get("/config")
async def get_config(runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.settings.model_dump()


@router.put("/config", response_model=None)
async def put_config(
    runtime: RuntimeDep, changes: dict[str, Any] = Body(...)
) -> dict[str, Any] | JSONResponse:
    """Change knobs at runtime (e.g. `{"submit_error_rate": 1.0}`), field names without prefix."""
    try:
        settings = runtime.settings.updated(changes)
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    runtime.queue.settings = settings
    if "seed" in changes:
        runtime.queue.rng.seed(settings.seed)
    return settings.model_dump()


@router.post("/reset")
async def reset(runtime: RuntimeDep) -> dict[str, str]:
    """Forget every request, record and upload; restore the startup knobs and RNG seed."""
    await runtime.queue.reset(runtime.initial_settings)
    runtime.uploads.clear()
    return {"status": "ok"}
