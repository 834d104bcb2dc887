"""`POST /api/uploads`: an image for image-to-video, stored by us.

The body is size-limited at the ASGI layer while it streams (app/core/limits.py), written to
a staging file in chunks, and decoded whole with Pillow before it is accepted
(app/videos/images.py). The answer's `image_url` (`upload:<id>`)
is what POST /api/videos takes; at submit Fal gets a signed URL of our copy
(app/videos/dispatch.py), so the image outlives Fal's storage and never passes through it.
"""

import hashlib
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from pydantic import BaseModel, Field

from app.core import ratelimit
from app.core.deps import DbDep, SettingsDep
from app.core.errors import AppError, Unauthorized, problem_responses
from app.core.ratelimit import RateLimited
from app.media.store import MediaStore, staging_file
from app.users.deps import CurrentUser
from app.videos import images
from app.videos.images import UnsupportedImage

router = APIRouter(tags=["uploads"])

CHUNK_BYTES = 256 * 1024


class UploadTooLarge(AppError):
    status, code, title = 413, "upload_too_large", "Upload too large"


class Uploaded(BaseModel):
    id: uuid.UUID
    image_url: str = Field(description="pass this as `image_url` to POST /api/videos")
    url: str = Field(description="a signed URL to show the image; expires (MEDIA_URL_TTL_S)")
    content_type: str
    size: int
    width: int
    height: int
    sha256: str


async def _stage(file: UploadFile, staged: Path, max_bytes: int) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with staged.open("wb") as out:
        while chunk := await file.read(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLarge(f"images are limited to {max_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


@router.post(
    "/api/uploads",
    status_code=201,
    response_model=Uploaded,
    responses=problem_responses(Unauthorized, RateLimited, UnsupportedImage, UploadTooLarge),
)
async def upload_image(
    file: Annotated[UploadFile, File(description="PNG, JPEG, WebP or GIF")],
    request: Request,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
) -> Uploaded:
    """Store an image; pass the answer's `image_url` to POST /api/videos."""
    bucket = ratelimit.Bucket("upload", user.id, settings.rate_limit_uploads_per_minute)
    await ratelimit.take(db.driver, bucket)
    store: MediaStore = request.app.state.media
    staged = staging_file(store)
    try:
        size, sha256 = await _stage(file, staged, settings.upload_max_bytes)
        image = await images.store_staged(
            db.driver, store, user.id, staged, size=size, sha256=sha256
        )
    finally:
        staged.unlink(missing_ok=True)
    return Uploaded(
        id=image.id,
        image_url=image.image_url,
        url=store.url(image.key, settings.media_url_ttl_s),
        content_type=image.content_type,
        size=image.size,
        width=image.width,
        height=image.height,
        sha256=image.sha256,
    )
