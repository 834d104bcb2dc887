"""Oversized unauthenticated bodies against a real `vidgen serve`: the server's memory.

`.venv-test/bin/python -m bench.abuse`: 20 clients at once each push a 64 MB body, without
credentials, to POST /api/videos (10 declaring Content-Length, 10 chunked with none) and to
the Fal webhook; the worker's resident memory is read before and at its peak (VmHWM). With the
limits at the ASGI edge (app/core/limits.py) each is refused at 1 MiB at most.
"""

import asyncio
import tempfile
import time
from pathlib import Path

from bench.harness import AppServer, Cluster, peak_rss_mb, rss_mb, start_simulator

CLIENTS = 20
BODY_BYTES = 64 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)


async def push(port: int, path: str, declare_length: bool) -> tuple[str, int]:
    """Send up to 64 MB; return the status line and how many body bytes went out first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    length = f"Content-Length: {BODY_BYTES}" if declare_length else "Transfer-Encoding: chunked"
    writer.write(f"POST {path} HTTP/1.1\r\nHost: b\r\n{length}\r\n\r\n".encode())
    sent = 0
    try:
        while sent < BODY_BYTES:
            data = CHUNK if declare_length else b"100000\r\n" + CHUNK + b"\r\n"
            writer.write(data)
            await writer.drain()
            sent += len(CHUNK)
            if reader.at_eof() or reader._buffer:  # type: ignore[attr-defined]
                break  # answered already: stop sending, as a client reading the answer would
    except (ConnectionError, OSError):
        pass
    try:
        status = (await asyncio.wait_for(reader.readline(), 10)).decode().strip()
    except (TimeoutError, ConnectionError, OSError):
        status = "no answer"
    writer.close()
    return status, sent


async def main() -> None:
    cluster = Cluster().start()
    state = Path(tempfile.mkdtemp(prefix="vidgen-abuse-"))
    simulator = start_simulator(state)
    try:
        url = await cluster.create_migrated("abuse")
        app = AppServer(url, simulator, state).start()
        try:
            (worker,) = app.worker_pids()
            idle = rss_mb(worker)
            started = time.perf_counter()
            results = await asyncio.gather(
                *(push(app.port, "/api/videos", i % 2 == 0) for i in range(CLIENTS)),
                *(push(app.port, "/api/webhooks/fal", i % 2 == 0) for i in range(CLIENTS)),
            )
            elapsed = time.perf_counter() - started
            peak = peak_rss_mb(worker)
        finally:
            app.stop()
    finally:
        simulator.stop()
        cluster.destroy()
    statuses = sorted({status for status, _ in results})
    sent_mb = sum(sent for _, sent in results) / 1e6
    print(f"{2 * CLIENTS} clients x 64 MB unauthenticated: answers {statuses}")
    print(f"body bytes actually sent before the answer: {sent_mb:.0f} MB in {elapsed:.1f} s")
    print(f"worker RSS: idle {idle:.0f} MB, peak {peak:.0f} MB, growth {peak - idle:.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
