"""Three replicas on one database under Fal faults: each job submitted once, charged once,
refunded exactly when it failed."""

import asyncio
import itertools
import time
from pathlib import Path

import asyncpg
import httpx

from app.fal.simulator.process import SimulatorProcess
from app.ops.audit import run_audit
from tests.support.apps import AppProcess
from tests.support.factories import create_user
from tests.support.traffic import (
    Traffic,
    create_body,
    create_until_acked,
    debits_per_video,
    wait_all_terminal,
)

REPLICAS = 3
JOBS = 60


async def test_three_replicas_under_faults_submit_and_charge_each_job_once(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    simulator.configure(
        drop_webhook_rate=0.3,
        duplicate_webhook_rate=0.3,
        submit_error_rate=0.2,
        error_rate=0.15,
    )
    replicas = [AppProcess(database_url, simulator, tmp_path) for _ in range(REPLICAS)]
    traffic = Traffic()
    try:
        await asyncio.gather(*(asyncio.to_thread(replica.start) for replica in replicas))
        async with httpx.AsyncClient(base_url=replicas[0].url, timeout=30) as admin:
            user = await create_user(admin, credits=1_000_000)
        async with httpx.AsyncClient(timeout=30) as client:
            # Round robin over the replicas, as a load balancer would.
            urls = itertools.cycle([replica.url for replica in replicas])
            started = time.monotonic()
            await asyncio.gather(
                *(
                    create_until_acked(
                        traffic, client, lambda url=next(urls): url, user, f"replica-{n}",
                        create_body(f"replica job {n}"),
                    )
                    for n in range(JOBS)
                )
            )  # fmt: skip
            drained = await wait_all_terminal(db, user.id, JOBS, within=90)
            # Reads through every replica agree with the database.
            for replica in replicas:
                listed = await client.get(f"{replica.url}/api/videos?limit=100", headers=user.auth)
                assert {v["id"] for v in listed.json()["data"]} == set(traffic.acks.values())
    finally:
        for replica in replicas:
            replica.stop()

    rows = await db.fetch(
        'SELECT id, prompt, status, "falRequestId" FROM videos WHERE "userId" = $1', user.id
    )
    assert len(rows) == JOBS and {str(r["id"]) for r in rows} == set(traffic.acks.values())
    # Each job accepted at Fal at most once: no replica submitted what another already had.
    submissions = simulator.submissions()
    accepted = submissions["by_prompt"]
    prompts = {r["prompt"] for r in rows}
    doubled = {p: n for p, n in accepted.items() if p in prompts and n > 1}
    assert not doubled, doubled
    # Every job that reached Fal is the one its row names, and the rest failed to submit.
    assert all(accepted.get(r["prompt"], 0) == 1 for r in rows if r["falRequestId"])
    assert all(r["status"] == "failed" for r in rows if not r["falRequestId"])
    # Charged once each; refunded exactly for the failed ones.
    assert set((await debits_per_video(db, user.id)).values()) == {1}
    failed = sum(1 for r in rows if r["status"] == "failed")
    refunds = await db.fetchval(
        """SELECT count(*) FROM "creditTransactions" WHERE "userId" = $1 AND kind = 'refund'""",
        user.id,
    )
    assert refunds == failed
    assert {r["status"] for r in rows} <= {"completed", "failed"}
    report = await run_audit(database_url)
    assert report.ok, report.render()
    stats = simulator.stats()
    # The faults really happened (the seeded simulator makes this deterministic enough).
    assert stats["rejected"] > 0 and failed > 0
    print(
        f"\n[figures] {REPLICAS} replicas, {JOBS} jobs under faults: {JOBS - failed} completed, "
        f"{failed} failed = {refunds} refunds, {stats['rejected']} submit errors, "
        f"{stats['webhook_attempts']} webhook attempts, drained in {drained:.1f}s "
        f"({time.monotonic() - started:.1f}s from the first create)"
    )
