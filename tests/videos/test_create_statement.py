"""The create in one statement and the webhook in one (app/videos/repository.py CREATE):
what they send PostgreSQL, counted by the server itself (pg_stat_statements), and the
guarantees the one statement must keep on the paths around it (replays, refusals, counter).
"""

import asyncio
import base64
import hashlib
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.core.idempotency import REPLAY_HEADER
from app.fal import webhooks
from app.ops.audit import run_audit
from tests.support.apps import make_settings, serve_app
from tests.support.factories import ApiUser, create_user
from tests.support.jwks import jwks_server

T2V = {"model": "kling-v2-master-t2v", "prompt": "a kite over dunes"}
PRICE = 168  # T2V's default 5 s at the catalog's price
# The statements the app sent in this database since the last reset, by text; not the
# test's own (reading and resetting the statistics).
APP_STATEMENTS = """
    SELECT s."query", s."calls" FROM pg_stat_statements s
    JOIN pg_database d ON d."oid" = s."dbid"
    WHERE d."datname" = current_database() AND s."query" NOT LIKE '%pg_stat_statements%'
"""
# Nothing in the background: the catalog and the maintenance flag are read once, at the
# warm-up request, and not again within the test.
QUIET = {"catalog_refresh_s": 3600, "maintenance_refresh_s": 3600}


async def create(
    client: httpx.AsyncClient, user: ApiUser, key: str | None = None, **body: Any
) -> httpx.Response:
    headers = {**user.auth, "Idempotency-Key": key or str(uuid.uuid4())}
    return await client.post("/api/videos", json=T2V | body, headers=headers)


async def app_statements(db: asyncpg.Connection) -> dict[str, int]:
    return {row["query"]: row["calls"] for row in await db.fetch(APP_STATEMENTS)}


async def reset_statements(db: asyncpg.Connection) -> None:
    await db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await db.execute("SELECT pg_stat_statements_reset()")


def jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
    }


def delivery(
    key: Ed25519PrivateKey, request_id: str, succeeded: bool
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and Fal's signature headers for it."""
    payload = {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "OK" if succeeded else "ERROR",
        "payload": {"video": {"url": f"https://v3.fal.media/files/{request_id}.mp4"}}
        if succeeded
        else {"detail": [{"msg": "the model failed", "type": "internal_error"}]},
        "error": None if succeeded else "the model failed",
    }
    body = json.dumps(payload).encode()
    timestamp, user_id = str(int(time.time())), "fal-user"
    message = f"{request_id}\n{user_id}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}"
    headers = {
        webhooks.REQUEST_ID: request_id,
        webhooks.USER_ID: user_id,
        webhooks.TIMESTAMP: timestamp,
        webhooks.SIGNATURE: key.sign(message.encode()).hex(),
        "Content-Type": "application/json",
    }
    return body, headers


async def test_a_create_is_two_statements_and_a_webhook_one(
    database_url: str, db: asyncpg.Connection
) -> None:
    fal_key = Ed25519PrivateKey.generate()
    with jwks_server() as jwks:
        jwks.serve_jwks([jwk(fal_key)])
        settings = make_settings(
            database_url, **QUIET, fal_jwks_url=jwks.url, db_driver_pool_size=1,
            rate_limit_creates_per_minute=1000, max_active_jobs_per_user=100,
        )  # fmt: skip
        async with serve_app(settings) as client:
            user = await create_user(client, credits=100_000)
            assert (await create(client, user)).status_code == 202  # warm-up
            await reset_statements(db)
            creates = [await create(client, user) for _ in range(10)]
            after_creates = await app_statements(db)

            # Jobs Fal has accepted; then one delivery each: 5 outputs, 5 failures (refunds).
            ids = [uuid.UUID(c.json()["id"]) for c in creates]
            await db.execute(
                """UPDATE videos SET status = 'queued', "falRequestId" = 'fal-' || id::text
                   WHERE id = ANY($1::uuid[])""",
                ids,
            )
            await reset_statements(db)
            answers = []
            for n, video_id in enumerate(ids):
                body, headers = delivery(fal_key, f"fal-{video_id}", succeeded=n % 2 == 0)
                answers.append(
                    await client.post("/api/webhooks/fal", content=body, headers=headers)
                )
            after_webhooks = await app_statements(db)
    assert [c.status_code for c in creates] == [202] * 10
    assert sum(after_creates.values()) == 2 * 10, after_creates
    # The key lookup and the create, rate limit included: each is one statement.
    assert sorted(after_creates.values()) == [10, 10], after_creates
    assert any('INSERT INTO "videos"' in query for query in after_creates)
    assert [a.json()["result"] for a in answers] == ["applied"] * 10
    assert sum(after_webhooks.values()) == 10, after_webhooks
    statuses = await db.fetch(
        """SELECT status, count(*) FROM videos WHERE id = ANY($1::uuid[]) GROUP BY status""", ids
    )
    assert {row["status"]: row["count"] for row in statuses} == {"processing": 5, "failed": 5}
    assert (await run_audit(database_url)).ok


async def test_a_retry_replays_its_answer_whatever_changed_since(
    database_url: str, db: asyncpg.Connection
) -> None:
    settings = make_settings(database_url, catalog_refresh_s=0.001, rate_limit_creates_per_minute=2)
    async with serve_app(settings) as client:
        user = await create_user(client, credits=PRICE)
        first = await create(client, user, key="only-once")
        # The balance is spent, the rate limit's other token too, then the model retired.
        spent = await create(client, user)
        retry_when_broke = await create(client, user, key="only-once")
        limited = await create(client, user)
        retry_when_limited = await create(client, user, key="only-once")
        await db.execute("""UPDATE models SET active = false WHERE slug = $1""", T2V["model"])
        retry_when_retired = await create(client, user, key="only-once")
        retired = await create(client, user)
        balance = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
    assert first.status_code == 202 and REPLAY_HEADER not in first.headers
    assert spent.status_code == 402 and spent.json()["code"] == "insufficient_credits"
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert retired.status_code == 404 and retired.json()["code"] == "model_not_found"
    for retry in (retry_when_broke, retry_when_limited, retry_when_retired):
        assert retry.status_code == 202 and retry.headers[REPLAY_HEADER] == "true"
        assert retry.content == first.content  # byte for byte
    assert balance == 0
    assert await db.fetchval('SELECT count(*) FROM videos WHERE "userId" = $1', user.id) == 1


async def test_a_key_used_for_another_body_is_refused_and_charges_nothing(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with serve_app(make_settings(database_url)) as client:
        user = await create_user(client, credits=10_000)
        first = await create(client, user, key="k")
        other = await create(client, user, key="k", prompt="another prompt")
        balance = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
    assert first.status_code == 202
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert balance == 10_000 - PRICE
    assert await db.fetchval('SELECT "activeJobs" FROM users WHERE id = $1', user.id) == 1


async def test_concurrent_duplicates_charge_once_and_all_answer_the_same(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with serve_app(make_settings(database_url)) as client:
        user = await create_user(client, credits=10_000)
        answers = await asyncio.gather(*(create(client, user, key="same") for _ in range(12)))
        balance = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    assert sum(REPLAY_HEADER not in a.headers for a in answers) == 1
    assert balance == 10_000 - PRICE
    assert (await run_audit(database_url)).ok


async def test_the_active_job_count_follows_every_way_a_job_ends(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with serve_app(make_settings(database_url, max_active_jobs_per_user=3)) as client:
        user = await create_user(client, credits=10_000)
        videos = [(await create(client, user)).json()["id"] for _ in range(3)]
        at_cap = await create(client, user)
        active_at_cap = await db.fetchval('SELECT "activeJobs" FROM users WHERE id = $1', user.id)
        canceled = await client.post(f"/api/videos/{videos[0]}/cancel", headers=user.auth)
        after_cancel = await create(client, user)
    assert at_cap.status_code == 429 and at_cap.json()["code"] == "too_many_active_jobs"
    assert active_at_cap == 3
    assert canceled.status_code == 200 and after_cancel.status_code == 202
    assert await db.fetchval('SELECT "activeJobs" FROM users WHERE id = $1', user.id) == 3
    assert (await run_audit(database_url)).ok


async def test_a_create_waits_for_a_held_account_only_as_long_as_the_key_allows(
    database_url: str, db: asyncpg.Connection
) -> None:
    # The statement bounds its own lock waits (IDEMPOTENCY_WAIT_S) before it waits: on the
    # user's row, and on a key another writer has inserted but not committed.
    async with serve_app(make_settings(database_url, idempotency_wait_s=0.3)) as client:
        user = await create_user(client, credits=10_000)
        other = await asyncpg.connect(database_url)
        try:
            holding = other.transaction()
            await holding.start()
            await other.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user.id)
            held_account = await create(client, user)
            await holding.rollback()
            holding = other.transaction()
            await holding.start()
            await other.execute(
                """INSERT INTO "idempotencyRequests" (scope, key, method, path, fingerprint)
                   VALUES ($1, 'held', 'POST', '/api/videos', 'f')""",
                f"user:{user.id}",
            )
            held_key = await create(client, user, key="held")
            await holding.rollback()
            after = await create(client, user, key="held")  # the other writer rolled back
        finally:
            await other.close()
        balance = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
    for refused in (held_account, held_key):
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "idempotency_key_in_flight"
        assert refused.headers["Retry-After"] == "1"
    assert after.status_code == 202 and REPLAY_HEADER not in after.headers
    assert balance == 10_000 - PRICE  # the refused ones charged nothing
    assert (await run_audit(database_url)).ok
