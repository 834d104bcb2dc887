"""Open-loop load at a fixed rate, for latency at a given fraction of peak throughput.

wrk (closed loop) cannot hold a rate: a slow answer delays that connection's next request,
which hides exactly the queueing a tail-latency figure is about. This client schedules
request i at start + i/rate whatever happened before, sends it on an idle keep-alive
connection (opening one when none is idle), and measures latency from the *scheduled* time,
so time spent waiting for a connection or the event loop counts against the server.

It is plain asyncio (uvloop) with a minimal HTTP/1.1 reader, no httpx: its own cost is
measured against a null server (`null_server`) at the same rate and reported beside the
result (CPU µs per request and the latency it adds on its own).
"""

import asyncio
import collections
import contextlib
import resource
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.measure import RunResult, from_latencies

KEEP_ALIVE_S = 3.0  # reuse a connection only if idle for less than this
NULL_BODY = b'{"id": "00000000-0000-0000-0000-000000000000", "status": "pending"}' * 8
NULL_RESPONSE = (
    b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(NULL_BODY)).encode() + b"\r\n\r\n" + NULL_BODY
)


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        length = int(lower[at + 15 : lower.index(b"\r\n", at)])
        await reader.readexactly(length)
    return status


async def open_loop(
    name: str,
    host: str,
    port: int,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    make_request: Callable[[int], bytes],
    ok_status: int,
    max_connections: int = 512,
) -> RunResult:
    # Idle keep-alive connections with the time each went idle, most recent last.
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    opened: list[asyncio.StreamWriter] = []
    latencies: list[float] = []
    errors = 0
    kinds: collections.Counter[str] = collections.Counter()
    in_flight = 0

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        writer.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        opened.append(writer)
        return reader, writer

    for _ in range(32):
        idle.append((*await connect(), time.perf_counter()))

    async def checkout() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """An idle connection the server has not timed out (uvicorn drops them after 5 s
        idle), else a new one; and whether it was reused."""
        while idle:
            reader, writer, since = idle.pop()
            if time.perf_counter() - since < KEEP_ALIVE_S:
                return reader, writer, True
            writer.close()
        return (*await connect(), False)

    start = time.perf_counter() + 0.05
    measure_from = start + warmup

    async def one(payload: bytes, scheduled: float) -> None:
        nonlocal errors, in_flight
        in_flight += 1
        try:
            reader, writer, reused = await checkout()
            writer.write(payload)
            try:
                status = await read_response(reader)
            except asyncio.IncompleteReadError as error:
                if not (reused and not error.partial):
                    raise
                # The server closed the kept-alive connection as we sent: resend on a new
                # one, as HTTP clients do for idempotent-keyed requests (counted in latency).
                writer.close()
                reader, writer = await connect()
                writer.write(payload)
                status = await read_response(reader)
            idle.append((reader, writer, time.perf_counter()))
            if status != ok_status:
                errors += 1
                kinds[f"HTTP {status}"] += 1
            elif scheduled >= measure_from:
                latencies.append(time.perf_counter() - scheduled)
        except (OSError, asyncio.IncompleteReadError) as error:
            errors += 1
            kinds[type(error).__name__] += 1
        finally:
            in_flight -= 1

    total = int(rate * (warmup + seconds))
    tasks: set[asyncio.Task[None]] = set()
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= max_connections:
            errors += 1  # the server fell this far behind: count it as failed, don't queue
            kinds["client gave up: too many in flight"] += 1
            continue
        task = asyncio.create_task(one(make_request(i), scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    for writer in opened:
        writer.close()
    result = from_latencies(name, len(opened), latencies, seconds, errors)
    result.notes = f"open loop at {rate:.0f} req/s; {len(opened)} connections used"
    if kinds:
        result.notes += "; errors: " + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
    return result


# --- the client's own cost --------------------------------------------------------------


class NullProtocol(asyncio.Protocol):
    """Answers every complete HTTP/1.1 request (headers + Content-Length body) at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(NULL_RESPONSE)


async def serve_null(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NullProtocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def client_overhead(
    rate: float, seconds: float, make_request: Callable[[int], bytes]
) -> tuple[RunResult, float]:
    """The open-loop client against a server that does nothing: (result, client CPU µs/req)."""
    from app.ops.localpg import free_port

    port = free_port()
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.openloop", str(port))
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            await asyncio.sleep(0.05)
        before = resource.getrusage(resource.RUSAGE_SELF)
        result = await open_loop(
            "null server",
            "127.0.0.1",
            port,
            rate=rate,
            seconds=seconds,
            warmup=0.5,
            make_request=make_request,
            ok_status=202,
        )
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        server.terminate()
        await server.wait()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sent = int(rate * (seconds + 0.5))
    return result, cpu / max(1, sent) * 1e6


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve_null(int(sys.argv[1])))
