"""Restart PostgreSQL under load: 5xx only while it is down, nothing committed is lost."""

import asyncio
import itertools
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.fal.simulator.process import SimulatorProcess
from app.main import create_app
from app.ops.audit import run_audit
from app.ops.localpg import LocalPostgres, free_port
from tests.support.apps import AppProcess, make_settings, wait_until
from tests.support.database import migrate_and_load_catalog
from tests.support.factories import ApiUser, create_user
from tests.support.traffic import (
    Exchange,
    Traffic,
    create_body,
    create_until_acked,
    debits_per_video,
    wait_all_terminal,
)

OUTAGE_S = 2.0
RECOVERY_S = 20.0
PACE_S = 0.02  # each load worker's pause between requests: steady load, not a flood


@pytest.fixture
async def own_postgres() -> AsyncIterator[LocalPostgres]:
    """A PostgreSQL of this test's own (the shared one must stay up), migrated and synced."""
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="vidgen-restart-pg-")), free_port(), True)
    server.start()
    try:
        await migrate_and_load_catalog(server.url)
        yield server
    finally:
        server.destroy()


class Load:
    """Creates (a fresh Idempotency-Key each, one attempt) and reads, until stopped."""

    def __init__(self, base_url: str, user: ApiUser) -> None:
        # A connection per request: uvicorn closes a keep-alive connection after an unhandled
        # error (the 500s of the outage), and a request reusing it in that instant would fail
        # for another one's sake. So each exchange shows only how the server treated it.
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        self.client = httpx.AsyncClient(base_url=base_url, timeout=15, limits=no_reuse)
        self.user = user
        self.traffic = Traffic()
        self.unacked: list[str] = []  # creates answered with an error or not at all
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, creators: int = 3, readers: int = 2) -> None:
        self.tasks = [asyncio.create_task(self.creator(i)) for i in range(creators)]
        self.tasks += [asyncio.create_task(self.reader()) for _ in range(readers)]

    async def finish(self) -> None:
        """Stop the load; a worker that failed fails the test here."""
        self.stop.set()
        await asyncio.gather(*self.tasks)

    async def __aenter__(self) -> "Load":
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()

    async def acked_at_least(self, count: int) -> bool:
        for task in self.tasks:  # a failed worker fails the test now
            if task.done():
                task.result()
        return len(self.traffic.acks) >= count

    async def creator(self, number: int) -> None:
        for n in itertools.count():
            if self.stop.is_set():
                return
            key = f"restart-{number}-{n}"
            body = create_body(key)
            self.traffic.bodies[key] = body
            headers = {**self.user.auth, "Idempotency-Key": key}
            response = await self.traffic.request(
                self.client, "POST", "/api/videos", "create", json=body, headers=headers
            )
            if response is not None and response.status_code == 202:
                self.traffic.acks[key] = response.json()["id"]
            else:
                self.unacked.append(key)
            await asyncio.sleep(PACE_S)

    async def reader(self) -> None:
        auth = self.user.auth
        for route in itertools.cycle(["health", "video", "list", "credits"]):
            if self.stop.is_set():
                return
            if route == "health":
                await self.traffic.request(self.client, "GET", "/api/health", route)
            elif route == "video" and self.traffic.acks:
                url = f"/api/videos/{random.choice(list(self.traffic.acks.values()))}"
                await self.traffic.request(self.client, "GET", url, route, headers=auth)
            elif route == "list":
                url = "/api/videos?limit=5"
                await self.traffic.request(self.client, "GET", url, route, headers=auth)
            elif route == "credits":
                await self.traffic.request(self.client, "GET", "/api/credits", route, headers=auth)
            await asyncio.sleep(PACE_S)


async def test_postgres_restart_under_load_loses_nothing_and_recovers(
    own_postgres: LocalPostgres, simulator: SimulatorProcess, tmp_path: Path
) -> None:
    server = own_postgres
    app = AppProcess(server.url, simulator, tmp_path).start()
    window: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=15) as client:
            user = await create_user(client, credits=1_000_000)
            async with Load(app.url, user) as load:
                await outage_under_load(server, load, window)
            traffic = load.traffic

            # A client that got no 202 retries with the same key: each ends as one video.
            for key in load.unacked:
                body = traffic.bodies[key]
                await create_until_acked(
                    traffic, client, lambda: app.url, user, key, body, within=20
                )
            db = await asyncpg.connect(server.url)
            try:
                # Jobs caught by the outage (webhooks refused, submits failed) still finish.
                drained = await wait_all_terminal(db, user.id, len(traffic.acks), within=60)
                check_timeline(traffic.exchanges, window)
                await check_nothing_lost(db, server.url, user.id, traffic)
            finally:
                await db.close()
    finally:
        app.stop()

    during = Counter(
        (e.route, e.status)
        for e in traffic.exchanges
        if window["stopping"] <= e.sent <= window["up"]
    )
    print(
        f"\n[figures] PostgreSQL restart: {len(traffic.exchanges)} requests, "
        f"{len(traffic.acks)} videos ({len(load.unacked)} re-sent after an error), "
        f"down {window['up'] - window['stopping']:.1f}s, 2xx again "
        f"{window['recovered'] - window['up']:.1f}s after start, drained in {drained:.1f}s; "
        f"during the outage: {dict(during)}"
    )


async def outage_under_load(server: LocalPostgres, load: Load, window: dict[str, float]) -> None:
    """Load, stop PostgreSQL, load on for OUTAGE_S, start it, load until 2xx are back."""
    traffic = load.traffic
    await wait_until(lambda: load.acked_at_least(15), within=20, what="load before")

    window["stopping"] = time.monotonic()
    await asyncio.to_thread(server.stop)
    window["down"] = time.monotonic()

    async def outage_observed() -> bool:
        # The load keeps going for OUTAGE_S, and health has answered during it.
        health = [e for e in traffic.exchanges if e.route == "health"]
        answered = [e for e in health if e.sent > window["down"]]
        return time.monotonic() - window["down"] >= OUTAGE_S and len(answered) >= 3

    await wait_until(outage_observed, within=OUTAGE_S + 10, what="load during outage")
    window["starting"] = time.monotonic()
    await asyncio.to_thread(server.start)
    window["up"] = time.monotonic()

    async def recovered() -> bool:
        after = [e for e in traffic.exchanges if e.sent > window["up"]]
        healthy = any(e.route == "health" and e.status == 200 for e in after)
        created = any(e.route == "create" and e.status == 202 for e in after)
        return healthy and created

    await wait_until(recovered, within=RECOVERY_S, what="2xx again after the restart")
    window["recovered"] = time.monotonic()
    more = len(traffic.acks) + 15
    await wait_until(lambda: load.acked_at_least(more), within=20, what="load after")
    await load.finish()


def check_timeline(exchanges: list[Exchange], window: dict[str, float]) -> None:
    # Every request got an HTTP answer, even with the database gone: none hung or was dropped.
    dropped = [e for e in exchanges if e.status is None]
    assert not dropped, dropped[:5]

    # 5xx only for requests that overlapped the outage; nothing but 2xx for requests sent once
    # the database was back.
    def overlapping(e: Exchange) -> bool:
        return e.sent <= window["up"] and e.received >= window["stopping"]

    misplaced = [e for e in exchanges if e.status and e.status >= 500 and not overlapping(e)]
    assert not misplaced, misplaced[:5]
    after = [e for e in exchanges if e.sent > window["up"]]
    assert all(e.status is not None and e.status < 300 for e in after), [
        e for e in after if e.status is None or e.status >= 300
    ][:5]
    # Sent and answered while it was down: health says 503, and nothing that needs the
    # database pretends to have succeeded.
    inside = [e for e in exchanges if window["down"] < e.sent and e.received < window["starting"]]
    assert {e.status for e in inside if e.route == "health"} == {503}
    assert all(e.status and e.status >= 500 for e in inside if e.route != "health")
    assert any(e.route == "create" for e in inside)


async def check_nothing_lost(
    db: asyncpg.Connection, dsn: str, user_id: uuid.UUID, traffic: Traffic
) -> None:
    # No acknowledged create was lost, none doubled: each key names exactly its video.
    rows = await db.fetch('SELECT id, "idempotencyKey" FROM videos WHERE "userId" = $1', user_id)
    stored = {r["idempotencyKey"]: str(r["id"]) for r in rows}
    assert len(rows) == len(stored)
    assert stored == traffic.acks
    assert set((await debits_per_video(db, user_id)).values()) == {1}
    report = await run_audit(dsn)
    assert report.ok, report.render()


async def test_an_unreachable_database_is_a_problem_json_answer() -> None:
    settings = make_settings(f"postgresql://postgres@127.0.0.1:{free_port()}/gone")
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        # A server error is an answer here (500), as a real client sees it.
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            health = await client.get("/api/health")
            assert health.status_code == 503  # as designed
            auth = {"Authorization": "Bearer vg_any"}
            response = await client.get("/api/credits", headers=auth)
    assert response.status_code >= 500
    assert response.headers["content-type"] == "application/problem+json", response.text
    assert response.json()["code"]
