"""Many open live-update streams (GET /api/videos/{id}/events) from one asyncio client, and
what PostgreSQL is asked while they are open.

The client is plain asyncio (uvloop when the caller runs it) with a minimal HTTP/1.1 reader,
as bench/openloop.py: one socket per stream, the request, the response head, the first event
(the video's current state); then each socket is drained until the hold ends, counting what
arrives (`event:` lines and `:` comments; the body is chunked, which the counting ignores).

PostgreSQL's side is its own statement log: `log_statement = 'all'` with the database in the
line prefix, turned on with ALTER SYSTEM + reload around the measurement (reloadable, no
restart) and back off after. Every statement the server executes is one line
(`statement: ...` for the simple protocol, `execute <name>: ...` for a prepared one), so the
statements in a window are the lines written in it: exact, with their texts, whatever the
statistics collector's flush delays.
"""

import asyncio
import collections
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

OPENING_CONCURRENCY = 50  # streams being opened at once (the server's pool is 10)
STATEMENT_LINE = re.compile(r"\bdb=(?P<db>\S*) LOG:  (?:statement|execute [^:]*): (?P<sql>.*)")


@dataclass
class Held:
    """What the client saw of its streams."""

    opened: int = 0
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    open_seconds: float = 0.0
    events: int = 0  # `event:` lines after each stream's first event
    comments: int = 0  # `:` comment lines (keep-alives)
    ended: int = 0  # streams the server closed before the client did


@dataclass
class Streams:
    """Open streams, each with the task draining it."""

    held: Held
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    drains: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.drains:
            task.cancel()
        await asyncio.gather(*self.drains, return_exceptions=True)
        for writer in self.writers:
            writer.close()


async def open_streams(host: str, port: int, targets: list[tuple[uuid.UUID, str]]) -> Streams:
    """One stream per (video id, owner's API key), at most OPENING_CONCURRENCY opening at
    once; returns when every stream has its first event (or was refused)."""
    held = Held()
    streams = Streams(held)
    gate = asyncio.Semaphore(OPENING_CONCURRENCY)

    async def drain(reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            for line in data.split(b"\n"):
                if line.startswith(b"event:"):
                    held.events += 1
                elif line.startswith(b":"):
                    held.comments += 1
        held.ended += 1

    async def one(video_id: uuid.UUID, api_key: str) -> None:
        async with gate:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
            writer.transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
            writer.write(
                f"GET /api/videos/{video_id}/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {api_key}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            if status != 200:
                held.refused[f"HTTP {status}"] += 1
                writer.close()
                return
            await reader.readuntil(b"\n\n")  # the first event: the video as it is now
            held.opened += 1
            streams.writers.append(writer)
            streams.drains.append(asyncio.create_task(drain(reader)))

    started = time.perf_counter()
    results = await asyncio.gather(*(one(*t) for t in targets), return_exceptions=True)
    held.open_seconds = time.perf_counter() - started
    for result in results:
        if isinstance(result, BaseException):
            held.refused[type(result).__name__] += 1
    return streams


# --- PostgreSQL's statement log ---------------------------------------------------------


async def log_statements(server_url: str, on: bool) -> None:
    """Turn the cluster's statement log on (every statement, database in the prefix) or
    back to its defaults. Backends apply it before their next command."""
    conn = await asyncpg.connect(server_url)
    try:
        if on:
            await conn.execute("ALTER SYSTEM SET log_statement = 'all'")
            await conn.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] db=%d '")
        else:
            await conn.execute("ALTER SYSTEM RESET log_statement")
            await conn.execute("ALTER SYSTEM RESET log_line_prefix")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    await asyncio.sleep(0.5)  # the postmaster re-reads its files asynchronously


def log_offset(path: Path) -> int:
    return path.stat().st_size


def statements(path: Path, start: int, end: int, database: str) -> list[str]:
    """The statements logged for `database` between two offsets of the log, whole (the log
    continues a multi-line statement on lines that start with a tab)."""
    with path.open("rb") as log:
        log.seek(start)
        text = log.read(end - start).decode(errors="replace")
    found: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if current is not None and line.startswith("\t"):
            current.append(line.strip())
            continue
        if current is not None:
            found.append(" ".join(" ".join(current).split()))
            current = None
        match = STATEMENT_LINE.search(line)
        if match and match["db"] == database:
            current = [match["sql"]]
    if current is not None:
        found.append(" ".join(" ".join(current).split()))
    return found


TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START", "END"}
WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)


# asyncpg's introspection of a type it has no codec for yet (here the `uuid[]` of the
# broker's `= ANY(:ids)`), with JIT off around it: three reads, once per pool connection.
INTROSPECTION = ("typeinfo_tree", "set_config('jit'", "current_setting('jit')")


def kind(statement: str) -> str:
    """`transaction control` (BEGIN, COMMIT, ROLLBACK...), `introspection` (asyncpg's
    one-time type lookup on a connection), `read` (a SELECT, or a WITH query that writes
    nothing), `write`, or `other` (SET, SHOW, ...)."""
    words = statement.split()
    first = words[0].rstrip(";").upper() if words else ""
    if first in TRANSACTION_CONTROL:
        return "transaction control"
    if any(marker in statement for marker in INTROSPECTION):
        return "introspection"
    if first == "SELECT" or (first == "WITH" and not WRITES.search(statement)):
        return "read"
    if first in {"INSERT", "UPDATE", "DELETE", "MERGE", "WITH"}:
        return "write"
    return "other"


def by_kind(found: list[str]) -> collections.Counter[str]:
    return collections.Counter(kind(statement) for statement in found)


def by_text(found: list[str], width: int = 70) -> collections.Counter[str]:
    """The statements by their first `width` characters (parameters are not in the text)."""
    return collections.Counter(statement[:width] for statement in found)
