"""The two media stores behind one interface: `local` files served by the app's /media route
(a real uvicorn), and `s3` against moto's S3 server over HTTP. Same tests, same claims."""

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.media.store import (
    S3_PART_BYTES,
    LocalMediaStore,
    MediaStore,
    S3MediaStore,
    open_store,
    staging_file,
)
from tests.media.conftest import LOCAL_BASE_URL
from tests.support.apps import live_server

MiB = 1024 * 1024
# Over two 8 MiB parts and not a multiple of one: S3 gets a three-part multipart upload.
LARGE = 2 * S3_PART_BYTES + MiB + 12345


@dataclass
class Backend:
    store: MediaStore
    # Where a URL the store hands out is fetched: the live app's origin replaces the local
    # store's configured one (the port is the live server's); S3 URLs go as they are.
    origin: str | None = None

    def link(self, key: str, ttl_s: int = 300) -> str:
        url = self.store.url(key, ttl_s)
        if self.origin is None:
            return url
        assert url.startswith(f"{LOCAL_BASE_URL}/media/")
        return self.origin + url.removeprefix(LOCAL_BASE_URL)


@pytest.fixture(params=["local", "s3"])
def chosen_store(request: pytest.FixtureRequest) -> tuple[MediaStore, Settings | None]:
    """The store under test; for `local`, also the settings of the app that serves it."""
    if request.param == "s3":
        return request.getfixturevalue("s3_store"), None
    settings: Settings = request.getfixturevalue("settings")
    # The same MEDIA_DIR and signing key as the app serving it, as another replica has.
    return open_store(settings), settings


@pytest.fixture
async def backend(
    chosen_store: tuple[MediaStore, Settings | None],
) -> AsyncIterator[Backend]:
    store, settings = chosen_store
    if settings is None:
        yield Backend(store)
        return
    async with live_server(settings) as origin:
        yield Backend(store, origin)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


def video_key() -> str:
    return f"videos/{uuid.uuid4()}/output.mp4"


async def publish(store: MediaStore, key: str, data: bytes) -> Path:
    staged = staging_file(store)
    staged.write_bytes(data)
    await store.publish(key, staged, "video/mp4")
    return staged


async def listed(store: MediaStore) -> list[tuple[str, int]]:
    return sorted([(item.key, item.size) async for item in store.objects()])


async def test_a_large_file_is_published_whole_and_served_with_ranges(
    backend: Backend, http: httpx.AsyncClient
) -> None:
    store, key, data = backend.store, video_key(), os.urandom(LARGE)

    staged = await publish(store, key, data)

    assert not staged.exists()
    assert await store.size(key) == len(data)
    assert await listed(store) == [(key, len(data))]
    whole = await http.get(backend.link(key))
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert int(whole.headers["content-length"]) == len(data)
    assert whole.content == data
    part = await http.get(backend.link(key), headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.content == data[100:200]


async def test_listing_gives_every_object_with_its_size_and_time(backend: Backend) -> None:
    store = backend.store
    objects = {video_key(): os.urandom(1000), f"posters/{uuid.uuid4()}.jpg": os.urandom(10)}
    for key, data in objects.items():
        await publish(store, key, data)
    # A copy under way (or left by a crash) is no object yet.
    staging_file(store).write_bytes(b"half a video")

    items = [item async for item in store.objects()]

    assert sorted((item.key, item.size) for item in items) == sorted(
        (key, len(data)) for key, data in objects.items()
    )
    assert all(item.modified.tzinfo is not None for item in items)


async def test_publishing_over_a_key_replaces_the_object_whole(
    backend: Backend, http: httpx.AsyncClient
) -> None:
    store, key = backend.store, video_key()
    await publish(store, key, os.urandom(LARGE))
    smaller = os.urandom(5000)

    await publish(store, key, smaller)

    assert await store.size(key) == len(smaller)
    assert await listed(store) == [(key, len(smaller))]
    assert (await http.get(backend.link(key))).content == smaller


async def test_delete_removes_the_object_and_missing_keys_are_no_error(
    backend: Backend, http: httpx.AsyncClient
) -> None:
    store, key, kept = backend.store, video_key(), video_key()
    await publish(store, key, os.urandom(2000))
    await publish(store, kept, os.urandom(3000))

    await store.delete([key])

    assert await store.size(key) is None
    assert await listed(store) == [(kept, 3000)]
    assert (await http.get(backend.link(key))).status_code == 404
    await store.delete([key, video_key()])  # deleted already, never existed
    await store.delete([])
    assert await store.size(kept) == 3000


async def test_the_size_of_a_missing_key_is_none(backend: Backend) -> None:
    assert await backend.store.size(video_key()) is None
    assert await backend.store.size("no-such-prefix/at/all.mp4") is None


# -- what only one backend has ---------------------------------------------------------------


async def test_s3_uploads_a_large_file_in_8_mib_parts_with_its_content_type(
    s3_store: S3MediaStore, s3_client: Any, s3_bucket: str
) -> None:
    key, data = video_key(), os.urandom(LARGE)

    await publish(s3_store, key, data)

    head = s3_client.head_object(Bucket=s3_bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "video/mp4"
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object of three parts
    first = s3_client.head_object(Bucket=s3_bucket, Key=key, PartNumber=1)
    assert first["ContentLength"] == S3_PART_BYTES
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


async def test_s3_urls_are_presigned_on_the_endpoint_and_expire(
    s3_store: S3MediaStore, s3_settings: Settings, http: httpx.AsyncClient
) -> None:
    key = video_key()
    await publish(s3_store, key, b"0123456789")

    url = httpx.URL(s3_store.url(key, 600))

    assert str(url).startswith(f"{s3_settings.s3_endpoint_url}/{s3_settings.s3_bucket}/{key}?")
    assert url.params["X-Amz-Expires"] == "600"
    assert "X-Amz-Signature" in url.params
    assert (await http.get(url)).content == b"0123456789"


async def test_local_keys_never_leave_media_dir_or_name_staging(
    settings: Settings, tmp_path: Path
) -> None:
    store = open_store(settings)
    assert isinstance(store, LocalMediaStore)
    (tmp_path / "outside.mp4").write_bytes(b"not media")
    staged = staging_file(store)
    staged.write_bytes(b"half a video")
    refused = ["../outside.mp4", "/etc/passwd", f".staging/{staged.name}", ".staging", "", "."]

    for key in refused:
        assert store.path_of(key) is None, key
        assert await store.size(key) is None, key
        with pytest.raises(ValueError, match="bad media key"):
            await store.publish(key, staged, "video/mp4")
    await store.delete(refused)

    assert (tmp_path / "outside.mp4").read_bytes() == b"not media"
    assert staged.read_bytes() == b"half a video"
    assert await listed(store) == []
