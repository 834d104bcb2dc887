"""Images for image-to-video, stored by us: from POST /api/uploads, or a create's `data:` URI.

An image is accepted only once Pillow has decoded all of it (a PNG signature followed by
anything else is refused), then published to the media store and recorded in `uploads`;
`upload:<id>` names it from then on. So no image ever sits inside a row or a response.
"""

import asyncio
import base64
import hashlib
import logging
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from PIL import Image, UnidentifiedImageError

from app.core.columns import utcnow
from app.core.errors import AppError
from app.media.store import MediaStore, staging_file
from app.videos import uploads_repository
from app.videos.schemas import UPLOAD_SCHEME

logger = logging.getLogger(__name__)

# What Pillow may decode, by the format it finds in the bytes (not the client's word).
FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"),
           "WEBP": ("image/webp", "webp"), "GIF": ("image/gif", "gif")}  # fmt: skip
# Larger images are refused before decoding (a small file can claim a huge canvas).
MAX_PIXELS = 40_000_000


class UnsupportedImage(AppError):
    status, code, title = 415, "unsupported_image_type", "Not a PNG, JPEG, WebP or GIF image"


@dataclass(frozen=True)
class StoredImage:
    id: uuid.UUID
    key: str
    content_type: str
    size: int
    width: int
    height: int
    sha256: str

    @property
    def image_url(self) -> str:
        return f"{UPLOAD_SCHEME}{self.id}"


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


async def store_staged(
    driver: asyncpg.Connection,
    store: MediaStore,
    user_id: uuid.UUID,
    staged: Path,
    *,
    size: int,
    sha256: str,
) -> StoredImage:
    """Decode the staged file, publish it and record it (one statement, its own
    transaction). The file is published first: a row never points at nothing, and a failure
    after it leaves a file no row names, which `vidgen media gc` removes."""
    content_type, extension, width, height = await asyncio.to_thread(decode_image, staged)
    upload_id = uuid.uuid4()
    key = f"uploads/{user_id}/{upload_id}.{extension}"
    await store.publish(key, staged, content_type)
    image = StoredImage(upload_id, key, content_type, size, width, height, sha256)
    await uploads_repository.insert(
        driver, id=upload_id, user_id=user_id, key=key, content_type=content_type,
        size_bytes=size, width=width, height=height, sha256=sha256, now=utcnow(),
    )  # fmt: skip
    return image


async def store_data_uri(
    driver: asyncpg.Connection, store: MediaStore, user_id: uuid.UUID, data_uri: str
) -> StoredImage:
    """A create's `data:image/…;base64,…` (validation checked its form and size), stored."""
    data = base64.b64decode(data_uri.split(",", 1)[1], validate=False)
    staged = staging_file(store)
    try:
        await asyncio.to_thread(staged.write_bytes, data)
        return await store_staged(
            driver, store, user_id, staged, size=len(data), sha256=hashlib.sha256(data).hexdigest()
        )
    finally:
        staged.unlink(missing_ok=True)


async def discard(driver: asyncpg.Connection, store: MediaStore, image: StoredImage) -> None:
    """Remove an image stored for a create that was not made: its row, then its file. A
    failure is logged, not raised: what is left is an upload of the user's, or a file
    `vidgen media gc` removes."""
    try:
        await uploads_repository.delete(driver, image.id)
        await store.delete([image.key])
    except Exception:
        logger.warning("could not discard upload %s of a create not made", image.id, exc_info=True)
