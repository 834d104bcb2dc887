"""Running the app for a test: in this process (`serve_app`, `live_server`), or as the real
service (`vidgen serve` in a child process, `AppProcess`) against the Fal simulator."""

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.core.config import AppEnv, Settings
from app.fal.simulator.process import SimulatorProcess
from app.main import create_app
from app.ops.localpg import free_port
from tests.support.helpers import VIDGEN

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
# Every app a test starts keeps its media here unless the test says otherwise; objects are
# keyed by ids, so apps sharing it never collide.
TEST_MEDIA_DIR = Path(tempfile.gettempdir()) / f"vidgen-test-media-{os.getpid()}"


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "app_env": AppEnv.TEST,
        "admin_token": ADMIN_TOKEN,
        "_env_file": None,
        # In-process API tests talk to no Fal; the Fal tests run the app against the simulator.
        "dispatch_enabled": False,
        "media_dir": TEST_MEDIA_DIR,
        # Tests create far more than a person would; the rate-limit tests turn them on.
        "rate_limit_creates_per_minute": 0,
        "rate_limit_quotes_per_minute": 0,
        "rate_limit_uploads_per_minute": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def serve_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, behind an in-process httpx client."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[str]:
    """The app under a real uvicorn on 127.0.0.1 (in this process); yields its base URL.

    For what the in-process ASGI transport cannot do, such as streaming responses.
    """
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)  # waiting for startup, not synchronising the test
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# Short intervals so faults heal within a test; each is an ordinary setting.
FAST_RECONCILER = {
    "RECONCILE_INTERVAL_S": "0.2",
    "POLL_AFTER_S": "1.0",
    "SUBMIT_BACKOFF_S": "0.2",
    "SUBMIT_MAX_ATTEMPTS": "8",
    "CLAIM_LEASE_S": "7",
    "MEDIA_COPY_LEASE_S": "3",
    "FAL_TIMEOUT_S": "1",
    # A submit that may have reached Fal waits this long for its webhook before a resubmit.
    "FAL_SUBMIT_TIMEOUT_S": "5",
    "SUBMIT_UNCERTAIN_GRACE_S": "10",
    "JOB_DEADLINE_S": "120",
    "MAX_ACTIVE_JOBS_PER_USER": "1000",
    "RATE_LIMIT_CREATES_PER_MINUTE": "0",
    "RATE_LIMIT_QUOTES_PER_MINUTE": "0",
    "RATE_LIMIT_UPLOADS_PER_MINUTE": "0",
}


class AppProcess:
    """One replica: `vidgen serve` in a child process, configured for the simulator."""

    def __init__(
        self,
        database_url: str,
        simulator: SimulatorProcess,
        log_dir: Path,
        port: int | None = None,
        **settings: str,
    ) -> None:
        # A replacement process may take over its predecessor's port: the stable address a
        # load balancer gives, where Fal's webhooks keep arriving across restarts.
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_dir / f"app-{self.port}.log"
        self.env = {
            **os.environ,
            **simulator.client_env(),
            "DATABASE_URL": database_url,
            "APP_ENV": "test",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "FAL_JWKS_URL": simulator.jwks_url,
            "FAL_STORAGE_URL": simulator.base_url,
            "PUBLIC_BASE_URL": self.url,
            "MEDIA_DIR": str(TEST_MEDIA_DIR),
            **FAST_RECONCILER,
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "AppProcess":
        command = [VIDGEN, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app exited: {self.log_file.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # waiting for a server to come up, not synchronising a test
        raise RuntimeError(f"app did not become healthy: {self.log_file.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no chance to finish anything in flight."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def wait_until(
    probe: Any, *, within: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll `probe()` (async) until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; last: {value!r}")
        await asyncio.sleep(interval)
