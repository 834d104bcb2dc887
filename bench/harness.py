"""The pieces a benchmark run stands up: PostgreSQL, the Fal simulator, `vidgen serve`.

PostgreSQL is the throwaway cluster from `app.ops.localpg`, started with its *normal*
durability settings (fsync, synchronous_commit and full_page_writes on: the defaults, not
the test suite's throwaway ones), so every commit waits for its WAL flush as in production.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from app.catalog import service as catalog
from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker, unit_of_work
from app.fal.simulator.process import SimulatorProcess
from app.ops import migrate
from app.ops.localpg import LocalPostgres, free_port

VIDGEN = str(Path(sys.executable).parent / "vidgen")
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef-not-a-secret"
MEDIA_SIGNING_KEY = "bench-media-signing-key-0123456789"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Cluster:
    """A throwaway PostgreSQL 15 with production durability, removed on `destroy()`."""

    def __init__(self, settings: tuple[str, ...] = ()) -> None:
        # mkdtemp's directory becomes the data directory itself (chowned to `postgres` as root).
        directory = Path(tempfile.mkdtemp(prefix="vidgen-bench-pg-"))
        self.server = LocalPostgres(directory, free_port(), settings=settings)

    def start(self) -> "Cluster":
        self.server.start()
        return self

    def destroy(self) -> None:
        self.server.destroy()

    def url_for(self, database: str) -> str:
        return self.server.url_for(database)

    @property
    def postmaster_pid(self) -> int:
        return int((self.server.data_dir / "postmaster.pid").read_text().splitlines()[0])

    def backend_pids(self) -> list[int]:
        return children_of(self.postmaster_pid)

    @property
    def log_path(self) -> Path:
        """The server's log (`pg_ctl -l`): every backend writes its messages here."""
        return self.server.data_dir / "server.log"

    async def create_database(self, name: str, template: str = "template0") -> str:
        conn = await asyncpg.connect(self.server.url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await conn.close()
        return self.url_for(name)

    async def create_migrated(self, name: str) -> str:
        """A database with every migration applied and the model catalog synced."""
        url = await self.create_database(name)
        await migrate.deploy(url, Settings(_env_file=None).migrations_dir)
        engine = create_engine(Settings(database_url=url, _env_file=None))
        async with unit_of_work(create_sessionmaker(engine)) as session:
            await catalog.sync(session, catalog.load_catalog())
        await engine.dispose()
        return url


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """VmRSS, the resident memory now, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """VmHWM, the most resident memory the process ever had, in MB (10^6 bytes)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


def start_simulator(state_dir: Path) -> SimulatorProcess:
    return SimulatorProcess(state_dir, knobs={"delay_s": 0.5}).start()


@dataclass
class AppServer:
    """`vidgen serve --workers N`: a real uvicorn, configured as a deployment would be."""

    database_url: str
    simulator: SimulatorProcess
    log_dir: Path
    workers: int = 1
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"app-{self.workers}w-{self.port}.log"

    @property
    def media_dir(self) -> Path:
        """MEDIA_DIR: the local media store, served at /media with signed URLs."""
        return self.log_dir / "media"

    def start(self) -> "AppServer":
        env = {
            **os.environ,
            **self.simulator.client_env(),
            "DATABASE_URL": self.database_url,
            "APP_ENV": "production",
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "FAL_JWKS_URL": self.simulator.jwks_url,
            "FAL_STORAGE_URL": self.simulator.base_url,
            # Production refuses a webhook address Fal cannot reach; creates are benchmarked
            # with dispatch off, and webhooks are posted to the app directly.
            "PUBLIC_BASE_URL": "https://vidgen.bench.example",
            "MEDIA_SIGNING_KEY": MEDIA_SIGNING_KEY,
            "METRICS_TOKEN": "bench-metrics-token-0123456789abcdef",
            "MEDIA_DIR": str(self.media_dir),
            **self.settings,
        }
        log = self.log_path
        command = [VIDGEN, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", str(self.workers)]
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.log_dir
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vidgen serve exited:\n{log.read_text()[-3000:]}")
            try:
                healthy = httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
            except httpx.TransportError:
                healthy = False
            if healthy and len(self.worker_pids()) == self.workers:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"vidgen serve did not become healthy:\n{log.read_text()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: uvicorn's spawned workers, or the one process."""
        assert self.process is not None
        if self.workers == 1:
            return [self.process.pid]
        workers = []
        for pid in children_of(self.process.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                workers.append(pid)
        return workers

    def supervisor_pids(self) -> list[int]:
        """uvicorn's supervisor, when it runs separate workers (it serves nothing itself)."""
        assert self.process is not None
        return [self.process.pid] if self.workers > 1 else []

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
