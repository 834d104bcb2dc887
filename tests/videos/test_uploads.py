import uuid
from pathlib import Path

import httpx

from app.fal.simulator.process import SimulatorProcess
from tests.support.apps import AppProcess
from tests.support.factories import create_user
from tests.support.jobs import I2V, finished

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_an_uploaded_image_feeds_an_image_to_video_job(
    fal_app: tuple[AppProcess, httpx.AsyncClient], simulator: SimulatorProcess
) -> None:
    _, client = fal_app
    user = await create_user(client, credits=500)
    response = await client.post(
        "/api/uploads", files={"file": ("cat.png", PNG, "image/png")}, headers=user.auth
    )
    assert response.status_code == 201, response.text
    uploaded = response.json()
    assert uploaded["content_type"] == "image/png" and uploaded["size"] == len(PNG)
    async with httpx.AsyncClient(verify=simulator.ssl_context()) as storage:
        assert (await storage.get(uploaded["url"])).content == PNG

    created = await client.post(
        "/api/videos",
        json={"model": I2V, "prompt": "the cat wakes up", "image_url": uploaded["url"]},
        headers={**user.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert created.status_code == 202, created.text
    assert (await finished(client, user, created.json()["id"]))["status"] == "completed"


async def test_uploads_accept_only_images_within_the_limit(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> None:
    app = AppProcess(database_url, simulator, tmp_path, MAX_UPLOAD_BYTES="1000").start()
    try:
        async with httpx.AsyncClient(base_url=app.url) as client:
            user = await create_user(client)
            text = await client.post(
                "/api/uploads", files={"file": ("a.png", b"hello", "image/png")}, headers=user.auth
            )
            assert text.status_code == 415 and text.json()["code"] == "unsupported_image_type"
            big = await client.post(
                "/api/uploads", files={"file": ("a.png", PNG * 20, "image/png")}, headers=user.auth
            )
            assert big.status_code == 413 and big.json()["code"] == "upload_too_large"
            anonymous = await client.post("/api/uploads", files={"file": ("a.png", PNG)})
            assert anonymous.status_code == 401
    finally:
        app.stop()
