"""GET / HEAD /media/{key}: the `local` backend's files, for whoever holds a signed URL.

Not in the OpenAPI documents: clients never build these URLs, they follow the ones the API
hands out. Starlette's FileResponse answers HEAD and `Range` (206), so a <video> element can
seek; the file is sent in chunks, never read whole.
"""

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from app.core.errors import AppError, NotFound
from app.media.download import VIDEO_EXTENSIONS
from app.media.store import LocalMediaStore

router = APIRouter(include_in_schema=False)

CONTENT_TYPES = {extension: kind for kind, extension in VIDEO_EXTENSIONS.items()}


class MediaLinkInvalid(AppError):
    status, code, title = 403, "media_link_invalid", "Media link invalid or expired"


class MediaNotFound(NotFound):
    code, title = "media_not_found", "Media not found"


@router.api_route("/media/{key:path}", methods=["GET", "HEAD"])
async def media(
    key: str,
    request: Request,
    exp: Annotated[int, Query()] = 0,
    sig: Annotated[str, Query(max_length=100)] = "",
) -> FileResponse:
    store = request.app.state.media
    if not isinstance(store, LocalMediaStore):
        raise MediaNotFound("media is served by the object store (MEDIA_BACKEND=s3)")
    if not store.links.verify(key, exp, sig):
        raise MediaLinkInvalid("this media link is invalid or has expired; read the video again")
    path = store.path_of(key)
    if path is None or not path.is_file():
        raise MediaNotFound("no such media (deleted, or past retention)")
    suffix = path.suffix.lower()
    content_type = CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0]
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return FileResponse(
        path, media_type=content_type or "application/octet-stream", headers=headers
    )
