"""Fal's storage and key endpoints: JWKS, CDN token + upload, and file downloads.

fal-client 1.0.3's `upload(data, content_type)` first POSTs `{REST_URL}/storage/auth/token
?storage_type=fal-cdn-v3` (answer: token, token_type, base_url, expires_at) and then POSTs
the raw bytes to `{CDN_URL}/files/upload` with `Authorization: {token_type} {token}`
(answer: access_url). If that fails it falls back to `{REST_URL}/storage/upload/initiate`
(answer: upload_url, file_url) plus a PUT of the bytes. Pointing `fal_client.client.REST_URL`
and `CDN_URL` at the simulator makes every step land here.
"""

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from app.fal.simulator.jobs import NOT_VIDEO_TAG, TRICKLE_TAG
from app.fal.simulator.media import SAMPLE_PATH, StoredFile
from app.fal.simulator.runtime import FalKeyDep, Runtime, RuntimeDep

router = APIRouter(tags=["fal storage"])

TOKEN_LIFETIME = dt.timedelta(hours=1)


@router.get("/.well-known/jwks.json")
async def jwks(runtime: RuntimeDep) -> JSONResponse:
    return JSONResponse(runtime.signer.jwks(), headers={"Cache-Control": "max-age=3600"})


@router.post("/storage/auth/token")
async def cdn_token(runtime: RuntimeDep, _key: FalKeyDep) -> dict[str, Any]:
    expires_at = dt.datetime.now(dt.UTC) + TOKEN_LIFETIME
    return {
        "token": runtime.uploads.issue_token(),
        "token_type": "Bearer",
        "base_url": runtime.base_url,
        "expires_at": expires_at.isoformat(),
    }


@router.post("/files/upload")
async def cdn_upload(
    request: Request,
    runtime: RuntimeDep,
    authorization: Annotated[str, Header()] = "",
    content_type: Annotated[str, Header()] = "application/octet-stream",
    x_fal_file_name: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or token not in runtime.uploads.tokens:
        return JSONResponse({"detail": "Invalid or missing upload token"}, status_code=401)
    data = await request.body()
    key = runtime.uploads.put(data, content_type, x_fal_file_name)
    return JSONResponse(
        {
            "access_url": f"{runtime.base_url}/files/{key}",
            "content_type": content_type,
            "file_name": key.rsplit("/", 1)[-1],
            "file_size": len(data),
        }
    )


@router.post("/storage/upload/initiate")
async def storage_initiate(request: Request, runtime: RuntimeDep, _key: FalKeyDep) -> JSONResponse:
    try:
        spec = json.loads(await request.body() or b"{}")
    except ValueError:
        spec = {}
    file_name = spec.get("file_name") if isinstance(spec, dict) else None
    content_type = spec.get("content_type") if isinstance(spec, dict) else None
    # Reserve the key now; the PUT fills in the bytes.
    key = runtime.uploads.put(b"", str(content_type or "application/octet-stream"), file_name)
    return JSONResponse(
        {
            "upload_url": f"{runtime.base_url}/storage/upload/{key}",
            "file_url": f"{runtime.base_url}/files/{key}",
        }
    )


@router.put("/storage/upload/{key:path}")
async def storage_put(
    key: str,
    request: Request,
    runtime: RuntimeDep,
    content_type: Annotated[str | None, Header()] = None,
) -> Response:
    reserved = runtime.uploads.files.get(key)
    if reserved is None:
        return JSONResponse({"detail": "Unknown upload"}, status_code=404)
    runtime.uploads.files[key] = StoredFile(
        await request.body(), content_type or reserved.content_type, reserved.file_name
    )
    return Response(status_code=200)


async def _trickle(data: bytes) -> AsyncIterator[bytes]:
    """The bytes over about three seconds: a download that is still running when looked at."""
    chunk = max(len(data) // 60, 1)
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]
        await asyncio.sleep(0.05)


def _fresh(runtime: Runtime, made_at: float | None) -> bool:
    ttl = runtime.settings.file_ttl_s
    return ttl is None or made_at is None or time.time() < made_at + ttl


@router.get("/files/{key:path}")
async def download(key: str, runtime: RuntimeDep) -> Response:
    """Public, like Fal's CDN: whoever has the URL may fetch it, until FILE_TTL_S passes."""
    if (stored := runtime.uploads.files.get(key)) and _fresh(runtime, stored.stored_at):
        return Response(stored.data, media_type=stored.content_type)
    request_id = key.removesuffix(".mp4")
    job = runtime.queue.jobs.get(request_id)
    if (
        key.endswith(".mp4")
        and job is not None
        and job.output_ready
        and _fresh(runtime, job.completed_at)
    ):
        if NOT_VIDEO_TAG in job.tags:
            return Response(b"<html>an error page, not a video</html>", media_type="video/mp4")
        if TRICKLE_TAG in job.tags:
            data = SAMPLE_PATH.read_bytes()
            return StreamingResponse(
                _trickle(data),
                media_type=runtime.video.content_type,
                headers={"Content-Length": str(len(data))},
            )
        # FileResponse answers Range requests, which browsers' <video> elements send.
        output = runtime.settings.output_file or SAMPLE_PATH
        return FileResponse(output, media_type=runtime.video.content_type)
    return JSONResponse({"detail": "File not found"}, status_code=404)
