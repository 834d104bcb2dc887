"""Video jobs against a running app: create one, wait for it to end, read its history and
ledger rows. Shared by the end-to-end tests of dispatch, webhooks and uploads."""

import uuid
from typing import Any

import asyncpg
import httpx

from tests.support.apps import wait_until
from tests.support.factories import ApiUser

T2V = "kling-v2-master-t2v"
I2V = "kling-v2.1-standard-i2v"
IMAGE = "https://images.example.com/cat.png"
TERMINAL = {"completed", "failed", "canceled"}


async def create(client: httpx.AsyncClient, user: ApiUser, **body: Any) -> dict[str, Any]:
    body = {"model": T2V, "prompt": f"a cat {uuid.uuid4().hex[:8]}"} | body
    headers = {**user.auth, "Idempotency-Key": str(uuid.uuid4())}
    response = await client.post("/api/videos", json=body, headers=headers)
    assert response.status_code == 202, response.text
    video: dict[str, Any] = response.json()
    return video


async def finished(
    client: httpx.AsyncClient, user: ApiUser, video_id: str, within: float = 30
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        video: dict[str, Any] = (
            await client.get(f"/api/videos/{video_id}", headers=user.auth)
        ).json()
        return video if video["status"] in TERMINAL else None

    result: dict[str, Any] = await wait_until(probe, within=within, what=f"video {video_id}")
    return result


async def history(db: asyncpg.Connection, video_id: str) -> list[tuple[str, str]]:
    rows = await db.fetch(
        'SELECT status, source FROM "videoEvents" WHERE "videoId" = $1 ORDER BY id',
        uuid.UUID(video_id),
    )
    return [(r["status"], r["source"]) for r in rows]


async def ledger(db: asyncpg.Connection, video_id: str) -> list[tuple[str, int]]:
    rows = await db.fetch(
        'SELECT kind, amount FROM "creditTransactions" WHERE "videoId" = $1 ORDER BY sequence',
        uuid.UUID(video_id),
    )
    return [(r["kind"], r["amount"]) for r in rows]
