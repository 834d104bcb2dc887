"""Dispatch, webhooks and the reconciler end to end: real uvicorn, real fal-client, simulator."""

import asyncio
import hashlib
import json
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.fal.simulator.media import SAMPLE_PATH
from app.fal.simulator.process import SimulatorProcess
from app.fal.simulator.signing import WEBHOOK_KEY_FILE
from app.ops.audit import run_audit
from tests.support.apps import AppProcess, wait_until
from tests.support.factories import ADMIN, create_user
from tests.support.jobs import I2V, IMAGE, T2V, create, finished, history, ledger


async def test_text_and_image_jobs_go_all_the_way_through_the_webhook(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    # Polls after 2.5 s of quiet: `#slow` jobs run ~6 s, so the poller sees them processing
    # (at ~2.5 s and ~5 s) and the webhook, at ~6 s, is what completes them.
    app = AppProcess(database_url, simulator, tmp_path, POLL_AFTER_S="2.5").start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            text = await create(client, user, prompt="a lighthouse in a storm #slow")
            image = await create(
                client, user, model=I2V, prompt="the cat turns #slow", image_url=IMAGE
            )
            done = [await finished(client, user, v["id"]) for v in (text, image)]
            balance = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
            served = [(await client.get(v["video"]["url"])).content for v in done]
            posters = [await client.get(v["video"]["poster_url"]) for v in done]
    finally:
        app.stop()

    sample = SAMPLE_PATH.read_bytes()
    for video, body, poster in zip(done, served, posters, strict=True):
        assert video["status"] == "completed", video
        # Our copy, served by us: never Fal's URL.
        assert video["video"]["url"].startswith(f"{app.url}/media/videos/{video['id']}/")
        assert body == sample
        assert video["video"] | {"url": None, "poster_url": None} == {
            "url": None,
            "poster_url": None,
            "content_type": "video/mp4",
            "width": 160,
            "height": 90,
            "duration_s": 2.0,
            "size_bytes": len(sample),
            "sha256": hashlib.sha256(sample).hexdigest(),
            "file_size": len(sample),
            "file_name": video["video"]["url"].split("?")[0].rsplit("/", 1)[-1],
        }
        assert poster.headers["content-type"] == "image/jpeg"
        assert poster.content.startswith(b"\xff\xd8\xff")
        assert video["started_at"] is not None
        assert await history(db, video["id"]) == [
            ("pending", "api"),
            ("queued", "dispatch"),
            ("processing", "poll"),
            ("processing", "webhook"),  # Fal's output is ready: ours is being copied
            ("completed", "copy"),
        ]
        assert await ledger(db, video["id"]) == [("debit", -video["credits_charged"])]
    assert balance == 1000 - 168 - 34
    submitted = simulator.submissions()["submissions"]
    image_input = next(s["input"] for s in submitted if s["app_id"].endswith("image-to-video"))
    assert image_input["image_url"] == IMAGE and image_input["duration"] == "5"


async def test_a_failing_job_is_refunded_once_and_says_why(
    fal_app: tuple[AppProcess, httpx.AsyncClient], db: asyncpg.Connection
) -> None:
    _, client = fal_app
    user = await create_user(client, credits=500)
    video = await finished(client, user, (await create(client, user, prompt="boom #fail"))["id"])
    assert video["status"] == "failed"
    assert video["error"]["code"] and video["error"]["message"]
    assert video["video"] is None
    assert await ledger(db, video["id"]) == [("debit", -168), ("refund", 168)]
    assert (await client.get("/api/credits", headers=user.auth)).json()["balance"] == 500


def sign(key: Ed25519PrivateKey, request_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    user_id = "fal-simulator-user"
    digest = hashlib.sha256(body).hexdigest()
    message = f"{request_id}\n{user_id}\n{timestamp}\n{digest}".encode()
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": str(timestamp),
        "X-Fal-Webhook-Signature": key.sign(message).hex(),
        "Content-Type": "application/json",
    }


async def test_webhooks_are_verified_and_applied_once(
    fal_app: tuple[AppProcess, httpx.AsyncClient],
    simulator: SimulatorProcess,
    db: asyncpg.Connection,
) -> None:
    _, client = fal_app
    user = await create_user(client, credits=500)
    video = await create(client, user, prompt="wait for it #hold")

    async def request_id() -> str | None:
        row = await db.fetchval(
            'SELECT "falRequestId" FROM videos WHERE id = $1', uuid.UUID(video["id"])
        )
        return str(row) if row else None

    fal_id = await wait_until(request_id, within=10, what="submission")
    simulator_key = serialization.load_pem_private_key(
        (simulator.state_dir / WEBHOOK_KEY_FILE).read_bytes(), password=None
    )
    assert isinstance(simulator_key, Ed25519PrivateKey)
    payload = {
        "request_id": fal_id,
        "gateway_request_id": fal_id,
        "status": "OK",
        # The simulator's address for this held job: copying it waits (404) until Fal is done.
        "payload": {"video": {"url": f"{simulator.base_url}/files/{fal_id}.mp4"}},
        "error": None,
    }
    body = json.dumps(payload).encode()
    now = int(time.time())
    good = sign(simulator_key, fal_id, body, now)
    before = await db.fetchrow("SELECT * FROM videos WHERE id = $1", uuid.UUID(video["id"]))

    forged = [
        ("bad signature", body, good | {"X-Fal-Webhook-Signature": "00" * 64}),
        ("wrong key", body, sign(Ed25519PrivateKey.generate(), fal_id, body, now)),
        ("tampered body", body.replace(b".mp4", b".mov"), good),
        ("stale timestamp", body, sign(simulator_key, fal_id, body, now - 301)),
        ("missing headers", body, {"Content-Type": "application/json"}),
        ("not hex", body, good | {"X-Fal-Webhook-Signature": "zz"}),
    ]
    for name, sent, headers in forged:
        response = await client.post("/api/webhooks/fal", content=sent, headers=headers)
        assert response.status_code == 401, name
        assert response.json()["code"] == "invalid_webhook_signature", name
    after = await db.fetchrow("SELECT * FROM videos WHERE id = $1", uuid.UUID(video["id"]))
    assert after == before

    deliveries = await asyncio.gather(
        *(client.post("/api/webhooks/fal", content=body, headers=good) for _ in range(5))
    )
    assert [r.status_code for r in deliveries] == [200] * 5
    assert sorted(r.json()["result"] for r in deliveries) == ["applied"] + ["duplicate"] * 4
    delivered = [e for e in await history(db, video["id"]) if e[1] == "webhook"]
    assert delivered == [("processing", "webhook")]  # the output, recorded once

    unknown_body = json.dumps(payload | {"request_id": "no-such-request"}).encode()
    unknown = await client.post(
        "/api/webhooks/fal",
        content=unknown_body,
        headers=sign(simulator_key, "no-such-request", unknown_body, now),
    )
    assert unknown.status_code == 200 and unknown.json()["result"] == "unknown"


async def test_100_jobs_under_faults_all_finish_and_refunds_match_failures(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    simulator.configure(
        delay_s=0.3,
        drop_webhook_rate=0.3,
        duplicate_webhook_rate=0.2,
        submit_error_rate=0.2,
        error_rate=0.1,
    )
    app = AppProcess(database_url, simulator, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=60) as client:
            user = await create_user(client, credits=100_000)
            started = time.monotonic()
            videos = await asyncio.gather(*(create(client, user) for _ in range(100)))

            async def all_terminal() -> bool:
                count = await db.fetchval(
                    """SELECT count(*) FROM videos WHERE "userId" = $1
                       AND status IN ('completed', 'failed', 'canceled')""",
                    user.id,
                )
                return bool(count == 100)

            await wait_until(all_terminal, within=90, interval=0.2, what="100 terminal jobs")
            drained = time.monotonic() - started
    finally:
        app.stop()

    assert len({v["id"] for v in videos}) == 100
    failed = await db.fetchval(
        """SELECT count(*) FROM videos WHERE "userId" = $1 AND status = 'failed'""", user.id
    )
    refunds = await db.fetchval(
        """SELECT count(*) FROM "creditTransactions" WHERE "userId" = $1 AND kind = 'refund'""",
        user.id,
    )
    assert refunds == failed
    report = await run_audit(database_url)
    assert report.ok, report.render()
    stats = simulator.stats()
    print(
        f"\n[figures] 100 jobs under faults: {100 - failed} completed, {failed} failed, "
        f"{refunds} refunds, {stats['rejected']} submit errors, drained in {drained:.1f}s"
    )


async def test_a_job_whose_process_died_before_submitting_is_submitted_after_restart(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    simulator.configure(submit_error_rate=1.0)  # Fal unreachable: the job stays pending
    app = AppProcess(database_url, simulator, tmp_path).start()
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
        user = await create_user(client, credits=500)
        video = await create(client, user, prompt="survives a crash")
    app.kill()
    row = await db.fetchrow(
        'SELECT status, "falRequestId" FROM videos WHERE id = $1', uuid.UUID(video["id"])
    )
    assert row["status"] == "pending" and row["falRequestId"] is None

    simulator.configure(submit_error_rate=0.0)
    restarted = AppProcess(database_url, simulator, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as client:
            done = await finished(client, user, video["id"])
    finally:
        restarted.stop()
    assert done["status"] == "completed"
    assert simulator.submissions()["by_prompt"]["survives a crash"] == 1
    assert await ledger(db, video["id"]) == [("debit", -168)]


async def test_two_replicas_submit_each_pending_job_exactly_once(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    simulator.configure(submit_error_rate=1.0)
    replicas = [AppProcess(database_url, simulator, tmp_path).start() for _ in range(2)]
    try:
        async with httpx.AsyncClient(base_url=replicas[0].url, timeout=30) as client:
            user = await create_user(client, credits=100_000)
            videos = await asyncio.gather(
                *(create(client, user, prompt=f"replica job {i}") for i in range(30))
            )
            simulator.configure(submit_error_rate=0.0)  # both reconcilers now race to submit
            for video in videos:
                assert (await finished(client, user, video["id"], within=60))["status"] == (
                    "completed"
                )
    finally:
        for replica in replicas:
            replica.stop()
    accepted = simulator.submissions()["by_prompt"]
    assert all(accepted[f"replica job {i}"] == 1 for i in range(30)), accepted
    assert (await run_audit(database_url)).ok


async def test_cancel_stops_the_fal_job_and_refunds_once(
    fal_app: tuple[AppProcess, httpx.AsyncClient],
    simulator: SimulatorProcess,
    db: asyncpg.Connection,
) -> None:
    _, client = fal_app
    user = await create_user(client, credits=500)
    video = await create(client, user, prompt="forever #hold")

    async def running() -> str | None:
        fal_id = await db.fetchval(
            'SELECT "falRequestId" FROM videos WHERE id = $1', uuid.UUID(video["id"])
        )
        return str(fal_id) if fal_id and simulator.job(fal_id)["status"] == "IN_PROGRESS" else None

    fal_id = await wait_until(running, within=15, what="the held job running at Fal")
    canceled = await client.post(f"/api/videos/{video['id']}/cancel", headers=user.auth)
    # Running at Fal (processing, or still queued in our books): canceling until Fal's word.
    assert canceled.status_code == 200
    assert canceled.json()["status"] in {"canceling", "canceled"}
    assert (await finished(client, user, video["id"]))["status"] == "canceled"

    async def fal_canceled() -> bool:
        return bool(simulator.job(fal_id)["cancel_calls"] >= 1)

    await wait_until(fal_canceled, within=10, what="Fal cancel call")
    assert await ledger(db, video["id"]) == [("debit", -168), ("refund", 168)]
    assert (await client.get("/api/credits", headers=user.auth)).json()["balance"] == 500


async def test_maintenance_keeps_webhooks_flowing(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    app = AppProcess(
        database_url, simulator, tmp_path, MAINTENANCE_REFRESH_S="0.1", POLL_AFTER_S="30"
    ).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=500)
            video = await create(client, user, prompt="finishing during maintenance")
            on = await client.post("/api/admin/maintenance", json={"enabled": True}, headers=ADMIN)
            assert on.status_code == 200
            refused = await client.post(
                "/api/videos",
                json={"model": T2V, "prompt": "not now"},
                headers={**user.auth, "Idempotency-Key": "maintenance"},
            )
            assert refused.status_code == 503 and refused.json()["code"] == "maintenance"
            done = await finished(client, user, video["id"])
    finally:
        app.stop()
    assert done["status"] == "completed"
    events = await history(db, video["id"])
    assert ("processing", "webhook") in events and events[-1] == ("completed", "copy")
