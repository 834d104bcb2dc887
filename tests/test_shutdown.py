"""SIGTERM to `vidgen serve`, as a rollout sends it: open event streams are told to close at
once, a request in flight finishes, and the process is gone within SHUTDOWN_TIMEOUT_S even
when a client never finishes its request."""

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import httpx

from app.fal.simulator.process import SimulatorProcess
from tests.support.apps import AppProcess
from tests.support.factories import ApiUser, create_user
from tests.support.jobs import T2V, create

SHUTDOWN_TIMEOUT_S = 5
# The drain, plus the app's own shutdown (closing the pool, stopping the workers).
EXIT_WITHIN_S = 8


async def start_request(
    port: int, user: ApiUser, body: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """POST /api/videos up to its headers, with `Expect: 100-continue`: the server answers
    `100 Continue` once the app reads the body, so the request is provably in flight."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /api/videos HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"{next(iter(user.auth))}: {user.auth['Authorization']}\r\n"
        f"Idempotency-Key: {uuid.uuid4()}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    return reader, writer


async def test_sigterm_closes_streams_finishes_requests_and_exits_within_the_timeout(
    database_url: str, simulator: SimulatorProcess, tmp_path: Path
) -> None:
    app = AppProcess(
        database_url, simulator, tmp_path, SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S)
    ).start()
    assert app.process is not None
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            held = await create(client, user, prompt="a lighthouse #hold")
            body = json.dumps({"model": T2V, "prompt": "a fox in the snow #hold"}).encode()
            in_flight = await start_request(app.port, user, body)
            stuck = await start_request(app.port, user, body)  # its body never comes
            path = f"/api/videos/{held['id']}/events"
            async with client.stream("GET", path, headers=user.auth) as stream:
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                while not (await anext(lines)).startswith("data:"):
                    pass  # the current state: the stream is open and registered

                app.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                # The stream ends cleanly (no broken chunk) well before the timeout.
                async with asyncio.timeout(SHUTDOWN_TIMEOUT_S - 1):
                    async for _ in lines:
                        pass
                stream_closed_after = time.monotonic() - signalled

            reader, writer = in_flight
            writer.write(body)
            await writer.drain()
            status_line = await reader.readuntil(b"\r\n")
            writer.close()
        exit_code = await asyncio.to_thread(app.process.wait, EXIT_WITHIN_S + 5)
        exited_after = time.monotonic() - signalled
        stuck[1].close()
    finally:
        app.stop()

    assert stream_closed_after < SHUTDOWN_TIMEOUT_S - 1
    assert status_line.startswith(b"HTTP/1.1 202"), status_line  # finished, not cut
    # The stuck request held the drain until SHUTDOWN_TIMEOUT_S, then was cancelled.
    assert SHUTDOWN_TIMEOUT_S - 1 < exited_after < EXIT_WITHIN_S, exited_after
    assert exit_code in (0, -signal.SIGTERM), exit_code
    log = app.log_file.read_text()
    assert "timeout graceful shutdown exceeded" in log
