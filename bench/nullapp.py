"""The framework alone: FastAPI under the same uvicorn as `vidgen serve`, with handlers that
read the request body and answer a fixed JSON, no dependencies, no database.

Served on the app's own paths, so the same wrk scripts (bench/lua/create.lua, webhook.lua)
drive it. Its CPU per request is what HTTP + uvicorn + FastAPI cost before any work: the
floor a Python API on this stack cannot go below, measured in the same run.
"""

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response

from app.ops.localpg import free_port

app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
PENDING = b'{"id":"00000000-0000-0000-0000-000000000000","status":"pending"}'


@app.post("/api/videos")
async def create(request: Request) -> Response:
    await request.body()
    return Response(PENDING, 202, media_type="application/json")


@app.post("/api/webhooks/fal")
async def webhook(request: Request) -> Response:
    await request.body()
    return Response(b'{"result":"applied"}', media_type="application/json")


@app.get("/ready")
async def ready() -> Response:
    return Response(b"{}", media_type="application/json")


@dataclass
class NullServer:
    """This module's app under uvicorn, flags as in `vidgen serve` (uvloop, httptools, no
    access log), one process."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "NullServer":
        command = [sys.executable, "-m", "uvicorn", "bench.nullapp:app", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--no-access-log", "--log-level", "warning"]
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(command, cwd=root)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the null app did not start")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
