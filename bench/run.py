"""Issue 7's benchmark: `.venv-test/bin/python -m bench.run [--quick] [--profile]`.

Stands up a throwaway PostgreSQL 15 (normal durability), the Fal simulator and `vidgen serve`
(1 and 2 workers), measures the raw-asyncpg floors and the API (and the quote, the media
route, the rate limit's cost and 500 open live-update streams), prints a markdown table and
writes bench/results/<date>.md, latest.md, latest.json and latest.png. See bench/README.md.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.core.config import Settings
from app.core.security import hash_api_key
from app.fal.simulator.process import SimulatorProcess
from app.fal.simulator.signing import WEBHOOK_KEY_FILE, signed_message
from app.main import create_app
from app.ops.backup.create import DUMP_OPTIONS
from app.ops.backup.pgtools import find_pg_tool, tool_connection
from bench import floor, inprocess, media, openloop, profile, report, sql, streams, wrk
from bench.harness import (
    ADMIN_TOKEN,
    MEDIA_SIGNING_KEY,
    VIDGEN,
    AppServer,
    Cluster,
    peak_rss_mb,
    start_simulator,
)
from bench.measure import CpuMeter, RunResult, percentile
from bench.nullapp import NullServer

RESULTS_DIR = Path(__file__).with_name("results")
MODEL = "kling-v2-master-t2v"
READS = {
    "list": "/api/videos?limit=20",
    "list ?status=failed": "/api/videos?limit=20&status=failed",
    "balance": "/api/credits",
}
CREATE_BODY = json.dumps({"model": MODEL, "prompt": floor.PROMPT})
GRANT = 2_000_000_000
APP_SETTINGS = {
    # Creates are measured with dispatch off: no Fal submission in the same process, so the
    # figure is the request + database path alone (the reconciler is off with it).
    "DISPATCH_ENABLED": "false",
    # Pending jobs pile up during a run (nothing dispatches them): lift the per-user cap.
    "MAX_ACTIVE_JOBS_PER_USER": "1000000000",
    # The load is thousands of creates a minute per user: rate limits off (measured apart).
    "RATE_LIMIT_CREATES_PER_MINUTE": "0",
    "RATE_LIMIT_QUOTES_PER_MINUTE": "0",
}
# A rate limit on but too high to refuse anything: what taking the token costs (--rate-limited,
# and the server of the "rate limit on" row).
RATE_LIMITED = {
    "RATE_LIMIT_CREATES_PER_MINUTE": str(10**9),
    "RATE_LIMIT_QUOTES_PER_MINUTE": str(10**9),
}
# Live-update streams: STREAMERS users with STREAMS_PER_USER streams each, every one on its
# own queued video (a terminal one would end at once). Both caps set, so the defaults can
# change without refusing the benchmark's streams.
STREAMERS, STREAMS_PER_USER = 100, 5
STREAM_SETTINGS = {
    "MAX_STREAMS_PER_USER": str(STREAMS_PER_USER),
    "MAX_STREAMS_PER_PROCESS": "1000",
}
FRAMEWORK = "framework alone"  # FastAPI + uvicorn with empty handlers (bench/nullapp.py)
FAL_USER_ID = "fal-simulator-user"  # what bench/lua/webhook.lua sends
# Deliveries per second no run here reaches: sizes the pre-created jobs so none runs out.
FLOOR_WEBHOOK_BOUND = 10_000
API_WEBHOOK_BOUND = 3_000
INPROCESS_REQUESTS = 300


@dataclass(frozen=True)
class Plan:
    quick: bool
    seconds: int
    warmup: int
    levels: tuple[int, ...]
    webhook_concurrency: int
    open_loop_seconds: int
    read_seconds: int
    read_rounds: int
    history_small: int
    history_large: int
    background: int
    backup_reps: int
    profile: bool
    media_padding: int  # bytes of the file read through /media (plus the ~1 MB sample)
    media_ranges: int  # 1 MiB ranged reads of it
    stream_seconds: int  # how long the live-update streams are held open

    @classmethod
    def make(cls, quick: bool, profile: bool) -> "Plan":
        if quick:
            return cls(True, 3, 1, (1, 8, 32, 64), 32, 3, 2, 1, 10_000, 100_000, 20_000, 1,
                       profile, 50_000_000, 100, 3)  # fmt: skip
        return cls(False, 10, 2, (1, 8, 32, 64), 32, 10, 4, 2, 10_000, 1_000_000, 100_000, 2,
                   profile, media.PADDING_BYTES, media.RANGES, 10)  # fmt: skip

    @property
    def streams(self) -> int:
        return STREAMERS * STREAMS_PER_USER

    @property
    def floor_webhook_jobs(self) -> int:
        return FLOOR_WEBHOOK_BOUND * (self.seconds + self.warmup)

    @property
    def api_webhook_jobs(self) -> int:
        return API_WEBHOOK_BOUND * self.seconds


@dataclass
class Users:
    ids: list[uuid.UUID]
    keys: list[str]

    @property
    def hashes(self) -> list[str]:
        return [hash_api_key(k) for k in self.keys]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- seeding ----------------------------------------------------------------------------


async def make_users(conn: asyncpg.Connection, label: str, count: int) -> Users:
    keys = [f"vg_bench_{label}_{i}_{secrets.token_urlsafe(24)}" for i in range(count)]
    emails = [f"bench-{label}-{i}@example.com" for i in range(count)]
    rows = await conn.fetch(sql.INSERT_USERS, emails, [hash_api_key(k) for k in keys])
    ids = [row["id"] for row in rows]
    for user_id in ids:
        await conn.fetchrow(
            sql.APPLY_MOVEMENT.sql,
            *sql.APPLY_MOVEMENT.args(
                amount=GRANT,
                packs=0,
                user_id=user_id,
                kind="grant",
                idempotency_key=f"bench:grant:{user_id}",
                reason="benchmark",
                period=None,
                video_id=None,
            ),
        )
    return Users(ids, keys)


async def seed_history(
    conn: asyncpg.Connection, user_id: uuid.UUID, model_id: uuid.UUID, first: int, last: int
) -> None:
    """Finished videos first..last (one per second back from a fixed time) and their ledger."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    prefix = f"hist-{user_id}-"
    await conn.execute(sql.SEED_HISTORY_VIDEOS, user_id, model_id, first, last, base, prefix)
    await conn.execute(sql.SEED_HISTORY_LEDGER, user_id, first, last, base, prefix)


async def reset_pending(dsn: str) -> None:
    """Finish the jobs a create run left pending, so every run starts with few active jobs."""
    conn = await asyncpg.connect(dsn)
    try:
        # The owners' active-job counters follow, as the app's finish statements keep them.
        await conn.execute(
            """WITH done AS (
                   UPDATE "videos" SET "status" = 'completed', "completedAt" = now()
                   WHERE "status" = 'pending' RETURNING "userId"
               )
               UPDATE "users" u SET "activeJobs" = u."activeJobs" - d."jobs"
               FROM (SELECT "userId", count(*) AS "jobs" FROM done GROUP BY "userId") d
               WHERE u."id" = d."userId"
            """
        )
    finally:
        await conn.close()


# --- webhooks ---------------------------------------------------------------------------


def signer(simulator: SimulatorProcess) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(
        (simulator.state_dir / WEBHOOK_KEY_FILE).read_bytes(), password=None
    )
    assert isinstance(key, Ed25519PrivateKey)
    return key


def server_durations(app: AppServer, prefix: str, skip: int) -> list[float]:
    """p50 / p95 / p99 of the app's own request durations (its JSON access log) for the
    requests whose X-Request-Id is `<prefix><n>`, n >= skip (the warm-up excluded): the time
    from the app seeing the request to its answer, without the kernel's and the client's."""
    durations = []
    for line in app.log_path.read_text().splitlines():
        if not line.startswith("{") or prefix not in line:
            continue
        entry = json.loads(line)
        request_id = str(entry.get("request_id", ""))
        if request_id.startswith(prefix) and int(request_id.removeprefix(prefix)) >= skip:
            durations.append(float(entry["duration_ms"]))
    ordered = sorted(durations)
    return [percentile(ordered, q) for q in (50, 95, 99)]


def sign_deliveries(key: Ed25519PrivateKey, prefix: str, count: int, out: Path) -> str:
    """Signed deliveries for jobs <prefix>-1..count, split over wrk's two threads' files.

    Signed exactly as tests/videos/test_dispatch.py `sign()` (and Fal) do, timestamped now.
    """
    timestamp = str(int(time.time()))
    files = [(out / f"{prefix}.{t}").open("w") for t in (1, 2)]
    try:
        for request_id, n in floor.webhook_jobs(prefix, count):
            body = floor.webhook_body(request_id, n)
            message = signed_message(request_id, FAL_USER_ID, timestamp, body)
            signature = key.sign(message).hex()
            files[n % 2].write(f"{request_id}\t{timestamp}\t{signature}\t{body.decode()}\n")
    finally:
        for f in files:
            f.close()
    return str(out / prefix)


async def finished_jobs(dsn: str, prefix: str) -> int:
    """The jobs a delivery took effect on: a failure ends the job (refunded); an output is
    recorded on the row, which stays `processing` until the finaliser copies it (off here)."""
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            """SELECT count(*) FROM "videos" WHERE "falRequestId" LIKE $1
               AND ("status" = 'failed' OR "videoUrl" IS NOT NULL)""",
            f"{prefix}-%",
        )
        return count
    finally:
        await conn.close()


# --- the runs ---------------------------------------------------------------------------


class Bench:
    def __init__(self, plan: Plan, workdir: Path, pg_settings: tuple[str, ...] = ()) -> None:
        self.plan = plan
        self.workdir = workdir
        self.cluster = Cluster(pg_settings)
        self.simulator: SimulatorProcess | None = None
        self.data: dict[str, Any] = {
            "create": {},
            "open_loop": {},
            "webhook": {},
            "reads": {},
            "backup": {},
            "rss": {},
            "profiles": {},
            "quote": {},
            "media": {},
            "rate_limit": {},
            "streams": {},
        }

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.cluster.start()
        try:
            self.simulator = start_simulator(self.workdir / "simulator")
            try:
                await self.setup()
                await self.floors()
                for workers in (1, 2):
                    await self.api(workers)
                await self.framework()
                await self.live_updates()
                if self.plan.profile:
                    await self.profile_in_process()
                await self.monitor.close()
                await self.reads()
                self.backups()
            finally:
                self.simulator.stop()
        finally:
            self.cluster.destroy()
        self.data["meta"] = meta(self.plan, time.monotonic() - started)
        self.data["meta"]["pg_settings"] = list(self.cluster.server.settings)
        return self.data

    # -- setup -------------------------------------------------------------------------

    async def setup(self) -> None:
        log("creating and migrating the databases")
        self.dsn = await self.cluster.create_migrated("bench")
        self.small_dsn = await self.cluster.create_migrated("bench_small")
        self.list_dsn = await self.cluster.create_migrated("bench_list")
        conn = await asyncpg.connect(self.dsn)
        try:
            self.model_id = await conn.fetchval(
                'SELECT "id" FROM "models" WHERE "slug" = $1', MODEL
            )
            self.creators = await make_users(conn, "create", 64)
            hook_owners = await make_users(conn, "hook", 64)
            background = await make_users(conn, "history", 1)
            log(f"seeding {self.plan.background:,} finished videos and the webhook jobs")
            await seed_history(conn, background.ids[0], self.model_id, 1, self.plan.background)
            sets = {"floor-hook": self.plan.floor_webhook_jobs}
            sets |= {"replay-hook": self.plan.floor_webhook_jobs}
            sets |= {
                "api1-hook": self.plan.api_webhook_jobs,
                "api2-hook": self.plan.api_webhook_jobs,
            }
            if self.plan.profile:
                sets |= {"prof-hook": self.plan.api_webhook_jobs}
                sets |= {"inproc-hook": 3 * INPROCESS_REQUESTS}
            for prefix, count in sets.items():
                await conn.execute(sql.SEED_QUEUED, hook_owners.ids, self.model_id, prefix, count)
            # Live-update streams: queued videos (no run finishes them), 5 per streaming user.
            streamers = await make_users(conn, "stream", STREAMERS)
            await conn.execute(
                sql.SEED_QUEUED, streamers.ids, self.model_id, "stream", self.plan.streams
            )
            key_of = dict(zip(streamers.ids, streamers.keys, strict=True))
            self.stream_targets = [
                (row["id"], key_of[row["userId"]])
                for row in await conn.fetch(
                    """SELECT "id", "userId" FROM "videos" WHERE "falRequestId" LIKE 'stream-%'"""
                )
            ]
            await conn.execute("VACUUM ANALYZE")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
        self.monitor = await asyncpg.connect(self.dsn)
        self.keys_file = self.workdir / "api-keys.txt"
        self.keys_file.write_text("\n".join(self.creators.keys) + "\n")

    async def sessions(self) -> int:
        """Connections ever opened to the bench database (PostgreSQL's own counter)."""
        count: int = await self.monitor.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        return count

    def create_work(self, prefix: str) -> floor.CreateWork:
        return floor.CreateWork(self.creators.ids, self.creators.hashes, self.model_id, prefix)

    def pg_meter(self, **groups: Any) -> CpuMeter:
        return CpuMeter({"postgres": self.cluster.backend_pids, **groups})

    # -- floors ------------------------------------------------------------------------

    async def floors(self) -> None:
        plan = self.plan
        runs = []
        for c in plan.levels:
            log(f"floor: create transaction over raw asyncpg, c={c}")
            result = await floor.closed_loop(
                "floor",
                self.dsn,
                c,
                plan.seconds,
                plan.warmup,
                floor.create_floor(self.create_work(f"floor-c{c}")),
                self.pg_meter(),
            )
            runs.append(result)
            await reset_pending(self.dsn)
        self.data["create"]["floor"] = runs
        log("replay: every statement the API sends for a create, raw asyncpg, c=32")
        self.data["create"]["replay"] = [
            await floor.closed_loop(
                "replay",
                self.dsn,
                32,
                plan.seconds,
                plan.warmup,
                floor.create_replay(self.create_work("replay-c32")),
                self.pg_meter(),
            )
        ]
        await reset_pending(self.dsn)
        c = plan.webhook_concurrency
        for name, make, prefix in (
            ("floor", floor.webhook_floor, "floor-hook"),
            ("replay", floor.webhook_replay, "replay-hook"),
        ):
            log(f"{name}: webhook completion transaction over raw asyncpg, c={c}")
            result = await floor.closed_loop(
                name,
                self.dsn,
                c,
                plan.seconds,
                plan.warmup,
                make(floor.webhook_jobs(prefix, plan.floor_webhook_jobs)),
                self.pg_meter(),
            )
            self.data["webhook"][name] = result

    # -- the API -----------------------------------------------------------------------

    async def api(self, workers: int) -> None:
        plan, label = self.plan, f"api-{workers}w"
        assert self.simulator is not None
        app = AppServer(self.dsn, self.simulator, self.workdir, workers, APP_SETTINGS).start()
        try:
            meter = self.pg_meter(app=lambda: [*app.worker_pids(), *app.supervisor_pids()])
            runs = []
            for c in plan.levels:
                log(f"API ({workers} worker{'s' * (workers > 1)}): POST /api/videos, c={c}")
                runs.append(await self.creates(app, label, c, meter))
            self.data["create"][label] = runs
            await self.open_loop(app, label, max(r.rps for r in runs))
            await self.webhooks(app, label, f"api{workers}-hook", meter)
            # The issue 18 figures come after the existing runs, which keep their order.
            await self.quotes(app, label, meter)
            if workers == 1:
                await self.media(app)
                await self.rate_limit(app, meter)
            if plan.profile and workers == 1:
                await self.profile(app, label)
            self.data["rss"][label] = [round(peak_rss_mb(p), 1) for p in app.worker_pids()]
        finally:
            app.stop()

    async def creates(self, app: AppServer, label: str, c: int, meter: CpuMeter) -> RunResult:
        """`POST /api/videos` at concurrency c (after a warm-up), then the pending jobs finished."""
        plan = self.plan
        prefix = f"{label}-c{c}-{uuid.uuid4().hex[:6]}"
        args = [str(self.keys_file), prefix, CREATE_BODY, str(wrk.threads_for(c))]
        wrk.run("warmup", app.url, "create", [*args[:1], prefix + "w", *args[2:]],
                connections=c, seconds=plan.warmup, workdir=self.workdir)  # fmt: skip
        before = await self.sessions()
        result = wrk.run(label, app.url, "create", args, connections=c, seconds=plan.seconds,
                         meter=meter, workdir=self.workdir)  # fmt: skip
        result.new_connections = (await self.sessions() - before) / max(1, result.requests)
        await reset_pending(self.dsn)
        return result

    async def quotes(self, app: AppServer, label: str, meter: CpuMeter) -> None:
        """`POST /api/videos/quote` with the create's body at c=32: priced, nothing written."""
        c = 32
        log(f"API {label}: POST /api/videos/quote, c={c}")
        # create.lua without an Idempotency-Key ("-"), on the quote's path.
        args = [str(self.keys_file), "-", CREATE_BODY, str(wrk.threads_for(c)), "/api/videos/quote"]
        wrk.run("warmup", app.url, "create", args, connections=c, seconds=self.plan.warmup,
                workdir=self.workdir)  # fmt: skip
        self.data["quote"][label] = wrk.run(
            label, app.url, "create", args, connections=c, seconds=self.plan.seconds,
            meter=meter, workdir=self.workdir,
        )  # fmt: skip

    async def media(self, app: AppServer) -> None:
        """GET /media/{key}?exp=&sig= on the 1-worker server: a file read whole, then in
        1 MiB ranges (bench/media.py's reads, on a file put into the server's MEDIA_DIR)."""
        padding, ranges = self.plan.media_padding, self.plan.media_ranges
        log(f"media: a {padding / 1e6:.0f} MB file through /media, whole and {ranges} ranges")
        served = await media.serve_local_file(app, padding, ranges)
        self.data["media"]["api-1w"] = served.to_json()

    async def rate_limit(self, app: AppServer, meter: CpuMeter) -> None:
        """Creates at c=32 on a second 1-worker server whose rate limits are on (too high to
        refuse: every create takes a token) and on `app` (limits off), in the order on, off,
        off, on, so a drift of the machine over the four runs weighs on both alike."""
        if APP_SETTINGS["RATE_LIMIT_CREATES_PER_MINUTE"] != "0":
            log("rate limit: skipped (--rate-limited: every server already has the limit on)")
            return
        assert self.simulator is not None
        limited = AppServer(self.dsn, self.simulator, self.workdir, 1, APP_SETTINGS | RATE_LIMITED)
        try:
            limited.start()
            limited_meter = self.pg_meter(app=limited.worker_pids)
            servers = {"limit on": (limited, limited_meter), "limit off": (app, meter)}
            runs: dict[str, list[RunResult]] = {name: [] for name in servers}
            for name in ("limit on", "limit off", "limit off", "limit on"):
                server, server_meter = servers[name]
                log(f"rate limit: POST /api/videos, c=32, 1 worker, {name}")
                result = await self.creates(server, f"rl-{name.split()[-1]}", 32, server_meter)
                result.name = name
                runs[name].append(result)
        finally:
            limited.stop()
        self.data["rate_limit"] = runs
        self.data["rate_limit_buckets"] = await self.create_buckets()

    async def create_buckets(self) -> int | None:
        """The creators' rate-limit buckets in the database (64 when the limited server took
        tokens); None when the table is not there (a schema without rate limits)."""
        try:
            count: int = await self.monitor.fetchval(
                """SELECT count(*) FROM "rateLimits" WHERE "key" LIKE 'create:%'"""
            )
        except asyncpg.UndefinedTableError:
            return None
        return count

    async def live_updates(self) -> None:
        """Open streams (GET /api/videos/{id}/events) held on a 1-worker server: statements
        PostgreSQL executes for the bench database while they are open (its statement log),
        the worker's and PostgreSQL's CPU over the same window."""
        plan = self.plan
        assert self.simulator is not None
        server_url, log_path = self.cluster.server.url, self.cluster.log_path
        database = self.dsn.rsplit("/", 1)[1]
        await streams.log_statements(server_url, on=True)
        app = AppServer(self.dsn, self.simulator, self.workdir, 1, APP_SETTINGS | STREAM_SETTINGS)
        try:
            app.start()
            log(f"live updates: opening {plan.streams} event streams on a 1-worker server")
            opening = streams.log_offset(log_path)
            open_streams = await streams.open_streams("127.0.0.1", app.port, self.stream_targets)
            client = open_streams.held
            try:
                log(f"live updates: holding {client.opened} streams for {plan.stream_seconds} s")
                meter = self.pg_meter(app=app.worker_pids)
                start = streams.log_offset(log_path)
                with meter.measure("self"):
                    started = time.perf_counter()
                    await asyncio.sleep(plan.stream_seconds)
                    seconds = time.perf_counter() - started
                end = streams.log_offset(log_path)
                still_open = client.opened - client.ended
            finally:
                await open_streams.close()
        finally:
            app.stop()
            await streams.log_statements(server_url, on=False)
        during = streams.statements(log_path, start, end, database)
        opened = streams.statements(log_path, opening, start, database)
        kinds = streams.by_kind(during)
        self.data["streams"] = {
            "streams": plan.streams,
            "users": STREAMERS,
            "opened": client.opened,
            "refused": dict(client.refused),
            "open_seconds": round(client.open_seconds, 2),
            "held_seconds": round(seconds, 2),
            "still_open": still_open,
            "events_during": client.events,
            "comments_during": client.comments,
            "statements_per_s": round(len(during) / seconds, 2),
            "reads_per_s": round((kinds["read"] + kinds["introspection"]) / seconds, 2),
            # Without asyncpg's one-time type introspection on each pool connection.
            "steady_statements_per_s": round((len(during) - kinds["introspection"]) / seconds, 2),
            "steady_reads_per_s": round(kinds["read"] / seconds, 2),
            "statements_during": dict(kinds),
            "statements_during_by_text": dict(streams.by_text(during).most_common()),
            "statements_per_open": round(len(opened) / max(1, client.opened), 2),
            "statements_opening": dict(streams.by_kind(opened)),
            "cpu_percent": {
                role: round(spent / seconds * 100, 1) for role, spent in meter.spent.items()
            },
            "box_busy": meter.box_busy,
            "database": database,
        }

    async def open_loop(self, app: AppServer, label: str, peak: float) -> None:
        rate = 0.7 * peak
        log(f"API {label}: open loop at 70% of peak = {rate:.0f} req/s")
        body = CREATE_BODY.encode()
        keys = self.creators.keys
        tag = uuid.uuid4().hex[:6]

        def request(i: int) -> bytes:
            return (
                f"POST /api/videos HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n"
                f"Authorization: Bearer {keys[i % len(keys)]}\r\n"
                f"Idempotency-Key: ol-{tag}-{i}\r\nX-Request-Id: ol-{tag}-{i}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body

        result = await openloop.open_loop(
            label,
            "127.0.0.1",
            app.port,
            rate=rate,
            seconds=self.plan.open_loop_seconds,
            warmup=self.plan.warmup,
            make_request=request,
            ok_status=202,
        )
        await reset_pending(self.dsn)
        overhead, cpu_us = await openloop.client_overhead(
            rate, min(5, self.plan.open_loop_seconds), request
        )
        self.data["open_loop"][label] = {
            "rate": rate,
            "peak": peak,
            "result": result,
            "client_null_server": overhead,
            "client_cpu_us": round(cpu_us, 1),
            "server_ms": server_durations(app, f"ol-{tag}-", int(rate * self.plan.warmup)),
        }

    async def webhooks(self, app: AppServer, label: str, prefix: str, meter: CpuMeter) -> None:
        assert self.simulator is not None
        c = self.plan.webhook_concurrency
        log(f"API {label}: signed webhooks, c={c}")
        jobs = self.plan.api_webhook_jobs
        files = sign_deliveries(signer(self.simulator), prefix, jobs, self.workdir)
        before = await self.sessions()
        result = wrk.run(label, app.url, "webhook", [files], connections=c,
                         seconds=self.plan.seconds, meter=meter, workdir=self.workdir)  # fmt: skip
        result.new_connections = (await self.sessions() - before) / max(1, result.requests)
        finished = await finished_jobs(self.dsn, prefix)
        if finished < result.requests:
            result.notes = f"only {finished} of {result.requests} deliveries took effect"
        self.data["webhook"][label] = result

    async def framework(self) -> None:
        """The same create and webhook requests, c=32, against FastAPI with empty handlers."""
        assert self.simulator is not None
        c, seconds = self.plan.webhook_concurrency, self.plan.seconds
        server = NullServer().start()
        try:
            meter = CpuMeter({"app": lambda: [server.pid]})
            log("framework alone (FastAPI + uvicorn, empty handlers): creates, c=32")
            args = [str(self.keys_file), f"null-{uuid.uuid4().hex[:6]}", CREATE_BODY,
                    str(wrk.threads_for(c))]  # fmt: skip
            wrk.run("warmup", server.url, "create", args, connections=c,
                    seconds=self.plan.warmup, workdir=self.workdir)  # fmt: skip
            self.data["create"][FRAMEWORK] = [
                wrk.run(FRAMEWORK, server.url, "create", args, connections=c, seconds=seconds,
                        meter=meter, workdir=self.workdir)
            ]  # fmt: skip
            log("framework alone: webhooks, c=32")
            files = sign_deliveries(signer(self.simulator), "null-hook", 1000, self.workdir)
            self.data["webhook"][FRAMEWORK] = wrk.run(
                FRAMEWORK, server.url, "webhook", [files], connections=c, seconds=seconds,
                meter=meter, workdir=self.workdir,
            )  # fmt: skip
        finally:
            server.stop()

    async def profile(self, app: AppServer, label: str) -> None:
        """py-spy (and perf, when installed) on one worker while wrk runs at c=32."""
        assert self.simulator is not None
        pid, seconds, rate = app.worker_pids()[0], self.plan.seconds, 200
        out = self.profile_dir()
        jobs = self.plan.api_webhook_jobs
        hooks = sign_deliveries(signer(self.simulator), "prof-hook", jobs, self.workdir)
        runs = {
            "create-c32": ("create", [str(self.keys_file), f"prof-{uuid.uuid4().hex[:6]}",
                                      CREATE_BODY, "2"]),
            "webhook-c32": ("webhook", [hooks]),
        }  # fmt: skip
        for name, (lua, args) in runs.items():
            log(f"profiling {label} with py-spy: {name}")
            spy = profile.start(pid, out / f"{name}.pyspy.txt", seconds + 1, rate)
            perf = profile.start_perf(pid, out / f"{name}.perf.data", seconds + 1)
            await asyncio.sleep(0.5)
            wrk.run("profile", app.url, lua, args, connections=32, seconds=seconds,
                    workdir=self.workdir)  # fmt: skip
            spy.wait()
            if perf is not None:
                perf.wait()
                self.data["profiles"][f"{name} perf"] = profile.perf_by_object(
                    out / f"{name}.perf.data"
                )
                (out / f"{name}.perf.data").unlink(missing_ok=True)
            raw = out / f"{name}.pyspy.txt"
            if raw.exists():
                self.data["profiles"][name] = profile.summarize(raw, rate, seconds + 1)
            await reset_pending(self.dsn)

    def profile_dir(self) -> Path:
        out = RESULTS_DIR / ("profile-quick" if self.plan.quick else "profile")
        out.mkdir(parents=True, exist_ok=True)
        return out

    async def profile_in_process(self) -> None:
        """The app called in this process (no HTTP): CPU per request and self time by package."""
        assert self.simulator is not None
        log("profiling in process (cProfile): creates, then webhooks")
        # The app verifies webhooks against the simulator's JWKS, over the simulator's TLS.
        os.environ["SSL_CERT_FILE"] = str(self.simulator.ca_file)
        settings = Settings(
            database_url=self.dsn,
            app_env="production",
            admin_token=ADMIN_TOKEN,
            fal_key="bench:unused",
            fal_jwks_url=self.simulator.jwks_url,
            public_base_url="https://vidgen.bench.example",
            media_signing_key=MEDIA_SIGNING_KEY,
            media_dir=self.workdir / "media",
            metrics_token="bench-metrics-token-0123456789abcdef",
            dispatch_enabled=False,
            max_active_jobs_per_user=1_000_000_000,
            _env_file=None,
        )
        application = create_app(settings)
        keys, body, tag = self.creators.keys, CREATE_BODY.encode(), uuid.uuid4().hex[:6]

        def create(i: int) -> inprocess.Request:
            headers = [
                (b"authorization", f"Bearer {keys[i % len(keys)]}".encode()),
                (b"idempotency-key", f"inproc-{tag}-{i}".encode()),
                (b"content-type", b"application/json"),
            ]
            return "POST", "/api/videos", headers, body

        key, stamp = signer(self.simulator), str(int(time.time()))

        def webhook(i: int) -> inprocess.Request:
            request_id = f"inproc-hook-{i + 1}"
            payload = floor.webhook_body(request_id, i + 1)
            signature = key.sign(signed_message(request_id, FAL_USER_ID, stamp, payload)).hex()
            headers = [
                (b"content-type", b"application/json"),
                (b"x-fal-webhook-request-id", request_id.encode()),
                (b"x-fal-webhook-user-id", FAL_USER_ID.encode()),
                (b"x-fal-webhook-timestamp", stamp.encode()),
                (b"x-fal-webhook-signature", signature.encode()),
            ]
            return "POST", "/api/webhooks/fal", headers, payload

        async with application.router.lifespan_context(application):
            for name, make, ok in (("create", create, 202), ("webhook", webhook, 200)):
                self.data["profiles"][f"{name} in process"] = await inprocess.profile_requests(
                    f"{name} in process", application, make, INPROCESS_REQUESTS, ok
                )
        await reset_pending(self.dsn)

    # -- reads at 10k and 1M -----------------------------------------------------------

    async def reads(self) -> None:
        """The same reads against a 10k-video and a 1M-video database, alternating rounds.

        Both servers run side by side and are measured in turns (10k, 1M, 10k, 1M, ...), so
        a slow spell of the machine hits both sizes alike; each figure is the round with the
        lowest p50.
        """
        plan = self.plan
        assert self.simulator is not None
        sizes = {
            size_label(plan.history_small): (self.small_dsn, plan.history_small),
            size_label(plan.history_large): (self.list_dsn, plan.history_large),
        }
        keys: dict[str, str] = {}
        for size, (dsn, rows) in sizes.items():
            log(f"reads: seeding {rows:,} videos and their ledger rows (INSERT ... SELECT)")
            conn = await asyncpg.connect(dsn)
            try:
                model_id = await conn.fetchval('SELECT "id" FROM "models" WHERE "slug" = $1', MODEL)
                reader = await make_users(conn, "reader", 1)
                seeding = time.monotonic()
                await seed_history(conn, reader.ids[0], model_id, 1, rows)
                await conn.execute("VACUUM ANALYZE")
                await conn.execute("CHECKPOINT")
                keys[size] = reader.keys[0]
                self.data["reads"][f"table {size}"] = {
                    "videos": await conn.fetchval('SELECT count(*) FROM "videos"'),
                    "ledger": await conn.fetchval('SELECT count(*) FROM "creditTransactions"'),
                    "database": await conn.fetchval(
                        "SELECT pg_size_pretty(pg_database_size(current_database()))"
                    ),
                    "seed_seconds": round(time.monotonic() - seeding, 1),
                }
            finally:
                await conn.close()
        apps = {
            size: AppServer(dsn, self.simulator, self.workdir, 1, APP_SETTINGS)
            for size, (dsn, _) in sizes.items()
        }
        try:
            for app in apps.values():
                app.start()
            best: dict[str, dict[str, RunResult]] = {size: {} for size in sizes}
            for round_number in range(plan.read_rounds):
                for name, path in READS.items():
                    for size, app in apps.items():
                        log(f"reads round {round_number + 1}: GET {path} with {size} rows, c=1")
                        run = self.read_run(app, keys[size], f"{name} {size}", path)
                        if name not in best[size] or run.p50 < best[size][name].p50:
                            best[size][name] = run
            for size, runs in best.items():
                self.data["reads"][size] = runs
            for size, (dsn, _) in sizes.items():
                for name in READS:
                    log(f"reads: the same SQL over raw asyncpg, {name} with {size} rows, c=1")
                    replay = await floor.closed_loop(
                        f"{name} {size} SQL",
                        dsn,
                        1,
                        max(1, plan.read_seconds // 2),
                        0.5,
                        floor.read_replay(name, hash_api_key(keys[size])),
                    )
                    self.data["reads"][size][f"{name} SQL"] = replay
            self.data["rss"]["reads-1w"] = [
                round(peak_rss_mb(p), 1) for app in apps.values() for p in app.worker_pids()
            ]
        finally:
            for app in apps.values():
                app.stop()

    def read_run(self, app: AppServer, api_key: str, name: str, path: str) -> RunResult:
        wrk.run("warmup", app.url, "get", [path, api_key], connections=1, seconds=1,
                workdir=self.workdir)  # fmt: skip
        return wrk.run(name, app.url, "get", [path, api_key], connections=1,
                       seconds=self.plan.read_seconds, workdir=self.workdir)  # fmt: skip

    # -- backups -----------------------------------------------------------------------

    def backups(self) -> None:
        plan = self.plan
        pg_dump = find_pg_tool("pg_dump")
        url, env = tool_connection(self.list_dsn)
        dump = [str(pg_dump), *DUMP_OPTIONS, f"--dbname={url}"]
        out = self.workdir / "backups"
        out.mkdir(exist_ok=True)
        log("backup: warming the page cache with one pg_dump > /dev/null")
        started = time.perf_counter()
        subprocess.run(dump, stdout=subprocess.DEVNULL, env=env, check=True)
        dump_alone = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run([VIDGEN, "backup", "--help"], stdout=subprocess.DEVNULL, check=True)
        startup = time.perf_counter() - started
        quoted = " ".join(f"'{a}'" for a in dump)
        commands = {
            "pg_dump | gzip": f"set -o pipefail; {quoted} | gzip > {out}/bare.sql.gz",
            "vidgen backup create": f"{VIDGEN} backup create",
            "pg_dump | gzip -3": f"set -o pipefail; {quoted} | gzip -3 > {out}/bare3.sql.gz",
        }
        vidgen_env = {
            **env,
            "DATABASE_URL": self.list_dsn,
            "BACKUP_DIR": str(out / "vidgen"),
            "APP_ENV": "staging",
            "ADMIN_TOKEN": ADMIN_TOKEN,  # staging refuses placeholder secrets
            "MEDIA_SIGNING_KEY": MEDIA_SIGNING_KEY,
        }
        timings: dict[str, list[float]] = {name: [] for name in commands}
        sizes: dict[str, int] = {}
        for rep in range(plan.backup_reps):
            for name, command in commands.items():
                log(f"backup: {name} (run {rep + 1} of {plan.backup_reps})")
                shutil.rmtree(out / "vidgen", ignore_errors=True)
                started = time.perf_counter()
                subprocess.run(["bash", "-c", command], env=vidgen_env, check=True,
                               stdout=subprocess.DEVNULL)  # fmt: skip
                timings[name].append(time.perf_counter() - started)
                produced = [p for p in out.rglob("*.sql.gz") if name_matches(name, p)]
                sizes[name] = produced[0].stat().st_size if produced else 0
        self.data["backup"] = {
            name: {"seconds": min(times), "runs": times, "bytes": sizes[name]}
            for name, times in timings.items()
        }
        self.data["backup"]["pg_dump > /dev/null (warm-up)"] = {
            "seconds": dump_alone,
            "runs": [dump_alone],
            "bytes": 0,
        }
        self.data["backup"]["vidgen backup --help (start-up)"] = {
            "seconds": startup,
            "runs": [startup],
            "bytes": 0,
        }


def name_matches(name: str, path: Path) -> bool:
    if name.startswith("vidgen"):
        return path.parent.name == "vidgen"
    return path.name == ("bare3.sql.gz" if name.endswith("-3") else "bare.sql.gz")


def size_label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows >= 1_000_000 else f"{rows // 1000}k"


def meta(plan: Plan, elapsed: float) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    pg = subprocess.run(
        [str(find_pg_tool("postgres")), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if plan.quick else "full",
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "postgres": pg,
        "python": platform.python_version(),
        "wrk": (wrk_version.stdout or wrk_version.stderr).split(" [")[0].strip(),
        "elapsed_s": round(elapsed),
        "plan": plan.__dict__,
        "app_settings": APP_SETTINGS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="~3 minutes: 3 s runs, 100k rows instead of 1M"
    )
    parser.add_argument("--profile", action="store_true", help="also sample a worker with py-spy")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where results go")
    parser.add_argument(
        "--rate-limited",
        action="store_true",
        help="creates and quotes take a rate-limit token each (a limit too high to refuse): "
        "the limit's cost per request, against a run without",
    )
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL server setting for a diagnostic run, e.g. synchronous_commit=off "
        "(not the product's configuration: say so beside any figure it gives)",
    )
    options = parser.parse_args()
    if options.rate_limited:
        APP_SETTINGS.update(RATE_LIMITED)
    wrk.require_wrk()
    report.require_matplotlib()
    if options.profile and profile.py_spy() is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    plan = Plan.make(options.quick, options.profile)
    workdir = Path(tempfile.mkdtemp(prefix="vidgen-bench-"))
    try:
        import uvloop

        data = uvloop.run(Bench(plan, workdir, tuple(options.pg_setting)).run())
    except BaseException:
        log(f"failed; logs kept in {workdir}")
        raise
    markdown = report.markdown(data)
    print(markdown)
    written = report.write(data, markdown, options.out)
    log("wrote " + ", ".join(str(p) for p in written))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
