"""`POST /api/uploads`: an image for image-to-video, stored by us.

The body is size-limited at the ASGI layer while it streams (app/core/limits.py), written to
a staging file in chunks, and decoded whole with Pillow before it is accepted: a PNG
signature followed by anything else is refused. The answer's `image_url` (`upload:<id>`)
is what POST /api/videos takes; at submit Fal gets a signed URL of our copy
(app/videos/dispatch.py), so the image outlives Fal's storage and never passes through it.
"""

import asyncio
import hashlib
import uuid
import warnings
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from app.core import ratelimit
from app.core.columns import utcnow
from app.core.deps import DbDep, SettingsDep
from app.core.errors import AppError, Unauthorized, problem_responses
from app.core.ratelimit import RateLimited
from app.media.store import MediaStore, staging_file
from app.users.deps import CurrentUser
from app.videos import uploads_repository
from app.videos.schemas import UPLOAD_SCHEME

router = APIRouter(tags=["uploads"])

# What Pillow may decode, by the format it finds in the bytes (not the client's word).
FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"),
           "WEBP": ("image/webp", "webp"), "GIF": ("image/gif", "gif")}  # fmt: skip
# Larger images are refused before decoding (a small file can claim a huge canvas).
MAX_PIXELS = 40_000_000
CHUNK_BYTES = 256 * 1024


class UnsupportedImage(AppError):
    status, code, title = 415, "unsupported_image_type", "Not a PNG, JPEG, WebP or GIF image"


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


def decode_image(path: Path) -> tuple[str, str, int, int]:
    """(content type, extension, width, height) of a whole, decodable image; else 415."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                found = FORMATS.get(image.format or "")
                if found is None:
                    raise UnsupportedImage(f"{image.format} images are not accepted")
                if image.width * image.height > MAX_PIXELS:
                    raise UnsupportedImage(f"images are limited to {MAX_PIXELS} pixels")
                image.load()  # decodes every byte: a truncated or disguised file fails here
                return (*found, image.width, image.height)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnsupportedImage("the file is not a whole PNG, JPEG, WebP or GIF image") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnsupportedImage(f"images are limited to {MAX_PIXELS} pixels") from error


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
    await ratelimit.take(db.driver, "upload", user.id, settings.rate_limit_uploads_per_minute)
    store: MediaStore = request.app.state.media
    staged = staging_file(store)
    try:
        size, sha256 = await _stage(file, staged, settings.max_upload_bytes)
        content_type, extension, width, height = await asyncio.to_thread(decode_image, staged)
        upload_id = uuid.uuid4()
        key = f"uploads/{user.id}/{upload_id}.{extension}"
        await store.publish(key, staged, content_type)
    finally:
        staged.unlink(missing_ok=True)
    # Published first: a crash before this insert leaves a file no row points at (gc).
    await uploads_repository.insert(
            db.driver, id=upload_id, user_id=user.id, key=key, content_type=content_type,
            size_bytes=size, width=width, height=height, sha256=sha256, now=utcnow(),
    )  # fmt: skip
    return Uploaded(
        id=upload_id,
        image_url=f"{UPLOAD_SCHEME}{upload_id}",
        url=store.url(key, settings.media_url_ttl_s),
        content_type=content_type,
        size=size,
        width=width,
        height=height,
        sha256=sha256,
    )
