"""Our copy of a large output, and serving it: `.venv-test/bin/python -m bench.media`.

A 200 MB MP4 (the simulator's 2-second sample followed by a 200 MB `free` box, which every
MP4 reader skips) is what the simulator returns as a job's output. A real `vidgen serve`
(one worker, local media) runs the job; the figures:
- copy: wall time from Fal's word (the webhook's event) to `completed` (the copy's event),
  and the worker's peak RSS growth over its idle RSS (VmHWM) while it copied;
- serving through the signed /media route: MB/s and worker CPU per MB for a full read and
  for 1 MiB ranged reads at random offsets (what a seeking <video> asks for).

`bench.run` measures the serving part too (`serve_local_file`): the same reads of a file
put straight into a running server's MEDIA_DIR, without the job and the copy.
"""

import asyncio
import random
import struct
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.fal.simulator.media import SAMPLE_PATH
from app.fal.simulator.process import SimulatorProcess
from app.media.links import LocalLinks
from bench.harness import (
    ADMIN_TOKEN,
    MEDIA_SIGNING_KEY,
    AppServer,
    Cluster,
    cpu_seconds,
    peak_rss_mb,
    rss_mb,
)

PADDING_BYTES = 200 * 1000 * 1000
RANGE_BYTES = 1024 * 1024
RANGES = 200
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHUNK = 1024 * 1024


def large_mp4(path: Path, padding: int = PADDING_BYTES) -> int:
    """The sample MP4 followed by a `free` box of `padding` zero bytes; the file's size."""
    with path.open("wb") as out:
        out.write(SAMPLE_PATH.read_bytes())
        out.write(struct.pack(">I4s", 8 + padding, b"free"))
        block = b"\0" * CHUNK
        for start in range(0, padding, len(block)):
            out.write(block[: min(len(block), padding - start)])
    return path.stat().st_size


@dataclass(frozen=True)
class Serving:
    """One file read through GET /media/{key}?exp=&sig=: whole, then in 1 MiB ranges.

    CPU is the serving worker's (user + system, from /proc, 10 ms ticks); MB = 10^6 bytes.
    """

    size: int
    full_s: float
    full_cpu_s: float
    ranges: int
    ranged_bytes: int
    range_s: float
    range_cpu_s: float

    @property
    def full_mb_s(self) -> float:
        return self.size / 1e6 / self.full_s

    @property
    def full_cpu_ms_per_mb(self) -> float:
        return self.full_cpu_s / (self.size / 1e6) * 1000

    @property
    def range_mb_s(self) -> float:
        return self.ranged_bytes / 1e6 / self.range_s

    @property
    def range_cpu_ms_per_mb(self) -> float:
        return self.range_cpu_s / (self.ranged_bytes / 1e6) * 1000

    @property
    def range_ms_per_read(self) -> float:
        return self.range_s / self.ranges * 1000

    def to_json(self) -> dict[str, Any]:
        derived = ("full_mb_s", "full_cpu_ms_per_mb", "range_mb_s", "range_cpu_ms_per_mb")
        figures = {name: round(getattr(self, name), 2) for name in derived}
        return asdict(self) | figures | {"range_ms_per_read": round(self.range_ms_per_read, 2)}


async def serve_figures(
    client: httpx.AsyncClient, media_url: str, worker: int, size: int, ranges: int = RANGES
) -> Serving:
    """Read `media_url` whole (streamed), then `ranges` 1 MiB ranges at random offsets, one
    at a time, timing each part and the serving worker's CPU over it."""
    before, started = cpu_seconds(worker), time.perf_counter()
    read = 0
    async with client.stream("GET", media_url) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes(CHUNK):
            read += len(chunk)
    full_s, full_cpu = time.perf_counter() - started, cpu_seconds(worker) - before
    assert read == size, f"read {read} of {size} bytes"

    rng = random.Random(7)
    before, started, ranged = cpu_seconds(worker), time.perf_counter(), 0
    for _ in range(ranges):
        start = rng.randrange(0, size - RANGE_BYTES)
        headers = {"Range": f"bytes={start}-{start + RANGE_BYTES - 1}"}
        part = await client.get(media_url, headers=headers)
        assert part.status_code == 206, part.status_code
        ranged += len(part.content)
    range_s, range_cpu = time.perf_counter() - started, cpu_seconds(worker) - before
    return Serving(size, full_s, full_cpu, ranges, ranged, range_s, range_cpu)


async def serve_local_file(app: AppServer, padding: int, ranges: int) -> Serving:
    """A file of ~`padding` bytes put straight into the running server's MEDIA_DIR (local
    backend), read through a URL signed with its MEDIA_SIGNING_KEY, as the API signs them.

    The server must have one worker (its CPU is the one measured). The file is removed after.
    """
    (worker,) = app.worker_pids()
    key = f"bench/{uuid.uuid4().hex}.mp4"
    path = app.media_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        size = large_mp4(path, padding)
        url = LocalLinks(app.url, MEDIA_SIGNING_KEY).sign(key, 3600)
        async with httpx.AsyncClient(timeout=600) as client:
            return await serve_figures(client, url, worker, size, ranges)
    finally:
        path.unlink(missing_ok=True)


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

                served = await serve_figures(client, video["video"]["url"], worker, size)
        finally:
            app.stop()
    finally:
        simulator.stop()
        cluster.destroy()
    mb = size / 1e6
    print(f"copy of a {mb:.0f} MB output: {copy_s:.2f} s from Fal's word to completed")
    print(f"worker RSS: idle {idle:.0f} MB, peak {peak:.0f} MB, growth {peak - idle:.1f} MB")
    print(
        f"full read via /media: {served.full_mb_s:.0f} MB/s, "
        f"{served.full_cpu_ms_per_mb:.2f} ms CPU per MB"
    )
    print(
        f"{served.ranges} ranged 1 MiB reads: {served.range_mb_s:.0f} MB/s, "
        f"{served.range_cpu_ms_per_mb:.2f} ms CPU per MB, "
        f"{served.range_ms_per_read:.1f} ms per read"
    )


if __name__ == "__main__":
    asyncio.run(main())
