"""The raw-database floors: the video-creation and webhook transactions issued directly with
asyncpg, one connection per concurrent client, no HTTP and no ORM in between.

Two flavours of each:
- `floor`: the issue's definition, the work the transaction cannot do without. Creation:
  lock the user, insert the video, move the balance and append the ledger row (the app's
  one-statement CTE). Webhook: lock and finish the job in one conditional UPDATE, and refund
  with the same CTE when it failed.
- `replay`: every statement the app sends for the same request, in the same order (read off
  PostgreSQL's statement log; see bench/README.md), also over raw asyncpg. The gap between
  floor and replay is the cost of the extra SQL; the gap between replay and the API is the
  cost of Python, HTTP and the framework.
"""

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench import sql
from bench.measure import CpuMeter, RunResult, from_latencies

Operation = Callable[[asyncpg.Connection], Awaitable[None]]
ACTIVE = ["pending", "processing", "queued"]
PROMPT = "a cat surfing at sunset, golden hour, 35mm"
PRICE = 168  # kling-v2-master-t2v, 5 s: Fal's $1.40 + the default 20 % margin
# The normalised options the API stores for that create (its model's defaults).
OPTIONS = json.dumps(
    {"duration": 5, "aspect_ratio": "16:9", "negative_prompt": "blur, distort, and low quality",
     "cfg_scale": 0.5}
)  # fmt: skip
# What the app stores as the replayable response (about the size of the real one).
RESPONSE_BODY = json.dumps(
    {"id": str(uuid.uuid4()), "status": "pending", "prompt": PROMPT, "duration": 5}
    | dict.fromkeys(("negative_prompt", "image_url", "video", "error", "completed_at"))
)


class Exhausted(Exception):
    """No more work items (webhook jobs) for this run."""


async def closed_loop(
    name: str,
    dsn: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    operation: Operation,
    meter: CpuMeter | None = None,
) -> RunResult:
    """`concurrency` clients, each on its own connection, running `operation` back to back.

    Latencies count for operations started after `warmup`; the window closes after `seconds`.
    """
    conns: list[asyncpg.Connection] = await asyncio.gather(
        *(asyncpg.connect(dsn, server_settings={"timezone": "UTC"}) for _ in range(concurrency))
    )
    latencies: list[float] = []
    errors = 0
    measuring = stopping = False

    async def client(conn: asyncpg.Connection) -> None:
        nonlocal errors
        while not stopping:
            started = time.perf_counter()
            try:
                await operation(conn)
            except Exhausted:
                return
            except asyncpg.PostgresError:
                errors += 1
                continue
            if measuring:
                latencies.append(time.perf_counter() - started)

    tasks = [asyncio.create_task(client(conn)) for conn in conns]
    try:
        await asyncio.sleep(warmup)
        meter = meter or CpuMeter({})
        with meter.measure("self"):
            measuring, opened = True, time.perf_counter()
            done, _ = await asyncio.wait(tasks, timeout=seconds)
            stopping, closed = True, time.perf_counter()
            measuring = False
            await asyncio.gather(*tasks)
        result = from_latencies(name, concurrency, latencies, closed - opened, errors)
        result.cpu_us = meter.per_request_us(result.requests)
        result.box_busy = meter.box_busy
        if done:
            result.notes = "ran out of work before the window closed"
        return result
    finally:
        await asyncio.gather(*(c.close() for c in conns))


@dataclass
class CreateWork:
    """Who creates: user ids round-robin (the API run uses the same users the same way)."""

    user_ids: list[uuid.UUID]
    key_hashes: list[str]
    model_id: uuid.UUID
    prefix: str

    def __post_init__(self) -> None:
        self._counter = itertools.count()

    def next(self) -> tuple[int, str]:
        n = next(self._counter)
        return n % len(self.user_ids), f"{self.prefix}-{n}"


def create_floor(work: CreateWork) -> Operation:
    async def operation(conn: asyncpg.Connection) -> None:
        index, key = work.next()
        user_id = work.user_ids[index]
        async with conn.transaction():
            await conn.execute(sql.LOCK_OWNER, user_id)
            video_id = await conn.fetchval(
                sql.INSERT_VIDEO, user_id, work.model_id, PROMPT, 5, PRICE, key, "f" * 64
            )
            moved = await conn.fetchrow(sql.APPLY_MOVEMENT.sql, *debit_args(user_id, video_id))
            assert moved is not None, "balance exhausted"

    return operation


def create_replay(work: CreateWork) -> Operation:
    async def operation(conn: asyncpg.Connection) -> None:
        index, key = work.next()
        user_id = work.user_ids[index]
        await sql.USER_BY_KEY_HASH.fetchrow(conn, digest=work.key_hashes[index])
        video_id = uuid.uuid4()
        created = await sql.CREATE_VIDEO.fetchrow(
            conn,
            user_id=user_id,
            upload_id=None,
            max_active=1_000_000_000,
            amount=-PRICE,
            id=video_id,
            model_id=work.model_id,
            kind="text-to-video",
            prompt=PROMPT,
            negative_prompt=None,
            image_url=None,
            duration=5,
            aspect_ratio="16:9",
            resolution=None,
            seed=None,
            options=OPTIONS,
            scope=f"user:{user_id}",
            idempotency_key=key,
            method="POST",
            path="/api/videos",
            fingerprint="f" * 64,
            wait_ms="10000",
            now=datetime.now(UTC),
            reason="video kling-v2-master-t2v 5s",
            response=RESPONSE_BODY,
        )
        assert created is not None and created["created"], "balance exhausted"

    return operation


def debit_args(user_id: uuid.UUID, video_id: uuid.UUID) -> list[Any]:
    return sql.APPLY_MOVEMENT.args(
        amount=-PRICE,
        packs=0,
        user_id=user_id,
        kind="debit",
        idempotency_key=f"video:{video_id}:debit",
        reason="video kling-v2-master-t2v 5s",
        period=None,
        video_id=video_id,
    )


def refund_args(user_id: uuid.UUID, video_id: uuid.UUID, charged: int) -> list[Any]:
    return sql.APPLY_MOVEMENT.args(
        amount=charged,
        packs=0,
        user_id=user_id,
        kind="refund",
        idempotency_key=f"video:{video_id}:refund",
        reason="video failed",
        period=None,
        video_id=video_id,
    )


# --- webhooks ---------------------------------------------------------------------------


def webhook_outcome(n: int) -> bool:
    """Whether delivery n reports success: every 10th job fails (and is refunded)."""
    return n % 10 != 0


def webhook_body(request_id: str, n: int) -> bytes:
    if webhook_outcome(n):
        payload: dict[str, Any] = {
            "request_id": request_id,
            "gateway_request_id": request_id,
            "status": "OK",
            "payload": {
                "video": {
                    "url": f"https://cdn.example.com/out/{request_id}.mp4",
                    "content_type": "video/mp4",
                    "file_size": 1048576,
                },
                "seed": n,
            },
            "error": None,
        }
    else:
        payload = {
            "request_id": request_id,
            "gateway_request_id": request_id,
            "status": "ERROR",
            "payload": {"detail": [{"msg": "the model failed", "type": "model_error"}]},
            "error": "the model failed",
        }
    return json.dumps(payload).encode()


Stored = tuple[str, str | None, str | None, str | None, str | None]


def outcome_values(request_id: str, n: int) -> Stored:
    """(status, video URL, metadata JSON, error code, error message) as the app stores them."""
    if webhook_outcome(n):
        metadata = json.dumps({"content_type": "video/mp4", "file_size": 1048576, "seed": n})
        return "completed", f"https://cdn.example.com/out/{request_id}.mp4", metadata, None, None
    return "failed", None, None, "model_error", "the model failed"


def webhook_jobs(prefix: str, count: int) -> Iterator[tuple[str, int]]:
    return ((f"{prefix}-{n}", n) for n in range(1, count + 1))


def webhook_floor(jobs: Iterator[tuple[str, int]]) -> Operation:
    async def operation(conn: asyncpg.Connection) -> None:
        request_id, n = next(jobs, (None, 0))
        if request_id is None:
            raise Exhausted
        status, url, metadata, code, message = outcome_values(request_id, n)
        async with conn.transaction():
            row = await conn.fetchrow(
                sql.FINISH_VIDEO, request_id, status, url, metadata, code, message
            )
            if row is not None and status == "failed":
                await conn.fetchrow(
                    sql.APPLY_MOVEMENT.sql,
                    *refund_args(row["userId"], row["id"], row["creditsCharged"]),
                )

    return operation


def webhook_replay(jobs: Iterator[tuple[str, int]]) -> Operation:
    async def operation(conn: asyncpg.Connection) -> None:
        request_id, n = next(jobs, (None, 0))
        if request_id is None:
            raise Exhausted
        status, url, metadata, code, message = outcome_values(request_id, n)
        now = datetime.now(UTC)
        # One statement, its own transaction, as the app sends it.
        row = await sql.FINISH_BY_FAL_REQUEST.fetchrow(
            conn,
            fal_request_id=request_id,
            status=status,
            source="webhook",
            allowed_from=ACTIVE,
            refund=status == "failed",
            video_url=url,
            video_metadata=metadata,
            error_code=code,
            error_message=message,
            last_event_at=now,
            now=now,
        )
        assert row is not None

    return operation


# --- reads ------------------------------------------------------------------------------


def read_replay(endpoint: str, key_hash: str) -> Operation:
    """The statements the app sends for one read: key lookup, then the page (+ balance)."""

    async def operation(conn: asyncpg.Connection) -> None:
        user = await sql.USER_BY_KEY_HASH.fetchrow(conn, digest=key_hash)
        assert user is not None
        async with conn.transaction():
            if endpoint == "list":
                await conn.fetch(sql.LIST_PAGE, user["id"], 21)
            elif endpoint == "list ?status=failed":
                await conn.fetch(sql.LIST_PAGE_WITH_STATUS, user["id"], 21, "failed")
            else:
                await conn.fetch(sql.LEDGER_PAGE, user["id"], 51)
                await conn.fetchval(sql.BALANCE.sql, user["id"])

    return operation
