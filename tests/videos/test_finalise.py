"""Finalisation end to end (real uvicorn, real fal-client, the simulator, real files): a job
completes only once our copy of Fal's output is published; a copy that fails is retried
until the deadline; our copy outlives Fal's; deletion, retention and gc."""

import hashlib
import os
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from app.fal.simulator.media import SAMPLE_PATH
from app.fal.simulator.process import SimulatorProcess
from tests.support.apps import ADMIN_TOKEN, AppProcess, wait_until
from tests.support.factories import create_user
from tests.support.helpers import run_vidgen
from tests.support.jobs import create, finished, history, ledger

SAMPLE = SAMPLE_PATH.read_bytes()
KLING_5S = 168


async def video_row(db: asyncpg.Connection, video_id: str) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM videos WHERE id = $1", uuid.UUID(video_id))
    assert row is not None
    return row


def published(media_dir: Path) -> dict[str, bytes]:
    """Every published file under MEDIA_DIR (staging excluded), by key."""
    return {
        path.relative_to(media_dir).as_posix(): path.read_bytes()
        for path in media_dir.rglob("*")
        if path.is_file() and ".staging" not in path.parts
    }


async def test_our_copy_outlives_fals_file(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    simulator.configure(file_ttl_s=3.0)
    app = AppProcess(database_url, simulator, tmp_path, MEDIA_DIR=str(tmp_path / "m")).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            video = await finished(client, user, (await create(client, user))["id"])
            assert video["status"] == "completed", video
            fal_url = (await video_row(db, video["id"]))["videoUrl"]
            async with httpx.AsyncClient(verify=simulator.ssl_context()) as fal:

                async def fal_forgot() -> bool:
                    return (await fal.get(fal_url)).status_code == 404

                await wait_until(fal_forgot, within=10, what="Fal's file to expire")
            # Read again: a fresh signature, and the bytes are still ours to serve.
            again = (await client.get(f"/api/videos/{video['id']}", headers=user.auth)).json()
            served = await client.get(again["video"]["url"])
    finally:
        app.stop()
    assert served.status_code == 200 and served.content == SAMPLE
    assert again["video"]["sha256"] == hashlib.sha256(SAMPLE).hexdigest()


async def test_a_copy_that_keeps_failing_fails_and_refunds_the_job_only_at_its_deadline(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    # Fal's file is gone before we can fetch it: every copy attempt is a 404.
    simulator.configure(file_ttl_s=0.001)
    app = AppProcess(
        database_url, simulator, tmp_path, JOB_DEADLINE_S="8", MEDIA_COPY_BACKOFF_S="0.2"
    ).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            created = await create(client, user)

            async def output_recorded() -> asyncpg.Record | None:
                row = await video_row(db, created["id"])
                return row if row["videoUrl"] else None

            waiting = await wait_until(output_recorded, within=15, what="Fal's output")
            assert waiting["status"] == "processing"  # Fal is done; we are not
            video = await finished(client, user, created["id"], within=30)
    finally:
        app.stop()
    row = await video_row(db, created["id"])
    assert video["status"] == "failed" and video["error"]["code"] == "timeout", video
    assert video["video"] is None
    assert row["copyAttempts"] >= 2  # retried, with backoff, until the deadline
    assert await ledger(db, created["id"]) == [("debit", -KLING_5S), ("refund", KLING_5S)]


async def test_an_output_that_is_not_a_video_fails_and_refunds_at_once(
    fal_app: tuple[AppProcess, httpx.AsyncClient], db: asyncpg.Connection
) -> None:
    _, client = fal_app
    user = await create_user(client, credits=1000)
    video = await finished(client, user, (await create(client, user, prompt="x #notvideo"))["id"])
    assert video["status"] == "failed" and video["error"]["code"] == "provider_error", video
    assert "not an MP4" in video["error"]["message"]
    assert (await history(db, video["id"]))[-1] == ("failed", "copy")
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S), ("refund", KLING_5S)]


async def test_a_crash_mid_copy_resumes_and_never_publishes_a_half_file(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    media = tmp_path / "media"
    settings = {"MEDIA_DIR": str(media), "MEDIA_COPY_LEASE_S": "3"}
    app = AppProcess(database_url, simulator, tmp_path, **settings).start()
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
        user = await create_user(client, credits=1000)
        created = await create(client, user, prompt="sent slowly #trickle")

        async def copy_under_way() -> list[Path]:
            return [p for p in (media / ".staging").glob("*.part") if p.stat().st_size > 0]

        await wait_until(copy_under_way, within=20, interval=0.02, what="a copy under way")
        app.kill()  # mid-download: half a file in staging
        assert published(media) == {}
        assert (await video_row(db, created["id"]))["status"] == "processing"

        app = AppProcess(database_url, simulator, tmp_path, port=app.port, **settings).start()
        try:
            video = await finished(client, user, created["id"], within=30)
        finally:
            app.stop()
    assert video["status"] == "completed", video
    files = published(media)
    assert files[f"videos/{video['id']}/" + video["video"]["url"].split("?")[0].rsplit("/")[-1]]
    assert [data for key, data in files.items() if key.endswith(".mp4")] == [SAMPLE]
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S)]
    # The killed copy's staging file is what gc removes; the published files stay.
    gc = run_vidgen(
        "media", "gc", "--min-age-hours", "0",
        env={"DATABASE_URL": database_url, "MEDIA_DIR": str(media)},
    )  # fmt: skip
    assert gc.returncode == 0, gc.stderr
    assert list((media / ".staging").glob("*.part")) == []
    assert published(media) == files


async def test_delete_removes_the_media_and_keeps_the_money_history(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    media = tmp_path / "media"
    app = AppProcess(database_url, simulator, tmp_path, MEDIA_DIR=str(media)).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            owner, other = await create_user(client, credits=1000), await create_user(client)
            running = await create(client, owner, prompt="still going #hold")
            done = await finished(client, owner, (await create(client, owner))["id"])
            url = done["video"]["url"]
            assert (await client.get(url)).status_code == 200

            def delete(video_id: str, auth: dict[str, str]) -> object:
                return client.delete(f"/api/videos/{video_id}", headers=auth)

            not_yours = await delete(done["id"], other.auth)
            still_running = await delete(running["id"], owner.auth)
            deleted = await delete(done["id"], owner.auth)
            again = await delete(done["id"], owner.auth)
            after = (await client.get(f"/api/videos/{done['id']}", headers=owner.auth)).json()
            old_link = await client.get(url)
    finally:
        app.stop()
    assert not_yours.status_code == 404 and not_yours.json()["code"] == "video_not_found"
    assert still_running.status_code == 409
    assert still_running.json()["code"] == "video_not_deletable"
    assert deleted.status_code == 204 and again.status_code == 204
    assert after["status"] == "completed" and after["video"] is None
    assert after["media_deleted_at"] is not None
    assert old_link.status_code == 404 and old_link.json()["code"] == "media_not_found"
    assert not any(key.startswith(f"videos/{done['id']}/") for key in published(media))
    assert await ledger(db, done["id"]) == [("debit", -KLING_5S)]  # money history stays


async def test_retention_purges_the_media_of_old_videos(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    media = tmp_path / "media"
    app = AppProcess(
        database_url, simulator, tmp_path, MEDIA_DIR=str(media),
        MEDIA_RETENTION_DAYS=str(2 / 86400),  # two seconds
    ).start()  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            video = await finished(client, user, (await create(client, user))["id"])
            assert video["status"] == "completed" and video["video"] is not None

            async def purged() -> dict[str, object] | None:
                read = await client.get(f"/api/videos/{video['id']}", headers=user.auth)
                body: dict[str, object] = read.json()
                return body if body["media_deleted_at"] else None

            after = await wait_until(purged, within=20, what="retention")
    finally:
        app.stop()
    assert after["video"] is None and after["status"] == "completed"
    assert published(media) == {}
    assert await ledger(db, video["id"]) == [("debit", -KLING_5S)]


async def test_gc_removes_only_what_no_row_points_at(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    app = AppProcess(database_url, simulator, tmp_path, MEDIA_DIR=str(media)).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            video = await finished(client, user, (await create(client, user))["id"])
            assert video["status"] == "completed"
    finally:
        app.stop()
    kept = published(media)
    orphan = media / "videos" / str(uuid.uuid4()) / "lost.mp4"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x" * 1000)
    fresh_orphan = media / "videos" / "fresh.mp4"
    fresh_orphan.write_bytes(b"y" * 10)
    hour_ago = time.time() - 3600
    os.utime(orphan, (hour_ago, hour_ago))
    for key in kept:
        os.utime(media / key, (hour_ago, hour_ago))
    gc = run_vidgen(
        "media", "gc", "--min-age-hours", "0.5",
        env={"DATABASE_URL": database_url, "MEDIA_DIR": str(media), "ADMIN_TOKEN": ADMIN_TOKEN},
    )  # fmt: skip
    assert gc.returncode == 0, gc.stderr
    assert "removed 1 file(s), 1000 bytes freed" in gc.stdout
    assert not orphan.exists() and fresh_orphan.exists()  # too young to judge
    assert {k: v for k, v in published(media).items() if k != "videos/fresh.mp4"} == kept
