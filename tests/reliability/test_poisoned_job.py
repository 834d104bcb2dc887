"""A job nothing can be made of (a row written by another app sharing the table) is logged
and skipped: every other job in the same reconciler batch still finishes on time, and the
poisoned one ends at its deadline, refunded."""

import uuid
from pathlib import Path

import asyncpg
import httpx

from app.fal.simulator.process import SimulatorProcess
from app.ops.audit import run_audit
from tests.support.apps import AppProcess
from tests.support.factories import create_user
from tests.support.jobs import I2V, IMAGE, create, finished, ledger


async def test_a_poisoned_job_holds_up_no_other(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    # Created while nothing dispatches: all six wait in `pending`, one reconciler batch.
    app = AppProcess(database_url, simulator, tmp_path, DISPATCH_ENABLED="false").start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=10_000)
            poisoned = await create(client, user, model=I2V, image_url=IMAGE, prompt="poisoned")
            healthy = [await create(client, user) for _ in range(5)]
    finally:
        app.stop()
    # An image reference no code of ours ever writes: building Fal's input raises.
    await db.execute(
        """UPDATE videos SET "imageUrl" = 'upload:not-a-uuid' WHERE id = $1""",
        uuid.UUID(poisoned["id"]),
    )

    app = AppProcess(database_url, simulator, tmp_path, port=app.port, JOB_DEADLINE_S="12")
    app.start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            done = [await finished(client, user, v["id"], within=10) for v in healthy]
            ended = await finished(client, user, poisoned["id"], within=30)
    finally:
        app.stop()
    assert [v["status"] for v in done] == ["completed"] * 5
    assert ended["status"] == "failed" and ended["error"]["code"] == "timeout", ended
    price = poisoned["credits_charged"]
    assert await ledger(db, poisoned["id"]) == [("debit", -price), ("refund", price)]
    assert "submitting video " + poisoned["id"] + " failed" in app.log_file.read_text()
    report = await run_audit(database_url)
    assert report.ok, report.render()
