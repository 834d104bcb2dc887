"""Where our copies live, behind one small interface with two backends.

`publish` is the only way in: the bytes are first written, hashed and probed in a staging
file, and only a verified file is published, whole or not at all (a rename on one file
system; one atomic PUT or multipart upload in S3). A crash mid-copy leaves a staging file
(`vidgen media gc` removes it), never a half object under a key a row points at.

Why obstore for S3: a small, typed wheel (Rust's `object_store`, no boto stack) with native
async, streaming multipart uploads with bounded memory, and presigned URLs; it speaks to AWS
S3, R2, MinIO and GCS's S3 interop alike.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple, Protocol

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from app.core.config import MediaBackend, Settings
from app.media.links import LocalLinks

# S3's smallest multipart part is 5 MiB; two in flight keep a large copy's memory bounded.
S3_PART_BYTES = 8 * 1024 * 1024
S3_PARTS_IN_FLIGHT = 2


class StoredObject(NamedTuple):
    key: str
    size: int
    modified: datetime


class MediaStore(Protocol):
    staging_dir: Path

    async def publish(self, key: str, staged: Path, content_type: str) -> None:
        """Make the staged file the object `key` (replacing any), whole or not at all."""

    async def size(self, key: str) -> int | None:
        """The object's size, or None when there is no such object."""

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove these objects; missing ones are not an error."""

    def objects(self) -> AsyncIterator[StoredObject]:
        """Every published object (staging files excluded)."""

    def url(self, key: str, ttl_s: int) -> str:
        """A URL anyone holding it may GET the object with, for `ttl_s` seconds."""


class LocalMediaStore:
    """Files under MEDIA_DIR, served by the app's /media route (app/media/router.py)."""

    def __init__(self, root: Path, links: LocalLinks) -> None:
        self.root = root
        self.staging_dir = root / ".staging"
        self.links = links
        self.staging_dir.mkdir(parents=True, exist_ok=True)

    def path_of(self, key: str) -> Path | None:
        """The file of `key`, or None for a key that would leave MEDIA_DIR or names staging."""
        path = (self.root / key).resolve()
        root = self.root.resolve()
        if root not in path.parents or self.staging_dir.resolve() in (path, *path.parents):
            return None
        return path

    async def publish(self, key: str, staged: Path, content_type: str) -> None:
        path = self.path_of(key)
        if path is None:
            raise ValueError(f"bad media key {key!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, path)  # staging is under the same root: an atomic rename

    async def size(self, key: str) -> int | None:
        path = self.path_of(key)
        return path.stat().st_size if path is not None and path.is_file() else None

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            if (path := self.path_of(key)) is not None:
                path.unlink(missing_ok=True)

    async def objects(self) -> AsyncIterator[StoredObject]:
        files = await asyncio.to_thread(self._walk)
        for item in files:
            yield item

    def _walk(self) -> list[StoredObject]:
        found = []
        for directory, subdirs, names in os.walk(self.root):
            subdirs[:] = [d for d in subdirs if Path(directory, d) != self.staging_dir]
            for name in names:
                path = Path(directory, name)
                stat = path.stat()
                modified = datetime.fromtimestamp(stat.st_mtime).astimezone()
                found.append(
                    StoredObject(path.relative_to(self.root).as_posix(), stat.st_size, modified)
                )
        return found

    def url(self, key: str, ttl_s: int) -> str:
        return self.links.sign(key, ttl_s)


class S3MediaStore:
    """An S3-protocol bucket; clients fetch straight from it with presigned GET URLs."""

    def __init__(self, settings: Settings) -> None:
        assert settings.s3_bucket is not None  # Settings refuses MEDIA_BACKEND=s3 without it
        config: dict[str, str] = {}
        if settings.s3_endpoint_url:
            config["endpoint"] = settings.s3_endpoint_url
        if settings.s3_region:
            config["region"] = settings.s3_region
        if settings.aws_access_key_id and settings.aws_secret_access_key:
            config["access_key_id"] = settings.aws_access_key_id
            config["secret_access_key"] = settings.aws_secret_access_key
            if settings.aws_session_token:
                config["token"] = settings.aws_session_token
        http = (settings.s3_endpoint_url or "").startswith("http://")
        self.store = S3Store(
            settings.s3_bucket,
            config=config,  # type: ignore[arg-type]
            client_options={"allow_http": http, "timeout": timedelta(seconds=300)},
        )
        self.staging_dir = settings.media_dir / ".staging"
        self.staging_dir.mkdir(parents=True, exist_ok=True)

    async def publish(self, key: str, staged: Path, content_type: str) -> None:
        await obstore.put_async(
            self.store,
            key,
            staged,
            attributes={"Content-Type": content_type},
            chunk_size=S3_PART_BYTES,
            max_concurrency=S3_PARTS_IN_FLIGHT,
        )
        staged.unlink(missing_ok=True)  # noqa: ASYNC240 (one metadata operation, no I/O wait)

    async def size(self, key: str) -> int | None:
        try:
            meta = await obstore.head_async(self.store, key)
        except (NotFoundError, FileNotFoundError):
            return None
        return int(meta["size"])

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await obstore.delete_async(self.store, list(keys))

    async def objects(self) -> AsyncIterator[StoredObject]:
        async for batch in obstore.list(self.store, chunk_size=1000):
            for meta in batch:
                yield StoredObject(meta["path"], int(meta["size"]), meta["last_modified"])

    def url(self, key: str, ttl_s: int) -> str:
        return obstore.sign(self.store, "GET", key, timedelta(seconds=ttl_s))


def open_store(settings: Settings) -> MediaStore:
    if settings.media_backend is MediaBackend.S3:
        return S3MediaStore(settings)
    return LocalMediaStore(
        settings.media_dir, LocalLinks(settings.public_base_url, settings.media_signing_key)
    )


def staging_file(store: MediaStore) -> Path:
    return store.staging_dir / f"{uuid.uuid4().hex}.part"
