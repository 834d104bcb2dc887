"""Our copy of a large output, and serving it: `.venv-test/bin/python -m bench.media`.

A 200 MB MP4 (the simulator's 2-second sample followed by a 200 MB `free` box, which every
MP4 reader skips) is what the simulator returns as a job's output. A real `vidgen serve`
(one worker, local media) runs the job; the figures:
- copy: wall time from Fal's word (the webhook's event) to `completed` (the copy's event),
  and the worker's peak RSS growth over its idle RSS (VmHWM) while it copied;
- serving through the signed /media route: MB/s and worker CPU per MB for a full read and
  for 1 MiB ranged reads at random offsets (what a seeking <video> asks for).
"""

import asyncio
import random
import struct
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.fal.simulator.media import SAMPLE_PATH
from app.fal.simulator.process import SimulatorProcess
from bench.harness import ADMIN_TOKEN, AppServer, Cluster, cpu_seconds, peak_rss_mb, rss_mb

PADDING_BYTES = 200 * 1000 * 1000
RANGE_BYTES = 1024 * 1024
RANGES = 200
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def large_mp4(path: Path) -> int:
    with path.open("wb") as out:
        out.write(SAMPLE_PATH.read_bytes())
        out.write(struct.pack(">I4s", 8 + PADDING_BYTES, b"free"))
        block = b"\0" * (1024 * 1024)
        for start in range(0, PADDING_BYTES, len(block)):
            out.write(block[: min(len(block), PADDING_BYTES - start)])
    return path.stat().st_size


async def user_with_credits(client: httpx.AsyncClient) -> dict[str, str]:
    made = await client.post(
        "/api/admin/users", json={"email": f"{uuid.uuid4().hex[:8]}@b.example"}, headers=ADMIN
    )
    user = made.json()
    granted = await client.post(
        "/api/admin/credits",
        json={"user_id": user["id"], "amount": 10_000, "kind": "grant"},
        headers={**ADMIN, "Idempotency-Key": str(uuid.uuid4())},
    )
    granted.raise_for_status()
    return {"Authorization": f"Bearer {user['api_key']}"}


async def until_finished(
    client: httpx.AsyncClient, auth: dict[str, str], video_id: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        video: dict[str, Any] = (await client.get(f"/api/videos/{video_id}", headers=auth)).json()
        if video["status"] in {"completed", "failed", "canceled"}:
            return video
        await asyncio.sleep(0.2)  # a benchmark waiting for its job, not a test
    raise TimeoutError(f"video {video_id} did not finish")


async def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="vidgen-bench-media-"))
    output = state / "large.mp4"
    size = large_mp4(output)
    cluster = Cluster().start()
    simulator = SimulatorProcess(
        state / "sim", knobs={"delay_s": 0.5, "output_file": str(output)}
    ).start()
    try:
        url = await cluster.create_migrated("media")
        app = AppServer(url, simulator, state)
        app.settings = {"APP_ENV": "development", "PUBLIC_BASE_URL": app.url}
        app.start()
        try:
            (worker,) = app.worker_pids()
            async with httpx.AsyncClient(base_url=app.url, timeout=600) as client:
                auth = await user_with_credits(client)
                idle = rss_mb(worker)
                created = await client.post(
                    "/api/videos",
                    json={"model": "kling-v2-master-t2v", "prompt": "a large one"},
                    headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
                )
                video = await until_finished(client, auth, created.json()["id"])
                video_id = video["id"]
                peak = peak_rss_mb(worker)
                assert video["status"] == "completed", video
                assert video["video"]["size_bytes"] == size
                db = await asyncpg.connect(url)
                events = {
                    row["source"]: row["createdAt"]
                    for row in await db.fetch(
                        'SELECT source, "createdAt" FROM "videoEvents" WHERE "videoId" = $1',
                        uuid.UUID(video_id),
                    )
                }
                await db.close()
                copy_s = (events["copy"] - events["webhook"]).total_seconds()

                media_url = video["video"]["url"]
                before, started = cpu_seconds(worker), time.perf_counter()
                read = 0
                async with client.stream("GET", media_url) as response:
                    async for chunk in response.aiter_bytes(1024 * 1024):
                        read += len(chunk)
                full_s, full_cpu = time.perf_counter() - started, cpu_seconds(worker) - before
                assert read == size

                rng = random.Random(7)
                before, started, ranged = cpu_seconds(worker), time.perf_counter(), 0
                for _ in range(RANGES):
                    start = rng.randrange(0, size - RANGE_BYTES)
                    headers = {"Range": f"bytes={start}-{start + RANGE_BYTES - 1}"}
                    part = await client.get(media_url, headers=headers)
                    assert part.status_code == 206
                    ranged += len(part.content)
                range_s, range_cpu = time.perf_counter() - started, cpu_seconds(worker) - before
        finally:
            app.stop()
    finally:
        simulator.stop()
        cluster.destroy()
    mb = size / 1e6
    print(f"copy of a {mb:.0f} MB output: {copy_s:.2f} s from Fal's word to completed")
    print(f"worker RSS: idle {idle:.0f} MB, peak {peak:.0f} MB, growth {peak - idle:.1f} MB")
    print(f"full read via /media: {mb / full_s:.0f} MB/s, {full_cpu / mb * 1000:.2f} ms CPU per MB")
    print(
        f"{RANGES} ranged 1 MiB reads: {ranged / 1e6 / range_s:.0f} MB/s, "
        f"{range_cpu / (ranged / 1e6) * 1000:.2f} ms CPU per MB, "
        f"{range_s / RANGES * 1000:.1f} ms per read"
    )


if __name__ == "__main__":
    asyncio.run(main())
