"""GET / HEAD /media/{key}: the local backend's files, for whoever holds a signed URL, and
nothing else: no other key, no expired link, nothing outside MEDIA_DIR, no staging file."""

import asyncio
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.media.links import LocalLinks
from app.media.store import LocalMediaStore, staging_file
from tests.media.conftest import LOCAL_BASE_URL
from tests.support.apps import live_server, make_settings, serve_app

DATA = os.urandom(64 * 1024 + 7)


@pytest.fixture
def store(app: FastAPI) -> LocalMediaStore:
    store = app.state.media
    assert isinstance(store, LocalMediaStore)
    return store


@pytest.fixture
async def key(store: LocalMediaStore) -> str:
    """A published video's key."""
    key = f"videos/{uuid.uuid4()}/output.mp4"
    staged = staging_file(store)
    staged.write_bytes(DATA)
    await store.publish(key, staged, "video/mp4")
    return key


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


async def test_a_signed_url_serves_the_file(
    client: httpx.AsyncClient, store: LocalMediaStore, key: str
) -> None:
    url = store.url(key, 300)

    response = await client.get(url)

    assert url.startswith(f"{LOCAL_BASE_URL}/media/{key}?exp=")
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == DATA


async def test_head_gives_the_headers_and_no_body(
    client: httpx.AsyncClient, store: LocalMediaStore, key: str
) -> None:
    response = await client.head(store.url(key, 300))

    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(DATA))
    assert response.content == b""


@pytest.mark.parametrize(
    ("range_", "start", "end"),
    [
        ("bytes=100-199", 100, 200),
        ("bytes=0-0", 0, 1),
        ("bytes=-10", len(DATA) - 10, len(DATA)),
        (f"bytes={len(DATA) - 5}-", len(DATA) - 5, len(DATA)),
        (f"bytes={len(DATA) - 5}-{len(DATA) + 1000}", len(DATA) - 5, len(DATA)),
    ],
)
async def test_a_range_is_a_206_with_exactly_those_bytes(
    client: httpx.AsyncClient, store: LocalMediaStore, key: str, range_: str, start: int, end: int
) -> None:
    response = await client.get(store.url(key, 300), headers={"Range": range_})

    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert response.headers["content-length"] == str(end - start)
    assert response.content == DATA[start:end]


async def test_a_range_past_the_end_is_416(
    client: httpx.AsyncClient, store: LocalMediaStore, key: str
) -> None:
    response = await client.get(store.url(key, 300), headers={"Range": f"bytes={len(DATA)}-"})

    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    assert DATA[:16] not in response.content


def tampered(url: str) -> str:
    head, sig = url.rsplit("sig=", 1)
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    return f"{head}sig={flipped}"


async def test_a_link_that_is_not_ours_for_this_key_now_is_403(
    client: httpx.AsyncClient, store: LocalMediaStore, key: str
) -> None:
    other = f"videos/{uuid.uuid4()}/output.mp4"
    other_url = httpx.URL(store.url(other, 300))
    own = httpx.URL(store.url(key, 300))
    expired = store.links.sign(key, 300, now=time.time() - 301)
    someone_elses = LocalLinks(LOCAL_BASE_URL, "another-media-signing-key-0123456").sign(key, 300)
    widened = own.copy_set_param("exp", str(int(own.params["exp"]) + 3600))
    bad: dict[str, str | httpx.URL] = {
        "tampered signature": tampered(str(own)),
        "another key's signature": own.copy_with(query=other_url.query),
        "expired": expired,
        "later expiry than signed": widened,
        "no sig": own.copy_remove_param("sig"),
        "no exp": own.copy_remove_param("exp"),
        "nothing": own.copy_with(query=b""),
        "empty sig": own.copy_set_param("sig", ""),
        "signed with another MEDIA_SIGNING_KEY": someone_elses,
    }

    for what, url in bad.items():
        for method in ("GET", "HEAD"):
            response = await client.request(method, url)
            assert response.status_code == 403, (what, method)
            if method == "GET":
                assert_problem(response, 403, "media_link_invalid")
                assert DATA[:16] not in response.content
    assert (await client.get(own)).content == DATA  # and the real link still works


async def test_a_valid_link_to_a_deleted_file_is_404(
    client: httpx.AsyncClient, store: LocalMediaStore, key: str
) -> None:
    url = store.url(key, 300)
    await store.delete([key])

    assert_problem(await client.get(url), 404, "media_not_found")
    assert (await client.head(url)).status_code == 404


async def test_signed_keys_outside_media_dir_or_in_staging_are_never_served(
    client: httpx.AsyncClient, store: LocalMediaStore, settings: Settings, tmp_path: Path
) -> None:
    assert store.root == tmp_path / "media"
    (tmp_path / "secret.mp4").write_bytes(b"SECRET outside MEDIA_DIR")
    staged = staging_file(store)
    staged.write_bytes(b"SECRET half a video")
    (store.root / "videos").mkdir()
    keys = [
        "../secret.mp4",
        "videos/../../secret.mp4",
        "../../../../../../etc/passwd",
        str(tmp_path / "secret.mp4"),  # absolute: the root join would drop MEDIA_DIR
        f".staging/{staged.name}",
        f"videos/../.staging/{staged.name}",
        ".staging",
        "videos",  # a directory
    ]

    for key in keys:
        target = store.links.sign(key, 300).removeprefix(LOCAL_BASE_URL)
        # httpx resolves `..` itself; percent-encoded dots reach the app as the signed key.
        response = await client.get(target.replace("..", "%2e%2e"))
        # The link is valid for that key: refused as no such media, not as a bad link.
        assert_problem(response, 404, "media_not_found")
        assert b"SECRET" not in response.content, key
        assert b"root:" not in response.content, key
    assert staged.exists()


async def test_dot_segments_sent_as_they_are_to_uvicorn_never_leave_media_dir(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "secret.mp4").write_bytes(b"SECRET outside MEDIA_DIR")
    # The app's own key: these links are validly signed.
    links = LocalLinks(LOCAL_BASE_URL, settings.media_signing_key)

    async with live_server(settings) as origin:
        port = int(origin.rsplit(":", 1)[1])
        for key in ("../secret.mp4", "../../../../../../etc/passwd"):
            target = links.sign(key, 300).removeprefix(LOCAL_BASE_URL)
            assert target.startswith("/media/../")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            answer = await reader.read()
            writer.close()
            await writer.wait_closed()
            status = answer.split(b"\r\n", 1)[0]
            assert status == b"HTTP/1.1 404 Not Found", answer
            assert b'"code":"media_not_found"' in answer
            assert b"SECRET" not in answer and b"root:" not in answer


async def test_the_media_route_is_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert paths, "the document lists the API"
    assert not [path for path in paths if path.startswith("/media")]


async def test_with_the_s3_backend_the_app_serves_no_media(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url, media_backend="s3", s3_bucket="unused", media_dir=tmp_path / "staging"
    )
    (tmp_path / "staging" / "videos").mkdir(parents=True)
    (tmp_path / "staging" / "videos" / "output.mp4").write_bytes(b"SECRET")
    signed = LocalLinks(LOCAL_BASE_URL, settings.media_signing_key).sign("videos/output.mp4", 300)

    async with serve_app(settings) as client:
        response = await client.get(signed)

    assert_problem(response, 404, "media_not_found")
