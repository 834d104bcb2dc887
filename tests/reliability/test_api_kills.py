"""SIGKILL the API ten times under load: no lost, doubled or double-charged job."""

import asyncio
import itertools
from pathlib import Path

import asyncpg
import httpx

from app.fal.simulator.process import SimulatorProcess
from app.ops.audit import run_audit
from tests.support.apps import AppProcess, wait_until
from tests.support.factories import ApiUser, create_user
from tests.support.traffic import (
    Traffic,
    create_body,
    create_until_acked,
    debits_per_video,
    wait_all_terminal,
)

KILLS = 10
WORKERS = 4
ACKS_BETWEEN_KILLS = 8
JOB_DEADLINE_S = 60


async def test_sigkill_the_api_ten_times_under_load(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path, db: asyncpg.Connection
) -> None:
    # The grace outlasts the simulator's webhook retries (~15 s; Fal's: ~2 h against 600 s):
    # a job whose submit answer died with its process is adopted by its webhook, not resent.
    settings = {"JOB_DEADLINE_S": str(JOB_DEADLINE_S), "SUBMIT_UNCERTAIN_GRACE_S": "30"}
    app = AppProcess(database_url, simulator, tmp_path, **settings).start()
    current = {"url": app.url}
    traffic = Traffic()
    stop = asyncio.Event()
    workers: list[asyncio.Task[None]] = []
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1_000_000)

        async def worker(number: int) -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                for n in itertools.count():
                    if stop.is_set():
                        return
                    key = f"kill-{number}-{n}"
                    body = create_body(key)
                    await create_until_acked(traffic, http, lambda: current["url"], user, key, body)
                    if n % 3 == 0:  # a client that retries although it got its answer
                        again = await create_until_acked(
                            traffic, http, lambda: current["url"], user, key, body
                        )
                        traffic.replays[key] = (
                            again.json()["id"],
                            again.headers.get("Idempotent-Replayed"),
                        )

        workers += [asyncio.create_task(worker(i)) for i in range(WORKERS)]

        async def load_moved_on(base: int) -> bool:
            for task in workers:  # a worker that failed fails the test now, not at the end
                if task.done():
                    task.result()
            return len(traffic.acks) >= base + ACKS_BETWEEN_KILLS

        for _ in range(KILLS):
            await wait_until(
                lambda base=len(traffic.acks): load_moved_on(base), within=30, what="load"
            )
            app.kill()
            app = AppProcess(database_url, simulator, tmp_path, port=app.port, **settings)
            await asyncio.to_thread(app.start)  # the load keeps knocking meanwhile
            current["url"] = app.url
        await wait_until(lambda base=len(traffic.acks): load_moved_on(base), within=30)
        stop.set()
        await asyncio.gather(*workers)

        # One healthy process left: every job must finish, well within the deadline.
        drained = await wait_all_terminal(db, user.id, len(traffic.acks), within=JOB_DEADLINE_S)
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            balance = (await client.get("/api/credits", headers=user.auth)).json()["balance"]
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        app.stop()

    await check_outcome(db, database_url, user, traffic, balance)
    # A process killed after Fal accepted a job but before it stored the request id leaves a
    # pending row; its webhook (the URL names the video) is adopted within the grace period,
    # so the job is submitted again only when no webhook came in time (Fal has no
    # idempotency key). The video is charged and finished once either way.
    prompts = {body["prompt"] for body in traffic.bodies.values()}
    resubmitted = sum(
        1 for p, n in simulator.submissions()["by_prompt"].items() if p in prompts and n > 1
    )
    cut_off = sum(1 for e in traffic.exchanges if e.cut_off)
    refused = sum(1 for e in traffic.exchanges if e.status is None and not e.cut_off)
    print(
        f"\n[figures] {KILLS} SIGKILLs: {len(traffic.acks)} videos, {len(traffic.retried)} keys "
        f"re-sent, {cut_off} requests cut off mid-flight, {refused} refused while restarting, "
        f"{len(traffic.replays)} deliberate replays, {resubmitted} jobs submitted to Fal twice, "
        f"drained in {drained:.1f}s"
    )
    assert resubmitted <= max(2, len(traffic.acks) // 50), resubmitted


async def check_outcome(
    db: asyncpg.Connection, database_url: str, user: ApiUser, traffic: Traffic, balance: int
) -> None:
    rows = await db.fetch(
        """SELECT id, "idempotencyKey", status, "creditsCharged", "errorCode" FROM videos
           WHERE "userId" = $1""",
        user.id,
    )
    by_key: dict[str, list[str]] = {}
    for row in rows:
        by_key.setdefault(row["idempotencyKey"], []).append(str(row["id"]))
    # Every key the load used names exactly one video: the one its 202 acknowledged.
    assert set(by_key) == set(traffic.acks)
    doubled = {key: ids for key, ids in by_key.items() if len(ids) != 1}
    assert not doubled, doubled
    assert all(by_key[key] == [video_id] for key, video_id in traffic.acks.items())
    for key, (video_id, replayed) in traffic.replays.items():
        assert video_id == traffic.acks[key] and replayed == "true", (key, video_id, replayed)
    # Requests were really cut off mid-flight, and their keys were sent again.
    assert any(e.cut_off for e in traffic.exchanges)
    assert traffic.retried

    debits = await debits_per_video(db, user.id)
    assert set(debits.values()) == {1}, {v: n for v, n in debits.items() if n != 1}
    not_completed = [dict(r) for r in rows if r["status"] != "completed"]
    assert not not_completed, not_completed[:5]
    assert balance == 1_000_000 - sum(r["creditsCharged"] for r in rows)
    report = await run_audit(database_url)
    assert report.ok, report.render()
