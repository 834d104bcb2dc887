"""`POST /api/uploads`: an image for image-to-video, stored through Fal's storage."""

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from pydantic import BaseModel

from app.core import ratelimit
from app.core.deps import DbDep, SettingsDep
from app.core.errors import AppError, Unauthorized, problem_responses
from app.core.ratelimit import RateLimited
from app.fal.client import FalError
from app.users.deps import CurrentUser
from app.videos.dispatch import Dispatcher

router = APIRouter(tags=["videos"])

# Sniffed from the bytes, not trusted from the client's Content-Type.
IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": ("image/png", "png"),
    b"\xff\xd8\xff": ("image/jpeg", "jpg"),
    b"GIF87a": ("image/gif", "gif"),
    b"GIF89a": ("image/gif", "gif"),
}


class UnsupportedImage(AppError):
    status, code, title = 415, "unsupported_image_type", "Not a PNG, JPEG, WebP or GIF image"


class UploadTooLarge(AppError):
    status, code, title = 413, "upload_too_large", "Upload too large"


class UploadsUnavailable(AppError):
    status, code, title = 503, "uploads_unavailable", "Storage unavailable"


class Uploaded(BaseModel):
    url: str
    content_type: str
    size: int


def sniff_image(data: bytes) -> tuple[str, str]:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    for signature, kind in IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return kind
    raise UnsupportedImage("the file is not a PNG, JPEG, WebP or GIF image")


@router.post(
    "/api/uploads",
    status_code=201,
    response_model=Uploaded,
    responses=problem_responses(
        Unauthorized, RateLimited, UnsupportedImage, UploadTooLarge, UploadsUnavailable
    ),
)
async def upload_image(
    file: Annotated[UploadFile, File(description="PNG, JPEG, WebP or GIF")],
    request: Request,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
) -> Uploaded:
    """Store an image and return its URL, to pass as `image_url` to POST /api/videos."""
    await ratelimit.take(db.driver, "upload", user.id, settings.rate_limit_uploads_per_minute)
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise UploadTooLarge(f"images are limited to {settings.max_upload_bytes} bytes")
    content_type, extension = sniff_image(data)
    dispatcher: Dispatcher | None = request.app.state.dispatcher
    if dispatcher is None:
        raise UploadsUnavailable("this instance has no Fal storage configured")
    try:
        url = await dispatcher.gateway.upload(data, content_type, f"upload.{extension}")
    except FalError as error:
        raise UploadsUnavailable(
            "storing the image failed; retry shortly", headers={"Retry-After": "5"}
        ) from error
    return Uploaded(url=url, content_type=content_type, size=len(data))
