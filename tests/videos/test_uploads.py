"""Uploads are ours: decoded whole before they are accepted, stored in our media store, and
handed to Fal as a signed URL of our copy."""

import base64
import io
import os
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from app.core.config import Settings
from app.fal.simulator.process import SimulatorProcess
from tests.support.apps import AppProcess, make_settings, serve_app
from tests.support.factories import create_user
from tests.support.jobs import I2V, finished


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, "PNG")
    return out.getvalue()


PNG = png()


async def test_an_uploaded_image_feeds_an_image_to_video_job(
    fal_app: tuple[AppProcess, httpx.AsyncClient], simulator: SimulatorProcess
) -> None:
    app, client = fal_app
    user = await create_user(client, credits=500)
    response = await client.post(
        "/api/uploads", files={"file": ("cat.png", PNG, "image/png")}, headers=user.auth
    )
    assert response.status_code == 201, response.text
    uploaded = response.json()
    assert uploaded["image_url"] == f"upload:{uploaded['id']}"
    assert (uploaded["content_type"], uploaded["size"]) == ("image/png", len(PNG))
    assert (uploaded["width"], uploaded["height"]) == (64, 48)
    assert uploaded["url"].startswith(f"{app.url}/media/uploads/{user.id}/")
    assert (await client.get(uploaded["url"])).content == PNG  # served by us, not Fal

    created = await client.post(
        "/api/videos",
        json={"model": I2V, "prompt": "the cat wakes up", "image_url": uploaded["image_url"]},
        headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert created.status_code == 202, created.text
    assert created.json()["image_url"] == uploaded["image_url"]
    assert (await finished(client, user, created.json()["id"]))["status"] == "completed"
    # Fal was given a signed URL of our copy, which serves the very bytes uploaded.
    (submission,) = [
        s for s in simulator.submissions()["submissions"]
        if s["input"]["prompt"] == "the cat wakes up"
    ]  # fmt: skip
    sent = submission["input"]["image_url"]
    assert sent.startswith(f"{app.url}/media/uploads/{user.id}/")
    assert (await client.get(sent)).content == PNG


async def test_an_upload_is_its_owners_only(fal_app: tuple[AppProcess, httpx.AsyncClient]) -> None:
    _, client = fal_app
    owner, other = await create_user(client, credits=500), await create_user(client, credits=500)
    uploaded = await client.post(
        "/api/uploads", files={"file": ("cat.png", PNG, "image/png")}, headers=owner.auth
    )
    for image_url in (uploaded.json()["image_url"], f"upload:{uuid.uuid4()}"):
        refused = await client.post(
            "/api/videos",
            json={"model": I2V, "prompt": "not yours", "image_url": image_url},
            headers={**other.auth, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert refused.status_code == 422 and refused.json()["code"] == "upload_not_found"
    malformed = await client.post(
        "/api/videos",
        json={"model": I2V, "prompt": "not an id", "image_url": "upload:cat"},
        headers={**other.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert malformed.status_code == 422 and malformed.json()["code"] == "invalid_image_url"
    balance = (await client.get("/api/credits", headers=other.auth)).json()["balance"]
    assert balance == 500  # nothing charged


async def test_uploads_accept_only_whole_images_within_the_limit(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> None:
    app = AppProcess(database_url, simulator, tmp_path, UPLOAD_MAX_BYTES="2000").start()
    try:
        async with httpx.AsyncClient(base_url=app.url) as client:
            user = await create_user(client)

            async def upload(data: bytes, auth: dict[str, str] = user.auth) -> httpx.Response:
                return await client.post(
                    "/api/uploads", files={"file": ("a.png", data, "image/png")}, headers=auth
                )

            for not_an_image in (
                b"hello",
                b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>",  # a PNG in name
                PNG[: len(PNG) // 2],  # truncated
            ):
                refused = await upload(not_an_image)
                assert refused.status_code == 415, refused.text
                assert refused.json()["code"] == "unsupported_image_type"
            big = await upload(png(400, 400) + b"\x00" * 4000)
            assert big.status_code == 413
            assert big.json()["code"] in {"upload_too_large", "payload_too_large"}
            assert (await upload(PNG, auth={})).status_code == 401
            assert (await upload(PNG)).status_code == 201
    finally:
        app.stop()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, max_active_jobs_per_user=1000)


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: random pixels."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "PNG")
    return out.getvalue()


async def test_a_data_uri_image_is_stored_as_an_upload_and_pages_stay_small(
    app: FastAPI, client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(client, credits=100_000)
    image = noise_png(400, 400)  # ~480 KB, ~640 KB as base64
    data_uri = "data:image/png;base64," + base64.b64encode(image).decode()
    for _ in range(100):
        created = await client.post(
            "/api/videos",
            json={"model": I2V, "prompt": "the cat turns", "image_url": data_uri},
            headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert created.status_code == 202, created.text
        assert created.json()["image_url"].startswith("upload:")
    rows = await db.fetch('SELECT "imageUrl" FROM videos WHERE "userId" = $1', user.id)
    assert len(rows) == 100 and all(r["imageUrl"].startswith("upload:") for r in rows)
    keys = await db.fetch('SELECT key FROM uploads WHERE "userId" = $1', user.id)
    stored = app.state.media.path_of(keys[0]["key"]).read_bytes()
    assert len(keys) == 100 and stored == image

    page = await client.get("/api/videos?limit=100", headers=user.auth)
    assert len(page.json()["data"]) == 100
    assert len(page.content) < 200_000, len(page.content)
    print(f"\n[figures] a 100-video page of data:-URI creates: {len(page.content)} bytes")

    disguised = (
        "data:image/png;base64,"
        + base64.b64encode(b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>").decode()
    )
    refused = await client.post(
        "/api/videos",
        json={"model": I2V, "prompt": "x", "image_url": disguised},
        headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert refused.status_code == 415 and refused.json()["code"] == "unsupported_image_type"
    assert await db.fetchval('SELECT count(*) FROM videos WHERE "userId" = $1', user.id) == 100


async def test_a_data_uri_create_that_makes_no_job_keeps_no_image(database_url: str) -> None:
    # Refused for its rate limit: refused before the image is decoded or stored. Refused
    # for its balance, or a retry of an answered key: the image it stored goes again.
    settings = make_settings(database_url, rate_limit_creates_per_minute=2)
    data_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    body = {"model": I2V, "prompt": "the cat turns", "image_url": data_uri}
    async with serve_app(settings) as client:
        user = await create_user(client, credits=50)  # one 5 s i2v job: 34 credits

        async def create(key: str) -> httpx.Response:
            headers = {**user.auth, "Idempotency-Key": key}
            return await client.post("/api/videos", json=body, headers=headers)

        first = await create("first")
        broke = await create("broke")  # the second token: the balance is short
        limited = await create("limited")  # no token left
        retried = await create("first")  # the answer replayed, no second copy
        conn = await asyncpg.connect(database_url)
        try:
            keys = [r["key"] for r in await conn.fetch("SELECT key FROM uploads")]
        finally:
            await conn.close()
    ours = sorted(p.name for p in (settings.media_dir / "uploads" / str(user.id)).iterdir())
    assert first.status_code == 202 and retried.status_code == 202
    assert retried.content == first.content
    assert broke.status_code == 402 and broke.json()["code"] == "insufficient_credits"
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert len(keys) == 1
    assert first.json()["image_url"].startswith("upload:")
    assert ours == [keys[0].rsplit("/", 1)[-1]]  # no file of the refused creates is left
