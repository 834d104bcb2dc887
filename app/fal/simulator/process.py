"""Running the simulator: in this process (`run_simulator`) or as a child (`SimulatorProcess`).

The child form is what tests and `vidgen dev` use: fal-client reads `FAL_QUEUE_RUN_HOST`
and `SSL_CERT_FILE` when it is imported, so the simulator must be up, on a known port,
with its CA on disk, before any client process starts. The child binds its own socket
(port 0 means "any free port") and reports the port through a ready file, so parallel
test runs never race for a port.
"""

import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import uvicorn

from app.fal.simulator.certs import ensure_certificates
from app.fal.simulator.server import create_app
from app.fal.simulator.settings import SimulatorSettings
from app.fal.simulator.statefiles import PUBLIC_MODE, atomic_write

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_STATE_DIR = PROJECT_ROOT / ".data" / "fal-simulator"
DEFAULT_PORT = 8765
# The certificate covers exactly these names; the simulator has no auth, so never listen wider.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_FAL_KEY = "simulator-key-id:simulator-key-secret"
PARENT_CHECK_INTERVAL_S = 1.0

logger = logging.getLogger(__name__)


def client_env(host: str, ca_file: Path, fal_key: str = DEFAULT_FAL_KEY) -> dict[str, str]:
    """Environment a fal-client process needs to talk to the simulator at `host` (IP:PORT).

    Set it before `import fal_client`. `SSL_CERT_FILE` replaces the trust store of every
    httpx client in that process, so only simulator-mode processes should get it.
    """
    return {"FAL_QUEUE_RUN_HOST": host, "SSL_CERT_FILE": str(ca_file), "FAL_KEY": fal_key}


@dataclass(frozen=True)
class SimulatorInfo:
    """Where a started simulator is, for whoever launched it (CLI banner, ready file)."""

    port: int
    base_url: str
    ca_file: Path

    @property
    def host(self) -> str:
        return self.base_url.removeprefix("https://")

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    def client_env(self, fal_key: str = DEFAULT_FAL_KEY) -> dict[str, str]:
        return client_env(self.host, self.ca_file, fal_key)


def run_simulator(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    state_dir: Path = DEFAULT_STATE_DIR,
    *,
    settings: SimulatorSettings | None = None,
    ready_file: Path | None = None,
    on_ready: Callable[[SimulatorInfo], None] | None = None,
    parent_pid: int | None = None,
    log_level: str = "info",
) -> None:
    """Serve the simulator over HTTPS until interrupted (blocking). `port=0` picks a free one.

    The socket is bound before anything is reported, so `on_ready` / `ready_file` always
    name a port that accepts connections. With `parent_pid`, the simulator exits when that
    process is gone, so a crashed test run leaves no stray server behind.
    """
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the simulator only listens on loopback ({', '.join(LOOPBACK_HOSTS)})")
    state_dir = state_dir.resolve()
    certs = ensure_certificates(state_dir)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    bound_port: int = sock.getsockname()[1]
    info = SimulatorInfo(bound_port, f"https://{host}:{bound_port}", certs.ca_file)
    app = create_app(state_dir, info.base_url, settings)
    config = uvicorn.Config(
        app,
        ssl_keyfile=str(certs.key_file),
        ssl_certfile=str(certs.cert_file),
        log_level=log_level,
        lifespan="on",
    )
    if ready_file is not None:
        ready = {"port": bound_port, "base_url": info.base_url, "ca_file": str(certs.ca_file)}
        atomic_write(ready_file, json.dumps(ready).encode(), mode=PUBLIC_MODE)
    if on_ready is not None:
        on_ready(info)
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    uvicorn.Server(config).run(sockets=[sock])


def _exit_with_parent(parent_pid: int) -> None:
    """SIGTERM ourselves (a graceful uvicorn shutdown) once `parent_pid` stops being our parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_INTERVAL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


class SimulatorProcess:
    """The simulator in a child process: `with SimulatorProcess(dir, knobs={...}) as sim: ...`.

    `knobs` are SimulatorSettings field names (`delay_s`, `drop_webhook_rate`, …) passed
    to the child as `FAL_SIMULATOR_*` variables; other `FAL_SIMULATOR_*` variables of this
    process are inherited.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = 0,
        knobs: Mapping[str, str | int | float | bool | None] | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.requested_port = port
        self.knobs = dict(knobs or {})
        unknown = set(self.knobs) - set(SimulatorSettings.model_fields)
        if unknown:
            raise ValueError(f"unknown simulator knobs: {', '.join(sorted(unknown))}")
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.log_file = self.state_dir / "simulator.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._ready_file = self.state_dir / f".ready-{uuid.uuid4().hex}.json"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("simulator already started")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Generate the CA here, once, so its path is usable even before the child is up.
        ensure_certificates(self.state_dir)
        env = {**os.environ, **self.extra_env, **self._knob_env()}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p
        )
        command = [
            sys.executable,
            "-m",
            "app.fal.simulator",
            "--port",
            str(self.requested_port),
            "--state-dir",
            str(self.state_dir),
            "--ready-file",
            str(self._ready_file),
            "--parent-pid",
            str(os.getpid()),
        ]
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child gracefully (SIGTERM lets uvicorn finish), killing it if it hangs."""
        proc, self._proc = self._proc, None
        self._ready_file.unlink(missing_ok=True)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it is -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("simulator not started")
        return self._port

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the value for FAL_QUEUE_RUN_HOST."""
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def client_env(self, fal_key: str = DEFAULT_FAL_KEY) -> dict[str, str]:
        return client_env(self.host, self.ca_file, fal_key)

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts only the simulator's CA: for httpx clients in this process."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- introspection (see control_api) -----------------------------------------------

    def control(self, method: str, path: str, payload: Any = None) -> Any:
        """Call a `/_simulator/` endpoint synchronously and return its JSON."""
        with httpx.Client(base_url=self.base_url, verify=self.ssl_context(), timeout=10) as c:
            response = c.request(method, f"/_simulator/{path.lstrip('/')}", json=payload)
            response.raise_for_status()
            return response.json()

    async def acontrol(self, method: str, path: str, payload: Any = None) -> Any:
        """Async `control`, for tests that must not block their event loop."""
        async with httpx.AsyncClient(
            base_url=self.base_url, verify=self.ssl_context(), timeout=10
        ) as c:
            response = await c.request(method, f"/_simulator/{path.lstrip('/')}", json=payload)
            response.raise_for_status()
            return response.json()

    def jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self.control("GET", "jobs")["jobs"]
        return jobs

    def job(self, request_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.control("GET", f"jobs/{request_id}")
        return job

    def submissions(self) -> dict[str, Any]:
        submissions: dict[str, Any] = self.control("GET", "submissions")
        return submissions

    def webhooks(self) -> dict[str, Any]:
        webhooks: dict[str, Any] = self.control("GET", "webhooks")
        return webhooks

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.control("GET", "stats")
        return stats

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change knobs in the running child, e.g. `configure(submit_error_rate=1.0)`."""
        config: dict[str, Any] = self.control("PUT", "config", changes)
        return config

    def reset(self) -> None:
        self.control("POST", "reset")

    # -- internals ---------------------------------------------------------------------

    def _knob_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for name, value in self.knobs.items():
            if value is None:
                continue
            env[f"FAL_SIMULATOR_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return env

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while self._port is None:
            self._check_alive()
            if self._ready_file.exists():
                self._port = int(json.loads(self._ready_file.read_text())["port"])
            elif time.monotonic() > deadline:
                raise TimeoutError(f"simulator did not report a port; see {self.log_file}")
            else:
                time.sleep(0.02)
        context = self.ssl_context()
        while True:
            self._check_alive()
            try:
                response = httpx.get(
                    f"{self.base_url}/_simulator/health", verify=context, timeout=2
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulator did not answer over HTTPS; see {self.log_file}")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        if self._proc is not None and (code := self._proc.poll()) is not None:
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"simulator exited with code {code}:\n{tail}")
