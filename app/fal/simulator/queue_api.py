"""Fal's queue protocol (docs/fal.md, "Queue protocol and errors"): submit, status, result, cancel.

fal-client submits to the full endpoint path (`fal-ai/kling-video/v2.1/standard/…`) but
builds its by-id URLs from owner/alias only (`fal-ai/kling-video/requests/{id}`). Request
ids are globally unique, so the by-id routes accept any app path and look up by id alone.
These routes are registered last: their catch-all paths would shadow everything else.
"""

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.fal.simulator.jobs import (
    ODD_STATUS_TAG,
    CancelResult,
    InvalidInput,
    Job,
    Phase,
    SubmitRejected,
)
from app.fal.simulator.runtime import FalKeyDep, Runtime, RuntimeDep

router = APIRouter(tags=["fal queue"])

# Fal app ids that start with a namespace keep three segments before the endpoint path.
APP_NAMESPACES = ("workflows", "comfy")
TRUE_VALUES = {"1", "true", "yes", "on"}
# Request headers worth keeping with each submission: Fal's own (`x-fal-*`) and any marker
# a caller adds, e.g. an idempotency key, so tests can tell submissions apart.
RECORDED_HEADER_PREFIX = "x-"


def _owner_alias(app_path: str) -> str | None:
    parts = [p for p in app_path.split("/") if p]
    keep = 3 if parts and parts[0] in APP_NAMESPACES else 2
    return "/".join(parts[:keep]) if len(parts) >= keep else None


def _not_found() -> JSONResponse:
    return JSONResponse({"detail": "Request not found"}, status_code=404)


def _urls(job: Job) -> dict[str, str]:
    return {
        "response_url": job.queue_url,
        "status_url": f"{job.queue_url}/status",
        "cancel_url": f"{job.queue_url}/cancel",
    }


@router.get("/{app_path:path}/requests/{request_id}/status")
async def status(
    app_path: str, request_id: str, runtime: RuntimeDep, _key: FalKeyDep, logs: str = "0"
) -> JSONResponse:
    job = runtime.queue.jobs.get(request_id)
    if job is None:
        return _not_found()
    job.status_polls += 1
    if ODD_STATUS_TAG in job.tags:
        return JSONResponse({"status": "PAUSED", "request_id": job.request_id}, status_code=202)
    with_logs = logs.lower() in TRUE_VALUES
    body: dict[str, Any] = {"status": job.phase.value, "request_id": job.request_id, **_urls(job)}
    if job.phase is Phase.IN_QUEUE:
        body["queue_position"] = runtime.queue.queue_position(job)
        return JSONResponse(body, status_code=202)
    body["logs"] = list(job.logs) if with_logs else None
    if job.phase is Phase.IN_PROGRESS:
        return JSONResponse(body, status_code=202)
    body["metrics"] = {"inference_time": job.inference_time}
    if failure := job.failure:
        body["error"] = failure.error
        body["error_type"] = failure.error_type
    return JSONResponse(body, status_code=200)


@router.put("/{app_path:path}/requests/{request_id}/cancel")
async def cancel(
    app_path: str, request_id: str, runtime: RuntimeDep, _key: FalKeyDep
) -> JSONResponse:
    outcome = runtime.queue.cancel(request_id)
    code = {
        CancelResult.CANCELLATION_REQUESTED: 202,
        CancelResult.ALREADY_COMPLETED: 400,
        CancelResult.NOT_FOUND: 404,
    }[outcome]
    return JSONResponse({"status": outcome.value}, status_code=code)


@router.get("/{app_path:path}/requests/{request_id}")
async def result(
    app_path: str, request_id: str, runtime: RuntimeDep, _key: FalKeyDep
) -> JSONResponse:
    job = runtime.queue.jobs.get(request_id)
    if job is None:
        return _not_found()
    job.result_fetches += 1
    if job.phase is not Phase.COMPLETED:
        return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
    if failure := job.failure:
        return JSONResponse(failure.body, status_code=failure.http_status, headers=failure.headers)
    return JSONResponse(job.output(runtime.video), headers={"X-Fal-Request-Id": job.request_id})


@router.post("/{app_path:path}")
async def submit(
    app_path: str,
    request: Request,
    runtime: RuntimeDep,
    _key: FalKeyDep,
    fal_webhook: str | None = None,
) -> JSONResponse:
    owner_alias = _owner_alias(app_path)
    if owner_alias is None:
        return JSONResponse({"detail": f"Unknown app '{app_path}'"}, status_code=404)
    try:
        model_input = json.loads(await request.body() or b"{}")
    except ValueError:
        return JSONResponse({"detail": "Request body must be JSON"}, status_code=422)
    if not isinstance(model_input, dict):
        return JSONResponse({"detail": "Request body must be a JSON object"}, status_code=422)
    headers = {
        name: value
        for name, value in request.headers.items()
        if name.startswith(RECORDED_HEADER_PREFIX)
    }
    app_id = app_path.strip("/")
    model = runtime.model(app_id)
    if model is None:
        return JSONResponse({"detail": f"Application '{app_id}' not found"}, status_code=404)
    try:
        job = runtime.queue.submit(
            app_id=app_id,
            owner_alias=owner_alias,
            model_input=model_input,
            webhook_url=fal_webhook,
            base_url=runtime.base_url,
            headers=headers,
            invalid=model.fal_input_errors(model_input),
        )
    except InvalidInput as refused:
        # Fal's queue validates the input at submit: 422, FastAPI's `detail` list, not retryable.
        return JSONResponse(
            {"detail": refused.detail},
            status_code=422,
            headers={"X-Fal-Retryable": "false", "X-Fal-Error-Type": "validation_error"},
        )
    except SubmitRejected:
        # 500 is the one server error fal-client does not retry, so the caller sees it.
        return JSONResponse(
            {"detail": "Internal server error", "error_type": "internal_error"},
            status_code=500,
            headers={"X-Fal-Error-Type": "internal_error"},
        )
    if runtime.settings.submit_delay_s:
        await asyncio.sleep(runtime.settings.submit_delay_s)  # accepted, answered late
    return JSONResponse(_submitted(job, runtime))


def _submitted(job: Job, runtime: Runtime) -> dict[str, Any]:
    return {
        "status": "IN_QUEUE",
        "request_id": job.request_id,
        "gateway_request_id": job.request_id,
        **_urls(job),
        "queue_position": runtime.queue.queue_position(job),
    }
