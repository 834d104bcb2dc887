"""The app's own CPU per request, attributed by package, with no HTTP server or network client.

Calls the ASGI app directly (lifespan running, real database), one request at a time, first
unprofiled (CPU ms per request) and then under cProfile on the process CPU clock, whose
per-function self times are summed by the package that owns the function. cProfile counts
each resumption of a coroutine as a call, so "calls" overstates plain function calls a
little. py-spy (bench/profile.py) samples the real server, but SQLAlchemy runs its ORM work
inside greenlets, which splits py-spy's stacks; this count does not depend on stacks at all.
"""

import asyncio
import collections
import cProfile
import logging
import pstats
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from app.core.config import PROJECT_ROOT

Request = tuple[str, str, list[tuple[bytes, bytes]], bytes]  # method, path, headers, body


@dataclass
class CallProfile:
    name: str
    requests: int
    cpu_ms: float  # per request, without the profiler
    calls: float  # Python function calls per request, under the profiler
    by_package: dict[str, float] = field(default_factory=dict)  # share of self time
    calls_by_package: dict[str, float] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [
            f"#### {self.name}: in-process, {self.requests} requests one at a time",
            "",
            f"{self.cpu_ms:.2f} ms of CPU per request without the profiler; "
            f"{self.calls:,.0f} Python function calls (and coroutine resumptions) per request.",
            "",
            "| package | share of self time | calls per request |",
            "|---|---:|---:|",
        ]
        for package, share in list(self.by_package.items())[:14]:
            calls = self.calls_by_package.get(package, 0)
            lines.append(f"| {package} | {share:.1%} | {calls:,.0f} |")
        return "\n".join(lines) + "\n"


def package_of(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith(str(PROJECT_ROOT / "app")):
        return "app (vidgen)"
    if path.startswith("~") or path.startswith("<"):
        return "C functions (socket I/O, builtins)"
    return "stdlib " + Path(path).stem


async def call(app: FastAPI, request: Request) -> int:
    method, path, headers, body = request
    target, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-length", str(len(body)).encode()), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    delivered = False
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the app works
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


async def profile_requests(
    name: str, app: FastAPI, make: Callable[[int], Request], count: int, ok: int
) -> CallProfile:
    """Warm up, time `count` requests, then profile `count` more (requests 0..3*count-1)."""
    loggers = [logging.getLogger(n) for n in ("vidgen", "vidgen.access", "app")]
    for logger in loggers:
        logger.disabled = True  # the access log would go to our terminal
    try:
        for i in range(count):
            assert await call(app, make(i)) == ok
        started = time.process_time()
        for i in range(count, 2 * count):
            assert await call(app, make(i)) == ok
        cpu_ms = (time.process_time() - started) / count * 1000
        # Timed by this process's CPU clock: time the OS gave PostgreSQL meanwhile is not ours.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for i in range(2 * count, 3 * count):
            assert await call(app, make(i)) == ok
        profiler.disable()
    finally:
        for logger in loggers:
            logger.disabled = False
    self_time: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (file, _line, _func), (_cc, ncalls, tottime, _ct, _callers) in stats.items():
        package = package_of(file)
        self_time[package] += tottime
        calls[package] += ncalls
    total = sum(self_time.values()) or 1.0
    return CallProfile(
        name=name,
        requests=count,
        cpu_ms=cpu_ms,
        calls=sum(calls.values()) / count,
        by_package={p: t / total for p, t in self_time.most_common()},
        calls_by_package={p: c / count for p, c in calls.items()},
    )
