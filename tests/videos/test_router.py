import asyncio
import uuid
from collections import defaultdict
from typing import Any

import asyncpg
import httpx
import pytest

from app.core.config import Settings
from tests.support.apps import live_server, make_settings, serve_app, wait_until
from tests.support.factories import ApiUser, create_user
from tests.support.helpers import run_vidgen

# Kling 2.0 Master: Fal bills $1.40 per 5 s + $0.28 per extra second; with the default 20 %
# margin that is 168 credits for 5 s and 336 for 10 s. Durations 5 / 10, prompt limit 2500.
T2V = "kling-v2-master-t2v"
I2V = "kling-v2.1-standard-i2v"  # $0.28 per 5 s ➜ 34 credits (33.6 rounded up)
IMAGE = "https://images.example.com/cat.png"


def t2v(**extra: Any) -> dict[str, Any]:
    return {"model": T2V, "prompt": "a cat surfing a wave at sunset"} | extra


async def create(
    client: httpx.AsyncClient, user: ApiUser, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {**user.auth, "Idempotency-Key": key or str(uuid.uuid4())}
    return await client.post("/api/videos", json=body, headers=headers)


async def counts(db: asyncpg.Connection, user: ApiUser) -> tuple[int, int]:
    videos = await db.fetchval('SELECT count(*) FROM videos WHERE "userId" = $1', user.id)
    ledger = await db.fetchval(
        """SELECT count(*) FROM "creditTransactions" WHERE "userId" = $1 AND kind <> 'grant'""",
        user.id,
    )
    return videos, ledger


@pytest.fixture
async def roomy(database_url: str) -> Any:
    """The API with a high active-job cap, for tests that create many jobs."""
    async with serve_app(make_settings(database_url, max_active_jobs_per_user=1000)) as client:
        yield client


async def test_create_charges_once_and_returns_a_pending_video(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(client, credits=1000)
    response = await create(client, user, t2v(duration=10, aspect_ratio="9:16", cfg_scale=0.7))
    assert response.status_code == 202, response.text
    video = response.json()
    assert video["status"] == "pending" and video["model"] == T2V
    assert video["kind"] == "text-to-video" and video["duration"] == 10
    assert video["credits_charged"] == 336 and video["aspect_ratio"] == "9:16"
    assert video["video"] is None and video["error"] is None
    balance = (await client.get("/api/credits", headers=user.auth)).json()
    assert balance["balance"] == 1000 - 336
    assert balance["data"][0]["kind"] == "debit"
    assert balance["data"][0]["video_id"] == video["id"]

    image = await create(
        client, user, {"model": I2V, "prompt": "the cat blinks", "image_url": IMAGE}
    )
    assert image.status_code == 202
    assert image.json()["credits_charged"] == 34 and image.json()["image_url"] == IMAGE


async def test_200_concurrent_creates_over_20_keys_make_20_videos(
    roomy: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(roomy, credits=100_000)
    keys = [f"create-{i:02d}" for i in range(20)]
    bodies = {key: t2v(prompt=f"scene {key}") for key in keys}
    requests = [(key, bodies[key]) for key in keys for _ in range(10)]
    responses = await asyncio.gather(*(create(roomy, user, body, key) for key, body in requests))

    assert {r.status_code for r in responses} == {202}
    ids_per_key: dict[str, set[str]] = defaultdict(set)
    for (key, _), response in zip(requests, responses, strict=True):
        ids_per_key[key].add(response.json()["id"])
    assert all(len(ids) == 1 for ids in ids_per_key.values())
    assert len({next(iter(ids)) for ids in ids_per_key.values()}) == 20
    replayed = sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses)
    assert replayed == 180
    assert await counts(db, user) == (20, 20)


async def test_insufficient_credits_is_402_with_nothing_written(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(client, credits=100)
    response = await create(client, user, t2v(duration=5))  # costs 168
    assert response.status_code == 402
    assert response.json()["code"] == "insufficient_credits"
    assert "168" in response.json()["detail"] and "100" in response.json()["detail"]
    assert await counts(db, user) == (0, 0)
    user_keys = """SELECT count(*) FROM "idempotencyRequests" WHERE scope = 'user:' || $1"""
    assert await db.fetchval(user_keys, str(user.id)) == 0


@pytest.mark.parametrize(
    ("body", "status", "code", "detail"),
    [
        ({"model": "no-such-model", "prompt": "x"}, 404, "model_not_found", "no-such-model"),
        (t2v(image_url=IMAGE), 422, "image_not_allowed", "text-to-video"),
        ({"model": I2V, "prompt": "x"}, 422, "image_required", "image_url is required"),
        (t2v(prompt="p" * 2501), 422, "prompt_too_long",
         "Prompt too long: 2501 characters, the limit is 2500"),
        (t2v(prompt="p" * 100_000), 422, "prompt_too_long",
         "Prompt too long: 100000 characters, the limit is 2500"),
        (t2v(duration=7), 422, "unsupported_duration", "must be one of 5, 10"),
        (t2v(aspect_ratio="4:3"), 422, "unsupported_aspect_ratio", "one of 16:9, 9:16, 1:1"),
        (t2v(resolution="1080p"), 422, "unsupported_parameter", "does not take 'resolution'"),
        (t2v(seed=7), 422, "unsupported_parameter", "does not take 'seed'"),
        (t2v(cfg_scale=1.5), 422, "unsupported_value", "must be at most 1"),
        ({"model": I2V, "prompt": "x", "image_url": "http://insecure.example.com/a.png"}, 422,
         "invalid_image_url", "https"),
        ({"model": I2V, "prompt": "x", "image_url": "data:text/plain;base64,aGk="}, 422,
         "invalid_image_url", "data:image"),
        ({"model": I2V, "prompt": "x", "image_url": "data:image/png;base64," + "A" * 2_000_000},
         413, "payload_too_large", "at most"),  # past MAX_JSON_BODY_BYTES: refused at the edge
        (t2v(prompt=""), 422, "validation_error", "prompt"),
        (t2v(seed=-1), 422, "validation_error", "seed"),
        (t2v(unknown_field=1), 422, "unsupported_parameter", "unknown_field"),
    ],
)  # fmt: skip
async def test_invalid_requests_are_refused_with_their_code_and_nothing_written(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    body: dict[str, Any],
    status: int,
    code: str,
    detail: str,
) -> None:
    user = await create_user(client, credits=10_000)
    response = await create(client, user, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert detail in response.json()["detail"]
    assert await counts(db, user) == (0, 0)


async def test_active_job_cap_is_429(database_url: str, db: asyncpg.Connection) -> None:
    async with serve_app(make_settings(database_url, max_active_jobs_per_user=2)) as client:
        user = await create_user(client, credits=10_000)
        results = await asyncio.gather(*(create(client, user, t2v()) for _ in range(5)))
    assert sorted(r.status_code for r in results) == [202, 202, 429, 429, 429]
    refused = next(r for r in results if r.status_code == 429)
    assert refused.json()["code"] == "too_many_active_jobs" and "Retry-After" in refused.headers
    assert await counts(db, user) == (2, 2)


async def test_cancel_twice_concurrently_refunds_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(client, credits=500)
    video = (await create(client, user, t2v())).json()
    cancels = await asyncio.gather(
        *(client.post(f"/api/videos/{video['id']}/cancel", headers=user.auth) for _ in range(2))
    )
    assert sorted(r.status_code for r in cancels) == [200, 409]
    ok = next(r for r in cancels if r.status_code == 200).json()
    assert ok["status"] == "canceled" and ok["completed_at"] is not None
    refused = next(r for r in cancels if r.status_code == 409).json()
    assert refused["code"] == "video_not_cancelable"
    refunds = await db.fetchval(
        """SELECT count(*) FROM "creditTransactions" WHERE "videoId" = $1 AND kind = 'refund'""",
        uuid.UUID(video["id"]),
    )
    assert refunds == 1
    assert (await client.get("/api/credits", headers=user.auth)).json()["balance"] == 500
    again = await client.post(f"/api/videos/{video['id']}/cancel", headers=user.auth)
    assert again.status_code == 409


async def test_pagination_walks_250_videos_without_gaps_while_new_ones_arrive(
    roomy: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    user = await create_user(roomy, credits=1_000_000)
    model_id = await db.fetchval("SELECT id FROM models WHERE slug = $1", T2V)
    # 250 existing jobs, inserted directly (fast) with distinct and tied timestamps.
    existing = await db.fetch(
        """INSERT INTO videos ("userId", "modelId", kind, prompt, duration, "creditsCharged",
                               "idempotencyKey", "requestFingerprint", "createdAt")
           SELECT $1, $2, 'text-to-video', 'seed ' || i, 5, 0, 'seed-' || i, 'f',
                  now() - (i / 3) * interval '1 second'
           FROM generate_series(1, 250) i RETURNING id""",
        user.id,
        model_id,
    )
    expected = {str(r["id"]) for r in existing}

    async def keep_creating() -> int:
        made = 0
        for _ in range(15):
            assert (await create(roomy, user, t2v())).status_code == 202
            made += 1
        return made

    async def walk() -> list[str]:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = (await roomy.get("/api/videos", params=params, headers=user.auth)).json()
            seen += [v["id"] for v in page["data"]]
            if not (cursor := page["next_cursor"]):
                return seen
            await asyncio.sleep(0)  # let the creator interleave between pages

    made, seen = await asyncio.gather(keep_creating(), walk())
    assert len(seen) == len(set(seen)), "a video appeared twice"
    assert expected <= set(seen), "a video was skipped"
    assert made == 15

    pending = await roomy.get(
        "/api/videos", params={"status": "pending", "limit": 100}, headers=user.auth
    )
    assert all(v["status"] == "pending" for v in pending.json()["data"])
    for bad in ({"limit": 0}, {"limit": 101}, {"status": "exploded"}):
        assert (await roomy.get("/api/videos", params=bad, headers=user.auth)).status_code == 422


async def test_another_users_video_is_404_everywhere(client: httpx.AsyncClient) -> None:
    owner = await create_user(client, credits=500)
    stranger = await create_user(client, credits=500)
    video_id = (await create(client, owner, t2v())).json()["id"]
    for method, path in (
        ("GET", f"/api/videos/{video_id}"),
        ("POST", f"/api/videos/{video_id}/cancel"),
        ("GET", f"/api/videos/{video_id}/events"),
    ):
        response = await client.request(method, path, headers=stranger.auth)
        assert response.status_code == 404, path
        assert response.json()["code"] == "video_not_found"
    assert (await client.get(f"/api/videos/{video_id}", headers=owner.auth)).status_code == 200
    mine = (await client.get("/api/videos", headers=stranger.auth)).json()
    assert mine["data"] == []


async def test_events_stream_status_changes_until_terminal(
    database_url: str,
) -> None:
    settings = make_settings(database_url, events_poll_interval_s=0.05)
    async with live_server(settings) as url, httpx.AsyncClient(base_url=url) as client:
        user = await create_user(client, credits=500)
        video_id = (await create(client, user, t2v())).json()["id"]
        events: list[str] = []
        async with client.stream(
            "GET", f"/api/videos/{video_id}/events", headers=user.auth
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    events.append(line)
                    if len(events) == 1:
                        cancel = await client.post(
                            f"/api/videos/{video_id}/cancel", headers=user.auth
                        )
                        assert cancel.status_code == 200
    assert len(events) == 2
    assert '"status":"pending"' in events[0] and '"status":"canceled"' in events[1]


async def test_models_are_listed_with_prices_and_limits(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    models = (await client.get("/api/models", headers=user.auth)).json()["data"]
    kinds = defaultdict(list)
    for model in models:
        kinds[model["kind"]].append(model["id"])
    assert len(kinds["text-to-video"]) >= 3 and len(kinds["image-to-video"]) >= 3
    kling = next(m for m in models if m["id"] == T2V)
    assert kling["fal_endpoint"] == "fal-ai/kling-video/v2/master/text-to-video"
    assert kling["pricing"]["by_duration"] == {"5": 168, "10": 336}
    assert kling["pricing"]["credit_usd"] == 0.01


async def test_models_sync_deactivates_removed_models_and_status_counts_jobs(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str, settings: Settings
) -> None:
    user = await create_user(client, credits=500)
    assert (await create(client, user, t2v())).status_code == 202
    await db.execute(
        """INSERT INTO models (slug, name, "falEndpoint", kind, "creditsPerSecond", durations,
           "maxPromptLength") VALUES ('retired', 'Old', 'fal-ai/old', 'text-to-video', 1,
           '{5}', 100)"""
    )
    env = {"DATABASE_URL": database_url}
    synced = run_vidgen("models", "sync", env=env)
    assert synced.returncode == 0, synced.stderr
    assert "deactivated retired" in synced.stdout
    assert await db.fetchval("SELECT active FROM models WHERE slug = 'retired'") is False
    status = run_vidgen("models", "status", env=env)
    assert status.returncode == 0, status.stderr
    line = next(ln for ln in status.stdout.splitlines() if ln.startswith(T2V))
    assert "active" in line and line.split()[3] == "1"  # one pending job
    assert "retired" in status.stdout and "inactive" in status.stdout
    listed = (await client.get("/api/models", headers=user.auth)).json()["data"]
    assert "retired" not in {m["id"] for m in listed}


async def test_a_deactivated_model_stops_selling_within_the_catalog_refresh(
    database_url: str, db: asyncpg.Connection
) -> None:
    # Creates read models from a per-process copy (app.catalog.service.ActiveModels).
    settings = make_settings(database_url, catalog_refresh_s=0.2)
    async with serve_app(settings) as client:
        user = await create_user(client, credits=1000)
        assert (await create(client, user, t2v())).status_code == 202
        await db.execute("UPDATE models SET active = false WHERE slug = $1", T2V)

        async def refused() -> httpx.Response | None:
            response = await create(client, user, t2v())
            return response if response.status_code != 202 else None

        response = await wait_until(refused, within=5, what="the model to be refused")
        assert response.status_code == 404 and response.json()["code"] == "model_not_found"
        before = await counts(db, user)
        assert (await create(client, user, t2v())).status_code == 404
        assert await counts(db, user) == before  # a refusal writes nothing
        await db.execute("UPDATE models SET active = true WHERE slug = $1", T2V)
        await wait_until(lambda: _accepted(client, user), within=5, what="the model to sell again")


async def _accepted(client: httpx.AsyncClient, user: ApiUser) -> bool:
    return (await create(client, user, t2v())).status_code == 202
